"""Diagnostic reports: run the checks once, render the document as text, Markdown, JSON or HTML.

``diagnose(fn, *args)`` runs the gradient check, the step sweep, the gradient norms and the
loss-landscape slice and returns one JSON-ready document (schema ``fdjax.report/2``);
``render(doc, format)`` and ``write(doc, path)`` turn it into a terminal summary, Markdown,
JSON or a self-contained HTML page. Plots need matplotlib (``pip install 'fdjax[report]'``).
The names that need JAX are imported on first use, so ``fdjax.report.plots`` (the
calculator's plot) loads without it.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from .. import _lazy

if TYPE_CHECKING:
    from ._document import SCHEMA as SCHEMA
    from ._document import load_schema as load_schema
    from ._run import Job as Job
    from ._run import diagnose as diagnose

_LAZY = {"SCHEMA": "._document", "load_schema": "._document", "Job": "._run", "diagnose": "._run"}

__all__ = ["SCHEMA", "Job", "diagnose", "load_schema", "render", "write", "FORMATS"]


def __getattr__(name: str):
    return _lazy.load(__name__, globals(), _LAZY, name)


FORMATS = ("text", "json", "md", "html")


def render(doc: dict[str, Any], format: str = "html", color: bool = False) -> str:
    """The document as ``"text"``, ``"json"``, ``"md"`` or ``"html"``.

    Raises:
        ValueError: unknown format.
    """
    if format == "json":
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if format == "text":
        from .text import render_text

        return render_text(doc, color=color)
    if format == "md":
        from .markdown import render_markdown

        return render_markdown(doc)
    if format == "html":
        from .html import render_html

        return render_html(doc)
    raise ValueError(f"fdjax.report.render(format=...) must be one of {list(FORMATS)}, got {format!r}")


def write(doc: dict[str, Any], path: str, format: str | None = None) -> str:
    """Write the document to ``path``; the format defaults from the suffix (.html, .md, .json,
    .txt). Returns the format used.

    Raises:
        ValueError: unknown format or suffix.
    """
    if format is None:
        suffix = os.path.splitext(path)[1].lower()
        format = {".html": "html", ".htm": "html", ".md": "md", ".json": "json", ".txt": "text"}.get(suffix)
        if format is None:
            raise ValueError(
                "fdjax.report.write(path=...) needs a suffix .html, .md, .json or .txt (or format=...), "
                f"got {path!r}"
            )
    text = render(doc, format)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    return format
