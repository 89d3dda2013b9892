"""What a check decides on the host between its batches and its verdict (eager calls only).

- **Determinism.** f(x) is evaluated twice in every batch (the same program at the same
  point): values that differ make f not deterministic. f(x) from other programs (the AD
  pass, another batch) may round differently, so a difference between programs is never a
  verdict by itself: beyond ``16·eps·|f| + 4σ`` it triggers a second look.
- **Faithful batching.** The second look evaluates the same rows one at a time
  (``Options(vectorize=False)``: ``jax.lax.map``, no ``vmap``). If f(x) then differs within
  one program, f is not deterministic. Else, if the batched and the one-at-a-time
  measurements agree (each within its tolerance), the difference was rounding and the
  batched values stand; if not, ``vmap`` was not faithful to f and the one-at-a-time values
  replace them. Either way the result's notes say so.
- **Escalation** (``escalate``): concerned measurements are taken again along the step
  ladder in one more batch, within a budget, before their verdict.

Inside the user's jit none of this runs: the verdict is the first batches' (determinism
from the repeated rows only), and the notes say escalation was skipped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from . import bases as _bases
from . import escalate as _esc
from . import jitter as _jit
from . import segment as _seg
from .aggregate import Measured, _Aggregate, per_element
from .body import FLOORLESS, LADDER, _Config, _EscalateBody, _JitterBody, _SegmentBody, ladder_steps
from .model import check_offsets
from .outcomes import CheckStatus
from .rows import measure_samples
from .._engine.structure import MIN_ROWS
from .._fd import eps_of

#: f(x) twice in one program may differ by this many eps·|f| (nothing, in practice).
SAME_PROGRAM_EPS = 4.0
#: f(x) from different programs may differ by this many eps·|f| plus CROSS_SIGMA·σ.
CROSS_PROGRAM_EPS = 16.0
CROSS_SIGMA = 4.0


def _centers(raw) -> tuple[float, float, float]:
    """(within-program difference, cross-program difference, scale) of the f(x) values."""
    d, e = raw["d"].centers, raw["e"].centers
    groups = [d] + ([e] if np.any(raw["e_keep"]) else [])
    within = max(float(abs(g[0] - g[1])) for g in groups)
    f_ad = float(raw["f0_ad"])
    cross = max(float(abs(g[0] - f_ad)) for g in groups)
    scale = max([abs(f_ad)] + [float(np.max(np.abs(g))) for g in groups])
    return within, cross, scale


def _agree(a: Measured, b: Measured, same_elements: bool) -> bool:
    """Whether two evaluations of the same measurements agree, each within its tolerance.
    Elements are compared only where both measured the same ones (locate bisects the
    directions that failed, and those may differ between the two)."""
    for ma, mb in ((a.d, b.d), (a.e, b.e)) if same_elements else ((a.d, b.d),):
        na, nb = np.asarray(ma.numeric), np.asarray(mb.numeric)
        tol = np.maximum(np.asarray(ma.tolerance), np.asarray(mb.tolerance))
        both = (
            np.isfinite(na) & np.isfinite(nb) & np.isfinite(tol) & ~np.asarray(ma.kink) & ~np.asarray(mb.kink)
        )
        if np.any(np.abs(na - nb)[both] > tol[both]):
            return False
    return True


@dataclasses.dataclass
class Decision:
    """The host's findings, passed to ``_Aggregate`` as ``host``."""

    raw: dict
    measured: Measured
    cfg: _Config
    info: dict[str, Any] = dataclasses.field(default_factory=dict)

    def note(self, text: str) -> None:
        self.info.setdefault("notes", []).append(text)


def consistency(agg: _Aggregate, raw, measured: Measured, cfg: _Config, rerun: Callable) -> Decision:
    """Determinism and faithful batching (module docstring).

    ``rerun(cfg, directions_only)`` runs the first batches again (only the direction body
    with ``directions_only``; the same compiled program when ``cfg`` is unchanged) and
    returns their raw values on the host.
    """
    out = Decision(raw, measured, cfg)
    eps_f = max(eps_of(raw["d"].F.dtype), agg.eps_work)
    within, cross, scale = _centers(raw)
    if not np.isfinite(scale):
        return out
    tight = SAME_PROGRAM_EPS * eps_f * scale
    loose = CROSS_PROGRAM_EPS * eps_f * scale + CROSS_SIGMA * float(measured.sigma)
    if within <= tight and cross <= loose:
        return out
    # 1. The same program at the same point, called again.
    again = rerun(cfg, True)
    out.info["extra_evaluations"] = int(again["evaluations"])
    repeat = float(np.max(np.abs(np.asarray(again["d"].centers) - np.asarray(raw["d"].centers))))
    if repeat > tight:
        return _nondeterministic(
            out, f"f(x) from the same compiled program differs between calls by {repeat:.3g}"
        )
    # 2. The rows one at a time (no vmap).
    one_cfg = dataclasses.replace(cfg, opts=dataclasses.replace(cfg.opts, vectorize=False))
    raw1 = rerun(one_cfg, False)
    measured1 = agg.measure(raw1, np)
    within1, cross1, _ = _centers(raw1)
    out.info["extra_evaluations"] += int(raw1["evaluations"])
    e0, e1 = np.asarray(raw["e_idx"]), np.asarray(raw1["e_idx"])
    agree = _agree(measured, measured1, e0.shape == e1.shape and bool(np.all(e0 == e1)))
    if within1 > tight:
        return _nondeterministic(out, f"f(x) evaluated twice in one program differs by {within1:.3g}")
    if within <= tight and agree:
        out.info["deterministic"] = True
        out.note(
            f"f(x) from the batched evaluation differs from f(x) in the AD pass by {cross:.3g}: rounding "
            "(different XLA programs); the measurements agree when the rows are evaluated one at a time"
        )
        return out
    if cross1 > loose and not agree:
        return _nondeterministic(
            out,
            f"f(x) differs between programs by {max(cross, cross1):.3g} and so do the measurements "
            "(f changes each time it is traced: a random mask or key drawn in Python?)",
        )
    out.info["deterministic"] = True
    out.note(
        f"batched evaluation (jax.vmap) was not faithful to f: f(x) batched differs from f(x) alone by "
        f"{max(cross, within):.3g} and the measurements disagree with those of rows evaluated one at a "
        "time; these were used instead (jax.lax.map, no vmap)"
    )
    return Decision(raw1, measured1, one_cfg, out.info)


def _nondeterministic(out: Decision, what: str) -> Decision:
    out.info["deterministic"] = False
    out.note(
        f"{what}: f is not deterministic (a random key drawn afresh on each call, dropout left on?); "
        "the gradient was not judged"
    )
    return out


def escalate(agg: _Aggregate, dec: Decision, call: Callable[[_EscalateBody, tuple], dict]) -> Decision:
    """Concerned measurements again along ``LADDER`` (module ``escalate``), within budget.

    ``call(body, items)`` runs the escalation body on the check's arguments.
    """
    if dec.info.get("deterministic") is False:
        return dec
    raw, (dmeas, emeas, sigma) = dec.raw, dec.measured
    steps = len(LADDER) + len(FLOORLESS)
    per_item = steps * len(check_offsets(agg.stencil))
    budget = _budget(raw)
    e_keep = np.asarray(raw["e_keep"], bool)
    e_prio = _esc.priority(emeas, e_keep)
    d_prio = _esc.priority(dmeas, np.asarray(raw["d"].valid, bool))
    prio = np.concatenate([d_prio, e_prio])
    chosen = _esc.choose(prio, budget // per_item)
    left = int(np.sum(prio < _esc.NOT_CONCERNED)) - chosen.size
    if chosen.size == 0:
        return dec
    nd = d_prio.size
    d_sel, e_sel = np.sort(chosen[chosen < nd]), np.sort(chosen[chosen >= nd] - nd)
    e_lad, d_lad, evals = _measure_at(agg, dec, call, e_sel, ladder_steps, d_sel, np.asarray(_D_LADDER))
    if e_lad is not None:
        emeas = _esc.merge(emeas, e_lad, e_sel, LADDER + (0.0,) * len(FLOORLESS))
    if d_lad is not None:
        dmeas = _esc.merge(dmeas, d_lad, d_sel, _D_LADDER)
    info = dict(dec.info)
    info["escalated"] = int(chosen.size)
    info["escalation_evaluations"] = evals
    if left > 0:
        info.setdefault("notes", []).append(
            f"{left} concerned measurement(s) were not escalated (budget {budget:,} evaluations): their "
            "verdict is the first step's"
        )
    return Decision(raw, Measured(dmeas, emeas, sigma), dec.cfg, info)


def _measure_at(agg: _Aggregate, dec: Decision, call: Callable, e_sel, e_steps, d_sel, d_mults):
    """Elements ``e_sel`` and directions ``d_sel`` measured again, in one engine batch each:
    element j at the steps ``e_steps(h, x)`` ([T, M] from its first step h and its x), each
    direction at its own step times each of ``d_mults``. Returns the elements' and the
    directions' measurements (T per item, step-major; None where there were no items) and
    the evaluations spent."""
    raw, sigma = dec.raw, dec.measured.sigma
    e_items = np.asarray(raw["e_idx"])[e_sel].astype(np.int32)
    k = len(check_offsets(agg.stencil))
    e_h = e_steps(np.asarray(raw["e"].h)[e_sel], np.asarray(raw["e_x"])[e_sel])
    steps = e_h.shape[0]
    structured = steps * k * e_sel.size >= STRUCTURED_ROWS
    src, pos, leaf_counts = _by_leaf(e_items, agg.leaf_shapes) if structured else _padded(e_sel.size)
    d_rows = _pad(np.asarray(d_sel).astype(np.int32))
    d_mult = np.repeat(np.asarray(d_mults, e_h.dtype)[:, None], d_rows.size, axis=1)
    out = call(_EscalateBody(dec.cfg, leaf_counts), (e_items[src], e_h[:, src], d_rows, d_mult))
    eps = eps_of(raw["analytic"].dtype)
    e_lad = d_lad = None
    evals = 0
    if e_sel.size:
        s = out["e"]
        lad = per_element(measure_samples(s, sigma, agg.stencil, agg.margin, eps, np, agg.eps_work), s.q, np)
        e_lad = _unpad(lad, steps, pos)
        evals += k * int(s.h.shape[0]) + 2
    if d_sel.size:
        s = out["d"]
        lad = measure_samples(s, sigma, agg.stencil, agg.margin, eps, np, agg.eps_work)
        d_lad = _unpad(lad, len(d_mults), np.arange(d_sel.size))
        evals += k * int(s.h.shape[0]) + 2
    return e_lad, d_lad, evals


def sweep(agg: _Aggregate, dec: Decision, call: Callable[[_EscalateBody, tuple], dict]) -> Decision:
    """Failures escalation could not confirm, then weak passes, swept
    (``escalate.sweep_decide``), within what is left of the budget."""
    if dec.info.get("deterministic") is False:
        return dec
    raw, (dmeas, emeas, sigma) = dec.raw, dec.measured
    per_item = len(_esc.SWEEP_MULTS) * len(check_offsets(agg.stencil))
    room = (_budget(raw) - int(dec.info.get("escalation_evaluations", 0))) // per_item
    nd = int(np.asarray(raw["d"].valid).size)
    d_failed, d_weak, d_ratio = _esc.sweepable(dmeas, np.asarray(raw["d"].valid, bool))
    e_failed, e_weak, e_ratio = _esc.sweepable(emeas, np.asarray(raw["e_keep"], bool))
    # the unconfirmed failures first (directions, elements), then the weak passes, the
    # largest |e|/tolerance first: at least SWEEP_MIN_ITEMS of them beyond the budget, which
    # escalation often spends (a bug near the floor that passed weakly is found by its sweep)
    weak = np.concatenate([d_weak, e_weak + nd])
    weak = weak[np.argsort(-np.concatenate([d_ratio, e_ratio])[weak], kind="stable")]
    chosen = np.concatenate([d_failed, e_failed + nd, weak])[: max(room, _esc.SWEEP_MIN_ITEMS)]
    if chosen.size == 0:
        return dec
    d_sel, e_sel = np.sort(chosen[chosen < nd]), np.sort(chosen[chosen >= nd] - nd)
    mults = np.asarray(_esc.SWEEP_MULTS)
    e_sw, d_sw, evals = _measure_at(
        agg, dec, call, e_sel, lambda h, x: mults[:, None] * h[None], d_sel, mults
    )
    confirmed, near = 0, {}
    if e_sw is not None:
        emeas, n, near["e"] = _esc.sweep_decide(emeas, e_sel, e_sw, agg.stencil, agg.margin)
        confirmed += n
    if d_sw is not None:
        dmeas, n, near["d"] = _esc.sweep_decide(dmeas, d_sel, d_sw, agg.stencil, agg.margin)
        confirmed += n
    note = (
        f"{confirmed} failure(s) that the first steps could not resolve were confirmed by a step sweep: "
        f"{len(_esc.SWEEP_MULTS) * 2} steps a factor 2 apart, whose differences bound the FD error "
        "more tightly than the worst-case rounding model (the tolerance shown is the margin times "
        "that bound)"
    )
    info = _spent(dec, evals, note if confirmed else "")
    info["near"] = near
    return Decision(raw, Measured(dmeas, emeas, sigma), dec.cfg, info)


def segments(agg: _Aggregate, dec: Decision, call: Callable[[_SegmentBody, tuple], dict]) -> Decision:
    """Failures left standing, tested along their step (module ``segment``)."""
    rule = None if agg.stencil.complex_step else _seg.kernel(agg.stencil)
    if dec.info.get("deterministic") is False or rule is None:
        return dec
    raw, (dmeas, emeas, sigma) = dec.raw, dec.measured
    d_score = _seg.candidates(dmeas, np.asarray(raw["d"].valid, bool))
    e_score = _seg.candidates(emeas, np.asarray(raw["e_keep"], bool))
    score = np.concatenate([d_score, e_score])
    cap = min(_seg.MAX_ITEMS, max(_seg.MIN_ITEMS, _budget(raw) // (_seg.AD_COST * _seg.NODES)))
    chosen = np.argsort(score, kind="stable")[: int(np.sum(np.isfinite(score)))][:cap]
    if chosen.size == 0:
        return dec
    nd = d_score.size
    d_sel, e_sel = np.sort(chosen[chosen < nd]), np.sort(chosen[chosen >= nd] - nd)
    eps = max(eps_of(raw["analytic"].dtype), agg.eps_work)
    rel = agg.stencil.default_step(eps)
    changed, gap, off, cost = 0, 0.0, 0.0, 0
    for pass_rule in (rule, _seg.kernel(agg.stencil, _seg.FINE_NODES)):
        assert pass_rule is not None
        nodes = pass_rule.nodes
        e_h, d_h = np.asarray(emeas.step)[e_sel], np.asarray(dmeas.step)[d_sel]
        items = (
            _pad(np.asarray(raw["e_idx"])[e_sel].astype(np.int32)),
            _pad(e_h),
            _pad(_seg.tiny_offsets(np.asarray(raw["e"].h)[e_sel], e_h, eps, rel)),
            _pad(d_sel.astype(np.int32)),
            _pad(d_h),
            _pad(_seg.tiny_offsets(np.asarray(raw["d"].h)[d_sel], d_h, eps, rel)),
        )
        out = call(_SegmentBody(dec.cfg, nodes), items)
        cost += _seg.AD_COST * (len(nodes) + 2) * int(d_sel.size + e_sel.size)
        m = len(nodes)
        again = {}
        for name, sel in (("d", d_sel), ("e", e_sel)):
            if not sel.size:
                continue
            g = np.asarray(out[name])[:, : sel.size]
            judged = _seg.judge(dmeas if name == "d" else emeas, sel, g[:m], g[m:], pass_rule, agg.margin)
            dmeas, emeas = (judged.meas, emeas) if name == "d" else (dmeas, judged.meas)
            changed, gap, off = changed + judged.hit.size, max(gap, judged.gap), max(off, judged.off)
            again[name] = sel[judged.undecided]
        d_sel, e_sel = again.get("d", d_sel[:0]), again.get("e", e_sel[:0])
        left = d_sel.size + e_sel.size  # undecided: once more on finer nodes, within the budget
        if left == 0 or _budget(raw) - cost < _seg.AD_COST * (_seg.FINE_NODES + 3) * left:
            break
    note = (
        f"{changed} failure(s) were f's slope changing within the step, not the gradient: the AD "
        f"gradient at {len(rule.nodes)} (or more) points along each step, averaged as the stencil "
        f"weighs them, agrees with the finite difference (|D − Ā| ≤ {gap:.2g}) while the gradient at "
        f"x differs from that average by up to {off:.2g}: f has kinks denser than any step that "
        "resolves it (a max or sort over many rows in float32?); inconclusive (kink), check in "
        "float64 where smaller steps resolve f"
    )
    # the failures tested were escalated already: only their cost adds up
    info = _spent(dec, cost, note if changed else "")
    return Decision(raw, Measured(dmeas, emeas, sigma), dec.cfg, info)


def jitter(agg: _Aggregate, dec: Decision, call: Callable[[_JitterBody, tuple], dict]) -> Decision:
    """Failures left standing, measured again at x moved by a few ulps (module ``jitter``)."""
    if dec.info.get("deterministic") is False or agg.stencil.complex_step:
        return dec
    raw, (dmeas, emeas, sigma) = dec.raw, dec.measured
    d_score = _jit.candidates(dmeas, np.asarray(raw["d"].valid, bool))
    e_score = _jit.candidates(emeas, np.asarray(raw["e_keep"], bool))
    score = np.concatenate([d_score, e_score])
    per_item = _jit.JITTERS * _per_base(agg)
    cap = min(_jit.MAX_ITEMS, (_budget(raw) - _jit.JITTERS * _seg.AD_COST) // per_item)
    ranked = np.argsort(score, kind="stable")[: int(np.sum(np.isfinite(score)))]
    chosen, untested = ranked[:cap], ranked[cap:]
    if chosen.size == 0:
        return dec
    nd = d_score.size
    d_sel, e_sel = np.sort(chosen[chosen < nd]), np.sort(chosen[chosen >= nd] - nd)
    items = (
        _pad(np.asarray(raw["e_idx"])[e_sel].astype(np.int32)),
        _pad(np.asarray(emeas.step)[e_sel]),
        _pad(d_sel.astype(np.int32)),
        _pad(np.asarray(dmeas.step)[d_sel]),
    )
    out = call(_JitterBody(dec.cfg, _jit.JITTERS, _jit.ULPS, _jit.STRETCH), items)
    changed, spread = 0, 0.0
    for name, sel in (("d", d_sel), ("e", e_sel)):
        if not sel.size:
            continue
        fd, rule = (np.asarray(out[f"{name}_{part}"])[:, : sel.size] for part in ("fd", "rule"))
        judged = _jit.judge(dmeas if name == "d" else emeas, sel, fd, rule, agg.margin)
        dmeas, emeas = (judged.meas, emeas) if name == "d" else (dmeas, judged.meas)
        changed, spread = changed + judged.hit.size, max(spread, judged.spread)
    cost = per_item * int(chosen.size) + (agg.kind != "jvp") * _jit.JITTERS * _seg.AD_COST
    note = (
        f"{changed} failure(s) were within f's rounding at the perturbed points: measured again with x "
        f"moved by a few ulps, the FD value and the gradient move by up to {spread:.2g} (f small but "
        "computed from large terms that cancel?); judged again with that rounding"
    )
    info = _spent(dec, cost, note if changed else "")
    if changed == chosen.size and untested.size:  # every one tested was the rounding
        dmeas = _jit.set_aside(dmeas, untested[untested < nd])
        emeas = _jit.set_aside(emeas, untested[untested >= nd] - nd)
        info.setdefault("notes", []).append(
            f"{untested.size} smaller failure(s) were not measured again (budget): inconclusive, as every "
            "larger one was the rounding"
        )
    return Decision(raw, Measured(dmeas, emeas, sigma), dec.cfg, info)


def bases(agg: _Aggregate, dec: Decision, call: Callable[[_JitterBody, tuple], dict]) -> Decision:
    """Failures the sweep measured below its margin, measured again at bases around x
    (module ``bases``)."""
    info = dict(dec.info)
    near = info.pop("near", {})
    dec = Decision(dec.raw, dec.measured, dec.cfg, info)
    if dec.info.get("deterministic") is False or agg.stencil.complex_step or not near:
        return dec
    raw, (dmeas, emeas, sigma) = dec.raw, dec.measured
    if max(eps_of(raw["analytic"].dtype), agg.eps_work, agg.eps_leaves) > _bases.MAX_EPS:
        return dec  # 16-bit rounding inside f or its rule: moves of a fraction of a step keep it
    empty = _esc.Near(np.zeros(0, np.int64), np.zeros(0), np.zeros(0))
    nd_near, ne_near = near.get("d", empty), near.get("e", empty)
    # the largest ratio first, directions and elements together; only those still not FAIL
    # (the segment and jitter tests leave them alone: they judge failures)
    kind = np.concatenate([np.zeros(nd_near.items.size, bool), np.ones(ne_near.items.size, bool)])
    index = np.concatenate([nd_near.items, ne_near.items])
    est = np.concatenate([nd_near.estimate, ne_near.estimate])
    status = np.concatenate(
        [np.asarray(dmeas.status)[nd_near.items], np.asarray(emeas.status)[ne_near.items]]
    )
    order = np.argsort(-np.concatenate([nd_near.ratio, ne_near.ratio]), kind="stable")
    order = order[status[order] != CheckStatus.FAIL][: _bases.MAX_ITEMS]
    if order.size == 0:
        return dec
    d_pos, e_pos = order[~kind[order]], order[kind[order]]
    d_sel, e_sel = index[d_pos], index[e_pos]
    e_h, d_h = np.asarray(emeas.step)[e_sel], np.asarray(dmeas.step)[d_sel]
    # each item at h and at 2h, at the same bases (they depend on the key and the base only)
    items = (
        _pad(np.concatenate([np.asarray(raw["e_idx"])[e_sel]] * 2).astype(np.int32)),
        _pad(np.concatenate([e_h, 2 * e_h])),
        _pad(np.concatenate([d_sel] * 2).astype(np.int32)),
        _pad(np.concatenate([d_h, 2 * d_h])),
    )
    out = call(_JitterBody(dec.cfg, _bases.BASES, 0.0, 0.0, _bases.SPREAD), items)
    confirmed = 0
    for name, sel, pos in (("d", d_sel, d_pos), ("e", e_sel, e_pos)):
        if not sel.size:
            continue
        m = sel.size
        fd, rule = (np.asarray(out[f"{name}_{part}"])[:, : 2 * m] for part in ("fd", "rule"))
        judged, n = _bases.judge(
            dmeas if name == "d" else emeas,
            sel,
            est[pos],
            fd[:, :m],
            fd[:, m:],
            rule[:, :m],
            agg.stencil,
            agg.margin,
        )
        dmeas, emeas = (judged, emeas) if name == "d" else (dmeas, judged)
        confirmed += n
    per_item = 2 * _bases.BASES * _per_base(agg)  # at h and at 2h
    cost = per_item * int(order.size) + (agg.kind != "jvp") * _bases.BASES * _seg.AD_COST
    note = (
        f"{confirmed} failure(s) below the margin of the step sweep were confirmed at "
        f"{_bases.BASES} points around x (every coordinate moved by up to {_bases.SPREAD:g} of its "
        f"step): the FD error, extrapolated, was the same at each, beyond {_bases.Z:g} standard "
        "errors of its mean, as a wrong rule's error is and an artefact of the step (kinks, "
        "16-bit rounding, cancellation) is not"
    )
    info = _spent(dec, cost, note if confirmed else "")
    return Decision(raw, Measured(dmeas, emeas, sigma), dec.cfg, info)


def _per_base(agg: _Aggregate) -> int:
    """Evaluations of one item at one base (``_JitterBody``): f at the stencil's offsets (and
    at the centre where it weighs), the rule per item for jvp (else once per base)."""
    st = agg.stencil
    return len(st.offsets) + (st.center_weight != 0.0) + (agg.kind == "jvp") * _seg.AD_COST


def _spent(dec: Decision, cost: int, note: str = "") -> dict:
    """``dec.info`` with ``cost`` more escalation evaluations, and ``note`` where given."""
    info = dict(dec.info)
    info["escalation_evaluations"] = int(info.get("escalation_evaluations", 0)) + int(cost)
    if note:
        info.setdefault("notes", []).append(note)
    return info


def _budget(raw) -> int:
    """Evaluations escalation may spend: max(MIN_BUDGET, BUDGET_FACTOR × the first batches')."""
    return max(_esc.MIN_BUDGET, int(_esc.BUDGET_FACTOR * int(raw["evaluations"])))


#: An element escalation of at least this many rows takes the engine's structure-aware plan
#: (below, the engine would run it dense anyway: no need for a program per set of leaves).
STRUCTURED_ROWS = MIN_ROWS

#: Directions have no floorless steps: smaller ones instead.
_D_LADDER = LADDER + (LADDER[0] / 8, LADDER[0] / 64)


#: Up to this many items a group is padded to a power of two (few distinct programs, and
#: compiling one costs more than the padding); above it, to eighths of the octave.
FINE_BUCKETS_ABOVE = 4096


def _bucket(n: int) -> int:
    """Sizes rounded up: to a power of two up to ``FINE_BUCKETS_ABOVE`` (fewer distinct
    programs to compile), above it to a multiple of 1/8 of the power of two below ``n``
    (at most 12.5% padding: escalation's rows, a million or more in full mode, cost
    more than a compilation, and the budget counts what is evaluated)."""
    if n <= FINE_BUCKETS_ABOVE:
        return 0 if n == 0 else 1 << (n - 1).bit_length()
    grain = 1 << ((n - 1).bit_length() - 4)
    return -(-n // grain) * grain


def _pad(a: np.ndarray) -> np.ndarray:
    """``a`` padded to ``_bucket(len(a))`` by repeating its first entry."""
    n = _bucket(a.size)
    return a if a.size == n else np.concatenate([a, np.repeat(a[:1], n - a.size)])


def _padded(s: int) -> tuple[np.ndarray, np.ndarray, None]:
    """(source of each padded slot, slot of each item, None): ``s`` items padded to
    ``_bucket(s)`` by repeating the first."""
    return _pad(np.arange(s)), np.arange(s), None


def _by_leaf(items: np.ndarray, leaf_shapes) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """As ``_padded``, for the structure-aware plan: the element indices ``items`` grouped by
    leaf, each leaf's group padded to ``_bucket`` of its size (by repeating its first), and
    those sizes (static: fewer distinct programs than one per set of elements)."""
    sizes = [int(np.prod(shape, dtype=np.int64)) for shape in leaf_shapes]
    starts = np.cumsum([0] + sizes)
    leaf = np.searchsorted(starts, items, side="right") - 1
    src: list[np.ndarray] = []
    counts: list[int] = []
    pos = np.empty(items.size, np.int64)
    for lf in range(len(sizes)):
        mine = np.flatnonzero(leaf == lf)
        pos[mine] = sum(counts) + np.arange(mine.size)
        src.append(_pad(mine))
        counts.append(_bucket(mine.size))
    return np.concatenate(src).astype(np.int64), pos, tuple(counts)


def _unpad(meas, steps: int, pos: np.ndarray):
    """The ladder's measurements of the items at slots ``pos`` at each step."""

    def cut(a):
        a = np.asarray(a)
        return a.reshape(steps, -1)[:, pos].reshape(-1)

    return type(meas)(*(cut(v) for v in meas))
