"""The traced measurement body of a gradient check: the AD side and the engine batches.

``_CheckBody`` runs under ``call_jitted`` (or inside the user's jit). It computes the
analytic vector, chooses the rows of the mode, runs the engine batches and returns their raw
``Samples``; the error model and the verdict are applied by ``_check_aggregate._Aggregate``,
a second body whose compilation does not depend on the user's function.
"""

from __future__ import annotations

import dataclasses
import zlib
from typing import Any
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from . import _locate
from ._check_model import check_offsets
from ._check_random import rademacher, sample, seed_of, signed_uniform
from ._check_rows import (
    KIND_ALONG,
    KIND_RANDOM,
    KIND_TANGENT,
    NUM_PROBES,
    DirectionRows,
    Linear,
    Samples,
    basis_samples,
    direction_samples,
    measure_samples,
    probe_sigma,
)
from ._engine import Options
from ._pytree import flatten_args
from ._stencils import Stencil
from ._steps import eps_of, relative_step_vector, taken_step

__all__ = ["_Config", "_CheckBody", "contract", "leaf_stream", "DIRECTION_CODES"]

#: Codes of GradCheck.dir_kind: random over all coordinates, random on a leaf, along a leaf's
#: analytic gradient, the user's tangent.
DIRECTION_CODES = {"random": 0, "random_leaf": 1, "gradient": 2, "tangent": 3}


@dataclasses.dataclass(frozen=True)
class _Config:
    """Static configuration of one check (hashable: part of the jit cache key)."""

    fun: Callable
    argnums: Any
    kind: str  # "grad" | "jvp" | "vjp"
    mode: str
    stencil: Stencil
    opts: Options
    order: int
    subset_k: tuple[int, ...]  # elements per leaf (subset mode)
    num_directions: int
    max_located: int
    margin: float
    caller: str
    has_tangent: bool
    step_kind: str  # "default" | "scalar" | "tree" | "auto"


def leaf_stream(path: str) -> int:
    """A leaf's random stream number, from its key path (stable when other leaves change)."""
    return zlib.crc32(path.encode()) & 0x7FFFFFFF


def contract(c, y):
    """Σ over output leaves of ⟨c_leaf, y_leaf⟩ (a scalar)."""
    cl, yl = jax.tree_util.tree_leaves(c), jax.tree_util.tree_leaves(y)
    dt = np.result_type(*[np.dtype(leaf.dtype) for leaf in yl])
    return sum(jnp.vdot(ci.astype(dt), yi.astype(dt)) for ci, yi in zip(cl, yl, strict=False))


def _analytic_side(cfg: _Config, f_flat, x, seeds, cotangents):
    """(fd_fn, f0_ad, along, lin): the scalar function the FD side differentiates, its value
    from the AD pass, the analytic vector (None when only JVPs are available) and the
    analytic linear functional."""
    n, dt = x.shape[0], x.dtype
    s_ord, s_cot = seeds
    if cfg.kind == "grad":
        if cfg.order == 1:
            fd_fn = f_flat
        else:
            v = rademacher(s_ord, 0, n, dt)
            g = jax.grad(f_flat)

            def fd_fn(z):
                return jnp.vdot(v, g(z))

        f0_ad, along = jax.value_and_grad(fd_fn)(x)
        return fd_fn, f0_ad, along, Linear(along)
    if cotangents is None:
        leaves, tdef = jax.tree_util.tree_flatten(jax.eval_shape(f_flat, x))
        cotangents = jax.tree_util.tree_unflatten(
            tdef, [signed_uniform(s_cot, i, leaf.shape, leaf.dtype) for i, leaf in enumerate(leaves)]
        )
    c = cotangents

    def fd_fn(z):
        return contract(c, f_flat(z))

    if cfg.kind == "vjp":
        y, pull = jax.vjp(f_flat, x)
        along = pull(jax.tree_util.tree_map(lambda ci, yi: ci.astype(yi.dtype), c, y))[0]
        return fd_fn, contract(c, y), along, Linear(along)
    lin = Linear(None, lambda d: jax.jvp(fd_fn, (x,), (d,))[1], n, dt)
    along = None
    if cfg.mode == "full":
        along = lin.at(jnp.arange(n, dtype=jnp.int32))
        lin = Linear(along)
    return fd_fn, fd_fn(x), along, lin


@dataclasses.dataclass(frozen=True)
class _CheckBody:
    cfg: _Config

    def __call__(self, args, step, key, cotangents, tangent) -> dict:
        cfg = self.cfg
        stencil = cfg.stencil
        fa = flatten_args(args, cfg.argnums, cfg.caller)
        x, n, dt = fa.x, fa.size, fa.x.dtype
        eps = eps_of(dt)

        def f_flat(flat):
            return cfg.fun(*fa.call_args(flat))

        s_dir, s_sub, s_ord, s_cot = (seed_of(key, i) for i in (1, 2, 3, 4))
        fd_fn, f0_ad, along, lin = _analytic_side(cfg, f_flat, x, (s_ord, s_cot), cotangents)

        auto_evaluations = 0
        if cfg.step_kind == "auto":
            # The adaptive sweep picks h_i per element; the check then runs at that step.
            from ._sweep import adaptive_basis, default_relative_steps

            found = adaptive_basis(fd_fn, x, jnp.asarray(f0_ad), stencil, cfg.opts).step
            found = jnp.reshape(jnp.asarray(found), (n,)).astype(dt)
            h = (x + found) - x
            fallback = taken_step(x, jnp.full((n,), stencil.default_step(eps), dt))
            h = jnp.where(jnp.isfinite(h) & (h > 0), h, fallback)
            auto_evaluations = len(default_relative_steps(dt)) * len(stencil.offsets) * n
        else:
            h = taken_step(x, relative_step_vector(step, fa, stencil, cfg.caller))
        rel_dir = step if cfg.step_kind == "scalar" else stencil.default_step(eps)

        # ---- direction rows (the noise probes and f(x) twice ride along, in every mode)
        starts = np.cumsum([0] + [int(np.prod(s, dtype=np.int64)) for s in fa.float_shapes])
        nleaf = len(fa.float_shapes)
        parts, dkind, dleaf = [], [], []

        def add(kind, index, lo, hi, label, leaf):
            m = len(lo)
            parts.append(
                DirectionRows(
                    jnp.full((m,), kind, jnp.int32),
                    jnp.asarray(np.asarray(index, np.int64), jnp.int32),
                    jnp.asarray(np.asarray(lo, np.int64), jnp.int32),
                    jnp.asarray(np.asarray(hi, np.int64), jnp.int32),
                )
            )
            dkind.extend([DIRECTION_CODES[label]] * m)
            dleaf.extend(leaf)

        leaves = list(range(nleaf))
        if cfg.mode in ("directional", "locate"):
            kd = cfg.num_directions
            add(KIND_RANDOM, np.arange(kd), [0] * kd, [n] * kd, "random", [-1] * kd)
            add(KIND_RANDOM, kd + np.arange(nleaf), starts[:-1], starts[1:], "random_leaf", leaves)
        if along is not None:
            add(KIND_ALONG, np.zeros(nleaf), starts[:-1], starts[1:], "gradient", leaves)
        if cfg.has_tangent:
            add(KIND_TANGENT, [0], [0], [n], "tangent", [-1])
        if not parts:
            add(KIND_RANDOM, [], [], [], "random", [])
        drows = DirectionRows.concat(parts)
        along_v = None if along is None else along.astype(dt)
        tangent_v = None if tangent is None else tangent.astype(dt)
        dsamp = direction_samples(
            fd_fn, x, lin, s_dir, along_v, tangent_v, drows, rel_dir, stencil, cfg.opts, probes=True
        )
        koff = len(check_offsets(stencil))
        evaluations = 1 + koff * drows.size + 2 + 2 * NUM_PROBES + auto_evaluations

        # ---- element rows
        analytic = jnp.full((n,), jnp.nan, dt) if along is None else along.astype(dt)
        located = jnp.zeros((0,), jnp.int32)
        d_status = None
        if cfg.mode in ("full", "subset"):
            if cfg.mode == "full":
                idx = jnp.arange(n, dtype=jnp.int32)
            else:
                idx = jnp.concatenate(
                    [
                        int(starts[i])
                        + sample(s_sub, leaf_stream(fa.float_paths[i]), int(starts[i + 1] - starts[i]), kk)
                        for i, kk in enumerate(cfg.subset_k)
                    ]
                ).astype(jnp.int32)
            keep = jnp.ones(idx.shape, bool)
            a_e = lin.at(idx)
            esamp = basis_samples(fd_fn, x, a_e, idx, h[idx], stencil, cfg.opts)
            evaluations += koff * int(idx.shape[0]) + 2
        elif cfg.mode == "locate":
            sigma = probe_sigma(dsamp.probes, dsamp.centers[0])
            dmeas = measure_samples(dsamp, sigma, stencil, cfg.margin, eps)
            d_status = dmeas.status  # the verdicts bisection started from, reported as such
            ran, idx, active, esamp = _locate.locate(
                fd_fn,
                x,
                lin,
                s_dir,
                along_v,
                tangent_v,
                drows,
                dmeas,
                dsamp.valid,
                rel_dir,
                h,
                stencil,
                sigma,
                cfg.margin,
                cfg.opts,
                cfg.max_located,
            )
            keep = active & ran
            a_e = lin.at(idx)
            located = jnp.where(keep, idx, -1).astype(jnp.int32)
            extra = _locate.locate_evaluations(cfg.max_located, _locate.levels_for(n), stencil)
            evaluations = jnp.where(ran, evaluations + extra, evaluations)
        else:
            idx = jnp.zeros((0,), jnp.int32)
            keep = jnp.zeros((0,), bool)
            a_e = jnp.zeros((0,), dt)
            fdt = dsamp.F.dtype
            k = dsamp.F.shape[0]
            esamp = Samples(
                F=jnp.zeros((k, 0), fdt),
                L=jnp.zeros((k, 0), fdt),
                B=jnp.zeros((k, 0), fdt),
                h=jnp.zeros((0,), fdt),
                q=jnp.zeros((0,), fdt),
                centers=dsamp.centers,
                valid=jnp.zeros((0,), bool),
                probes=jnp.zeros((0,), fdt),
            )

        return {
            "analytic": analytic,
            "h": h,
            "f0_ad": jnp.asarray(f0_ad).astype(dsamp.F.dtype),
            "e_idx": idx,
            "e_keep": keep,
            "e_analytic": a_e.astype(dt),
            "e": esamp,
            "d": dsamp,
            "dir_kind": jnp.asarray(np.asarray(dkind, np.int8).reshape(-1)),
            "dir_leaf": jnp.asarray(np.asarray(dleaf, np.int32).reshape(-1)),
            "dir_lo": drows.lo,
            "dir_hi": drows.hi,
            "dir_step": dsamp.h,
            "evaluations": jnp.asarray(evaluations, jnp.int32),
            "located": located,
            "d_status": d_status,
        }
