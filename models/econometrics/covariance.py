r"""Covariance of the estimates, with the reference libraries' names and conventions.

``H`` is the Hessian of ``llf`` at the estimate (natural parameters), ``G`` the ``(nobs, k)`` matrix
of per-observation scores ``d llf_t / d params`` (complex-step derivatives of the per-observation
log-likelihood: exact to rounding).

===============  =========================================  ====================================
``cov_type``     matrix                                      the same as
===============  =========================================  ====================================
``"nonrobust"``  ``inv(-H)`` (observed information)          statsmodels ARIMA ``"approx"``/
                                                             ``"oim"``, AutoReg ``"nonrobust"``,
                                                             arch ``"classic"``
``"opg"``        ``inv(G' G)`` (outer product of gradients)  statsmodels SARIMAX/ARIMA default
``"robust"``     ``inv(-H) G' G inv(-H)`` (QMLE sandwich)    arch default ``"robust"`` (GARCH),
                                                             statsmodels ``"robust_approx"``
                                                             (its ``"robust"`` puts Harvey's
                                                             information matrix in the place of
                                                             ``-H``); AutoReg ``"HC0"``
``"r-css"``      ``inv(-H) * n_used / N``                    R ``arima(method="CSS")``
``"none"``       NaN                                         statsmodels ``"none"``
===============  =========================================  ====================================

``df_correction=True`` multiplies the coefficient block (every parameter but the variances) by
``n / (n - k_coef)``: the OLS / statsmodels VAR convention (``Sigma = E'E / (n - k_coef)``).
R's CSS convention: R's ``arima`` minimises ``0.5 log(S / n_used)`` and takes
``var.coef = solve(N * hessian)``, ``N`` the length of the (differenced) series, so its variances
are the observed-information ones times ``n_used / N`` (``n_used = N - p`` observations enter S).
"""

from __future__ import annotations

import warnings

import numpy as np

COV_TYPES = ("nonrobust", "opg", "robust", "r-css", "none")
ALIASES = {"approx": "nonrobust", "oim": "nonrobust", "classic": "nonrobust", "robust_approx": "robust",
           "qmle": "robust", "sandwich": "robust"}
DESCRIPTIONS = {
    "nonrobust": "nonrobust: inverse observed information inv(-H), H from the exact gradient",
    "opg": "opg: inverse outer product of the per-observation scores (exact, complex step)",
    "robust": "robust: QMLE sandwich inv(-H) (G'G) inv(-H)",
    "r-css": "r-css: R arima(method='CSS') convention, inv(-H) * n_used / N",
    "none": "none: no standard errors computed",
}
_CS = 1e-30


def check_cov_type(cov_type, allowed=COV_TYPES) -> str:
    """The canonical name of ``cov_type`` (aliases accepted) or ``ValueError`` naming the choices."""
    if not isinstance(cov_type, str):
        raise TypeError(f"cov_type: expected one of {list(allowed)}, got {type(cov_type).__name__} {cov_type!r}")
    name = ALIASES.get(cov_type.lower(), cov_type.lower())
    if name not in allowed:
        raise ValueError(f"cov_type: expected one of {list(allowed)} (aliases {sorted(ALIASES)}), got {cov_type!r}")
    return name


def complex_step_scores(llf_obs, x):
    """``(n, k)`` Jacobian of a complex-safe per-observation log-likelihood ``llf_obs: (k,) -> (n,)``."""
    x = np.asarray(x, dtype=np.float64)
    cols = []
    for j in range(x.size):
        z = x.astype(np.complex128)
        z[j] += 1j * _CS
        cols.append(np.imag(np.asarray(llf_obs(z))) / _CS)
    return np.stack(cols, axis=1)


def safe_inv(M, what="the information matrix"):
    try:
        return np.linalg.inv(M)
    except np.linalg.LinAlgError:
        warnings.warn(f"{what} is singular: standard errors are NaN (a parameter is not identified)",
                      RuntimeWarning, stacklevel=4)
        return np.full(M.shape, np.nan)


def cov_matrix(cov_type, *, hessian=None, scores=None, n_used=None, n_total=None, df_k=None, df_correction=False,
               var_mask=None, opg=None):
    """The ``(k, k)`` covariance for ``cov_type`` (see the module table).

    Parameters
    ----------
    hessian : (k, k) array or None
        Hessian of ``llf``; needed for ``nonrobust``, ``robust``, ``r-css``.
    scores : (n, k) array or None
        Per-observation scores; needed for ``opg`` and ``robust`` unless ``opg`` is given.
    n_used, n_total : int
        Observations in the likelihood and the series length (``r-css``).
    df_k : int
        Coefficients counted by the degrees-of-freedom correction (``n_used - df_k`` residual df).
    var_mask : (k,) bool array
        Variance parameters (left out of the df correction).
    opg : (k, k) array or None
        ``scores' scores`` when the caller has it without the scores (a compiled pass sums it).
    """
    if opg is None and scores is not None:
        opg = scores.T @ scores
    if cov_type == "none":
        k = (hessian if hessian is not None else opg).shape[0] if (hessian is not None or opg is not None) \
            else len(var_mask)
        return np.full((k, k), np.nan)
    if cov_type == "opg":
        C = safe_inv(opg, "the outer product of gradients")
    else:
        Hi = safe_inv(-hessian, "the observed information (-Hessian)")
        if cov_type == "robust":
            C = Hi @ opg @ Hi
        elif cov_type == "r-css":
            C = Hi * (n_used / n_total)
        else:
            C = Hi
    if df_correction:
        if df_k is None or n_used - df_k <= 0:
            raise ValueError(f"df_correction: needs more observations ({n_used}) than coefficients ({df_k})")
        f = np.sqrt(n_used / (n_used - df_k))
        d = np.where(np.asarray(var_mask, bool), 1.0, f) if var_mask is not None else np.full(C.shape[0], f)
        C = C * np.outer(d, d)
    return 0.5 * (C + C.T)
