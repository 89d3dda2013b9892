"""The verdict of a gradient check: per-leaf and overall figures from the measurements.

``_Aggregate`` applies the error model to the raw samples of the measurement body and
builds the ``GradCheck``: the outcome of each measurement (after escalation, on the
host), of each leaf and of the check (module ``outcomes``). Written once for an array
module ``xp``: inside the user's jit it runs traced (``jax.numpy``); called eagerly it runs
in NumPy on the host, so a check compiles only its measurement body (XLA compile time
dominates small checks).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .model import Measurement, digits_of, relative_error
from .outcomes import CheckStatus, Reason
from .rows import measure_samples, probe_sigma
from .._fd import Stencil
from .result import DirectionChecks, ElementChecks, GradCheck, LeafChecks
from .._fd import eps_of


def _scatter(xp, base, tgt, vals):
    """base with rows ``tgt`` set to ``vals``; indices >= len(base) are dropped."""
    if xp is jnp:
        return base.at[tgt].set(vals, mode="drop")
    out = np.array(base, copy=True)
    keep = tgt < out.shape[0]
    out[tgt[keep]] = vals[keep]
    return out


def _segment_sum(xp, cols, seg, nseg: int):
    """Column sums per segment of a [M, Q] matrix (a plain sum for one segment)."""
    if nseg == 1:
        return xp.sum(cols, axis=0, keepdims=True)
    if xp is jnp:
        return jax.ops.segment_sum(cols, seg, num_segments=nseg)
    out = np.zeros((nseg,) + cols.shape[1:], cols.dtype)
    np.add.at(out, seg, cols)
    return out


def _segment_max(xp, v, seg, nseg: int):
    if nseg == 1:
        return xp.max(v, initial=0.0)[None] if xp is jnp else np.asarray([np.max(v, initial=0.0)], v.dtype)
    if xp is jnp:
        return jnp.maximum(jax.ops.segment_max(v, seg, num_segments=nseg), 0.0)
    out = np.zeros((nseg,), v.dtype)
    np.maximum.at(out, seg, v)
    return out


def _seg_metrics(xp, a, n, tol, mask, seg, nseg: int, eps: float, *, void):
    """norm ratio, max rel error, digits, sign agreement per segment over ``mask``.

    The max relative error is taken over values above their tolerance (max(|a|, |n|) > tol):
    below it both are FD noise and |a − n|/max(|a|, |n|) means nothing. A segment where
    nothing was measured, or flagged in ``void`` (a non-finite value), gets NaN metrics:
    an empty or broken comparison must never read as agreement.
    """
    zero = xp.zeros_like(a)
    a = xp.where(mask, a, zero)
    n = xp.where(mask, n, zero)
    big_e = xp.maximum(xp.abs(a), xp.abs(n))
    agree = (xp.sign(a) == xp.sign(n)) | (big_e <= tol)
    rel = xp.where(mask & (big_e > tol), relative_error(a, n, xp), zero)
    cols = xp.stack(
        [mask.astype(a.dtype), (a - n) ** 2, (a + n) ** 2, a * a, n * n, (agree & mask).astype(a.dtype)], 1
    )
    count, d2, s2, a2, n2, agree_n = _segment_sum(xp, cols, seg, nseg).T
    maxrel = _segment_max(xp, rel, seg, nseg)
    ratio = xp.where(s2 > 0, xp.sqrt(d2 / xp.where(s2 > 0, s2, 1)), xp.where(d2 > 0, xp.inf, 0.0))
    big = xp.sqrt(xp.maximum(a2, n2))
    nrel = xp.where(big > 0, xp.sqrt(d2) / xp.where(big > 0, big, 1), 0.0)
    digits = digits_of(nrel, eps, xp)
    sign = xp.where(count > 0, agree_n / xp.where(count > 0, count, 1), xp.nan)
    void = void | (count == 0)
    return tuple(xp.where(void, np.nan, m).astype(a.dtype) for m in (ratio, maxrel, digits, sign))


def _index_dtype(n: int):
    return np.int32 if n < 2**31 else np.int64


def _first(xp, flags):
    """Index of the first True, -1 if none (also for an empty array)."""
    if flags.shape[0] == 0:
        return xp.asarray(-1, np.int32)
    return xp.where(xp.any(flags), xp.argmax(flags), -1).astype(np.int32)


def _at(xp, values, i):
    """values[max(i, 0)], NaN for an empty array."""
    if values.shape[0] == 0:
        return xp.asarray(np.nan, values.dtype)
    return values[xp.maximum(i, 0)]


def _counts(xp, flags, seg, nseg):
    """Per-segment counts of each boolean column: flags [M, Q] -> [nseg, Q] int32."""
    return _segment_sum(xp, flags.astype(np.int32), seg, nseg)


_FLOAT = (
    "numeric",
    "analytic",
    "tolerance",
    "truncation",
    "roundoff",
    "ad_rounding",
    "slope_plus",
    "slope_minus",
    "bad_offset",
    "step",
)
_CODE = ("kink", "subgradient", "status", "reason")
#: Which reason a leaf or a check reports when nothing decided it (first present wins).
_REASON_ORDER = (Reason.UNRESOLVED, Reason.KINK, Reason.NONFINITE, Reason.NOT_MEASURED)


class Measured(NamedTuple):
    """The error model applied to a check's batches: per direction, per measured element
    (in units of the element's derivative: divided by h_eff/h) and the noise σ of f."""

    d: Measurement
    e: Measurement
    sigma: Any


def per_element(meas: Measurement, q, xp) -> Measurement:
    """A basis measurement in units of the element's derivative (divided by q = h_eff/h)."""
    aq = xp.abs(q)
    return meas._replace(
        numeric=meas.numeric / q,
        analytic=meas.analytic / q,
        error=meas.error / q,
        error2=meas.error2 / q,
        tolerance=meas.tolerance / aq,
        truncation=meas.truncation / aq,
        roundoff=meas.roundoff / aq,
        ad_rounding=meas.ad_rounding / aq,
        step=meas.step * q,
    )


#: An isolated element failure within family(M) = 1 + log10(M/100)/1.5 tolerances (M the
#: elements measured, at least 100) is not counted among M: 2.3 at 10⁴, 3 at 10⁵, 3.7 at 10⁶.
FAMILY_BASE, FAMILY_SLOPE = 100, 1.5


def family(xp, m):
    """The multiple of its tolerance an element failure must exceed among ``m`` elements."""
    return 1.0 + xp.log10(xp.maximum(m, FAMILY_BASE) / FAMILY_BASE) / FAMILY_SLOPE


def _leaf_outcome(xp, counts):
    """(status, reason) per leaf from its counts [L, 6]: pass, fail, unresolved, kink,
    non-finite, nondeterministic."""
    n_pass, n_fail, n_unres, n_kink, n_nonfin, n_nondet = (counts[:, j] for j in range(6))
    reason = xp.where(
        n_nondet > 0,
        Reason.NONDETERMINISTIC,
        xp.where(
            n_unres > 0,
            Reason.UNRESOLVED,
            xp.where(n_kink > 0, Reason.KINK, xp.where(n_nonfin > 0, Reason.NONFINITE, Reason.NOT_MEASURED)),
        ),
    )
    status = xp.where(
        n_fail > 0, CheckStatus.FAIL, xp.where(n_pass > 0, CheckStatus.PASS, CheckStatus.INCONCLUSIVE)
    )
    reason = xp.where(status == CheckStatus.INCONCLUSIVE, reason, Reason.NONE)
    return status.astype(np.int8), reason.astype(np.int8)


@dataclasses.dataclass(frozen=True)
class _Aggregate:
    """Static labels, stencil and leaf layout of a check; called on the measurement dict."""

    caller: str
    kind: str
    mode: str
    stencil: Stencil
    order: int
    margin: float
    has_analytic: bool
    leaf_names: tuple[str, ...]
    leaf_shapes: tuple[tuple[int, ...], ...]
    notes: tuple[str, ...] = ()
    eps_work: float = 0.0  # the eps f computes in, where coarser than x's (inputs.working_eps)
    eps_leaves: float = 0.0  # the coarsest eps of the differentiated leaves, as checked

    def measure(self, raw, xp=jnp) -> Measured:
        """The error model on the raw batches (``Measured``)."""
        d, e = raw["d"], raw["e"]
        eps = eps_of(raw["analytic"].dtype)
        sigma = probe_sigma(d.probes, d.centers[0], xp)
        dmeas = measure_samples(d, sigma, self.stencil, self.margin, eps, xp, self.eps_work)
        # In locate mode the body judged the directions to start bisection; report those verdicts.
        if "d_status" in raw:
            dmeas = dmeas._replace(status=raw["d_status"], reason=raw["d_reason"])
        emeas = measure_samples(e, sigma, self.stencil, self.margin, eps, xp, self.eps_work)
        emeas = per_element(emeas, e.q, xp)
        return Measured(dmeas, emeas, sigma)

    def _elements(self, xp, raw, emeas: Measurement, n: int, dt, fdt):
        """Per-element fields of the measured elements, with their flat ``index`` ([N] in
        full mode, in order; [M] for the M elements of subset and locate; [0] directional)."""
        vals = {
            "numeric": emeas.numeric,
            "analytic": emeas.analytic,
            "tolerance": emeas.tolerance,
            "truncation": emeas.truncation,
            "roundoff": emeas.roundoff,
            "ad_rounding": emeas.ad_rounding,
            "slope_plus": emeas.slope_plus,
            "slope_minus": emeas.slope_minus,
            "bad_offset": emeas.first_bad_offset,
            "step": emeas.step,
            "kink": emeas.kink,
            "subgradient": emeas.subgradient,
            "status": emeas.status,
            "reason": emeas.reason,
        }
        idx = raw["e_idx"]
        if self.mode == "full":  # every element, in order
            out = dict(vals)
            out["analytic"] = raw["e_analytic"]
            out["index"] = xp.arange(n, dtype=_index_dtype(n))
            return out
        # Only the elements measured are kept (memory O(measured), not O(N)); slots that
        # measured nothing (locate's unused ones) are UNCHECKED with index -1.
        keep = raw["e_keep"]
        out = {k: xp.where(keep, vals[k].astype(fdt), np.nan) for k in _FLOAT}
        out["kink"], out["subgradient"] = keep & vals["kink"], keep & vals["subgradient"]
        out["status"] = xp.where(keep, vals["status"], CheckStatus.UNCHECKED).astype(np.int8)
        out["reason"] = xp.where(keep, vals["reason"], Reason.NONE).astype(np.int8)
        out["step"] = out["step"].astype(dt)
        out["analytic"] = xp.where(keep, raw["e_analytic"], np.nan).astype(dt)
        out["index"] = xp.where(keep, idx, -1).astype(_index_dtype(n))
        return out

    def __call__(self, raw, xp=jnp, measured: Measured | None = None, host: dict | None = None) -> GradCheck:
        """The ``GradCheck``. ``measured``: the error model already applied (and escalated)
        on the host; ``host``: what the host decided (``deterministic``, ``escalated``,
        ``escalation_evaluations``, ``notes``)."""
        host = host or {}
        nleaf = len(self.leaf_shapes)
        sizes = [int(np.prod(s, dtype=np.int64)) for s in self.leaf_shapes]
        n = int(sum(sizes))
        d, e = raw["d"], raw["e"]
        dt = raw["analytic"].dtype
        fdt = d.F.dtype
        eps, eps_f = eps_of(dt), eps_of(fdt)
        dmeas, emeas, sigma = measured if measured is not None else self.measure(raw, xp)
        el = self._elements(xp, raw, emeas, n, dt, fdt)
        analytic, numeric = el["analytic"], el["numeric"]

        # ---- determinism: the same program at the same point (two rows of each batch)
        e_centers = xp.where(xp.any(raw["e_keep"]), e.centers, d.centers)
        centers = xp.stack([d.centers, e_centers])
        cs = xp.concatenate([centers.reshape(-1), raw["f0_ad"].reshape(1)])
        scale = xp.max(xp.abs(cs))
        within = xp.max(xp.abs(centers[:, 0] - centers[:, 1]))
        spread = xp.max(cs) - xp.min(cs)
        f0_finite = xp.all(xp.isfinite(cs))
        deterministic = (within <= 4 * eps_f * scale) | ~f0_finite
        if "deterministic" in host:
            deterministic = xp.asarray(host["deterministic"])

        # ---- outcomes per measurement; nondeterminism and f(x) non-finite void them all
        void = ~deterministic | ~f0_finite
        void_reason = xp.where(~f0_finite, Reason.NONFINITE, Reason.NONDETERMINISTIC).astype(np.int8)

        def outcome(status, reason):
            measured_ = status != CheckStatus.UNCHECKED
            status = xp.where(void & measured_, CheckStatus.INCONCLUSIVE, status).astype(np.int8)
            return status, xp.where(void & measured_, void_reason, reason).astype(np.int8)

        # Many elements, each tolerance an estimate: an isolated failure within ``family(M)``
        # tolerances is expected somewhere among M of them by chance (float32 ReLU nets: a kink
        # whose jump hides in the rounding allowance); it is not confirmed, so INCONCLUSIVE.
        ratio = xp.abs(el["analytic"].astype(fdt) - el["numeric"]) / xp.where(
            el["tolerance"] > 0, el["tolerance"], 1
        )
        n_measured = xp.sum(el["status"] != CheckStatus.UNCHECKED)
        chance = (
            (el["status"] == CheckStatus.FAIL)
            & (ratio <= family(xp, n_measured).astype(ratio.dtype))
            & xp.isfinite(analytic)
        )
        status, reason = outcome(
            xp.where(chance, CheckStatus.INCONCLUSIVE, el["status"]),
            xp.where(chance, Reason.UNRESOLVED, el["reason"]),
        )
        d_valid = d.valid
        dstatus, dreason = outcome(
            xp.where(d_valid, dmeas.status, CheckStatus.UNCHECKED),
            xp.where(d_valid, dmeas.reason, Reason.NONE),
        )

        # ---- per-element derived fields
        a_f = analytic.astype(fdt)
        checked_e = (status == CheckStatus.PASS) | (status == CheckStatus.FAIL)
        seen = status != CheckStatus.UNCHECKED
        abs_err = xp.where(seen, xp.abs(a_f - numeric), np.nan)
        rel_err = xp.where(seen, relative_error(a_f, numeric, xp), np.nan)

        # ---- non-finite values met
        elem_bad = seen & ((el["reason"] == Reason.NONFINITE) | ~xp.isfinite(numeric))
        if self.has_analytic:
            elem_bad = elem_bad | ~xp.isfinite(analytic)
        dir_bad = d_valid & (~xp.isfinite(dmeas.numeric) | ~xp.isfinite(dmeas.analytic))
        nonfinite = ~f0_finite | xp.any(elem_bad) | xp.any(dir_bad)
        nf_pos = _first(xp, elem_bad)  # a position among the stored elements
        stored = el["index"]
        nf_index = (
            xp.where(nf_pos >= 0, stored[xp.maximum(nf_pos, 0)], -1) if stored.shape[0] else xp.asarray(-1)
        ).astype(np.int32)
        nf_dir = _first(xp, dir_bad)
        nf_offset = xp.where(
            ~f0_finite,
            xp.zeros((), fdt),
            xp.where(
                nf_pos >= 0,
                _at(xp, el["bad_offset"], nf_pos),
                xp.where(nf_dir >= 0, _at(xp, dmeas.first_bad_offset, nf_dir), np.nan),
            ),
        ).astype(fdt)

        # ---- per-leaf and overall outcomes and metrics
        starts = np.cumsum([0] + sizes)
        leaf_of: jax.Array | np.ndarray
        if self.mode != "full":
            ends = xp.asarray(starts[1:], dtype=el["index"].dtype)
            leaf_of = xp.searchsorted(ends, xp.maximum(el["index"], 0), side="right").astype(np.int32)
        elif xp is jnp:
            leaf_of = jnp.repeat(jnp.arange(nleaf, dtype=np.int32), np.diff(starts), total_repeat_length=n)
        else:
            leaf_of = np.repeat(np.arange(nleaf, dtype=np.int32), np.diff(starts))
        dleaf = raw["dir_leaf"]
        dleaf_s = xp.maximum(dleaf, 0)
        on_leaf = dleaf >= 0
        dchecked = (dstatus == CheckStatus.PASS) | (dstatus == CheckStatus.FAIL)
        deps = max(eps, eps_f)
        tol_e = el["tolerance"]
        da, dn, dtol = dmeas.analytic, dmeas.numeric, dmeas.tolerance

        def columns(st, rs):
            inc = st == CheckStatus.INCONCLUSIVE
            return xp.stack(
                [
                    st == CheckStatus.PASS,
                    st == CheckStatus.FAIL,
                    inc & (rs == Reason.UNRESOLVED),
                    inc & (rs == Reason.KINK),
                    inc & (rs == Reason.NONFINITE),
                    inc & (rs == Reason.NONDETERMINISTIC),
                ],
                1,
            )

        counts = _counts(xp, columns(status, reason), leaf_of, nleaf) + _counts(
            xp, columns(dstatus, dreason) & on_leaf[:, None], dleaf_s, nleaf
        )
        leaf_status, leaf_reason = _leaf_outcome(xp, counts)
        leaf_checked = counts[:, 0] + counts[:, 1]
        leaf_void = (leaf_status != CheckStatus.FAIL) & (
            (counts[:, 4] > 0) | ~f0_finite
        )  # a non-finite value and no failure: no metric reads as agreement
        all_void = xp.reshape(nonfinite, (1,))
        if self.mode in ("full", "subset"):
            leaf_m = _seg_metrics(xp, a_f, numeric, tol_e, checked_e, leaf_of, nleaf, deps, void=leaf_void)
            zeros = xp.zeros(el["index"].shape, np.int32)
            all_m = _seg_metrics(xp, a_f, numeric, tol_e, checked_e, zeros, 1, deps, void=all_void)
        else:
            leaf_m = _seg_metrics(xp, da, dn, dtol, dchecked & on_leaf, dleaf_s, nleaf, deps, void=leaf_void)
            zeros = xp.zeros_like(dleaf_s)
            all_m = _seg_metrics(xp, da, dn, dtol, dchecked, zeros, 1, deps, void=all_void)

        failed = xp.sum(status == CheckStatus.FAIL) + xp.sum(dstatus == CheckStatus.FAIL)
        checked = xp.sum(checked_e) + xp.sum(dchecked)
        kinks = xp.sum(reason == Reason.KINK) + xp.sum(dreason == Reason.KINK)
        inconclusive = xp.sum(status == CheckStatus.INCONCLUSIVE) + xp.sum(
            dstatus == CheckStatus.INCONCLUSIVE
        )
        # The check: void (f(x) non-finite, not deterministic) > any failure > every leaf passed.
        first_open = _first(xp, leaf_status != CheckStatus.PASS)
        open_reasons = xp.stack([xp.any(leaf_reason == r) for r in _REASON_ORDER])
        leaf_why = xp.asarray(np.asarray(_REASON_ORDER + (Reason.NOT_MEASURED,), np.int8))[
            _first(xp, xp.concatenate([open_reasons, xp.ones((1,), bool)]))
        ]
        overall = xp.where(
            void,
            CheckStatus.INCONCLUSIVE,
            xp.where(
                failed > 0,
                CheckStatus.FAIL,
                xp.where(first_open < 0, CheckStatus.PASS, CheckStatus.INCONCLUSIVE),
            ),
        ).astype(np.int8)
        why = xp.where(
            void, void_reason, xp.where(overall == CheckStatus.INCONCLUSIVE, leaf_why, Reason.NONE)
        ).astype(np.int8)
        evaluations = raw["evaluations"] + host.get("escalation_evaluations", 0)

        return GradCheck(
            elements=ElementChecks(
                analytic=analytic,
                numeric=numeric,
                abs_error=abs_err,
                rel_error=rel_err,
                tolerance=tol_e,
                truncation=el["truncation"],
                roundoff=el["roundoff"],
                ad_rounding=el["ad_rounding"],
                step=el["step"],
                slope_plus=el["slope_plus"],
                slope_minus=el["slope_minus"],
                kink=el["kink"],
                subgradient=el["subgradient"],
                status=status,
                reason=reason,
                index=el["index"],
            ),
            directions=DirectionChecks(
                analytic=da,
                numeric=dn,
                abs_error=xp.abs(dmeas.error),
                rel_error=relative_error(da, dn, xp),
                tolerance=dtol,
                step=dmeas.step,
                slope_plus=dmeas.slope_plus,
                slope_minus=dmeas.slope_minus,
                subgradient=dmeas.subgradient,
                status=dstatus,
                reason=dreason,
                kind=raw["dir_kind"],
                leaf=dleaf,
                lo=raw["dir_lo"],
                hi=raw["dir_hi"],
            ),
            leaves=LeafChecks(
                norm_ratio=leaf_m[0],
                max_rel_error=leaf_m[1],
                digits=leaf_m[2],
                sign_agreement=leaf_m[3],
                status=leaf_status,
                reason=leaf_reason,
                passed=leaf_status == CheckStatus.PASS,
                checked=leaf_checked,
                failed=counts[:, 1],
                inconclusive=counts[:, 2:].sum(axis=1).astype(np.int32),
                kinks=counts[:, 3],
            ),
            norm_ratio=all_m[0][0],
            max_rel_error=all_m[1][0],
            digits=all_m[2][0],
            sign_agreement=all_m[3][0],
            status=overall,
            reason=why,
            passed=overall == CheckStatus.PASS,
            checked=checked.astype(np.int32),
            failed=failed.astype(np.int32),
            inconclusive=inconclusive.astype(np.int32),
            kinks=kinks.astype(np.int32),
            deterministic=deterministic,
            f0_spread=spread,
            value=raw["f0_ad"],
            noise=sigma,
            nonfinite=nonfinite,
            nonfinite_index=nf_index,
            nonfinite_direction=nf_dir,
            nonfinite_offset=nf_offset,
            evaluations=xp.asarray(evaluations).astype(np.int32),
            escalated=xp.asarray(host.get("escalated", 0), np.int32),
            escalation_evaluations=xp.asarray(host.get("escalation_evaluations", 0), np.int32),
            located=raw["located"] if "located" in raw else xp.zeros((0,), np.int32),
            caller=self.caller,
            kind=self.kind,
            mode=self.mode,
            method=self.stencil.name,
            order=self.order,
            dtype=str(np.dtype(dt)),
            margin=float(self.margin),
            leaf_names=self.leaf_names,
            leaf_shapes=self.leaf_shapes,
            notes=self.notes + tuple(host.get("notes", ())),
        )
