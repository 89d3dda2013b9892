"""Synthetic failed measurements for the host-side tests (segment, jitter)."""

import numpy as np

from fdjax import CheckStatus
from fdjax._check.model import Measurement


def failing(numeric, analytic, roundoff=1e-4) -> Measurement:
    """FAIL measurements D = ``numeric``, A = ``analytic``, tolerance 10·``roundoff`` (the only
    error term), step 1."""
    m = len(numeric)
    num, ana = np.asarray(numeric, float), np.asarray(analytic, float)
    z, ro = np.zeros(m), np.broadcast_to(np.asarray(roundoff, float), (m,)).copy()
    return Measurement(
        numeric=num,
        analytic=ana,
        error=num - ana,
        error2=num - ana,
        tolerance=10 * ro,
        truncation=z,
        roundoff=ro,
        ad_rounding=z,
        kink=np.zeros(m, bool),
        slope_plus=num,
        slope_minus=num,
        subgradient=np.zeros(m, bool),
        finite=np.ones(m, bool),
        first_bad_offset=np.full(m, np.nan),
        status=np.full(m, CheckStatus.FAIL, np.int8),
        reason=np.zeros(m, np.int8),
        step=np.ones(m),
    )
