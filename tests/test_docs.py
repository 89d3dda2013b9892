"""The documentation runs: every code block of README.md and docs/, and every generated table.

- ``python`` blocks run in order, one namespace per page (x64 on, as in conftest.py); a block
  whose first line starts with ``>>>`` is a doctest (stdlib parser, ELLIPSIS and
  NORMALIZE_WHITESPACE), run in the same namespace.
- ``console``/``sh``/``bash`` (commands) and ``text`` (program output, formulas) blocks are not
  executed. Every fence must name its language, so a Python block cannot slip through unrun.
- A Python block that must not run is marked on the line before its fence with
  ``<!-- fdjax-docs: skip (why) -->``; the reason must not be empty, and each skipped block is
  reported as a pytest skip with its reason (``pytest -rs``).
- The README also runs with JAX's defaults (x64 off, standard promotion), as a user runs it.
- Benchmark tables between ``<!-- table: NAME -->`` and ``<!-- /table -->`` must be what
  ``python -m bench.tables`` generates from ``bench/results/*.json``.
"""

from __future__ import annotations

import ast
import doctest
import io
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
EXECUTED = {"python", "py"}
NOT_EXECUTED = {"console", "sh", "bash", "text"}
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*)$")
MARKER = re.compile(r"<!--\s*fdjax-docs:(?P<body>.*?)-->")
SKIP = re.compile(r"^\s*skip\s*\((?P<reason>.*)\)\s*$", re.S)
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the first line of code
    lang: str
    code: str
    skip: str | None  # the reason, when marked with <!-- fdjax-docs: skip (...) -->

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def doctest(self) -> bool:
        return self.code.lstrip().startswith(">>>")


def blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown page, with the marker before each (if any).

    Raises:
        ValueError: a fence without a language, or an unclosed fence.
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    out, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = m["indent"], m["fence"], m["info"].split()[0] if m["info"].strip() else ""
        if not lang:
            raise ValueError(f"{path.relative_to(ROOT)}:{i + 1}: a code fence must name its language")
        prev = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = MARKER.search(prev)
        skip = None
        if marker:
            s = SKIP.match(marker["body"])
            skip = s["reason"].strip() if s else ""
        start, i = i + 1, i + 1
        while i < len(lines) and not (
            lines[i].strip().startswith(fence[0] * len(fence)) and not lines[i].strip().strip(fence[0])
        ):
            i += 1
        if i == len(lines):
            raise ValueError(f"{path.relative_to(ROOT)}:{start}: unclosed code fence")
        body = [ln[len(indent) :] if ln.startswith(indent) else ln.lstrip() for ln in lines[start:i]]
        out.append(Block(path, start + 1, lang, "\n".join(body) + "\n", skip))
        i += 1
    return out


def run_blocks(path: Path, namespace: dict | None = None) -> list[Block]:
    """Run a page's Python blocks in order in one namespace; returns the skipped blocks."""
    ns = {"__name__": f"docs:{path.stem}"} if namespace is None else namespace
    skipped = []
    for b in blocks(path):
        if b.lang not in EXECUTED:
            continue
        if b.skip is not None:
            skipped.append(b)
            continue
        if b.doctest:
            test = doctest.DocTestParser().get_doctest(b.code, ns, b.where, str(b.path), b.line - 1)
            report = io.StringIO()
            runner = doctest.DocTestRunner(optionflags=FLAGS)
            runner.run(test, out=report.write, clear_globs=False)
            if runner.failures:
                raise AssertionError(f"doctest failed at {b.where}:\n{report.getvalue()}")
        else:
            # Pad with newlines so tracebacks give the line numbers of the Markdown file.
            exec(compile("\n" * (b.line - 1) + b.code, str(b.path), "exec"), ns)  # noqa: S102
    return skipped


def _id(path: Path) -> str:
    return str(path.relative_to(ROOT))


# ------------------------------------------------------------------------------------------
# The code blocks


@pytest.mark.parametrize("path", PAGES, ids=_id)
def test_page_code_blocks_run(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files (reports) write them here
    monkeypatch.setenv("MPLBACKEND", "Agg")
    skipped = run_blocks(path)
    if skipped:
        pytest.skip("; ".join(f"{b.where}: {b.skip}" for b in skipped))


def test_readme_runs_with_jax_defaults(tmp_path, monkeypatch):
    """As a user runs it: x64 off (float32) and standard dtype promotion, unlike conftest.py."""
    import jax

    monkeypatch.chdir(tmp_path)
    with jax.enable_x64(False), jax.numpy_dtype_promotion("standard"):
        assert not run_blocks(ROOT / "README.md")


def test_every_block_is_python_or_a_known_kind_and_every_skip_has_a_reason():
    reasons, kinds = [], set()
    for path in PAGES:
        text = path.read_text(encoding="utf-8")
        found = blocks(path)
        for b in found:
            kinds.add(b.lang)
            assert b.lang in EXECUTED | NOT_EXECUTED, f"{b.where}: unknown code block language {b.lang!r}"
            if b.skip is not None:
                assert b.lang in EXECUTED, f"{b.where}: a skip marker only makes sense before a Python block"
                assert b.skip, f"{b.where}: a skipped block needs a reason: <!-- fdjax-docs: skip (why) -->"
                reasons.append((b.where, b.skip))
            if b.lang in EXECUTED and b.skip is None and not b.doctest:
                ast.parse(b.code)  # a syntax error is reported here with the page's name
        markers = len(re.findall(r"^[ \t]*" + MARKER.pattern, text, re.M))
        assert markers == sum(b.skip is not None for b in found), (
            f"{_id(path)}: a marker that precedes no fence"
        )
    assert "python" in kinds
    # The reasons are reported with each page's skip (pytest -rs); here, the whole list at once.
    print("skipped blocks:", *(f"{w}: {r}" for w, r in reasons), sep="\n  ")


# ------------------------------------------------------------------------------------------
# Tables, links, API pages, the quick-start commands


def test_generated_tables_match_the_benchmark_json():
    from bench import tables

    stale = tables.stale(ROOT)
    assert not stale, "tables differ from bench/results/*.json; run `python -m bench.tables`:\n" + "\n".join(
        stale.values()
    )
    used = tables.used(ROOT)
    assert set(used) == set(tables.TABLES), (
        f"tables generated but shown nowhere: {set(tables.TABLES) - set(used)}"
    )


def test_bench_tables_check_exits_1_on_a_stale_table(tmp_path, monkeypatch):
    from bench import tables

    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text("<!-- table: memory -->\n| stale |\n<!-- /table -->\n")
    monkeypatch.setattr(tables, "ROOT", tmp_path)
    assert tables.main(["--check"]) == 1
    assert tables.main([]) == 0
    assert tables.main(["--check"]) == 0
    assert "GiB" in (tmp_path / "README.md").read_text()


def test_every_public_name_has_an_api_page():
    import fdjax

    pulled = {
        m
        for p in (ROOT / "docs" / "api").glob("*.md")
        for m in re.findall(r"^::: (\S+)$", p.read_text(), re.M)
    }
    missing = ({f"fdjax.{n}" for n in fdjax.__all__} | {"fdjax.report"}) - pulled
    assert not missing, f"no page under docs/api/ pulls {sorted(missing)} (add one, and add it to mkdocs.yml)"
    nav = (ROOT / "mkdocs.yml").read_text()
    for p in (ROOT / "docs").rglob("*.md"):
        rel = re.escape(str(p.relative_to(ROOT / "docs")))
        assert re.search(rf":\s+{rel}\s*$", nav, re.M), f"{p} is not in the nav of mkdocs.yml"


def test_relative_links_resolve():
    link = re.compile(r"\]\((?!https?://|#|mailto:)(?P<target>[^)#\s]+)(?:#[^)]*)?\)")
    for path in PAGES:
        for m in link.finditer(path.read_text(encoding="utf-8")):
            assert (path.parent / m["target"]).exists(), f"{_id(path)}: broken link {m['target']!r}"


def test_readme_quick_start_commands_and_ci_agree():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("## Quick start")
    quick = next(
        b for b in blocks(ROOT / "README.md") if b.lang == "bash" and b.line > readme[:start].count("\n")
    )
    commands = [ln for ln in quick.code.splitlines() if ln and not ln.startswith("#")]
    venv = 'python3 -m venv .venv && . .venv/bin/activate && pip install -e "'
    assert commands == [
        venv + '.[report]" && fdjax',
        venv + '.[test]" && python -m pytest -n 2 -q',
    ]
    tail = commands[1].split(" && ", 2)[2]
    ci = (ROOT / ".ci" / "run").read_text()
    assert tail in ci.splitlines(), f".ci/run must run the README's test command {tail!r}"
    assert "mkdocs build --strict" in ci and '".[docs]"' in ci
