"""The report document: one JSON-ready dict with every number a report shows.

Schema ``fdjax.report/2`` (``schema.json`` beside this file; described in
``docs/report-schema.md``). The text, Markdown and HTML renderers read only this document.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._json import jsonable as jsonable
from . import _views


SCHEMA = "fdjax.report/2"
SCHEMA_PATH = os.path.join(os.path.dirname(__file__), "schema.json")

#: A leaf's gradient is "vanishing" when its RMS is below VANISHING × the median RMS over
#: leaves (or exactly zero), "exploding" when above EXPLODING × the median, "nonfinite" when
#: it holds a NaN or inf.
VANISHING = 1e-3
EXPLODING = 1e3


def load_schema() -> dict[str, Any]:
    """The JSON Schema of the document."""
    with open(SCHEMA_PATH, encoding="utf-8") as fh:
        return json.load(fh)


def gradient_norms(fa, grads) -> dict[str, Any]:
    """Per-leaf norms of the analytic gradient with vanishing/exploding/nonfinite flags."""
    g_leaves = [
        np.asarray(leaf, np.float64)
        for leaf in jax.tree_util.tree_leaves(grads)
        if jnp.issubdtype(jnp.result_type(leaf), jnp.floating)
    ]
    p_leaves = [np.asarray(leaf, np.float64) for leaf in fa.unravel(fa.x)]
    rows = []
    for path, shape, g, p in zip(fa.float_paths, fa.float_shapes, g_leaves, p_leaves, strict=False):
        gn = float(np.linalg.norm(g.ravel()))
        pn = float(np.linalg.norm(p.ravel()))
        size = int(np.prod(shape, dtype=np.int64))
        rows.append(
            {
                "path": path,
                "shape": list(shape),
                "size": size,
                "param_norm": pn,
                "grad_norm": gn,
                "grad_rms": gn / math.sqrt(max(size, 1)),
                "ratio": gn / pn if pn > 0 else None,
                "flag": "ok",
            }
        )
    rms = np.asarray([r["grad_rms"] for r in rows])
    finite = rms[np.isfinite(rms) & (rms > 0)]
    median = float(np.median(finite)) if finite.size else 0.0
    for r in rows:
        v = r["grad_rms"]
        if not math.isfinite(v):
            r["flag"] = "nonfinite"
        elif median > 0 and v > EXPLODING * median:
            r["flag"] = "exploding"
        elif v == 0 or (median > 0 and v < VANISHING * median):
            r["flag"] = "vanishing"
    return jsonable(
        {
            "leaves": rows,
            "median_rms": median,
            "thresholds": {
                "vanishing": VANISHING,
                "exploding": EXPLODING,
                "relative_to": "median RMS over leaves",
            },
        }
    )


def _devices() -> list[str]:
    out = []
    for d in jax.devices():
        kind = getattr(d, "device_kind", "") or d.platform
        out.append(f"{d.platform}:{d.id} ({kind})")
    return out


def build(
    *,
    fa,
    loss: float,
    job,
    sections: dict[str, Any],
    timings: dict[str, float],
    wall_time: float,
    started: float,
    evaluations: int | None,
    target: str | None,
    command: str | None,
    notes: list[str],
) -> dict[str, Any]:
    """Assemble the document from the computed sections."""
    from .._version import __version__
    import jaxlib.version

    check_doc = sections.get("check")
    sweep_doc = sections.get("sweep")
    if evaluations is None:
        evaluations = _views.count_evaluations(
            check_doc, sweep_doc, sections.get("landscape"), sections.get("parameter_slice")
        )
    dtype = str(fa.x.dtype)
    verdict = _views.verdict(  # its mode: the one that ran (the check's, where "auto" chose)
        check_doc, sweep_doc, dtype=dtype, mode=job.mode if job.check else None, method=job.method
    )
    doc = {
        "schema": SCHEMA,
        "meta": {
            "fdjax_version": __version__,
            "jax_version": jax.__version__,
            "jaxlib_version": jaxlib.version.__version__,
            "numpy_version": np.__version__,
            "python_version": platform.python_version(),
            "platform": f"{platform.system()} {platform.machine()}",
            "backend": jax.default_backend(),
            "devices": _devices(),
            # jax's Config declares no attributes for its flags (they are set dynamically)
            "x64": bool(jax.config.jax_enable_x64),  # type: ignore[attr-defined]
            "command": command,
            "target": target,
            "created": datetime.datetime.fromtimestamp(started, datetime.UTC).isoformat(timespec="seconds"),
            "wall_time_s": wall_time,
            "timings_s": dict(timings),
            "evaluations": evaluations,
            "argv": list(sys.argv),
        },
        "problem": {
            "dtype": dtype,
            "loss": loss,
            "num_parameters": fa.size,
            "leaves": [
                {"path": p, "shape": list(s), "size": int(np.prod(s, dtype=np.int64)), "dtype": str(d)}
                for p, s, d in zip(fa.float_paths, fa.float_shapes, fa.float_dtypes, strict=False)
            ],
        },
        "options": {
            "check": job.check,
            "sweep": job.sweep,
            "landscape": job.landscape,
            "mode": job.mode,
            "method": job.method,
            "step": job.step,
            "k": job.k,
            "key": job.key,
            "precision": job.precision,
            "chunk_size": job.chunk_size,
            "num_steps": job.num_steps,
            "sweep_size": job.sweep_size,
            "resolution": job.resolution,
        },
        "verdict": verdict,
        "check": check_doc,
        "sweep": sweep_doc,
        "gradient_norms": sections.get("gradient_norms"),
        "landscape": sections.get("landscape"),
        "parameter_slice": sections.get("parameter_slice"),
        "notes": list(notes),
    }
    return jsonable(doc)
