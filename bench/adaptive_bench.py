"""Adaptive ε: accuracy and cost of ``step="auto"`` against numdifftools and scipy.

    python bench/adaptive_bench.py [--repeats 5]

For each closed-form test function of issue 4 (float64), the derivative from

- ``fdjax``: ``fdjax.sweep`` (what ``fdjax.grad(f, step="auto")`` returns): the default
  float64 ladder (14 steps of ratio 4 from 0.1 relative), central differences, all steps in
  one batched call;
- ``numdifftools``: ``numdifftools.Derivative(f)(x)`` with its defaults (central differences
  on a geometric ladder with Richardson extrapolation);
- ``scipy``: ``scipy.differentiate.derivative(f, x)`` with its defaults (8th-order central
  differences, iterated step reduction);

with its relative error, its error estimate (does it cover the true error?) and the number
of function evaluations per parameter. Then the time of a 1,000-parameter gradient (the
tanh MLP of bench/_common.py): ``fdjax.grad(step="auto")`` (compile included, and cached),
``fdjax.grad`` with the default step, ``numdifftools.Gradient`` and
``scipy.differentiate.jacobian`` on the same flat loss.

numdifftools and scipy are optional (``pip install numdifftools scipy``): missing ones are
skipped. Prints a Markdown table; writes bench/results/adaptive.json.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _common as C  # noqa: E402

C.setup()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import fdjax  # noqa: E402
from fdjax._fd import default_relative_steps  # noqa: E402

#: steps of the default float64 ladder
K64 = len(default_relative_steps(np.float64))

try:
    import numdifftools as nd
except ImportError:  # pragma: no cover - optional
    nd = None
try:
    from scipy import differentiate as sd
except ImportError:  # pragma: no cover - optional
    sd = None


def xi_np(x):
    """The noise of the test suite's noisy function, in NumPy (same bits -> same noise)."""
    z = np.atleast_1d(np.asarray(x, np.float64)).view(np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return ((z >> np.uint64(11)).astype(np.float64) * 2.0**-52 - 1.0).reshape(np.shape(x))


def xi_jnp(x):
    z = jax.lax.bitcast_convert_type(x, jnp.uint64)
    z = (z ^ (z >> 30)) * jnp.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> 27)) * jnp.uint64(0x94D049BB133111EB)
    z = z ^ (z >> 31)
    return (z >> 11).astype(jnp.float64) * 2.0**-52 - 1.0


def functions():
    """name -> (f in jnp, f in numpy, x0, f'(x0))."""

    def squire(m):
        return lambda x: m.exp(x) / m.sqrt(m.sin(x) ** 3 + m.cos(x) ** 3)

    return {
        "exp(x) at 1": (jnp.exp, np.exp, 1.0, math.exp(1.0)),
        "sin(x) at 1": (jnp.sin, np.sin, 1.0, math.cos(1.0)),
        "sin(x) at 1e4": (jnp.sin, np.sin, 1e4, math.cos(1e4)),
        "1/x at 1e-3": (lambda x: 1 / x, lambda x: 1 / x, 1e-3, -1e6),
        "log(x) at 1e-3": (jnp.log, np.log, 1e-3, 1e3),
        "x^(1/3) at 1e-6": (lambda x: x ** (1 / 3), lambda x: np.power(x, 1 / 3), 1e-6, 1e-6 ** (-2 / 3) / 3),
        "tanh(x) at 20": (jnp.tanh, np.tanh, 20.0, 1 / math.cosh(20.0) ** 2),
        "exp/sqrt(sin³+cos³) at 1.5": (squire(jnp), squire(np), 1.5, 4.053427893898621),
        "sin(1000x) at 1": (lambda x: jnp.sin(1000 * x), lambda x: np.sin(1000 * x), 1.0, 562.379076290703),
        "x² at 1": (lambda x: x**2, lambda x: x**2, 1.0, 2.0),
        "sin(x)(1 + 1e-6·ξ(x)) at 1": (
            lambda x: jnp.sin(x) * (1 + 1e-6 * xi_jnp(x)),
            lambda x: np.sin(x) * (1 + 1e-6 * xi_np(x)),
            1.0,
            math.cos(1.0),
        ),
    }


class Counted:
    """A NumPy function that counts the points it is evaluated at."""

    def __init__(self, f):
        self.f, self.n = f, 0

    def __call__(self, x, *args):
        self.n += int(np.size(x))
        return self.f(x)


def rel(est, true):
    return abs(est - true) / abs(true) if math.isfinite(est) else math.inf


def accuracy() -> list[dict]:
    rows = []
    for name, (fj, fn, x0, true) in functions().items():
        row = {"function": name}
        s = fdjax.sweep(fj, jnp.asarray(x0))
        est = float(s.estimate[0])
        row["fdjax"] = dict(
            estimate=est,
            rel_error=rel(est, true),
            error_estimate=float(s.error_estimate[0]),
            evaluations=s.evaluations,
            status=s.flags(0).name,
        )
        if nd is not None:
            f = Counted(fn)
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                r = nd.Derivative(f, full_output=True)(x0)
            est = float(np.ravel(r.estimate)[0])
            row["numdifftools"] = dict(
                estimate=est,
                rel_error=rel(est, true),
                error_estimate=float(np.ravel(r.error_estimate)[0]),
                evaluations=f.n,
            )
        if sd is not None:
            f = Counted(fn)
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                r = sd.derivative(f, x0)
            est = float(r.df)
            row["scipy"] = dict(
                estimate=est,
                rel_error=rel(est, true),
                error_estimate=float(r.error),
                evaluations=int(r.nfev),
                success=bool(r.success),
            )
        for k in ("fdjax", "numdifftools", "scipy"):
            if k in row:
                e = row[k]
                e["covered"] = (
                    bool(e["error_estimate"] >= abs(e["estimate"] - true))
                    if math.isfinite(e["estimate"])
                    else False
                )
        rows.append(row)
    return rows


def gradient_times(repeats: int) -> dict:
    loss, params, X, Y, flat_loss, x0, _ = C.mlp_problem(1000)
    n = int(x0.size)
    ref = np.asarray(jax.grad(flat_loss)(x0))
    out = {"parameters": n}

    def err(g):
        r = np.abs(np.asarray(g) - ref) / np.abs(ref)
        return float(np.median(r))

    auto = fdjax.grad(flat_loss, step="auto")
    t = time.perf_counter()
    g = jax.block_until_ready(auto(x0))
    out["fdjax_auto_first_s"] = time.perf_counter() - t
    plain = fdjax.grad(flat_loss)
    g_plain = jax.block_until_ready(plain(x0))
    contenders = {"fdjax_auto": lambda: auto(x0), "fdjax_default_step": lambda: plain(x0)}
    times = C.interleaved(contenders, repeats)
    out["fdjax_auto_s"] = C.median(times["fdjax_auto"])
    out["fdjax_auto_median_rel_error"] = err(g)
    out["fdjax_auto_evaluations"] = 2 * K64 * n + 1
    out["fdjax_default_step_s"] = C.median(times["fdjax_default_step"])
    out["fdjax_default_step_median_rel_error"] = err(g_plain)
    jitted = jax.jit(flat_loss)
    if nd is not None:
        f = Counted(lambda v: float(jitted(v)))  # counts n per call: one loss per call
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            g_nd = nd.Gradient(f)(np.asarray(x0))
        out["numdifftools_s"] = time.perf_counter() - t
        out["numdifftools_median_rel_error"] = err(g_nd)
        out["numdifftools_evaluations"] = f.n // n
    if sd is not None:
        batched = jax.jit(jax.vmap(flat_loss, in_axes=1))

        def fvec(v):  # scipy passes [n, ...]: one loss per trailing index
            shape = v.shape[1:]
            return np.asarray(batched(jnp.asarray(v.reshape(n, -1)))).reshape(shape)

        f = Counted(fvec)
        t = time.perf_counter()
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            r = sd.jacobian(f, np.asarray(x0))
        out["scipy_s"] = time.perf_counter() - t
        out["scipy_median_rel_error"] = err(r.df)
        out["scipy_evaluations"] = f.n // n  # each point is an n-vector
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    rows = accuracy()
    methods = [m for m in ("fdjax", "numdifftools", "scipy") if any(m in r for r in rows)]
    header = ["function"] + [f"{m} {c}" for m in methods for c in ("rel. error", "evals")]
    body = []
    for r in rows:
        line = [r["function"]]
        for m in methods:
            e = r[m]
            line += [f"{e['rel_error']:.1e}" + ("" if e["covered"] else " ✗"), str(e["evaluations"])]
        body.append(line)
    summary = {}
    for m in methods:
        errs = [r[m]["rel_error"] for r in rows]
        summary[m] = {
            "median_rel_error": float(np.median(errs)),
            "worst_rel_error": float(np.max(errs)),
            "within_1e-6": int(sum(e <= 1e-6 for e in errs)),
            "mean_evaluations": float(np.mean([r[m]["evaluations"] for r in rows])),
            "covered": int(sum(r[m]["covered"] for r in rows)),
        }
    line = ["**median** (worst)"]
    for m in methods:
        s = summary[m]
        line += [
            f"**{s['median_rel_error']:.1e}** ({s['worst_rel_error']:.0e})",
            f"{s['mean_evaluations']:.0f}",
        ]
    body.append(line)
    print(C.markdown_table(header, body))
    print(
        "\n✗: the method's own error estimate does not cover its true error. "
        f"Evaluations are per parameter (fdjax: 2 × {K64} steps + f(x))."
    )
    for m in methods:
        s = summary[m]
        print(
            f"- {m}: {s['within_1e-6']}/{len(rows)} functions within 1e-6 relative; "
            f"error estimate covers the true error on {s['covered']}/{len(rows)}"
        )
    grad = gradient_times(args.repeats)
    gh = ["method", "time (s)", "evaluations of the loss", "median rel. error vs jax.grad"]
    gb = [
        [
            "fdjax.grad(step='auto')",
            f"{grad['fdjax_auto_s']:.3f} (first call {grad['fdjax_auto_first_s']:.1f})",
            str(grad["fdjax_auto_evaluations"]),
            f"{grad['fdjax_auto_median_rel_error']:.1e}",
        ],
        [
            "fdjax.grad (default step)",
            f"{grad['fdjax_default_step_s']:.3f}",
            str(2 * grad["parameters"] + 1),
            f"{grad['fdjax_default_step_median_rel_error']:.1e}",
        ],
    ]
    if "numdifftools_s" in grad:
        gb.append(
            [
                "numdifftools.Gradient",
                f"{grad['numdifftools_s']:.2f}",
                str(grad["numdifftools_evaluations"]),
                f"{grad['numdifftools_median_rel_error']:.1e}",
            ]
        )
    if "scipy_s" in grad:
        gb.append(
            [
                "scipy.differentiate.jacobian",
                f"{grad['scipy_s']:.2f}",
                str(grad["scipy_evaluations"]),
                f"{grad['scipy_median_rel_error']:.1e}",
            ]
        )
    print(f"\nGradient of the {grad['parameters']}-parameter tanh MLP (bench/_common.py), float64:\n")
    print(C.markdown_table(gh, gb))
    path = C.write_json(
        "adaptive.json", {"machine": C.machine(), "functions": rows, "summary": summary, "gradient": grad}
    )
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
