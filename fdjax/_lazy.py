"""Attributes of a package imported on first use (PEP 562), so that importing the package
does not import JAX: ``fdjax --help`` and ``fdjax calc`` never load it."""

from __future__ import annotations

import importlib
from typing import Any


def load(package: str, namespace: dict[str, Any], names: dict[str, str], name: str) -> Any:
    """The attribute ``name`` of ``package``, imported from ``names[name]`` (a relative module)
    and cached in the package's ``namespace``."""
    module = names.get(name)
    if module is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, package), name)
    namespace[name] = value
    return value
