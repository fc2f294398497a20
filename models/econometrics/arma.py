r"""ARMA(p, q) with a mean (and regressors), and AR/ARX(p) in intercept form.

``ARMA``: regression with ARMA errors, statsmodels' ``ARIMA(order=(p, 0, q))`` model::

    y_t = mu + x_t' beta + u_t,
    u_t = phi_1 u_{t-1} + ... + phi_p u_{t-p} + e_t + theta_1 e_{t-1} + ... + theta_q e_{t-q}

Objectives: ``method="css"`` (conditional sum of squares: ``e_t`` for ``t >= p`` with
``e_{t} = 0`` before, conditioning on the first p observations; the recursion is the
all-pole filter of :mod:`.filters`), or ``method="mle"`` (exact Gaussian likelihood from
the Kalman filter, :mod:`.kalman`).

``ARX``: ``y_t = c + phi_1 y_{t-1} + ... + phi_p y_{t-p} + x_t' beta + e_t`` (statsmodels'
``AutoReg(y, p, trend="c", exog=x)``), conditional Gaussian likelihood; ``AR`` is ARX
without regressors.
"""

from __future__ import annotations

import copy

import numpy as np
from scipy.signal import lfilter

from dynopt.core.validation import check_flag, describe

from .covariance import check_cov_type, complex_step_scores, cov_matrix
from .data import (check_exog, check_full_rank, check_not_constant, check_order, check_series, label,
                   least_squares, series_info)
from .filters import allpole, allpole_adjoint
from .fitargs import NOT_GIVEN, check_fit_args
from .kalman import ARMALayout, exact_loglike, steady_state_prediction
from .kalman_compiled import HEAD, exact_loglike_compiled, exact_scores
from .loglikeobs import arma_exact_obs, arma_exact_scores, arma_final_prediction, css_obs
from .results import (FitResult, forecast_frame, gaussian_interval, hessian_from_gradient, minimize_transformed,
                      warn_not_converged, warn_better_start)
from .transforms import Transform

LOG2PI = np.log(2 * np.pi)


def _check_trend(trend):
    if trend not in ("c", "n"):
        raise ValueError(f"trend: expected 'c' (with a mean/intercept) or 'n' (none), got {trend!r}")
    return trend


def css_residuals(layout: ARMALayout, y, exog, theta):
    """CSS residuals ``e_t``, ``t = p .. N-1`` (shape (N - p,)), with ``e_t = 0`` before, and the
    context for :func:`css_residuals_vjp`::

        e_t + theta_1 e_{t-1} + ... = y~_t - phi_1 y~_{t-1} - ... ,   y~ = y - mu - x' beta
    """
    mu, beta, phi, th, _ = layout.split(theta)
    p = layout.p
    yt = y - mu - exog @ beta
    n = len(y)
    w = yt[p:].copy()
    for i in range(1, p + 1):
        w -= phi[i - 1] * yt[p - i:n - i]
    ma = np.concatenate([[1.0], th])
    e = allpole(ma, w)
    return e, (layout, exog, yt, phi, ma, e)


def css_residuals_vjp(ctx, e_bar):
    """Dual of :func:`css_residuals`: ``d (e_bar . e) / d theta`` (sigma2 entry 0)."""
    layout, exog, yt, phi, ma, e = ctx
    p, n = layout.p, len(yt)
    lam, th_bar = allpole_adjoint(ma, e, e_bar)
    phi_bar = -np.array([lam @ yt[p - i:n - i] for i in range(1, p + 1)])
    yb = np.zeros(n)
    yb[p:] = lam
    for i in range(1, p + 1):
        yb[p - i:n - i] -= phi[i - 1] * lam
    return layout.merge(-yb.sum(), -(exog.T @ yb), phi_bar, th_bar, 0.0)


def css_sse_and_grad(layout: ARMALayout, y, exog, theta, *, grad=True):
    """Sum of squared CSS residuals ``S = sum_{t>=p} e_t^2`` and ``dS/dtheta`` (sigma2 entry 0).

    Returns ``(S, dS (n_params,) or None, e (N - p,))``.
    """
    e, ctx = css_residuals(layout, y, exog, theta)
    S = float(e @ e)
    return S, (css_residuals_vjp(ctx, 2.0 * e) if grad else None), e


def css_residuals_jacobian(layout: ARMALayout, y, exog, theta):
    """CSS residuals ``e (N - p,)`` (:func:`css_residuals`) and their Jacobian ``d e / d theta``
    ``(N - p, k - 1)`` in the parameters other than ``sigma2``: every column is the MA all-pole filter
    of a lagged input, one ``lfilter`` over the stacked columns::

        d e / d phi_i = -theta(L)^-1 y~_{t-i},   d e / d theta_j = -theta(L)^-1 e_{t-j},
        d e / d mu = -theta(L)^-1 phi(1),        d e / d beta = -theta(L)^-1 phi(L) x_t
    """
    e, (_, _, yt, phi, ma, _) = css_residuals(layout, y, exog, theta)
    p, n = layout.p, len(y)
    m = n - p
    W = np.empty((m, layout.n_params - 1))
    c = 0
    if layout.kc:
        W[:, 0] = -(1.0 - phi.sum())
        c = 1
    for j in range(layout.kx):
        xw = exog[p:, j].copy()
        for i in range(1, p + 1):
            xw -= phi[i - 1] * exog[p - i:n - i, j]
        W[:, c] = -xw
        c += 1
    for i in range(1, p + 1):
        W[:, c] = -yt[p - i:n - i]
        c += 1
    for j in range(1, layout.q + 1):
        W[:j, c] = 0.0
        W[j:, c] = -e[:m - j]
        c += 1
    return e, (lfilter([1.0], ma, W, axis=0) if layout.q else W)


GN_MAX_ITER = 50
GN_RTOL = 1e-6
"""Gauss-Newton's stop for the exact fit's start: a relative decrease of the CSS sum of squares of
at most this (the start is then within ~1e-3 of the CSS estimate, which itself differs from the
exact-likelihood estimate by far more; tighter costs more iterations than it saves BFGS)."""


def gauss_newton(residuals, x0, inside, *, max_iter=GN_MAX_ITER, rtol=GN_RTOL):
    """Minimise ``||e(x)||^2`` by Gauss-Newton steps halved until the sum of squares decreases and
    ``inside(x)`` holds.

    Parameters
    ----------
    residuals : callable
        ``x (k,) -> (e (n,), d e / d x (n, k))``.
    x0 : (k,) array
        Start (``inside(x0)`` true).
    inside : callable
        ``x -> bool``: whether ``x`` is in the parameter space.

    Returns
    -------
    ``(x, e, J)`` at the last iterate, or None when no step decreases the sum of squares before
    converging (the caller falls back to its optimiser).  Converged: the relative decrease of the
    sum of squares at most ``rtol`` and the step at most ``1e-8 (1 + |x|)``.
    """
    x = np.asarray(x0, dtype=np.float64)
    e, J = residuals(x)
    S = float(e @ e)
    for _ in range(max_iter):
        try:  # normal equations (k small, J well conditioned inside the region), least squares otherwise
            d = np.linalg.solve(J.T @ J, -(J.T @ e))
        except np.linalg.LinAlgError:
            d = np.linalg.lstsq(J, -e, rcond=None)[0]
        if not np.all(np.isfinite(d)):
            return None
        step = 1.0
        while True:
            xn = x + step * d
            if inside(xn):
                en, Jn = residuals(xn)
                Sn = float(en @ en)
                if np.isfinite(Sn) and Sn <= S:
                    break
            step *= 0.5
            if step < 1e-6:  # at the optimum to rounding: no decrease left
                return (x, e, J) if np.linalg.norm(d) <= 1e-6 * (1 + np.linalg.norm(x)) else None
        done = S - Sn <= rtol * S
        x, e, J, S = xn, en, Jn, Sn
        if done:
            return x, e, J
    return None


def css_inverse_hessian(J, e, transform, u, N):
    """BFGS's initial inverse Hessian for the exact-likelihood fit in the unconstrained ``u`` of
    ``transform`` (objective ``-llf / N``), from the CSS Gauss-Newton curvature at its optimum:
    ``J' J / (N s2)`` (``s2 = e'e / n``) for the coefficients chained through ``d params / d u``, and
    2 for ``log sigma2`` (``S / (2 s2 N) ~ 1/2``).  None when not positive definite."""
    s2 = float(e @ e) / len(e)
    k = J.shape[1]
    H = np.zeros((k + 1, k + 1))
    Jt = transform.jacobian(u)[:k, :k]
    H[:k, :k] = Jt.T @ (J.T @ J) @ Jt / (N * s2)
    H[k, k] = 0.5
    try:
        Lc = np.linalg.cholesky(H)
    except np.linalg.LinAlgError:
        return None
    Li = np.linalg.inv(Lc)
    return Li.T @ Li


def hannan_rissanen(u, p: int, q: int):
    """Hannan-Rissanen estimates ``(phi (p,), theta (q,))`` of an ARMA(p, q) for the zero-mean series
    ``u (n,)``, or None when the series is too short for the long autoregression.

    Steps 1-2 of statsmodels' ``hannan_rissanen(u, p, q, demean=False, unbiased=False)`` (Hannan and
    Rissanen 1982; the long AR order ``max(floor(log(n)^2), 2 max(p, q))`` of Gomez and Maravall
    2001): a long AR by Yule-Walker (biased autocovariances), its residuals ``e``, then least
    squares of ``u_t`` on ``u_{t-1..p}`` and ``e_{t-1..q}``; without an MA part, least squares of
    ``u_t`` on its ``p`` lags.  A consistent start for the CSS and exact fits.
    """
    from scipy.linalg import solve_toeplitz
    u = np.asarray(u, dtype=np.float64)
    n = len(u)
    if q == 0:
        if p == 0:
            return np.zeros(0), np.zeros(0)
        X = np.column_stack([u[p - i:n - i] for i in range(1, p + 1)])
        return np.linalg.lstsq(X, u[p:], rcond=None)[0], np.zeros(0)
    m = max(int(np.floor(np.log(n) ** 2)), 2 * max(p, q))
    if n - m - q <= 2 * (p + q):
        return None
    acov = np.array([u[:n - k] @ u[k:] for k in range(m + 1)]) / n
    a = solve_toeplitz(acov[:m], acov[1:])
    e = lfilter(np.concatenate([[1.0], -a]), [1.0], u)[m:]  # e[k] is the residual at t = m + k
    t0 = m + q
    cols = [u[t0 - i:n - i] for i in range(1, p + 1)] + [e[q - j:n - m - j] for j in range(1, q + 1)]
    b = np.linalg.lstsq(np.column_stack(cols), u[t0:], rcond=None)[0]
    return b[:p], b[p:]


def css_start_gauss_newton(model, start, expand=None, *, rtol=GN_RTOL):
    """The CSS estimate by :func:`gauss_newton` from ``start`` (natural parameters, ``sigma2`` last)
    and, for non-seasonal models, from the Hannan-Rissanen coefficients (:func:`hannan_rissanen`, when
    stationary and invertible; mean and regression from ``start``), the lower sum of squares of the
    two, for the exact-likelihood fit of ``model`` (an :class:`ARMA`, or a SARIMA whose inner ARMA is
    ``model.inner`` and whose ``expand`` maps its parameters to the inner ones; Jacobian chained by
    the complex step), stopped at ``rtol`` (:func:`gauss_newton`).  Returns ``(values (k,), e, J)`` or
    None."""
    inner = getattr(model, "inner", model)
    tr = model._transform(False)

    def inside(x):
        try:
            tr.inverse(x)
        except ValueError:
            return False
        return True

    if expand is None:
        def residuals(x):
            return css_residuals_jacobian(inner.layout, inner.y, inner.exog, np.append(x, 1.0))
    else:
        from .transforms import complex_step_jacobian

        def residuals(x):
            e, J = css_residuals_jacobian(inner.layout, inner.y, inner.exog, expand(np.append(x, 1.0)))
            return e, J @ complex_step_jacobian(lambda z: expand(np.append(z, 1.0))[:-1], x)

    x0 = np.asarray(start, dtype=np.float64)[:-1]
    if not len(x0) or not inside(x0):
        return None
    starts = [x0]
    L = inner.layout
    if expand is None and L.p + L.q:  # Hannan-Rissanen's consistent ARMA coefficients first
        k0 = L.kc + L.kx
        u = inner.y - inner.exog @ x0[L.kc:k0] - (x0[0] if L.kc else 0.0)
        hr = hannan_rissanen(u, L.p, L.q)
        if hr is not None:
            x1 = x0.copy()
            x1[k0:k0 + L.p + L.q] = np.concatenate(hr)
            if np.all(np.isfinite(x1)) and inside(x1):
                starts.insert(0, x1)
    best = None
    with np.errstate(all="ignore"):
        for x0 in starts:  # the lower sum of squares of the two (each finds the better CSS optimum on some series),
            out = gauss_newton(residuals, x0, inside, rtol=max(rtol, 1e-3))  # compared near their optima
            if out is not None and (best is None or out[1] @ out[1] < best[1] @ best[1]):
                best = out
        if best is not None and rtol < 1e-3:
            best = gauss_newton(residuals, best[0], inside, rtol=rtol)
    if best is None:
        return None
    x, e, J = best
    return np.append(x, float(e @ e) / len(e)), e, J


def exact_scores_and_innovations(layout: ARMALayout, y, exog, theta, expand=None, *, compiled=True):
    """``(scores (N, k), v (N,), F (N,))``: per-observation scores of the exact log-likelihood in
    ``theta`` (the input of ``expand``, a complex-safe map to ``layout``'s parameters, or ``layout``'s
    own parameters when None), innovations and their variances.  One pass of the compiled Kalman
    scan when it is ready (:func:`.kalman_compiled.exact_scores`; ``expand``'s Jacobian by the
    complex step), else the batched complex-step filter (:func:`.loglikeobs.arma_exact_scores`)."""
    theta = np.asarray(theta, dtype=np.float64)
    out = exact_scores(layout, y, exog, theta if expand is None else expand(theta)) if compiled else None
    if out is None:
        return arma_exact_scores(layout, y, exog, theta, expand)
    G, v, F = out
    if expand is not None:
        from .transforms import complex_step_jacobian
        G = G @ complex_step_jacobian(expand, theta)
    return G, v, F


def warm_inverse_hessian(res_css, optimizer, transformed, options):
    """BFGS's initial inverse Hessian for the exact-likelihood fit from the CSS fit's final one (same
    unconstrained coefficients, objective per observation) and 2 for ``log sigma2`` (the inverse
    curvature of ``-llf / N`` there): the exact fit starts with the curvature CSS already learnt.
    None where it does not apply (other optimiser, natural parameters, user options)."""
    H = getattr(res_css, "hess_inv", None)
    if optimizer != "BFGS" or not transformed or (options and "hess_inv0" in options) or not isinstance(H, np.ndarray):
        return None
    k = H.shape[0]
    out = np.zeros((k + 1, k + 1))
    out[:k, :k] = 0.5 * (H + H.T)
    out[k, k] = 2.0
    try:
        np.linalg.cholesky(out)
    except np.linalg.LinAlgError:
        return None
    return out


def exact_fit_start(model, css_fit, optimizer, options, transformed, nobs, expand=None):
    """``(start, hess_inv0 or None)`` of an exact-likelihood fit (ARMA and SARIMA): the CSS estimate
    by Gauss-Newton from :meth:`start_params` (:func:`css_start_gauss_newton`) with its curvature for
    BFGS (:func:`css_inverse_hessian`, ``nobs`` observations), or, when Gauss-Newton gives up,
    ``css_fit() -> (values, result)`` (the CSS fit by the optimiser) and its final inverse Hessian
    (:func:`warm_inverse_hessian`), or :meth:`start_params` if that estimate is not stationary and
    invertible."""
    start = model.start_params()
    gn = css_start_gauss_newton(model, start, expand)
    if gn is not None:
        start, e, J = gn
        if optimizer == "BFGS" and transformed and not (options and "hess_inv0" in options):
            tr = model._transform(True)
            return start, css_inverse_hessian(J, e, tr, tr.inverse(start), nobs)
        return start, None
    css, res_css = css_fit()
    try:
        model._transform(True).inverse(css)
    except ValueError:
        return start, None
    return css, warm_inverse_hessian(res_css, optimizer, transformed, options)


class ARMA:
    """ARMA(p, q) errors around ``mu + x_t' beta``, fitted by CSS or exact maximum likelihood.

    Parameters
    ----------
    y : (N,) array or pandas Series
        The series (real values; a Series' index labels residuals and forecasts).  NaN marks a
        missing observation: the exact likelihood skips it (the Kalman filter predicts through
        it); ``method="css"`` needs a complete series.
    p, q : int
        AR and MA orders.
    trend : {"c", "n"}
        ``"c"``: estimate the mean ``mu`` (named ``const``); ``"n"``: mean zero.
    exog : (N, nX) array or DataFrame, optional
        Regressors.

    Natural parameters, in order: ``const``, ``x1..`` (or the DataFrame's column names), ``ar.L1..``,
    ``ma.L1..``, ``sigma2`` (statsmodels' names and order).  The series needs more observations than
    parameters after the first p: ``N >= 2 p + q + nX + (trend == "c") + 2``.

    ``compiled`` (class attribute, default True): the exact likelihood runs its time-varying Kalman
    steps as one compiled CasADi loop (:mod:`.kalman_compiled`); False: dynopt's BPTT through the
    step-by-step filter (:mod:`.kalman`).  Both give the same value and gradient to rounding.
    """

    compiled = True

    def __init__(self, y, p: int = 1, q: int = 0, *, trend: str = "c", exog=None):
        self.p = check_order("p", p)
        self.q = check_order("q", q)
        self.trend = _check_trend(trend)
        self.info = series_info(y)
        self.name = f"ARMA({self.p}, {self.q})"
        y = check_series(y, min_length=1, what=self.name, allow_nan=True)
        self.exog = check_exog(exog, len(y))
        kc = 1 if trend == "c" else 0
        need = 2 * self.p + self.q + self.exog.shape[1] + kc + 2
        self.y = check_series(y, min_length=need, what=f"an {self.name} model with {need - self.p - 1} parameters "
                              f"(more observations than parameters after the first p = {self.p})", allow_nan=True)
        check_not_constant(self.y)
        self.missing = np.isnan(self.y)
        self.layout = ARMALayout(self.p, self.q, self.exog.shape[1], self.trend)
        if self.exog.shape[1]:
            self.name += " + exog"
        xnames = list(exog.columns) if hasattr(exog, "columns") else [f"x{i + 1}" for i in range(self.layout.kx)]
        check_full_rank(np.concatenate([np.ones((len(self.y), kc)), self.exog], axis=1),
                        (["const"] if kc else []) + [str(c) for c in xnames])
        L = self.layout
        self.param_names = (["const"] if L.kc else []) + [str(c) for c in xnames] + \
            [f"ar.L{i + 1}" for i in range(self.p)] + [f"ma.L{j + 1}" for j in range(self.q)] + ["sigma2"]

    # ------------------------------------------------------------------ objectives
    def loglike(self, params, method: str = "mle"):
        """Log-likelihood at natural ``params`` (``(k,)``)."""
        return self.loglike_and_grad(params, method, grad=False)[0]

    def loglike_and_grad(self, params, method: str = "mle", *, grad: bool = True):
        """``(llf, d llf / d params)``; ``method`` ``"mle"`` (exact) or ``"css"`` (conditional)."""
        params = self._check_params(params)
        if method == "mle":
            if not self.compiled:  # step-by-step filter through dynopt's BPTT (the cross-check in the tests)
                llf, g, _ = exact_loglike(self.layout, self.y, self.exog, params, grad=grad)
                return llf, g
            while True:  # the shortest compiled head (16, 32, .., N steps) after which P_t is steady
                head = getattr(self, "_head", HEAD)
                out = exact_loglike_compiled(self.layout, self.y, self.exog, params, grad=grad, head=head)
                if out is not None:
                    return out
                self._head = 2 * head
        if method == "css":
            s2 = params[-1]
            S, dS, e = css_sse_and_grad(self.layout, self.y, self.exog, params, grad=grad)
            n = len(e)
            llf = -0.5 * (n * (LOG2PI + np.log(s2)) + S / s2)
            if not grad:
                return llf, None
            g = -0.5 * dS / s2
            g[-1] = -0.5 * (n / s2 - S / (s2 * s2))
            return llf, g
        raise ValueError(f"method: expected 'mle' or 'css', got {method!r}")

    def loglikeobs(self, params, method: str = "mle"):
        """Per-observation log-likelihood ``(nobs,)`` (complex-safe: the scores are its complex-step
        Jacobian); sums to :meth:`loglike`."""
        params = np.asarray(params)
        if method == "mle":
            return arma_exact_obs(self.layout, self.y, self.exog, params)[0]
        e, _ = css_residuals(self.layout, self.y, self.exog, params)
        return css_obs(e, params[-1])

    def css_objective(self, params):
        """P3's objective ``S / N`` (sum of squared CSS residuals over the series length) and its gradient
        with respect to the parameters other than ``sigma2``."""
        params = np.append(np.asarray(params, dtype=np.float64), 1.0)
        S, dS, _ = css_sse_and_grad(self.layout, self.y, self.exog, self._check_params(params))
        N = len(self.y)
        return S / N, dS[:-1] / N

    def _check_params(self, params):
        from .data import _numeric
        params = _numeric("params", params)
        if params.shape != (self.layout.n_params,):
            raise ValueError(f"params: expected shape ({self.layout.n_params},) for {self.param_names}, "
                             f"got {params.shape}")
        return params

    # ------------------------------------------------------------------ fitting
    def _transform(self, with_sigma2):
        L = self.layout
        blocks = [("free", L.kc + L.kx), ("ar", L.p), ("ma", L.q)]
        return Transform(blocks + ([("var", 1)] if with_sigma2 else []))

    def start_params(self):
        """Mean (and regression) by least squares, ARMA coefficients zero, sigma2 the residual variance."""
        L = self.layout
        ok = ~np.isnan(self.y)
        Z = np.concatenate([np.ones((len(self.y), L.kc)), self.exog], axis=1)[ok]
        coef = np.linalg.lstsq(Z, self.y[ok], rcond=None)[0] if Z.shape[1] else np.zeros(0)
        resid = self.y[ok] - Z @ coef
        return np.concatenate([coef, np.zeros(self.p + self.q), [np.mean(resid ** 2)]])

    def _with_series(self, y):
        """This model on another series of the same length (the fit's ``y / s``), without validating
        the data again: a shallow copy with ``y`` replaced (missing values where ``y`` is NaN)."""
        m = copy.copy(self)
        m.y = np.asarray(y, dtype=np.float64)
        m.missing = np.isnan(m.y)
        return m

    def _scale_vector(self, s):
        """Natural parameters of ``y / s`` times this vector = parameters of ``y``."""
        L = self.layout
        return np.concatenate([np.full(L.kc + L.kx, s), np.ones(self.p + self.q), [s * s]])

    def fit(self, method: str = "mle", *, cov_type: str = "nonrobust", df_correction: bool = False,
            start_params=None, optimizer: str = "BFGS", transformed: bool = True, options=None, cov: bool = True,
            starts: int = 1, seed=None) -> FitResult:
        """Estimate the parameters.

        Parameters
        ----------
        method : {"mle", "css"}
            Exact Gaussian likelihood (Kalman filter) or conditional sum of squares.
        cov_type : {"nonrobust", "opg", "robust", "r-css", "none"}
            Covariance convention (:mod:`.covariance`; ``"r-css"`` only with ``method="css"``).
        df_correction : bool
            Scale the coefficient block by ``n / (n - k)`` (OLS convention); default False, as
            statsmodels and R.
        start_params : (k,) array, optional
            Natural parameters to start from; default: for ``"css"`` :meth:`start_params`, for
            ``"mle"`` the CSS estimate (if stationary and invertible, else :meth:`start_params`),
            found by Gauss-Newton steps on the CSS residuals (:func:`css_start_gauss_newton`: from
            :meth:`start_params` and from the Hannan-Rissanen estimate, the better of the two, each
            to a relative decrease of the sum of squares of
            :data:`GN_RTOL`: a start) whose curvature also gives BFGS its first inverse Hessian;
            if Gauss-Newton fails, by ``optimizer`` as ``fit("css")``.
        optimizer : {"BFGS", "L-BFGS-B", "CG"}
            SciPy method, run with ``jac=True`` on exact gradients.
        transformed : bool
            Optimise over unconstrained parameters (stationary AR, invertible MA, positive
            variance; see :mod:`.transforms`).  ``False`` optimises the natural parameters.
        cov : bool
            ``False`` is ``cov_type="none"``.
        starts : int
            Number of starts: the default start plus ``starts - 1`` random ones (ARMA coefficients
            from N(0, 1) unconstrained draws, ``seed``; mean and variance from the first optimum).
            The best optimum is returned, with a
            ``RuntimeWarning`` when it is not the default start's (a local optimum was avoided).

        The optimisation runs on ``y / std(y)`` (scale-free: tiny or huge data fit alike) and the
        estimates, log-likelihood and covariance are mapped back to the scale of ``y``.
        """
        if method not in ("mle", "css"):
            raise ValueError(f"method: expected 'mle' or 'css', got {method!r}")
        cov_type = check_cov_type("none" if not check_flag("cov", cov) else cov_type)
        df_correction = check_flag("df_correction", df_correction)
        optimizer, options, start_params = check_fit_args(optimizer, options, start_params, self.param_names,
                                                          positive=[len(self.param_names) - 1])
        transformed = check_flag("transformed", transformed)
        if cov_type == "r-css" and method != "css":
            raise ValueError(f"cov_type: 'r-css' is R's convention for method='css', got method={method!r}")
        starts = check_order("starts", starts, 1)
        if self.missing.any() and method == "css":
            raise ValueError(f"method: 'css' needs a complete series; y has {int(self.missing.sum())} missing "
                             f"observations (NaN); use method='mle', whose Kalman filter skips them")
        if self.missing.any() and not self.compiled:
            raise ValueError("y: missing observations need the compiled Kalman filter (ARMA.compiled = True)")
        s = float(np.nanstd(self.y))
        m = self if s == 1.0 else self._with_series(self.y / s)
        D = self._scale_vector(s)
        start = None if start_params is None else start_params / D
        values_s, res = m._optimize(method, start, optimizer, transformed, options)
        if starts > 1:
            values_s, res = m._multistart(method, values_s, res, starts, seed, optimizer, transformed, options)
        warn_not_converged(res, f"{self.name} fit ({method})")
        llf_s, g_s = m.loglike_and_grad(values_s, method)
        scores = None
        if method == "css":
            e, _ = css_residuals(m.layout, m.y, m.exog, values_s)
            resid_s, std, nobs, offset = e, e / np.sqrt(values_s[-1]), len(e), self.p
        else:
            if cov_type in ("opg", "robust"):  # scores and innovations from one batched complex-step filter
                scores, v, F = exact_scores_and_innovations(m.layout, m.y, m.exog, values_s, compiled=m.compiled)
            else:
                _, v, F = arma_exact_obs(m.layout, m.y, m.exog, values_s)
            ok = ~np.isnan(v)
            resid_s, std, nobs, offset = v, v[ok] / np.sqrt(F[ok]), int(ok.sum()), 0
        C = m._covariance(values_s, method, cov_type, df_correction, nobs, scores)
        values = values_s * D
        out = FitResult(self, list(self.param_names), values, float(llf_s - nobs * np.log(s)), nobs,
                        C * np.outer(D, D), g_s / D, label(self.info, resid_s * s, offset, "resid"), res, method,
                        cov_type=cov_type, df_correction=df_correction, std_resid=std)
        return out

    def cov_params(self, params, method: str = "mle", *, cov_type: str = "nonrobust",
                   df_correction: bool = False) -> np.ndarray:
        """Covariance ``(k, k)`` of the estimates, evaluated at ``params`` in the convention ``cov_type``.

        What :meth:`fit` computes at its own optimum, at any point: e.g. a published estimate's
        standard errors reproduced at the published point (the covariance convention is then
        checked apart from where each optimiser stopped; statsmodels' ``smooth(params,
        cov_type=...)`` serves the same purpose).

        Parameters
        ----------
        params : (k,) array
            Natural parameters in the order of :attr:`param_names` (``sigma2`` last).
        method : {"mle", "css"}
        cov_type : {"nonrobust", "opg", "robust", "r-css", "none"}
            As in :meth:`fit` (``"r-css"`` only with ``method="css"``).
        df_correction : bool
        """
        if method not in ("mle", "css"):
            raise ValueError(f"method: expected 'mle' or 'css', got {method!r}")
        cov_type = check_cov_type(cov_type)
        df_correction = check_flag("df_correction", df_correction)
        if cov_type == "r-css" and method != "css":
            raise ValueError(f"cov_type: 'r-css' is R's convention for method='css', got method={method!r}")
        values = self._check_params(params)
        if not values[-1] > 0:
            raise ValueError(f"params: sigma2 (the last entry) must be > 0, got {values[-1]!r}")
        scores = None
        if method == "css":
            nobs = len(self.y) - self.p
        elif cov_type in ("opg", "robust"):
            scores, v, _ = exact_scores_and_innovations(self.layout, self.y, self.exog, values,
                                                        compiled=self.compiled)
            nobs = int((~np.isnan(v)).sum())
        else:
            nobs = int((~np.isnan(self.y)).sum())
        return self._covariance(values, method, cov_type, df_correction, nobs, scores)

    def _optimize(self, method, start, optimizer, transformed, options, u0=None):
        """Fit in this model's own scale: ``(values, scipy result or None)``."""
        N = len(self.y)
        hess0 = None
        if start is None and method == "mle" and not self.missing.any():
            start, hess0 = exact_fit_start(self, lambda: self._optimize("css", None, optimizer, transformed, options),
                                           optimizer, options, transformed, N)
        elif start is None:
            start = self.start_params()
        if transformed:
            tr = self._transform(method == "mle")
        else:  # natural parameters (sigma2 still kept positive by exp for the exact likelihood)
            tr = Transform([("free", len(start) - 1)] + ([("var", 1)] if method == "mle" else []))
        if method == "css":
            n = N - self.p

            def objective(par):  # concentrated: -llf = n/2 (log(2 pi S/n) + 1)
                S, dS, _ = css_sse_and_grad(self.layout, self.y, self.exog, np.append(par, 1.0))
                return 0.5 * n * np.log(S / n), 0.5 * n * dS[:-1] / S

            if len(start) == 1:  # nothing but sigma2 (no mean, no ARMA terms): closed form
                est, res = np.zeros(0), None
            else:
                est, res = minimize_transformed(objective, tr, start[:-1], method=optimizer, options=options,
                                                scale=n, u0=None if u0 is None else u0[:-1])
            S, _, e = css_sse_and_grad(self.layout, self.y, self.exog, np.append(est, 1.0), grad=False)
            return np.append(est, S / n), res

        def objective(par):
            llf, g = self.loglike_and_grad(par, "mle")
            return -llf, -g

        if hess0 is not None:
            options = dict(options or {}, hess_inv0=hess0)
        return minimize_transformed(objective, tr, start, method=optimizer, options=options, scale=N, u0=u0)

    def _multistart(self, method, values, res, starts, seed, optimizer, transformed, options):
        tr = self._transform(True)
        u_best = tr.inverse(values)
        llf0 = best = self.loglike(values, method)
        rng = np.random.default_rng(seed)
        L = self.layout
        coef = slice(L.kc + L.kx, L.kc + L.kx + self.p + self.q)
        for j in range(1, starts):  # random ARMA coefficients (unconstrained N(0, 1)); mean and variance kept
            u0 = u_best.copy()
            u0[coef] = rng.standard_normal(self.p + self.q)
            try:
                v, r = self._optimize(method, values, optimizer, transformed, options, u0=u0)
            except (ValueError, FloatingPointError):
                continue
            llf = self.loglike(v, method)
            if np.isfinite(llf) and llf > best + 1e-9 * abs(best) + 1e-9:
                best, values, res, best_j = llf, v, r, j
        if best > llf0:
            warn_better_start(f"{self.name} fit ({method})", llf0, best, best_j)
        return values, res

    def _covariance(self, values, method, cov_type, df_correction, nobs, scores=None):
        k = len(values)
        if cov_type == "none":
            return np.full((k, k), np.nan)
        H = hessian_from_gradient(lambda x: self.loglike_and_grad(x, method)[1], values) \
            if cov_type != "opg" else None
        G = None if cov_type not in ("opg", "robust") else scores if scores is not None else \
            complex_step_scores(lambda x: self.loglikeobs(x, method), values)
        mask = np.zeros(k, bool)
        mask[-1] = True
        return cov_matrix(cov_type, hessian=H, scores=G, n_used=nobs, n_total=len(self.y), df_k=k - 1,
                          df_correction=df_correction, var_mask=mask)

    # ------------------------------------------------------------------ forecasting and simulation
    def forecast(self, result: FitResult, steps: int, *, alpha: float = 0.05, exog=None):
        """h-step forecasts from the end of the sample (Kalman prediction for ``"mle"``, the
        ARMA recursion with CSS residuals for ``"css"``); variances from the state-space form.
        Returns a DataFrame (``mean``, ``se``, ``lower``, ``upper``) indexed after the sample."""
        mean, se = self._forecast_moments(result, steps, exog)
        lo, hi = gaussian_interval(mean, se, alpha)
        return forecast_frame(self.info, len(self.y), mean=mean, se=se, lower=lo, upper=hi)

    def _forecast_moments(self, result, steps, exog=None):
        steps = check_order("steps", steps, 1)
        L = self.layout
        fx = check_exog(exog, steps, L.kx, name="exog")
        theta = np.asarray(result.values, dtype=np.float64)
        T, R, s2 = L.matrices(theta)
        mu, beta, phi, th, _ = L.split(theta)
        if result.method == "mle":
            a, P = arma_final_prediction(L, self.y, self.exog, theta)
        else:
            yt = self.y - mu - self.exog @ beta
            e = np.concatenate([np.zeros(self.p), np.asarray(result.resid, dtype=np.float64)])
            a = steady_state_prediction(phi, th, yt, e, L.r)
            P = s2 * np.outer(R, R)
        mean, var = np.empty(steps), np.empty(steps)
        for h in range(steps):
            mean[h] = mu + fx[h] @ beta + a[0]
            var[h] = P[0, 0]
            a = T @ a
            P = T @ P @ T.T + s2 * np.outer(R, R)
        return mean, np.sqrt(var)

    def simulate(self, params, nsimulations: int, *, rng=None, burn: int = 500, exog=None):
        """Draw ``nsimulations`` observations from the model at ``params`` (``burn`` discarded)."""
        n = check_order("nsimulations", nsimulations, 1)
        params = self._check_params(params)
        L = self.layout
        fx = check_exog(exog, n, L.kx, name="exog")
        mu, beta, phi, th, s2 = L.split(params)
        rng = np.random.default_rng(rng)
        eps = rng.standard_normal(n + burn) * np.sqrt(s2)
        u = lfilter(np.concatenate([[1.0], th]), np.concatenate([[1.0], -phi]), eps)[burn:]
        return mu + fx @ beta + u


class ARX:
    """``y_t = c + sum_i phi_i y_{t-i} + x_t' beta + e_t``, conditional Gaussian likelihood given
    the first p observations (statsmodels' ``AutoReg``); parameters ``const, ar.L1.., x1.., sigma2``.

    The model is linear in its coefficients: :meth:`fit` solves it by least squares (exact), and
    ``solver="bfgs"`` maximises the likelihood on exact gradients instead (a cross-check).

    Parameters
    ----------
    y : (N,) array or pandas Series; needs ``N >= 2 p + nX + (trend == "c") + 2``
    p : int
    trend : {"c", "n"}
    exog : (N, nX) array or DataFrame, optional
    """

    def __init__(self, y, p: int = 1, *, trend: str = "c", exog=None):
        self.p = check_order("p", p)
        self.trend = _check_trend(trend)
        self.info = series_info(y)
        y = check_series(y, min_length=1, what=f"an AR({self.p}) model")
        self.exog = check_exog(exog, len(y))
        self.kc = 1 if trend == "c" else 0
        self.kx = self.exog.shape[1]
        self.name = f"AR({self.p})" if not self.kx else f"ARX({self.p}, {self.kx} regressors)"
        need = 2 * self.p + self.kc + self.kx + 2
        self.y = check_series(y, min_length=need, what=f"an {self.name} model with {need - self.p - 1} parameters "
                              f"(more observations than parameters after the first p = {self.p})", allow_nan=True)
        check_not_constant(self.y)
        self.missing = np.isnan(self.y)
        xnames = [str(c) for c in exog.columns] if hasattr(exog, "columns") else [f"x{j + 1}" for j in range(self.kx)]
        self.param_names = (["const"] if self.kc else []) + [f"ar.L{i + 1}" for i in range(self.p)] + \
            xnames + ["sigma2"]
        # regressor matrix of the conditional likelihood, rows t = p .. N-1
        N, p, kc = len(self.y), self.p, self.kc
        self._Z = np.empty((N - p, kc + p + self.kx))  # (1, y_{t-1}, .., y_{t-p}, x_t), filled in place
        self._Z[:, :kc] = 1.0
        for i in range(p):
            self._Z[:, kc + i] = self.y[p - 1 - i:N - 1 - i]
        self._Z[:, kc + p:] = self.exog[p:]
        self._y = self.y[self.p:]
        self._ZtZ = self._Z.T @ self._Z
        check_full_rank(self._Z, self.param_names[:-1], name="y, exog", G=self._ZtZ)

    def residuals(self, params):
        return self._y - self._Z @ np.asarray(params)[:-1]

    def loglikeobs(self, params):
        """Per-observation conditional log-likelihood ``(N - p,)``."""
        params = np.asarray(params)
        return css_obs(self.residuals(params), params[-1])

    def loglike_and_grad(self, params, *, grad: bool = True):
        """``(llf, d llf / d params)``: ``-n/2 log(2 pi s2) - S / (2 s2)``, ``n = N - p``."""
        params = np.asarray(params, dtype=np.float64)
        if params.shape != (len(self.param_names),):
            raise ValueError(f"params: expected shape ({len(self.param_names)},) for {self.param_names}, "
                             f"got {params.shape}")
        s2 = params[-1]
        e = self.residuals(params)
        n, S = len(e), float(e @ e)
        llf = -0.5 * (n * (LOG2PI + np.log(s2)) + S / s2)
        if not grad:
            return llf, None
        return llf, np.append(self._Z.T @ e / s2, -0.5 * (n / s2 - S / (s2 * s2)))

    def hessian(self, params, *, resid=None, Zte=None):
        """Analytic Hessian of the log-likelihood ``(k, k)`` (``resid``: the residuals at ``params``,
        ``Zte``: ``Z' resid``, when already at hand)."""
        params = np.asarray(params, dtype=np.float64)
        s2 = params[-1]
        e = self.residuals(params) if resid is None else resid
        n, S = len(e), float(e @ e)
        k = len(params)
        H = np.empty((k, k))
        H[:-1, :-1] = -self._gram() / s2
        H[:-1, -1] = H[-1, :-1] = -(self._Z.T @ e if Zte is None else Zte) / s2 ** 2
        H[-1, -1] = n / (2 * s2 ** 2) - S / s2 ** 3
        return H

    def _gram(self):
        if getattr(self, "_ZtZ", None) is None:
            self._ZtZ = self._Z.T @ self._Z
        return self._ZtZ

    def scores(self, params):
        """Analytic per-observation scores ``(N - p, k)``."""
        params = np.asarray(params, dtype=np.float64)
        s2 = params[-1]
        e = self.residuals(params)
        return np.column_stack([self._Z * (e / s2)[:, None], -0.5 / s2 + 0.5 * e * e / s2 ** 2])

    def fit(self, *, cov_type: str = "nonrobust", df_correction: bool = False, solver=None,
            start_params=None, optimizer=NOT_GIVEN, options=None) -> FitResult:
        """Maximise the conditional likelihood.

        Parameters
        ----------
        cov_type : {"nonrobust", "opg", "robust", "none"}
            ``"nonrobust"``: ``s2 inv(Z'Z)`` with ``s2 = SSR / n`` (statsmodels AutoReg);
            ``"robust"``: the sandwich, for the coefficients White's HC0 (AutoReg ``"HC0"``).
        df_correction : bool
            ``s2 = SSR / (n - k)`` for the coefficients (statsmodels OLS).
        solver : {"ols", "bfgs"}, optional
            ``"ols"``: least squares (exact, closed form); ``"bfgs"``: SciPy's ``optimizer`` on exact
            gradients from ``start_params``, sigma2 concentrated out.  Default: ``"bfgs"`` when any of
            ``start_params``, ``optimizer``, ``options`` is given (they are used), else ``"ols"``;
            giving them with ``solver="ols"`` is refused.
        start_params : (k,) array, optional
            Natural parameters in the order of ``param_names`` (sigma2 last, > 0; it is concentrated
            out, so only the coefficients set the start).  Default: zero coefficients.
        optimizer : {"BFGS", "L-BFGS-B", "CG", "Newton-CG"}, optional
            SciPy method (default ``"BFGS"``).
        options : dict, optional
            ``scipy.optimize.minimize`` options for ``optimizer`` (checked: :func:`.fitargs.check_options`).
        """
        cov_type = check_cov_type(cov_type, ("nonrobust", "opg", "robust", "none"))
        df_correction = check_flag("df_correction", df_correction)
        given = {"start_params": start_params is not None, "optimizer": optimizer is not NOT_GIVEN,
                 "options": options is not None}
        if solver is None:
            solver = "bfgs" if any(given.values()) else "ols"
        if not isinstance(solver, str) or solver not in ("ols", "bfgs"):
            raise ValueError(f"solver: expected 'ols' or 'bfgs', got {solver!r}")
        values_given = {"start_params": start_params, "optimizer": optimizer, "options": options}
        optimizer, options, start_params = check_fit_args("BFGS" if optimizer is NOT_GIVEN else optimizer, options,
                                                          start_params, self.param_names,
                                                          positive=[len(self.param_names) - 1])
        if solver == "ols":
            for name, value in values_given.items():
                if given[name]:
                    raise ValueError(f"{name}: applies to the numerical fit (solver='bfgs'); solver='ols' is the "
                                     f"closed-form least squares, expected {name}=None, got {describe(value)}")
        n = len(self._y)
        k = self._Z.shape[1]
        if solver == "ols" or k == 0:  # (no coefficients: nothing for the optimiser to do)
            est, res = least_squares(self._Z, self._y, self._gram()), None
        else:
            start = np.zeros(k) if start_params is None else start_params[:k]

            def objective(beta):
                e = self._y - self._Z @ beta
                S = float(e @ e)
                return 0.5 * n * np.log(S / n), -n * (self._Z.T @ e) / S

            est, res = minimize_transformed(objective, Transform([("free", k)]), start, method=optimizer,
                                            options=options, scale=n)
            warn_not_converged(res, f"{self.name} fit")
        e = self._y - self._Z @ est
        S = float(e @ e)
        if S <= (1e-13 * np.linalg.norm(self._y)) ** 2:
            raise ValueError(f"y: the {self.name} model fits the series exactly (sum of squared residuals {S:.3g}); "
                             f"the innovation variance would be 0 and the likelihood unbounded")
        values = np.append(est, S / n)
        s2 = values[-1]  # llf and gradient from the residuals at hand (as loglike_and_grad)
        llf = -0.5 * (n * (LOG2PI + np.log(s2)) + S / s2)
        Zte = self._Z.T @ e
        g = np.append(Zte / s2, -0.5 * (n / s2 - S / (s2 * s2)))
        mask = np.zeros(k + 1, bool)
        mask[-1] = True
        C = cov_matrix(cov_type, hessian=self.hessian(values, resid=e, Zte=Zte) if cov_type != "opg" else None,
                       scores=self.scores(values) if cov_type in ("opg", "robust") else None, n_used=n, n_total=n,
                       df_k=k, df_correction=df_correction, var_mask=mask)
        return FitResult(self, list(self.param_names), values, float(llf), n, C, g,
                         label(self.info, e, self.p, "resid"), res, "css" if solver == "bfgs" else "ols",
                         cov_type=cov_type, df_correction=df_correction, std_resid=e / np.sqrt(values[-1]))

    def forecast(self, result, steps, *, alpha=0.05, exog=None):
        """Iterated h-step forecasts; variance ``s2 * sum_{j<h} psi_j^2`` (psi from the AR polynomial).
        Returns a DataFrame (``mean``, ``se``, ``lower``, ``upper``) indexed after the sample."""
        steps = check_order("steps", steps, 1)
        fx = check_exog(exog, steps, self.kx, name="exog")
        v = np.asarray(result.values, dtype=np.float64)
        c = v[0] if self.kc else 0.0
        phi = v[self.kc:self.kc + self.p]
        beta = v[self.kc + self.p:-1]
        hist = list(self.y[::-1][:self.p])
        mean = np.empty(steps)
        for h in range(steps):
            mean[h] = c + fx[h] @ beta + sum(phi[i] * hist[i] for i in range(self.p))
            hist = [mean[h]] + hist[:-1] if self.p else hist
        psi = lfilter([1.0], np.concatenate([[1.0], -phi]), np.eye(1, steps)[0])
        se = np.sqrt(v[-1] * np.cumsum(psi ** 2))
        lo, hi = gaussian_interval(mean, se, alpha)
        return forecast_frame(self.info, len(self.y), mean=mean, se=se, lower=lo, upper=hi)

    def simulate(self, params, nsimulations, *, rng=None, burn=500, exog=None):
        """Simulate (exogenous terms need ``exog`` of shape (nsimulations, nX); burn-in has none)."""
        n = check_order("nsimulations", nsimulations, 1)
        fx = check_exog(exog, n, self.kx, name="exog")
        v = np.asarray(params, float)
        c = v[0] if self.kc else 0.0
        phi = v[self.kc:self.kc + self.p]
        beta = v[self.kc + self.p:-1]
        rng = np.random.default_rng(rng)
        drive = c + rng.standard_normal(n + burn) * np.sqrt(v[-1])
        drive[burn:] += fx @ beta
        return lfilter([1.0], np.concatenate([[1.0], -phi]), drive)[burn:]


def AR(y, p: int = 1, *, trend: str = "c") -> ARX:
    """AR(p) (with an intercept for ``trend="c"``): :class:`ARX` without regressors."""
    return ARX(y, p, trend=trend)
