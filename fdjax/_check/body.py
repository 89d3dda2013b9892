"""The traced measurement bodies of a gradient check: the AD side and the engine batches.

Two bodies run under ``call_jitted`` (or inside the user's jit):

- ``_DirectionBody`` (every mode): the analytic vector, f(x), the noise probes and the
  directional checks (random over all coordinates, random per leaf, along each leaf's
  analytic gradient, the user's tangent). Its configuration does not include the mode, so
  checking one function in several modes compiles it once.
- ``_ElementBody`` (full, subset) or ``_LocateBody`` (locate): the element rows.

They return raw ``Samples``; the error model and the verdict are applied by
``_check_aggregate._Aggregate`` (on the host when not traced).
"""

from __future__ import annotations

import dataclasses
import zlib
from typing import Any
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from . import locate as _locate
from .model import check_offsets
from .random import rademacher, sample, seed_of, seeds_of, signed_uniform
from .outcomes import DirectionKind
from .rows import (
    VectorSource,
    NUM_PROBES,
    DirectionPerturbation,
    DirectionRows,
    Linear,
    Samples,
    basis_samples,
    direction_samples,
    measure_samples,
    probe_sigma,
)
from .. import _engine
from .._engine import Options
from .._engine.devices import varying
from .._pytree import flatten_args, is_traced
from .._fd import Stencil
from .._fd import eps_of, relative_step_vector, taken_step


@dataclasses.dataclass(frozen=True)
class _Config:
    """Static configuration shared by the bodies (hashable: part of the jit cache key)."""

    fun: Callable
    argnums: Any
    kind: str  # "grad" | "jvp" | "vjp"
    stencil: Stencil
    opts: Options
    order: int
    num_directions: int
    caller: str
    has_tangent: bool
    step_kind: str  # "default" | "scalar" | "tree" | "auto"
    eps_work: float = 0.0  # the eps f computes in, where coarser than x's (inputs.working_eps)


def leaf_stream(path: str) -> int:
    """A leaf's random stream number, from its key path (stable when other leaves change)."""
    return zlib.crc32(path.encode()) & 0x7FFFFFFF


def contract(c, y):
    """Σ over output leaves of ⟨c_leaf, y_leaf⟩ (a scalar)."""
    cl, yl = jax.tree_util.tree_leaves(c), jax.tree_util.tree_leaves(y)
    dt = np.result_type(*[np.dtype(leaf.dtype) for leaf in yl])
    return sum(jnp.vdot(ci.astype(dt), yi.astype(dt)) for ci, yi in zip(cl, yl, strict=False))


class _Problem:
    """The flat view of one check: x, the scalar function the FD side differentiates
    (f itself, ⟨v, ∇f⟩ for order 2, ⟨c, f⟩ for vector functions) and the random streams."""

    def __init__(self, cfg: _Config, args, key, cotangents):
        fa = flatten_args(args, cfg.argnums, cfg.caller)
        self.cfg, self.fa = cfg, fa
        self.x, self.n, self.dt = varying(fa.x), fa.size, fa.x.dtype
        self.eps = eps_of(self.dt)
        #: the eps the steps and jitter follow: f's own where it computes coarser than x
        self.eps_step = max(self.eps, cfg.eps_work)
        self.s_dir, self.s_sub, s_ord, s_cot = seeds_of(key, (1, 2, 3, 4))
        self.starts = np.cumsum([0] + [int(np.prod(s, dtype=np.int64)) for s in fa.float_shapes])

        def f_flat(flat):
            return cfg.fun(*fa.call_args(flat))

        self.f_flat = f_flat
        #: x's leaves and the FD side's function of them (the engine's structure-aware plans);
        #: None for second-order checks, whose FD side is a gradient by AD.
        self.layout: _engine.Layout | None = None
        sizes = fa.float_sizes
        if cfg.kind == "grad":
            if cfg.order == 1:
                self.fd_fn = f_flat
                self.layout = _engine.Layout(sizes, lambda pieces: cfg.fun(*fa.call_pieces(pieces)))
            else:
                v = rademacher(s_ord, 0, self.n, self.dt)
                g = jax.grad(f_flat)
                self.fd_fn = lambda z: jnp.vdot(v, g(z))
            self.c = None
            return
        if cotangents is None:
            leaves, tdef = jax.tree_util.tree_flatten(jax.eval_shape(f_flat, self.x))
            cotangents = jax.tree_util.tree_unflatten(
                tdef, [signed_uniform(s_cot, i, leaf.shape, leaf.dtype) for i, leaf in enumerate(leaves)]
            )
        c = self.c = cotangents
        self.fd_fn = lambda z: contract(c, f_flat(z))
        self.layout = _engine.Layout(sizes, lambda pieces: contract(c, cfg.fun(*fa.call_pieces(pieces))))

    def analytic(self):
        """(f0 from the AD pass, the analytic vector or None when only JVPs are available)."""
        if self.cfg.kind == "grad":
            return jax.value_and_grad(self.fd_fn)(self.x)
        if self.cfg.kind == "vjp":
            y, a = self._vjp_at(self.x)
            return contract(self.c, y), a
        return self.fd_fn(self.x), None

    def _vjp_at(self, z):
        """(f(z), the VJP of the cotangents c at z)."""
        y, pull = jax.vjp(self.f_flat, z)
        return y, pull(jax.tree_util.tree_map(lambda ci, yi: ci.astype(yi.dtype), self.c, y))[0]

    def vector_at(self, z):
        """The rule under test at z as a vector: ∇f(z) (vjp: the VJP of c at z); not for jvp."""
        return jax.grad(self.fd_fn)(z) if self.cfg.kind == "grad" else self._vjp_at(z)[1]

    def slope_at(self, z, v):
        """The rule under test at z along v: ⟨∇f(z), v⟩ (vjp: ⟨vjp_c(z), v⟩; jvp: its JVP)."""
        if self.cfg.kind == "grad":
            return jnp.vdot(jax.grad(self.fd_fn)(z), v)
        if self.cfg.kind == "vjp":
            return jnp.vdot(self._vjp_at(z)[1], v)
        return jax.jvp(self.fd_fn, (z,), (v,))[1]

    def linear(self, analytic=None) -> Linear:
        """The analytic side as a linear functional: a·δ, or ⟨c, J·δ⟩ by JVP (check_jvp)."""
        if self.cfg.kind != "jvp":
            return Linear(analytic)
        x = self.x
        return Linear(None, lambda d: jax.jvp(self.fd_fn, (x,), (d,))[1], self.n, self.dt)

    def element_steps(self, step, f0):
        """(h, extra evaluations): the step taken per element, or the adaptive sweep's."""
        cfg, x, n, dt, stencil = self.cfg, self.x, self.n, self.dt, self.cfg.stencil
        if cfg.step_kind != "auto":
            rel = relative_step_vector(step, self.fa, stencil, cfg.caller, cfg.eps_work)
            return taken_step(x, rel, self.fa), 0
        # The adaptive sweep picks h_i per element; the check then runs at that step.
        from .._fd import adaptive_basis, default_relative_steps

        found = adaptive_basis(
            self.fd_fn, x, jnp.asarray(f0), stencil, cfg.opts, layout=self.layout, eps_work=cfg.eps_work
        ).step
        found = jnp.reshape(jnp.asarray(found), (n,)).astype(dt)
        h = self.fa.quantize(x + found) - x
        rel = relative_step_vector(None, self.fa, stencil, cfg.caller, cfg.eps_work)
        fallback = taken_step(x, rel, self.fa)
        h = jnp.where(jnp.isfinite(h) & (h > 0), h, fallback)
        return h, len(default_relative_steps(dt, eps_work=cfg.eps_work)) * len(stencil.offsets) * n

    def rel_dir(self, step):
        return step if self.cfg.step_kind == "scalar" else self.cfg.stencil.default_step(self.eps_step)

    def directions(self):
        """(rows, dir_kind codes, dir_leaf) of the directional checks (static layout)."""
        cfg, n, starts = self.cfg, self.n, self.starts
        nleaf = len(starts) - 1
        parts, dkind, dleaf = [], [], []

        def add(kind: VectorSource, index, lo, hi, label: DirectionKind, leaf):
            m = len(lo)
            parts.append(
                DirectionRows(
                    np.full((m,), kind, np.int32),
                    np.asarray(index, np.int64).astype(np.int32),
                    np.asarray(lo, np.int64).astype(np.int32),
                    np.asarray(hi, np.int64).astype(np.int32),
                )
            )
            dkind.extend([int(label)] * m)
            dleaf.extend(leaf)

        kd, leaves = cfg.num_directions, list(range(nleaf))
        add(VectorSource.RANDOM, np.arange(kd), [0] * kd, [n] * kd, DirectionKind.RANDOM, [-1] * kd)
        add(
            VectorSource.RANDOM,
            kd + np.arange(nleaf),
            starts[:-1],
            starts[1:],
            DirectionKind.RANDOM_LEAF,
            leaves,
        )
        if cfg.kind != "jvp":
            add(
                VectorSource.ALONG,
                np.zeros(nleaf),
                starts[:-1],
                starts[1:],
                DirectionKind.GRADIENT_LEAF,
                leaves,
            )
        if cfg.has_tangent:
            add(VectorSource.TANGENT, [0], [0], [n], DirectionKind.TANGENT, [-1])
        return DirectionRows.concat(parts), np.asarray(dkind, np.int8), np.asarray(dleaf, np.int32)


@dataclasses.dataclass(frozen=True)
class _DirectionBody:
    """Every mode: the AD side, f(x), the noise probes and the directional checks."""

    cfg: _Config

    def __call__(self, args, step, key, cotangents, tangent) -> dict:
        pb = _Problem(self.cfg, args, key, cotangents)
        f0_ad, along = pb.analytic()
        drows, dkind, dleaf = pb.directions()
        along_v = None if along is None else along.astype(pb.dt)
        tangent_v = None if tangent is None else tangent.astype(pb.dt)
        dsamp = direction_samples(
            pb.fd_fn,
            pb.x,
            pb.linear(along_v),
            pb.s_dir,
            along_v,
            tangent_v,
            drows,
            pb.rel_dir(step),
            stencil=self.cfg.stencil,
            opts=self.cfg.opts,
            probes=True,
            fine=True,
            fa=pb.fa,
            probe_eps=self.cfg.eps_work,
        )
        koff = 2 * len(check_offsets(self.cfg.stencil))  # at h and at FINE·h
        fdt = dsamp.F.dtype
        return {
            "analytic": jnp.full((pb.n,), jnp.nan, pb.dt) if along is None else along_v,
            "f0_ad": jnp.asarray(f0_ad).astype(fdt),
            "d": dsamp,
            "dir_kind": jnp.asarray(dkind),
            "dir_leaf": jnp.asarray(dleaf),
            "dir_lo": drows.lo,
            "dir_hi": drows.hi,
            "evaluations": jnp.asarray(1 + koff * drows.size + 2 + 2 * NUM_PROBES, jnp.int32),
        }


@dataclasses.dataclass(frozen=True)
class _ElementBody:
    """Modes full and subset: f at x ± h·e_i, x ± 2h·e_i for every (sampled) element."""

    cfg: _Config
    mode: str
    subset_k: tuple[int, ...]  # elements per leaf (subset mode)

    def __call__(self, args, step, key, cotangents, analytic, f0_ad) -> dict:
        pb = _Problem(self.cfg, args, key, cotangents)
        n, starts = pb.n, pb.starts
        if self.mode == "full":
            idx = jnp.arange(n, dtype=jnp.int32)
        else:
            idx = jnp.concatenate(
                [
                    int(starts[i])
                    + sample(pb.s_sub, leaf_stream(pb.fa.float_paths[i]), int(starts[i + 1] - starts[i]), k)
                    for i, k in enumerate(self.subset_k)
                ]
            ).astype(jnp.int32)
        h, extra = pb.element_steps(step, f0_ad)
        a_e = pb.linear(analytic).at(idx).astype(pb.dt)
        # the structure-aware plan: every element (static) or so many drawn per leaf
        full = np.arange(n) if self.mode == "full" else None
        per_leaf = None if full is not None else np.repeat(np.arange(len(self.subset_k)), self.subset_k)
        esamp = basis_samples(
            pb.fd_fn,
            pb.x,
            a_e,
            idx,
            h[idx],
            self.cfg.stencil,
            self.cfg.opts,
            fa=pb.fa,
            layout=pb.layout,
            static_idx=full,
            leaf_of=per_leaf,
        )
        koff = len(check_offsets(self.cfg.stencil))
        return {
            "h": h,
            "e_idx": idx,
            "e_keep": jnp.ones(idx.shape, bool),
            "e_analytic": a_e,
            "e_x": pb.x[idx],
            "e": esamp,
            "evaluations": jnp.asarray(koff * int(idx.shape[0]) + 2 + extra, jnp.int32),
        }


def merge_parts(raw: dict, part: dict) -> dict:
    """The first batch's raw values with a second part's added (evaluations summed)."""
    out = dict(raw, **{name: v for name, v in part.items() if name != "evaluations"})
    a, b = raw["evaluations"], part["evaluations"]
    out["evaluations"] = a + b if is_traced((a, b)) else np.asarray(a) + np.asarray(b)  # no eager add
    return out


@dataclasses.dataclass(frozen=True)
class _LocateBody:
    """Mode locate: judge the directions, bisect the failing ones, confirm element-wise."""

    cfg: _Config
    max_located: int
    margin: float

    def __call__(self, args, step, key, cotangents, tangent, analytic, dsamp) -> dict:
        cfg = self.cfg
        pb = _Problem(cfg, args, key, cotangents)
        drows, _, _ = pb.directions()
        along_v = analytic if cfg.kind != "jvp" else None
        tangent_v = None if tangent is None else tangent.astype(pb.dt)
        lin = pb.linear(along_v)
        h, _ = pb.element_steps(step, None)
        sigma = probe_sigma(dsamp.probes, dsamp.centers[0])
        dmeas = measure_samples(dsamp, sigma, cfg.stencil, self.margin, pb.eps, eps_work=cfg.eps_work)
        ran, idx, active, esamp = _locate.locate(
            pb.fd_fn,
            pb.x,
            lin,
            pb.s_dir,
            along_v,
            tangent_v,
            drows,
            dmeas,
            start_valid=dsamp.valid,
            start_h=dsamp.h,
            rel=pb.rel_dir(step),
            h_elem=h,
            stencil=cfg.stencil,
            sigma=sigma,
            margin=self.margin,
            opts=cfg.opts,
            width=self.max_located,
            fa=pb.fa,
            eps_work=cfg.eps_work,
        )
        keep = active & ran
        extra = _locate.locate_evaluations(self.max_located, _locate.levels_for(pb.n), cfg.stencil)
        return {
            "h": h,
            "e_idx": idx,
            "e_keep": keep,
            "e_analytic": lin.at(idx).astype(pb.dt),
            "e_x": pb.x[idx],
            "e": esamp,
            "evaluations": jnp.where(ran, extra, 0).astype(jnp.int32),
            "located": jnp.where(keep, idx, -1).astype(jnp.int32),
            "d_status": dmeas.status,  # the verdicts bisection started from, reported as such
            "d_reason": dmeas.reason,
        }


def no_elements(d: Samples, n: int, dt) -> dict:
    """The element part of a directional check: nothing measured element-wise (NumPy
    constants: eager ``jnp`` would compile a program for each in a new process)."""
    fdt, k = np.dtype(d.F.dtype), d.F.shape[0]
    empty = Samples(
        F=np.zeros((k, 0), fdt),
        L=np.zeros((k, 0), fdt),
        B=np.zeros((k, 0), fdt),
        h=np.zeros((0,), fdt),
        q=np.zeros((0,), fdt),
        centers=d.centers,
        valid=np.zeros((0,), bool),
        probes=np.zeros((0,), fdt),
    )
    return {
        "h": np.full((n,), np.nan, np.dtype(dt)),
        "e_idx": np.zeros((0,), np.int32),
        "e_keep": np.zeros((0,), bool),
        "e_analytic": np.zeros((0,), np.dtype(dt)),
        "e_x": np.zeros((0,), np.dtype(dt)),
        "e": empty,
        "evaluations": np.zeros((), np.int32),
    }


#: Step multipliers of escalation: a concerned measurement is taken again at h·m for each m
#: (smaller steps for kinks, non-finite points and truncation; larger ones for round-off).
#: Elements also get one step without the floor: rel·|x_i| instead of rel·max(|x_i|, 1)
#: (a parameter of 1e-6 near a domain boundary at 0).
LADDER = (1 / 512, 1 / 64, 1 / 8, 1 / 2, 2.0, 4.0, 32.0, 256.0)


#: Floorless steps, as fractions of rel·|x_i| (two, 8× apart, so that one can confirm the other).
FLOORLESS = (1.0, 1 / 8)


def ladder_steps(h, x) -> np.ndarray:
    """[len(LADDER) + len(FLOORLESS), M] element steps: h·m for m in ``LADDER``, then the
    floorless ones rel·|x_i|·m (h/4096·m where x_i = 0)."""
    h, ax = np.asarray(h), np.abs(np.asarray(x, h.dtype))
    floorless = np.where(ax > 0, h * ax / np.maximum(ax, 1), h / 4096)
    base = np.concatenate([np.repeat(h[None], len(LADDER), 0), np.repeat(floorless[None], len(FLOORLESS), 0)])
    return np.asarray(LADDER + FLOORLESS, h.dtype)[:, None] * base


@dataclasses.dataclass(frozen=True)
class _EscalateBody:
    """Escalation: the chosen elements and directions again, at other steps.

    ``items`` is ``(e_idx, e_h, d_sel, d_mult)``: element ``e_idx[j]`` is measured at each
    step ``e_h[t, j]``, direction ``d_sel[j]`` of the direction layout at its own step times
    ``d_mult[t, j]`` (one engine batch each; the rows are step-major: every item at the
    first step, then at the second, ...). With ``leaf_counts`` the elements lie in x's
    leaves in order, so many in each: the rows take the engine's structure-aware plan.
    """

    cfg: _Config
    leaf_counts: tuple[int, ...] | None = None

    def __call__(self, args, step, key, cotangents, tangent, analytic, items) -> dict:
        cfg = self.cfg
        e_idx, e_h, d_sel, d_mult = items
        pb = _Problem(cfg, args, key, cotangents)
        out = {}
        if e_idx.shape[0]:
            idx = jnp.tile(e_idx, e_h.shape[0])
            a_e = pb.linear(analytic).at(idx).astype(pb.dt)
            h = e_h.astype(pb.dt).reshape(-1)
            leaf_of = None
            if self.leaf_counts is not None:
                per_item = np.repeat(np.arange(len(self.leaf_counts)), self.leaf_counts)
                leaf_of = np.tile(per_item, e_h.shape[0])
            out["e"] = basis_samples(
                pb.fd_fn,
                pb.x,
                a_e,
                idx,
                h,
                cfg.stencil,
                cfg.opts,
                fa=pb.fa,
                layout=pb.layout,
                leaf_of=leaf_of,
            )
        if d_sel.shape[0]:
            drows, _, _ = pb.directions()
            m = d_mult.shape[0]
            sub = drows.take(d_sel).tile(m)
            along_v = analytic.astype(pb.dt) if cfg.kind != "jvp" else None
            tangent_v = None if tangent is None else tangent.astype(pb.dt)
            out["d"] = direction_samples(
                pb.fd_fn,
                pb.x,
                pb.linear(along_v),
                pb.s_dir,
                along_v,
                tangent_v,
                sub,
                pb.rel_dir(step) * d_mult.astype(pb.dt).reshape(-1),
                stencil=cfg.stencil,
                opts=cfg.opts,
                fa=pb.fa,
            )
        return out


@dataclasses.dataclass(frozen=True)
class _SegmentBody:
    """The rule under test at points along the steps of failed measurements.

    ``items`` is ``(e_idx, e_h, e_tiny, d_sel, d_h, d_tiny)``: element ``e_idx[j]`` at
    x + s·e_h[j]·e_i and direction ``d_sel[j]`` of the direction layout at x + s·d_h[j]·v,
    for every s of ``nodes`` and then s = −tiny[j] and +tiny[j]. Returns the analytic
    directional derivatives there ([len(nodes) + 2, M] each, under ``"e"`` and ``"d"``):
    ∂f/∂x_i, or ⟨∇f, v⟩ (⟨c, J·v⟩ for vector functions), computed by the same rule as the
    check's analytic side (``segment`` integrates them along the step).
    """

    cfg: _Config
    nodes: tuple[float, ...]

    def __call__(self, args, step, key, cotangents, tangent, analytic, items) -> dict:
        cfg = self.cfg
        e_idx, e_h, e_tiny, d_sel, d_h, d_tiny = items
        pb = _Problem(cfg, args, key, cotangents)
        s = jnp.asarray(self.nodes, pb.dt)
        m = len(self.nodes) + 2

        def at(nodes_h, h, tiny):
            """[m, M] multiples of each item's step: the nodes, then ∓tiny."""
            h, tiny = h.astype(pb.dt), tiny.astype(pb.dt)
            return jnp.concatenate([nodes_h[:, None] * h[None, :], jnp.stack([-tiny * h, tiny * h])])

        out = {}
        if e_idx.shape[0]:
            idx = jnp.tile(e_idx, m)
            coeff = at(s, e_h, e_tiny).reshape(-1)

            def element(row):
                i, c = row
                return pb.slope_at(pb.x.at[i].add(c), jax.nn.one_hot(i, pb.n, dtype=pb.dt))

            out["e"] = _map_rows(element, (idx, coeff), pb.n, cfg.opts.vectorize).reshape(m, -1)
        if d_sel.shape[0]:
            drows, _, _ = pb.directions()
            along_v = analytic.astype(pb.dt) if cfg.kind != "jvp" else None
            tangent_v = None if tangent is None else tangent.astype(pb.dt)
            pert = DirectionPerturbation(pb.s_dir, along_v, tangent_v)
            rows = drows.take(d_sel).tile(m).table()
            rows["coeff"] = at(s, d_h, d_tiny).reshape(-1)

            def direction(row):
                v = pert.vector(pb.x, row)
                return pb.slope_at(pb.x + row["coeff"] * v, v)

            out["d"] = _map_rows(direction, rows, pb.n, cfg.opts.vectorize).reshape(m, -1)
        return out


def _map_rows(fn, rows, n: int, vectorize: bool):
    """fn over the rows, a few at a time (one at a time where batching was unfaithful)."""
    total = int(jax.tree_util.tree_leaves(rows)[0].shape[0])
    batch = max(1, min(total, (1 << 20) // max(n, 1))) if vectorize else 1
    if batch == total:
        return jax.vmap(fn)(rows)
    return jax.lax.map(fn, rows, batch_size=batch)


@dataclasses.dataclass(frozen=True)
class _JitterBody:
    """Measurements taken again at bases next to x: at x moved by a few ulps (module
    ``jitter``), or by a fraction of each coordinate's step (module ``bases``).

    ``items`` is ``(e_idx, e_h, d_sel, d_h)``: element ``e_idx[j]`` at step ``e_h[j]`` and
    direction ``d_sel[j]`` of the direction layout at step ``d_h[j]``, each measured at
    ``jitters`` bases b_k = x + ulps·eps·|x|∘u_k, or x + steps·h∘u_k where ``steps`` > 0 (h
    the default step of every coordinate; u_k ``signed_uniform``; rounded to the leaves'
    dtypes), with its step times 1 + stretch·s_k (s_k signed uniform). Returns [jitters, M]
    arrays: the stencil's FD value at b_k (``"e_fd"``, ``"d_fd"``) and the rule under test at
    b_k along the same vector (``"e_rule"``, ``"d_rule"``). One mapped program for both (a
    small one: compile time counts here).
    """

    cfg: _Config
    jitters: int
    ulps: float
    stretch: float
    steps: float = 0.0

    def __call__(self, args, step, key, cotangents, tangent, analytic, items) -> dict:
        cfg, st = self.cfg, self.cfg.stencil
        e_idx, e_h, d_sel, d_h = items
        pb = _Problem(cfg, args, key, cotangents)
        x, dt, k = pb.x, pb.dt, self.jitters
        if self.steps > 0:  # a fraction of each coordinate's own default step
            rel = relative_step_vector(
                step if cfg.step_kind != "auto" else None, pb.fa, st, cfg.caller, cfg.eps_work
            )
            seed, mag = seed_of(key, 6), self.steps * jnp.abs(taken_step(x, rel, pb.fa))
        else:
            seed, mag = seed_of(key, 5), self.ulps * pb.eps_step * jnp.abs(x)
        js = jnp.arange(k, dtype=jnp.int32)
        bases = jax.vmap(lambda j: pb.fa.quantize(x + mag * signed_uniform(seed, j, (pb.n,), dt)))(js)
        # the step too, by a factor that is not a power of two: the rounding of x_i + h, and
        # of every sum it enters, changes (a ladder of 2^k·h repeats the same mantissa)
        scale = 1 + self.stretch * signed_uniform(seed, k, (k,), dt)
        # the rule at each base as a whole vector, one AD pass each (for jvp: per row)
        vectors = None if cfg.kind == "jvp" else jax.vmap(pb.vector_at)(bases)
        drows, _, _ = pb.directions()
        along_v = analytic.astype(dt) if cfg.kind != "jvp" else None
        tangent_v = None if tangent is None else tangent.astype(dt)
        pert = DirectionPerturbation(pb.s_dir, along_v, tangent_v)
        me, md = int(e_idx.shape[0]), int(d_sel.shape[0])

        def tiled(a):
            return jnp.tile(a, k)

        # the directions' vectors once, then rows only index them: the random vectors' hashing
        # is not repeated (nor duplicated by fusion) per row and offset
        dirs = drows.take(d_sel).table()
        dvecs = jax.vmap(lambda r: pert.vector(x, r))(dirs) if md else jnp.zeros((1, pb.n), dt)
        bases, dvecs = jax.lax.optimization_barrier((bases, dvecs))
        table = {
            "direction": tiled(
                jnp.concatenate([jnp.zeros((me,), jnp.int32), jnp.arange(md, dtype=jnp.int32)])
            )
        }
        table["element"] = tiled(jnp.concatenate([e_idx, jnp.full((md,), -1, jnp.int32)]))
        table["h"] = tiled(jnp.concatenate([e_h, d_h]).astype(dt))
        table["base"] = jnp.repeat(js, me + md)

        def row(r):
            j, i, base = r["base"], r["element"], bases[r["base"]]
            e = jax.nn.one_hot(i, pb.n, dtype=dt)
            v = jnp.where(i >= 0, e, dvecs[r["direction"]])
            h = r["h"] * scale[j]
            # an element's step as f sees it from this base (b_i + h rounds its own way)
            bi = jnp.vdot(e, base)
            h = jnp.where(i >= 0, jnp.vdot(e, pb.fa.quantize(base + h * e)) - bi, h)
            d = sum(
                w * pb.fd_fn(pb.fa.quantize(base + (o * h) * v))
                for o, w in zip(st.offsets, st.weights, strict=True)
            )
            if st.center_weight != 0.0:
                d = d + st.center_weight * pb.fd_fn(base)
            rule = pb.slope_at(base, v) if vectors is None else jnp.vdot(vectors[j], v)
            return jnp.stack([jnp.asarray(d, dt) / h, jnp.asarray(rule, dt)])  # f may compute narrower than x

        vals = _map_rows(row, table, pb.n, cfg.opts.vectorize).reshape(k, me + md, 2)
        out = {}
        if me:
            out["e_fd"], out["e_rule"] = vals[:, :me, 0], vals[:, :me, 1]
        if md:
            out["d_fd"], out["d_rule"] = vals[:, me:, 0], vals[:, me:, 1]
        return out
