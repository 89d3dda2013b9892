"""Verdicts on the issue-11 corpus (tests/verdict_corpus.py), in every mode.

Every bug that finite differences can resolve FAILS, in every mode; a bug beyond resolution
(or a function where nothing can be verified) never PASSES; a correct gradient never FAILS
(PASS, or INCONCLUSIVE with a reason); a nondeterministic f is INCONCLUSIVE with the reason
"nondeterministic", without blaming the gradient. The benchmark ``python -m bench.verdicts``
runs the same corpus with its larger variants and prints the table of outcomes.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from verdict_corpus import CASES, DTYPES, VerdictCase, agrees, has_outcomes, outcome

import fdjax

MODES = ("full", "subset", "directional", "locate", "auto")
CHECKS = {"grad": fdjax.check_grad, "vjp": fdjax.check_vjp, "jvp": fdjax.check_jvp}


def has_mode(mode: str) -> bool:
    """The checker accepts ``mode`` (``"auto"`` arrives with issue 11)."""
    from fdjax._check import MODES as accepted

    return mode in accepted


@functools.cache
def built(name: str, dtype: str):
    """(f, args) once per case and dtype: the same function object in every mode, so the
    compiled direction body (shared by every mode) is reused from the jit cache."""
    case = next(c for c in CASES if c.name == name)
    return case.build(DTYPES[dtype])


def run(case: VerdictCase, dtype: str, mode: str):
    f, args = built(case.name, dtype)
    if case.kind == "grad":
        return fdjax.check_grad(f, *args, mode=mode, key=case.key)
    return CHECKS[case.kind](f, args, mode=mode, key=case.key)


# A sample of the corpus (each case's ``tested`` dtypes: one or two cases per class 1-9; the
# regression cases of class 0 run in test_check_corpus.py), every mode. XLA compilation
# dominates: ~2 min on a loaded 2-core machine. ``python -m bench.verdicts`` runs every case
# and dtype.
PARAMS = [(c, d, m) for c in CASES for d in c.tested for m in MODES]

#: Known wrong verdicts, kept failing on purpose (strict: the test breaks when one is fixed).
KNOWN: dict[tuple[str, str], str] = {}


def _param(case, dtype, mode):
    known = KNOWN.get((case.name, dtype))
    marks = [pytest.mark.xfail(strict=True, reason=known)] if known else []
    # Every mode of a case next to each other, on one xdist worker (tests/conftest.py): the
    # modes share the compiled direction body, and "auto" reuses "full"; split over workers,
    # each would compile them again.
    marks.append(pytest.mark.xdist_group(f"verdict-{case.name}-{dtype}"))
    return pytest.param(case, dtype, mode, marks=marks, id=f"{case.name}-{dtype}-{mode}")


@pytest.mark.parametrize("case,dtype,mode", [_param(*p) for p in PARAMS])
def test_verdict(case, dtype, mode):
    if mode == "auto" and not has_mode("auto"):
        pytest.skip("mode auto not available yet")
    r = run(case, dtype, mode)
    want, got = case.expected(dtype, mode), outcome(r)
    if case.reason is not None and not has_outcomes(r):
        want = "not pass"  # a pass/fail result cannot say INCONCLUSIVE: at least never PASS
    assert agrees(want, got), f"{case.name} [{dtype}, {mode}]: expected {want}, got {got}\n{r}"
    if case.reason == "nondeterministic":
        # The gradient is not blamed: no element and no direction is a FAIL.
        assert not np.any(np.asarray(r.elements.status) == int(fdjax.CheckStatus.FAIL)), r
        assert not np.any(np.asarray(r.directions.status) == int(fdjax.CheckStatus.FAIL)), r


def test_corpus_covers_every_class():
    classes = {c.cls for c in CASES}
    assert set(range(0, 10)) <= classes, sorted(classes)
    assert len({c.name for c in CASES}) == len(CASES)
    for c in CASES:
        assert c.dtypes and set(c.dtypes) <= set(DTYPES), c.name
    assert sum(c.buggy for c in CASES) >= 15 and sum(not c.buggy for c in CASES) >= 20
    assert set(range(1, 10)) <= {c.cls for c in CASES if c.tested}  # class 0: test_check_corpus.py
    assert all(set(c.tested) <= set(c.dtypes) for c in CASES)


def test_outcome_reads_the_three_way_result():
    r = fdjax.check_grad(lambda x: (x * x).sum(), np.ones(3))
    got = outcome(r)
    assert got == "pass", got
    if has_outcomes(r):
        assert int(r.status) == int(fdjax.CheckStatus.PASS)
