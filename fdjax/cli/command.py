"""The ``fdjax`` command: check, sweep, report, calc — and, with no arguments, the main job.

``fdjax`` alone runs a gradient check and an adaptive-ε sweep on the built-in CNN,
prints a summary and writes ``fdjax-report.html``. Exit status of ``check`` and ``report``
(and of ``fdjax`` alone): 0 when the check passes, 1 when it fails (a wrong gradient),
3 when it is inconclusive (something could not be verified; ``--allow-inconclusive`` makes
that 0), and 2 on bad usage (including a bad TARGET, reported in one line), as argparse's
own usage errors. ``--exit-zero`` makes every verdict exit 0.

A model is checked in its own dtype: 64-bit JAX is turned on only when float64 is asked for
(``--dtype float64``, ``--precision float64``) or for the built-in float64 examples, and only
for the job. JAX's persistent compilation cache is on (``~/.cache/fdjax/jax``; ``--no-cache``
or ``FDJAX_CACHE=0`` turn it off), so that the next run does not compile again.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shlex
import sys
from typing import Any
from collections.abc import Callable, Sequence

from .._calculator import FORMULAS
from ..report import FORMATS


BUILTIN_MODULE = "fdjax.examples"
DEFAULT_TARGET = f"{BUILTIN_MODULE}:cnn"
DEFAULT_REPORT = "fdjax-report.html"
#: The stencils and modes the command offers. They are fdjax.METHODS and the check's modes,
#: written out so that building the parser imports no JAX (tests/test_cli.py keeps them equal).
METHODS = ("backward", "central", "central4", "central6", "complex", "forward")
MODES = ("auto", "full", "subset", "directional", "locate")
_SUFFIX_FORMAT = {".html": "html", ".htm": "html", ".md": "md", ".json": "json", ".txt": "text"}

#: Exit statuses. USAGE is argparse's own; INCONCLUSIVE is distinct from it, so that a script
#: can tell "could not verify" from "bad command line".
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INCONCLUSIVE = 0, 1, 2, 3


class UsageError(Exception):
    """Bad usage found after parsing (exit status 2, one line on stderr)."""


# ----------------------------------------------------------------------------------------------
# Parser


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return v


def _step(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number or 'auto', got {text!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"must be positive and finite, got {text!r}")
    return v


def _problem_options(p: argparse.ArgumentParser, default_format: str) -> None:
    p.add_argument(
        "target",
        nargs="?",
        default=DEFAULT_TARGET,
        metavar="TARGET",
        help="module:function or path/to/file.py:function; a function returning "
        "(loss_fn, params, *args), or the loss itself with --params "
        f"(default: {DEFAULT_TARGET}, the built-in CNN)",
    )
    p.add_argument(
        "--params",
        metavar="MODULE:ATTR",
        help="the loss's first argument (a value, or a function without arguments returning it)",
    )
    p.add_argument(
        "--args",
        metavar="MODULE:ATTR",
        help="the loss's other positional arguments (a tuple, or a function returning one)",
    )
    p.add_argument(
        "--dtype",
        choices=("float32", "float64"),
        help="cast the floating-point parameters and arguments to this dtype (default: the model's "
        "own; float64 turns 64-bit JAX on for this run, before TARGET is imported)",
    )
    p.add_argument(
        "--method",
        default="central",
        choices=METHODS,
        help="finite-difference stencil (default: central)",
    )
    p.add_argument("--key", type=int, default=0, help="PRNG seed for subsets and directions (default: 0)")
    p.add_argument(
        "--chunk-size",
        type=_positive_int,
        metavar="N",
        help="perturbed evaluations per vmapped chunk (default: from a memory budget)",
    )
    p.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help=f"output format (default: {default_format}, or from the -o suffix)",
    )
    p.add_argument("-o", "--output", metavar="PATH", help="write the output to PATH instead of stdout")
    p.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress and no summary: stdout carries only a document asked for with --format",
    )
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="do not use JAX's persistent compilation cache (default: on, in $FDJAX_CACHE_DIR or "
        "~/.cache/fdjax/jax, so that the next run does not compile again; FDJAX_CACHE=0 turns it off too)",
    )


def _check_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("gradient check")
    g.add_argument(
        "--mode",
        default="auto",
        choices=MODES,
        help="auto: full when it is cheap (a few seconds predicted), else locate; full: every element; "
        "subset: -k random elements per leaf; directional: random directions; locate: directions, then "
        "bisection to the wrong elements (default: auto; the output says which mode ran and why)",
    )
    g.add_argument(
        "--step",
        type=_step,
        default=None,
        metavar="H",
        help="relative step, or 'auto' for the per-parameter adaptive step "
        "(default: cbrt(eps) of the dtype for central)",
    )
    g.add_argument(
        "-k",
        "--subset",
        type=_positive_int,
        metavar="K",
        help="elements per leaf (subset mode) or random directions (directional/locate modes)",
    )
    g.add_argument(
        "--precision",
        choices=("native", "float64"),
        help="float64: evaluate f in float64 even when the parameters are float32 (turns 64-bit JAX on for "
        "this run); native: check 16-bit leaves in their own dtype (default: bfloat16/float16 leaves are "
        "checked in float32)",
    )
    g.add_argument(
        "--allow-inconclusive",
        action="store_true",
        help=f"exit 0 when the check is inconclusive (default: exit {EXIT_INCONCLUSIVE}); a failure still "
        f"exits {EXIT_FAILED}",
    )
    g.add_argument(
        "--exit-zero",
        action="store_true",
        help=f"exit 0 whatever the verdict (default: {EXIT_FAILED} when the check fails, "
        f"{EXIT_INCONCLUSIVE} when it is inconclusive, after writing the output)",
    )


def _sweep_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("step sweep")
    g.add_argument(
        "--num-steps",
        type=_positive_int,
        metavar="K",
        help="steps in the ladder (default: from the dtype)",
    )
    g.add_argument(
        "--sweep-size",
        type=_positive_int,
        metavar="N",
        default=None,
        help="parameters in the sweep: all when N or fewer, else N chosen at random "
        "(default: 1024 for `report`, all for `sweep`)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (subcommands check, sweep, report, calc)."""
    parser = argparse.ArgumentParser(
        prog="fdjax",
        description="Finite-difference gradient checks, step sweeps and diagnostic reports for JAX. "
        "With no command: check and sweep the built-in CNN and write fdjax-report.html.",
    )
    from .._version import __version__

    parser.add_argument("--version", action="version", version=f"fdjax {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "check",
        help="compare jax.grad with finite differences; exit 1 when wrong",
        description=f"Gradient check of TARGET. Exit {EXIT_OK} when it passes, {EXIT_FAILED} when it fails, "
        f"{EXIT_INCONCLUSIVE} when it is inconclusive (a kink, a non-finite value, a gradient below "
        f"finite-difference resolution: the output says which and what would resolve it), "
        f"{EXIT_USAGE} on bad usage.",
    )
    _problem_options(p, "text")
    _check_options(p)

    p = sub.add_parser(
        "sweep",
        help="the adaptive step sweep: error vs h per parameter",
        description="Step sweep of TARGET: estimates on a ladder of steps, observed orders, "
        "the chosen step and an error estimate per parameter.",
    )
    _problem_options(p, "text")
    _sweep_options(p)
    p.add_argument("--step", type=_step, default=None, metavar="H", help=argparse.SUPPRESS)

    p = sub.add_parser(
        "report",
        help="check + sweep + plots as one report (HTML, Markdown or JSON)",
        description="Gradient check, step sweep, gradient norms and a loss-landscape slice "
        f"of TARGET as one report (default -o {DEFAULT_REPORT}). Exit {EXIT_OK} when the check passes, "
        f"{EXIT_FAILED} when it fails, {EXIT_INCONCLUSIVE} when it is inconclusive (the report is "
        f"written either way), {EXIT_USAGE} on bad usage.",
    )
    _problem_options(p, "html")
    _check_options(p)
    _sweep_options(p)
    g = p.add_argument_group("report")
    g.add_argument("--no-sweep", action="store_true", help="skip the step sweep")
    g.add_argument("--no-landscape", action="store_true", help="skip the loss-landscape slice")
    g.add_argument(
        "--resolution",
        type=_positive_int,
        default=21,
        metavar="R",
        help="landscape grid points per axis (default: 21)",
    )

    p = sub.add_parser(
        "calc",
        help="the single-parameter calculator: θ, J(θ), ε, J(θ±ε) → gradient",
        description="Finite-difference gradient of one parameter from loss values, shown "
        "as a worked example.",
    )
    p.add_argument("--theta", metavar="θ", help="the parameter value θ")
    p.add_argument("--J", "--loss", dest="loss", metavar="J(θ)", help="the loss at θ")
    p.add_argument("--eps", "--epsilon", dest="epsilon", metavar="ε", help="the step ε (positive)")
    p.add_argument("--J-plus", "--loss-plus", dest="loss_plus", metavar="J(θ+ε)", help="the loss at θ+ε")
    p.add_argument("--J-minus", "--loss-minus", dest="loss_minus", metavar="J(θ−ε)", help="the loss at θ−ε")
    p.add_argument(
        "--method",
        default="central",
        choices=tuple(FORMULAS),
        help="difference formula (default: central)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument(
        "--plot", metavar="FILE", help="draw the loss points and the secant line to FILE (.png/.svg/.pdf)"
    )
    p.add_argument(
        "--table",
        action="store_true",
        help="print the ε table for J(θ) = θ² at --theta (default θ = 1; ε = 1e-1 … 1e-7)",
    )
    return parser


# ----------------------------------------------------------------------------------------------
# calc

_CALC_FLAGS = {
    "theta": "--theta",
    "loss": "--J",
    "epsilon": "--eps",
    "loss_plus": "--J-plus",
    "loss_minus": "--J-minus",
    "method": "--method",
    "epsilons": "--table steps",
}


def _run_calc(ns: argparse.Namespace, out) -> int:
    import warnings

    from .._calculator import CalculationWarning, calculate, epsilon_table, rename_arguments

    flags = lambda text: rename_arguments(text, _CALC_FLAGS)  # noqa: E731
    if ns.plot and ns.theta is None:
        raise UsageError("--plot needs --theta (θ)")
    have_values = any(getattr(ns, k) is not None for k in ("loss", "loss_plus", "loss_minus", "epsilon"))
    calc = table = None
    try:
        if have_values or not ns.table:
            with warnings.catch_warnings():  # shown once, below, in the command's own words
                warnings.simplefilter("ignore", CalculationWarning)
                calc = calculate(
                    ns.theta,
                    epsilon=ns.epsilon,
                    loss=ns.loss,
                    loss_plus=ns.loss_plus,
                    loss_minus=ns.loss_minus,
                    method=ns.method,
                )
        if ns.table:
            table = epsilon_table(ns.theta)
    except (TypeError, ValueError) as e:
        raise UsageError(flags(str(e))) from None
    if ns.json:
        doc: dict[str, Any] = {}
        if calc is not None:
            doc.update(calc.to_dict())
            doc["warnings"] = [flags(w) for w in calc.warnings]
            for w in doc["warnings"]:
                print(f"fdjax calc: warning: {w}", file=sys.stderr)
        if table is not None:
            doc["table"] = table.to_dict()
        out.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    else:
        parts = [flags(str(calc))] if calc is not None else []
        if table is not None:
            parts.append(str(table))
        out.write("\n\n".join(parts) + "\n")
    if ns.plot and calc is not None:
        _calc_plot(calc, ns.plot)
        if not ns.json:
            out.write(f"wrote {ns.plot}\n")
    return 0


def _calc_plot(calc, path: str) -> None:
    from ..report import plots

    title = f"{calc.method} difference: dJ/dθ ≈ {calc.text['gradient']}"
    points = calc.points
    fig = plots.secant_figure(calc.theta, calc.epsilon, points, points[0], calc.gradient, title=title)
    try:
        plots.save(fig, path)
    except (OSError, ValueError) as e:
        raise UsageError(f"--plot {path!r}: {e}") from None


# ----------------------------------------------------------------------------------------------
# check / sweep / report


def _output_format(ns: argparse.Namespace, default: str) -> str:
    if ns.format:
        return ns.format
    if ns.output:
        return _SUFFIX_FORMAT.get(os.path.splitext(ns.output)[1].lower(), default)
    return default


def _command_line(argv: Sequence[str]) -> str:
    return " ".join(["fdjax", *(shlex.quote(a) for a in argv)])


def _run_job(ns: argparse.Namespace, argv: Sequence[str], out) -> int:
    from ..report._progress import Progress, default_style

    progress = Progress(default_style(sys.stderr, ns.quiet), sys.stderr)
    command = ns.command
    fmt = _output_format(ns, "html" if command == "report" else "text")
    if command == "report" and fmt == "html" and not ns.output:
        ns.output = DEFAULT_REPORT
    if ns.output and not os.path.isdir(os.path.dirname(os.path.abspath(ns.output))):
        raise UsageError(f"-o {ns.output!r}: No such file or directory: {os.path.dirname(ns.output)!r}")
    destination = f", writing {ns.output}" if ns.output else ""
    cache = _cache_folder(ns)
    progress.line(f"{command} {ns.target}{destination}")

    with progress.step("import JAX"):  # and the modules that need it
        import jax

        from . import target  # noqa: F401
        from ..report import _run  # noqa: F401

    # What the command sets in JAX lasts for this job only: 64-bit mode (when float64 is asked
    # for, or for the float64 built-in examples) and the compilation cache. A Python caller of
    # main() finds JAX as it left it; TARGET is imported with 64-bit mode as the job runs it.
    with contextlib.ExitStack() as scope:
        if _wants_x64(ns) and not jax.config.jax_enable_x64:  # type: ignore[attr-defined]
            # the global flag, not the thread-local `jax.enable_x64` context: the progress
            # counter's host callbacks run in other threads, and must see 64-bit mode too
            jax.config.update("jax_enable_x64", True)
            scope.callback(jax.config.update, "jax_enable_x64", False)
        if cache is not None:
            scope.callback(_activate_cache(cache, progress))
        return _check_problem(ns, argv, out, progress, fmt)


def _wants_x64(ns: argparse.Namespace) -> bool:
    """64-bit JAX for this job: float64 asked for (``--dtype``/``--precision float64``), or a
    built-in example (``fdjax.examples``: float64 models) without ``--dtype float32``. Otherwise
    TARGET runs as JAX is configured (``JAX_ENABLE_X64``): a float32 model is checked in float32."""
    if ns.dtype == "float64" or getattr(ns, "precision", None) == "float64":
        return True
    return ns.dtype is None and ns.target.rpartition(":")[0] == BUILTIN_MODULE


def _cache_folder(ns: argparse.Namespace) -> str | None:
    """The compilation cache's folder for this job; None when it is off (``--no-cache``,
    ``FDJAX_CACHE=0``)."""
    from .. import _cache

    try:
        on = _cache.switched_on()
    except ValueError as e:
        raise UsageError(str(e)) from None
    return _cache.default_dir() if on and not ns.no_cache else None


def _activate_cache(where: str, progress) -> Callable[[], None]:
    """Turn the cache on in ``where`` (a folder set in JAX already, e.g. by
    ``JAX_COMPILATION_CACHE_DIR``, is kept); returns what undoes it. A folder that cannot be
    created leaves the cache off, with a note: the check does not need it."""
    from .. import _cache

    if _cache.configured_dir() is not None:
        return lambda: None
    try:
        where = _cache.folder(where, "the compilation cache folder")
    except ValueError as e:
        progress.line(f"compilation cache off: {e} (set {_cache.ENV_DIR}, or --no-cache)")
        return lambda: None
    return _cache.activate(where)


def _check_problem(ns: argparse.Namespace, argv: Sequence[str], out, progress, fmt: str) -> int:
    from .target import TargetError, cast_floats, load_problem
    from ..report import _run, render

    command = ns.command
    with progress.step(f"load {ns.target}"):
        try:
            problem = load_problem(ns.target, ns.params, ns.args)
        except TargetError as e:
            raise UsageError(str(e)) from None
        if ns.dtype:
            problem.params = cast_floats(problem.params, ns.dtype)
            problem.args = tuple(cast_floats(a, ns.dtype) for a in problem.args)

    job = _run.Job(
        check=command in ("check", "report"),
        sweep=command == "sweep" or (command == "report" and not ns.no_sweep),
        landscape=command == "report" and not ns.no_landscape,
        method=ns.method,
        mode=getattr(ns, "mode", "auto"),
        step=getattr(ns, "step", None),
        k=getattr(ns, "subset", None),
        key=ns.key,
        precision=getattr(ns, "precision", None),
        chunk_size=ns.chunk_size,
        num_steps=getattr(ns, "num_steps", None),
        sweep_size=getattr(ns, "sweep_size", None) or (1024 if command == "report" else None),
        resolution=getattr(ns, "resolution", 21),
    )
    try:
        doc = _run.diagnose(
            problem.loss_fn,
            problem.params,
            *problem.args,
            job=job,
            progress=progress,
            target=problem.name,
            command=_command_line(argv),
        )
    except (TypeError, ValueError) as e:
        raise UsageError(f"{problem.name}: {str(e).strip().splitlines()[0]}") from None

    with progress.step(f"render {fmt}" + (f" to {ns.output}" if ns.output else "")):
        rendered = render(doc, fmt)
        if ns.output:
            try:
                with open(ns.output, "w", encoding="utf-8") as fh:
                    fh.write(rendered)
            except OSError as e:
                raise UsageError(f"-o {ns.output!r}: {e.strerror or e}") from None
    if ns.output:
        if not ns.quiet:
            if fmt != "text":
                out.write(render(doc, "text", color=_isatty(out)))
            out.write(f"\nwrote {ns.output}\n")
    elif not ns.quiet or ns.format:
        # -q leaves on stdout only a document asked for with --format
        out.write(rendered if rendered.endswith("\n") else rendered + "\n")
    return _exit_status(doc["verdict"]["status"] if job.check else None, ns)


def _exit_status(status: str | None, ns: argparse.Namespace) -> int:
    """The exit status of a verdict status ("passed", "failed", "inconclusive"; None: no check)."""
    if getattr(ns, "exit_zero", False):
        return EXIT_OK
    if status == "failed":
        return EXIT_FAILED
    if status == "inconclusive" and not getattr(ns, "allow_inconclusive", False):
        return EXIT_INCONCLUSIVE
    return EXIT_OK


def _isatty(stream) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


# ----------------------------------------------------------------------------------------------
# main


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 check failed, 2 bad usage,
    3 check inconclusive)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    job_argv = argv
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        # The main job: `fdjax [options]` is `fdjax report fdjax.examples:cnn -o fdjax-report.html`.
        if not any(a in ("-o", "--output") or a.startswith("--output=") for a in argv):
            argv = [*argv, "-o", DEFAULT_REPORT]
        argv = ["report", *argv]
    parser = build_parser()
    ns = parser.parse_args(argv)
    if ns.command is None:  # pragma: no cover - unreachable: the default job is inserted above
        parser.print_help()
        return 2
    out = sys.stdout
    try:
        if ns.command == "calc":
            return _run_calc(ns, out)
        return _run_job(ns, job_argv, out)
    except UsageError as e:
        print(f"fdjax {ns.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # pragma: no cover
        print("fdjax: interrupted", file=sys.stderr)
        return 130
