"""The verdict of a gradient check: per-leaf and overall figures from the measurements.

``_Aggregate`` applies the error model to the raw samples of the measurement body and
builds the ``GradCheck``. Written once for an array module ``xp``: inside the user's jit it
runs traced (``jax.numpy``); called eagerly it runs in NumPy on the host, so a check compiles
only its measurement body (XLA compile time dominates small checks).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from .model import Measurement, digits_of, relative_error
from .outcomes import CheckStatus
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
    "tolerance",
    "truncation",
    "roundoff",
    "ad_rounding",
    "slope_plus",
    "slope_minus",
    "bad_offset",
)
_CODE = ("kink", "subgradient", "status")


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

    def _elements(self, xp, raw, emeas: Measurement, n: int, dt, fdt):
        """Per-element fields [N]: the measured elements written at their indices."""
        e = raw["e"]
        q = e.q
        aq = xp.abs(q)
        vals = {
            "numeric": emeas.numeric / q,
            "tolerance": emeas.tolerance / aq,
            "truncation": emeas.truncation / aq,
            "roundoff": emeas.roundoff / aq,
            "ad_rounding": emeas.ad_rounding / aq,
            "slope_plus": emeas.slope_plus,
            "slope_minus": emeas.slope_minus,
            "bad_offset": emeas.first_bad_offset,
            "kink": emeas.kink,
            "subgradient": emeas.subgradient,
            "status": emeas.status,
        }
        idx = raw["e_idx"]
        if self.mode == "full":  # every element, in order
            out = {k: v for k, v in vals.items()}
            out["step"] = raw["h"]
            out["analytic"] = raw["e_analytic"]
            return out
        tgt = xp.where(raw["e_keep"], idx, n)  # out of range: dropped
        fl = xp.stack([vals[k].astype(fdt) for k in _FLOAT], 1)
        fl = _scatter(xp, xp.full((n, len(_FLOAT)), np.nan, fdt), tgt, fl)
        codes = xp.stack([vals[k].astype(np.int8) for k in _CODE], 1)
        codes = _scatter(xp, xp.zeros((n, len(_CODE)), np.int8), tgt, codes)
        out = {k: fl[:, j] for j, k in enumerate(_FLOAT)}
        out["kink"], out["subgradient"], out["status"] = codes[:, 0] > 0, codes[:, 1] > 0, codes[:, 2]
        out["step"] = _scatter(xp, xp.full((n,), np.nan, dt), tgt, raw["h"][idx])
        out["analytic"] = _scatter(xp, raw["analytic"], tgt, raw["e_analytic"])
        return out

    def __call__(self, raw, xp=jnp) -> GradCheck:
        nleaf = len(self.leaf_shapes)
        sizes = [int(np.prod(s, dtype=np.int64)) for s in self.leaf_shapes]
        n = int(sum(sizes))
        d, e = raw["d"], raw["e"]
        dt = raw["analytic"].dtype
        fdt = d.F.dtype
        eps, eps_f = eps_of(dt), eps_of(fdt)
        sigma = probe_sigma(d.probes, d.centers[0], xp)
        dmeas = measure_samples(d, sigma, self.stencil, self.margin, eps, xp)
        # In locate mode the body judged the directions to start bisection; report those verdicts.
        d_status = raw["d_status"] if "d_status" in raw else dmeas.status
        dstatus = xp.where(d.valid, d_status, CheckStatus.UNCHECKED).astype(np.int8)
        emeas = measure_samples(e, sigma, self.stencil, self.margin, eps, xp)
        el = self._elements(xp, raw, emeas, n, dt, fdt)
        analytic, numeric, status = el["analytic"], el["numeric"], el["status"]
        # ---- per-element derived fields
        a_f = analytic.astype(fdt)
        checked_e = (status == CheckStatus.PASS) | (status == CheckStatus.FAIL)
        abs_err = xp.where(status != CheckStatus.UNCHECKED, xp.abs(a_f - numeric), np.nan)
        rel_err = xp.where(status != CheckStatus.UNCHECKED, relative_error(a_f, numeric, xp), np.nan)

        # ---- determinism and non-finite values
        e_centers = xp.where(xp.any(raw["e_keep"]), e.centers, d.centers)
        centers = xp.stack([d.centers, e_centers])
        cs = xp.concatenate([centers.reshape(-1), raw["f0_ad"].reshape(1)])
        scale = xp.max(xp.abs(cs))
        within = xp.max(xp.abs(centers[:, 0] - centers[:, 1]))
        spread = xp.max(cs) - xp.min(cs)
        f0_finite = xp.all(xp.isfinite(cs))
        deterministic = (within <= 16 * eps_f * scale) & (spread <= 16 * eps_f * scale + 4 * sigma)
        deterministic = deterministic | ~f0_finite

        elem_bad = status == CheckStatus.NONFINITE
        if self.has_analytic:
            elem_bad = elem_bad | ~xp.isfinite(analytic)
        dir_bad = dstatus == CheckStatus.NONFINITE
        nonfinite = ~f0_finite | xp.any(elem_bad) | xp.any(dir_bad)
        nf_index = _first(xp, elem_bad)
        nf_dir = _first(xp, dir_bad)
        nf_offset = xp.where(
            ~f0_finite,
            xp.zeros((), fdt),
            xp.where(
                nf_index >= 0,
                el["bad_offset"][xp.maximum(nf_index, 0)],
                xp.where(nf_dir >= 0, _at(xp, dmeas.first_bad_offset, nf_dir), np.nan),
            ),
        ).astype(fdt)

        # ---- per-leaf and overall metrics
        starts = np.cumsum([0] + sizes)
        leaf_of: jax.Array | np.ndarray
        if xp is jnp:
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
        ecount = _counts(
            xp,
            xp.stack([checked_e, status == CheckStatus.FAIL, elem_bad, status == CheckStatus.KINK], 1),
            leaf_of,
            nleaf,
        )
        dcount = _counts(
            xp,
            xp.stack([dchecked, dstatus == CheckStatus.FAIL, dir_bad, dstatus == CheckStatus.KINK], 1)
            & on_leaf[:, None],
            dleaf_s,
            nleaf,
        )
        leaf_checked, leaf_failed, leaf_bad, leaf_kinks = (ecount + dcount).T
        leaf_passed = (leaf_failed == 0) & (leaf_bad == 0)
        leaf_void, all_void = (leaf_bad > 0) | ~f0_finite, xp.reshape(nonfinite, (1,))
        if self.mode in ("full", "subset"):
            leaf_m = _seg_metrics(xp, a_f, numeric, tol_e, checked_e, leaf_of, nleaf, deps, void=leaf_void)
            zeros = xp.zeros((n,), np.int32)
            all_m = _seg_metrics(xp, a_f, numeric, tol_e, checked_e, zeros, 1, deps, void=all_void)
        else:
            leaf_m = _seg_metrics(xp, da, dn, dtol, dchecked & on_leaf, dleaf_s, nleaf, deps, void=leaf_void)
            zeros = xp.zeros_like(dleaf_s)
            all_m = _seg_metrics(xp, da, dn, dtol, dchecked, zeros, 1, deps, void=all_void)

        failed = xp.sum(status == CheckStatus.FAIL) + xp.sum(dstatus == CheckStatus.FAIL)
        checked = xp.sum(checked_e) + xp.sum(dchecked)
        kinks = xp.sum(status == CheckStatus.KINK) + xp.sum(dstatus == CheckStatus.KINK)
        passed = deterministic & ~nonfinite & (failed == 0)

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
                passed=leaf_passed,
                checked=leaf_checked,
                failed=leaf_failed,
                kinks=leaf_kinks,
            ),
            norm_ratio=all_m[0][0],
            max_rel_error=all_m[1][0],
            digits=all_m[2][0],
            sign_agreement=all_m[3][0],
            passed=passed,
            checked=checked.astype(np.int32),
            failed=failed.astype(np.int32),
            kinks=kinks.astype(np.int32),
            deterministic=deterministic,
            f0_spread=spread,
            value=raw["f0_ad"],
            noise=sigma,
            nonfinite=nonfinite,
            nonfinite_index=nf_index,
            nonfinite_direction=nf_dir,
            nonfinite_offset=nf_offset,
            evaluations=raw["evaluations"],
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
        )
