r"""Residual diagnostics printed by ``summary()``, with statsmodels' formulas.

* Ljung-Box: ``Q = n (n + 2) sum_{k=1}^{L} r_k^2 / (n - k)``, ``r_k`` the sample autocorrelation of
  the (demeaned) standardised residuals; p-value ``chi2(L)`` (statsmodels ``acorr_ljungbox``).
* Jarque-Bera: ``JB = n / 6 (S^2 + (K - 3)^2 / 4)``, ``S, K`` the (biased) sample skewness and
  kurtosis; p-value ``chi2(2)`` (statsmodels ``jarque_bera``).
* Heteroskedasticity (break in variance): ``H = sum of the last h squared residuals / sum of the
  first h``, ``h = round(n / 3)``; two-sided p-value from ``F(h, h)`` (statsmodels
  ``MLEResults.test_heteroskedasticity(method="breakvar")``).
"""

from __future__ import annotations

import numpy as np
from scipy import stats


def ljung_box(e, lags: int = 1):
    """``(Q, p-value)`` of the Ljung-Box test at ``lags`` on residuals ``e (n,)``."""
    e = np.asarray(e, dtype=np.float64)
    n = len(e)
    d = e - e.mean()
    den = d @ d
    r = np.array([d[k:] @ d[:n - k] / den for k in range(1, lags + 1)])
    Q = float(n * (n + 2) * np.sum(r ** 2 / (n - np.arange(1, lags + 1))))
    return Q, float(stats.chi2.sf(Q, lags))


def jarque_bera(e):
    """``(JB, p-value, skew, kurtosis)`` of residuals ``e (n,)``."""
    e = np.asarray(e, dtype=np.float64)
    d = e - e.mean()
    m2 = np.mean(d ** 2)
    S = float(np.mean(d ** 3) / m2 ** 1.5)
    K = float(np.mean(d ** 4) / m2 ** 2)
    JB = len(e) / 6.0 * (S ** 2 + (K - 3) ** 2 / 4)
    return float(JB), float(stats.chi2.sf(JB, 2)), S, K


def het_breakvar(e):
    """``(H, two-sided p-value)`` of the break-in-variance test on residuals ``e (n,)``."""
    e2 = np.asarray(e, dtype=np.float64) ** 2
    h = int(np.round(len(e2) / 3))
    H = float(np.sum(e2[-h:]) / np.sum(e2[:h]))
    return H, float(2 * min(stats.f.cdf(H, h, h), stats.f.sf(H, h, h)))


def residual_tests(e, lags: int = 1):
    """All of the above as a dict (keys ``ljung_box``, ``jarque_bera``, ``heteroskedasticity``, ``skew``,
    ``kurtosis``)."""
    jb, pjb, S, K = jarque_bera(e)
    return {"ljung_box": ljung_box(e, lags), "jarque_bera": (jb, pjb), "heteroskedasticity": het_breakvar(e),
            "skew": S, "kurtosis": K}
