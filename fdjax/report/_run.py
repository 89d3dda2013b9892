"""Run the diagnostics a report shows and collect them as one JSON-ready document.

This is the only part of ``fdjax.report`` that calls into the library (check_grad, sweep,
the landscape and a one-parameter slice); the renderers only read the document.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from .._sweep import sweep
from .._check import check_grad
from .._check import element_rows
from .._check import CheckStatus
from .._landscape import landscape as _landscape
from .._landscape import parameter_slice
from .._fd import working_eps
from .._pytree import element_name, flatten_args
from . import _document
from ._progress import Progress


#: The report keeps at most this many checked elements (the worst first) of a check.
MAX_ELEMENTS = 20000


@dataclasses.dataclass(frozen=True)
class Job:
    """What to run and how (the command line's options).

    Attributes:
        check: run ``fdjax.check_grad``.
        sweep: run ``fdjax.sweep``.
        landscape: evaluate the loss-landscape slice.
        method, mode, step, k, key, precision, chunk_size: passed to the check (and the sweep);
            ``mode="auto"`` (the default) lets the check choose, and the document records the
            mode that ran.
        num_steps: halvings of the sweep's ladder (None: the sweep's default).
        sweep_size: at most this many parameters in the sweep, chosen at random from the
            key (None: all).
        resolution: landscape grid points per axis.
        span: landscape grid half-width, in units of the filter-normalised directions.
    """

    check: bool = True
    sweep: bool = True
    landscape: bool = True
    method: str = "central"
    mode: str = "auto"
    step: Any = None
    k: int | None = None
    key: int = 0
    precision: str | None = None
    chunk_size: int | None = None
    num_steps: int | None = None
    sweep_size: int | None = 1024
    resolution: int = 21
    span: float = 1.0


def diagnose(
    fn: Callable,
    *args: Any,
    job: Job = Job(),
    progress: Progress | None = None,
    target: str | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """Check, sweep and map ``fn(*args)`` (gradient with respect to ``args[0]``); return the
    report document (see ``docs/report-schema.md``).

    A loss that is not finite at the point itself still gets a document: the check says
    where it is not finite, and the parts that need a finite loss (sweep, landscape, the
    one-parameter slice) are left out with a note saying why.

    Args:
        fn: scalar loss; differentiated with respect to its first argument.
        *args: its positional arguments.
        job: what to run (``Job``).
        progress: where to show progress (a ``Progress``; default: nothing shown).
        target: the TARGET string to record (command line).
        command: the command line that reproduces the report.

    Returns:
        The document: a dict of JSON types only.
    """
    started = time.time()
    prog = progress if progress is not None else Progress("off")
    counted = prog.wrap(fn)
    fa = flatten_args(args, 0, "fdjax.report.diagnose")
    timings: dict[str, float] = {}
    sections: dict[str, Any] = {}
    notes: list[str] = []

    with prog.step("f(x) and jax.grad"):
        value, grads = jax.jit(jax.value_and_grad(fn))(*args)
        loss0 = float(value)
    finite = math.isfinite(loss0)
    if not finite:
        notes.append(
            f"the loss is {loss0} at the point itself: the step sweep, the landscape and the "
            "one-parameter slice need a finite loss and were skipped"
        )

    check_obj = None
    if job.check:
        t = time.perf_counter()
        with prog.stage("check"):
            check_obj = _run_check(counted, args, job)
        timings["check"] = time.perf_counter() - t
        sections["check"] = check_obj.to_dict(MAX_ELEMENTS)

    if job.sweep and finite:
        t = time.perf_counter()
        with prog.stage("sweep"):
            sweep_obj = _run_sweep(counted, args, fa.size, job, grads, notes)
        timings["sweep"] = time.perf_counter() - t
        sections["sweep"] = sweep_obj.to_dict()
        status = None if check_obj is None else CheckStatus(int(check_obj.status))
        if status == CheckStatus.FAIL:
            notes.append(
                "the check FAILED, so the sweep's 'true error' (measured against jax.grad) "
                "measures the distance to the wrong gradient, not the sweep's own error"
            )
        elif status == CheckStatus.INCONCLUSIVE:
            notes.append(
                "the check was INCONCLUSIVE, so the sweep's 'true error' is measured against a jax.grad "
                "that was not verified, and is not the sweep's own error"
            )

    if job.landscape and finite:
        t = time.perf_counter()
        with prog.stage("landscape"):
            ls = _landscape(
                counted,
                *args,
                key=job.key,
                span=job.span,
                resolution=job.resolution,
                chunk_size=job.chunk_size,
            )
        timings["landscape"] = time.perf_counter() - t
        d = ls.to_dict()
        d.update(span=job.span, resolution=job.resolution, key=job.key)
        sections["landscape"] = d

    flat_grad = np.asarray(ravel_pytree(_float_leaves(grads))[0], np.float64)
    if finite:
        t = time.perf_counter()
        index = _slice_parameter(check_obj, flat_grad)
        with prog.stage("slice"):
            sections["parameter_slice"] = _slice(counted, args, fa, index, float(flat_grad[index]), job)
        timings["slice"] = time.perf_counter() - t

    sections["gradient_norms"] = _document.gradient_norms(fa, grads)
    return _document.build(
        fa=fa,
        loss=loss0,
        job=job,
        sections=sections,
        timings=timings,
        wall_time=time.time() - started,
        started=started,
        evaluations=prog.evaluations if prog.enabled else None,
        target=target,
        command=command,
        notes=notes,
    )


def _float_leaves(tree):
    return [
        leaf
        for leaf in jax.tree_util.tree_leaves(tree)
        if jnp.issubdtype(jnp.result_type(leaf), jnp.floating)
    ]


def _run_check(fn, args, job: Job):
    kwargs: dict[str, Any] = dict(mode=job.mode, method=job.method, step=job.step, key=job.key)
    if job.k is not None:
        kwargs["k" if job.mode == "subset" else "num_directions"] = job.k
    if job.precision is not None:
        kwargs["precision"] = job.precision
    if job.chunk_size is not None:
        kwargs["chunk_size"] = job.chunk_size
    return check_grad(fn, *args, **kwargs)


def _run_sweep(fn, args, n: int, job: Job, grads, notes: list[str]):
    kwargs: dict[str, Any] = dict(
        method=job.method if job.method != "complex" else "central", reference=grads
    )
    if job.num_steps is not None:
        kwargs["num_steps"] = job.num_steps
    if job.sweep_size is not None and n > job.sweep_size:
        idx = np.sort(
            np.asarray(jax.random.choice(jax.random.key(job.key), n, (job.sweep_size,), replace=False))
        )
        kwargs["indices"] = jnp.asarray(idx)
        notes.append(
            f"the step sweep covers {job.sweep_size} of {n} parameters, chosen at random (key {job.key})"
        )
    if job.chunk_size is not None:
        kwargs["chunk_size"] = job.chunk_size
    return sweep(fn, *args, **kwargs)


def _slice_parameter(check, flat_grad: np.ndarray) -> int:
    """The parameter the calculator-style chart shows: the worst failing element, else an
    element that bisection located, else the largest |∇| inside the worst failing direction's
    support, else (an inconclusive check) its worst inconclusive element, so that the chart
    shows the kink or the flat loss that left it open, else the element with the largest
    analytic gradient."""
    g = np.where(np.isfinite(flat_grad), np.abs(flat_grad), -1)
    if check is None:
        return int(np.argmax(g))
    status = np.asarray(check.elements.status)
    worst = [i for i in element_rows(check) if status[i] == CheckStatus.FAIL]
    if worst:
        return int(np.asarray(check.elements.index)[worst[0]])
    located = [int(i) for i in np.asarray(check.located).ravel() if i >= 0]
    if located:
        return located[0]
    dirs = jax.device_get(check.directions)
    failing = np.flatnonzero(dirs.status == CheckStatus.FAIL)
    if failing.size:
        ratio = dirs.abs_error[failing] / dirs.tolerance[failing]
        d = int(failing[np.argmax(np.nan_to_num(ratio, nan=np.inf))])
        lo, hi = int(dirs.lo[d]), int(dirs.hi[d])
        if hi > lo:
            return lo + int(np.argmax(g[lo:hi]))
    if int(check.status) == CheckStatus.INCONCLUSIVE:
        open_ = [i for i in element_rows(check) if status[i] == CheckStatus.INCONCLUSIVE]
        if open_:
            return int(np.asarray(check.elements.index)[open_[0]])
    return int(np.argmax(g))


def _slice(fn, args, fa, index: int, analytic: float, job: Job) -> dict[str, Any]:
    x = np.asarray(fa.x, np.float64)
    theta = float(x[index])
    scale = max(abs(theta), 1.0)
    # the default central step: x's eps, or that of the float f computes in where coarser
    eps_machine = max(float(jnp.finfo(fa.x.dtype).eps), working_eps(fn, fa)[0])
    h = eps_machine ** (1 / 3) * scale
    span = 0.5 * scale
    display_eps = span / 2.5
    curve_t = np.linspace(-span, span, 41)
    offsets = np.concatenate([curve_t, [-display_eps, display_eps, -h, h]])
    _, losses = parameter_slice(fn, tuple(args), index, offsets, chunk_size=job.chunk_size)
    curve, pts, step_pts = losses[:41], losses[41:43], losses[43:45]
    j0 = float(losses[20])
    numeric = float((step_pts[1] - step_pts[0]) / (2 * h))

    return {
        "parameter": element_name(fa, index),
        "flat_index": int(index),
        "theta": theta,
        "loss": j0,
        "analytic": float(analytic),
        "step": h,
        "numeric": numeric,
        "display_epsilon": float(display_eps),
        "display_loss_minus": float(pts[0]),
        "display_loss_plus": float(pts[1]),
        "display_secant": float((pts[1] - pts[0]) / (2 * display_eps)),
        "curve_offsets": [float(v) for v in curve_t],
        "curve_losses": [float(v) if np.isfinite(v) else None for v in curve],
    }
