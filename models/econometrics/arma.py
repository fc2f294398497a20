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

import numpy as np
from scipy.signal import lfilter

from .data import check_exog, check_order, check_series
from .filters import allpole, allpole_adjoint, lag_matrix
from .kalman import ARMALayout, exact_loglike, innovations, steady_state_prediction
from .results import FitResult, gaussian_interval, hessian_from_gradient, minimize_transformed, warn_not_converged
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


class ARMA:
    """ARMA(p, q) errors around ``mu + x_t' beta``, fitted by CSS or exact maximum likelihood.

    Parameters
    ----------
    y : (N,) array
        The series (finite values).
    p, q : int
        AR and MA orders.
    trend : {"c", "n"}
        ``"c"``: estimate the mean ``mu`` (named ``const``); ``"n"``: mean zero.
    exog : (N, nX) array, optional
        Regressors.

    Natural parameters, in order: ``const``, ``x1..``, ``ar.L1..``, ``ma.L1..``, ``sigma2``
    (statsmodels' names and order).
    """

    def __init__(self, y, p: int = 1, q: int = 0, *, trend: str = "c", exog=None):
        self.p = check_order("p", p)
        self.q = check_order("q", q)
        self.trend = _check_trend(trend)
        self.y = check_series(y, min_length=self.p + self.q + 2, what=f"an ARMA({self.p}, {self.q}) model")
        self.exog = check_exog(exog, len(self.y))
        self.layout = ARMALayout(self.p, self.q, self.exog.shape[1], self.trend)
        self.name = f"ARMA({self.p}, {self.q})" + (" + exog" if self.exog.shape[1] else "")
        L = self.layout
        self.param_names = (["const"] if L.kc else []) + [f"x{i + 1}" for i in range(L.kx)] + \
            [f"ar.L{i + 1}" for i in range(self.p)] + [f"ma.L{j + 1}" for j in range(self.q)] + ["sigma2"]

    # ------------------------------------------------------------------ objectives
    def loglike(self, params, method: str = "mle"):
        """Log-likelihood at natural ``params`` (``(k,)``)."""
        return self.loglike_and_grad(params, method, grad=False)[0]

    def loglike_and_grad(self, params, method: str = "mle", *, grad: bool = True):
        """``(llf, d llf / d params)``; ``method`` ``"mle"`` (exact) or ``"css"`` (conditional)."""
        params = self._check_params(params)
        if method == "mle":
            llf, g, _ = exact_loglike(self.layout, self.y, self.exog, params, grad=grad)
            return llf, g
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
        Z = np.concatenate([np.ones((len(self.y), L.kc)), self.exog], axis=1)
        coef = np.linalg.lstsq(Z, self.y, rcond=None)[0] if Z.shape[1] else np.zeros(0)
        resid = self.y - Z @ coef
        return np.concatenate([coef, np.zeros(self.p + self.q), [np.mean(resid ** 2)]])

    def fit(self, method: str = "mle", *, start_params=None, optimizer: str = "BFGS", transformed: bool = True,
            options=None, cov: bool = True) -> FitResult:
        """Estimate the parameters.

        Parameters
        ----------
        method : {"mle", "css"}
            Exact Gaussian likelihood (Kalman filter) or conditional sum of squares.
        start_params : (k,) array, optional
            Natural parameters to start from; default: for ``"css"`` :meth:`start_params`, for
            ``"mle"`` the CSS estimate (if stationary and invertible, else :meth:`start_params`).
        optimizer : {"BFGS", "L-BFGS-B", "CG"}
            SciPy method, run with ``jac=True`` on exact gradients.
        transformed : bool
            Optimise over unconstrained parameters (stationary AR, invertible MA, positive
            variance; see :mod:`.transforms`).  ``False`` optimises the natural parameters.
        cov : bool
            Compute standard errors (k + 1 extra gradient pairs).
        """
        if method not in ("mle", "css"):
            raise ValueError(f"method: expected 'mle' or 'css', got {method!r}")
        N = len(self.y)
        if start_params is None:
            start = self.start_params()
            if method == "mle":
                css = self.fit("css", cov=False, options=options)
                try:
                    self._transform(True).inverse(css.values)
                    start = css.values
                except ValueError:
                    pass
        else:
            start = self._check_params(start_params)
        if transformed:
            tr = self._transform(method == "mle")
        else:  # natural parameters (sigma2 still kept positive by exp for the exact likelihood)
            tr = Transform([("free", len(start) - 1)] + ([("var", 1)] if method == "mle" else []))
        if method == "css":
            n = N - self.p

            def objective(par):  # concentrated: -llf = n/2 (log(2 pi S/n) + 1)
                S, dS, _ = css_sse_and_grad(self.layout, self.y, self.exog, np.append(par, 1.0))
                return 0.5 * n * np.log(S / n), 0.5 * n * dS[:-1] / S

            est, res = minimize_transformed(objective, tr, start[:-1], method=optimizer, options=options, scale=n)
            S, _, e = css_sse_and_grad(self.layout, self.y, self.exog, np.append(est, 1.0), grad=False)
            values = np.append(est, S / n)
            resid, nobs = e, n
        else:
            def objective(par):
                llf, g = self.loglike_and_grad(par, "mle")
                return -llf, -g

            values, res = minimize_transformed(objective, tr, start, method=optimizer, options=options, scale=N)
            resid, nobs = innovations(self.layout, self.y, self.exog, values)[0], N
        warn_not_converged(res, f"{self.name} fit ({method})")
        llf, g = self.loglike_and_grad(values, method)
        H = hessian_from_gradient(lambda x: self.loglike_and_grad(x, method)[1], values) if cov else None
        C = np.linalg.inv(-H) if cov else np.full((len(values),) * 2, np.nan)
        return FitResult(self, list(self.param_names), values, float(llf), nobs, C, g, resid, res, method)

    # ------------------------------------------------------------------ forecasting and simulation
    def forecast(self, result: FitResult, steps: int, *, alpha: float = 0.05, exog=None):
        """h-step forecasts from the end of the sample (Kalman prediction for ``"mle"``, the
        ARMA recursion with CSS residuals for ``"css"``); variances from the state-space form."""
        steps = check_order("steps", steps, 1)
        L = self.layout
        fx = check_exog(exog, steps, L.kx, name="exog")
        theta = result.values
        T, R, s2 = L.matrices(theta)
        mu, beta, phi, th, _ = L.split(theta)
        if result.method == "mle":
            _, _, a, P = innovations(L, self.y, self.exog, theta)
        else:
            yt = self.y - mu - self.exog @ beta
            e = np.concatenate([np.zeros(self.p), result.resid])
            a = steady_state_prediction(phi, th, yt, e, L.r)
            P = s2 * np.outer(R, R)
        mean, var = np.empty(steps), np.empty(steps)
        for h in range(steps):
            mean[h] = mu + fx[h] @ beta + a[0]
            var[h] = P[0, 0]
            a = T @ a
            P = T @ P @ T.T + s2 * np.outer(R, R)
        se = np.sqrt(var)
        lo, hi = gaussian_interval(mean, se, alpha)
        return {"mean": mean, "se": se, "lower": lo, "upper": hi}

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

    Parameters
    ----------
    y : (N,) array
    p : int
    trend : {"c", "n"}
    exog : (N, nX) array, optional
    """

    def __init__(self, y, p: int = 1, *, trend: str = "c", exog=None):
        self.p = check_order("p", p)
        self.trend = _check_trend(trend)
        self.y = check_series(y, min_length=self.p + 2, what=f"an AR({self.p}) model")
        self.exog = check_exog(exog, len(self.y))
        self.kc = 1 if trend == "c" else 0
        self.kx = self.exog.shape[1]
        self.name = f"AR({self.p})" if not self.kx else f"ARX({self.p}, {self.kx} regressors)"
        self.param_names = (["const"] if self.kc else []) + [f"ar.L{i + 1}" for i in range(self.p)] + \
            [f"x{j + 1}" for j in range(self.kx)] + ["sigma2"]
        # regressor matrix of the conditional likelihood, rows t = p .. N-1
        self._Z = np.concatenate([np.ones((len(self.y) - self.p, self.kc)), lag_matrix(self.y, self.p),
                                  self.exog[self.p:]], axis=1)
        self._y = self.y[self.p:]

    def residuals(self, params):
        return self._y - self._Z @ np.asarray(params, dtype=np.float64)[:-1]

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

    def fit(self, *, start_params=None, optimizer: str = "BFGS", options=None) -> FitResult:
        """Maximise the conditional likelihood by BFGS on exact gradients (sigma2 concentrated out,
        then reported as ``S / n``); start at zeros unless given."""
        n = len(self._y)
        k = self._Z.shape[1]
        start = np.zeros(k) if start_params is None else np.asarray(start_params, float)[:k]

        def objective(beta):
            e = self._y - self._Z @ beta
            S = float(e @ e)
            return 0.5 * n * np.log(S / n), -n * (self._Z.T @ e) / S

        est, res = minimize_transformed(objective, Transform([("free", k)]), start, method=optimizer,
                                        options=options, scale=n)
        warn_not_converged(res, f"{self.name} fit")
        e = self._y - self._Z @ est
        values = np.append(est, float(e @ e) / n)
        llf, g = self.loglike_and_grad(values)
        H = hessian_from_gradient(lambda x: self.loglike_and_grad(x)[1], values)
        return FitResult(self, list(self.param_names), values, float(llf), n, np.linalg.inv(-H), g, e, res, "css")

    def forecast(self, result, steps, *, alpha=0.05, exog=None):
        """Iterated h-step forecasts; variance ``s2 * sum_{j<h} psi_j^2`` (psi from the AR polynomial)."""
        steps = check_order("steps", steps, 1)
        fx = check_exog(exog, steps, self.kx, name="exog")
        v = result.values
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
        return {"mean": mean, "se": se, "lower": lo, "upper": hi}

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
    """AR(p) with an intercept: :class:`ARX` without regressors."""
    return ARX(y, p, trend=trend)
