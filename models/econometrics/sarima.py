r"""Seasonal ARIMA ``(p, d, q)(P, D, Q, s)`` with trend, regression with SARIMA errors.

    delta(L) y_t = delta(L) (trend_t' b + x_t' beta) + u_t,       delta(L) = (1 - L)^d (1 - L^s)^D
    phi(L) Phi(L^s) u_t = theta(L) Theta(L^s) e_t,               e_t ~ N(0, sigma2)

The likelihood is the exact ARMA likelihood (:class:`.ARMA`'s Kalman filter, compiled head and
exact gradient) of the differenced series ``w = delta(L) y`` with the expanded polynomials
``phi(L) Phi(L^s)`` and ``theta(L) Theta(L^s)`` (orders ``p + sP``, ``q + sQ``); gradients of the
multiplicative parameters follow by the chain rule through the polynomial products (their
Jacobian by the complex step, exact to rounding).  This is statsmodels'
``SARIMAX(..., simple_differencing=True)`` likelihood; statsmodels' ``ARIMA`` keeps the
integrated states in the filter with an approximate diffuse prior, which moves its log-likelihood
by ~1e-6 relative.

Trend as statsmodels: ``trend`` ``"n"``, ``"c"`` (constant), ``"t"`` (linear, ``t = 1..N``), ``"ct"``
in levels; terms of lower order than ``d + D`` are refused (differencing removes them): with
``d = 1``, ``trend="t"`` is a drift (a constant in the differenced series).  Default ``"c"`` when
``d + D = 0``, else ``"n"``.  Forecasts are integrated back to levels; their standard errors use
the psi weights of ``theta(L) Theta(L^s) / (phi(L) Phi(L^s) delta(L))`` (the filter's steady state).

Parameters in statsmodels' order and names: ``const``, ``drift``, ``x1..``, ``ar.L1..``, ``ma.L1..``,
``ar.S.L{s}..``, ``ma.S.L{s}..``, ``sigma2``.
"""

from __future__ import annotations

import copy

import numpy as np
from scipy.signal import lfilter

from dynopt.core.validation import check_flag

from .arma import ARMA, css_residuals, css_sse_and_grad, exact_fit_start, exact_scores_and_innovations
from .covariance import check_cov_type, complex_step_scores, cov_matrix
from .data import _numeric, check_exog, check_order, check_series, label, series_info
from .fitargs import check_fit_args
from .results import (FitResult, forecast_frame, gaussian_interval, hessian_from_gradient, minimize_transformed,
                      warn_better_start, warn_not_converged)
from .transforms import Transform, complex_step_jacobian

LOG2PI = np.log(2 * np.pi)
TRENDS = {"n": (), "c": (0,), "t": (1,), "ct": (0, 1)}


def _orders(name, value, n, labels):
    if not isinstance(value, (tuple, list)) or len(value) != n:
        raise TypeError(f"{name}: expected a tuple of {n} integers {labels}, got {value!r}")
    return tuple(check_order(f"{name}[{i}] ({lab})", v) for i, (v, lab) in enumerate(zip(value, labels)))


def difference_polynomial(d, D, s):
    """Coefficients of ``(1 - L)^d (1 - L^s)^D`` in powers of L, shape (d + s D + 1,)."""
    poly = np.array([1.0])
    for _ in range(d):
        poly = np.convolve(poly, [1.0, -1.0])
    seas = np.zeros(s + 1)
    if s:
        seas[0], seas[s] = 1.0, -1.0
    for _ in range(D):
        poly = np.convolve(poly, seas)
    return poly


def _diff(delta, X):
    """``delta(L)`` applied to the columns of ``X`` (zero before the sample), shape of X."""
    return lfilter(delta, [1.0], X, axis=0) if X.shape[1] else X.copy()


class SARIMA:
    """Seasonal ARIMA with trend and regressors, exact Gaussian likelihood (or CSS).

    Parameters
    ----------
    y : (N,) array or pandas Series
    order : (p, d, q)
    seasonal_order : (P, D, Q, s)
        ``s >= 2`` when any of ``P, D, Q`` is positive.
    trend : {"n", "c", "t", "ct"} or None
        None: ``"c"`` without integration, else ``"n"`` (statsmodels' default).
    exog : (N, nX) array or DataFrame, optional
    """

    def __init__(self, y, order=(1, 0, 0), seasonal_order=(0, 0, 0, 0), *, trend=None, exog=None):
        p, d, q = _orders("order", order, 3, ("p", "d", "q"))
        P, D, Q, s = _orders("seasonal_order", seasonal_order, 4, ("P", "D", "Q", "s"))
        if (P or D or Q) and s < 2:
            raise ValueError(f"seasonal_order: expected a seasonal period s >= 2 with seasonal terms, got "
                             f"seasonal_order={tuple(seasonal_order)}")
        if not (P or D or Q):
            s = 0
        self.p, self.d, self.q, self.P, self.D, self.Q, self.s = p, d, q, P, D, Q, s
        if trend is None:
            trend = "c" if d + D == 0 else "n"
        if trend not in TRENDS:
            raise ValueError(f"trend: expected one of {list(TRENDS)} or None, got {trend!r}")
        if any(k < d + D for k in TRENDS[trend]):
            raise ValueError(f"trend: terms of lower order than d + D = {d + D} are removed by the differencing; "
                             f"got trend={trend!r} (with d = 1 use trend='t' for a drift)")
        self.trend = trend
        self.info = series_info(y)
        yl = check_series(y, min_length=1, what="a SARIMA model")
        N = len(yl)
        X = check_exog(exog, N)
        self.delta = difference_polynomial(d, D, s)
        nd = len(self.delta) - 1
        self.n_diff = nd
        pf, qf = p + s * P, q + s * Q
        t = np.arange(1, N + 1, dtype=float)
        Xl = np.column_stack([t ** k for k in TRENDS[trend]] + [X])
        k = Xl.shape[1] + p + q + P + Q + 1
        need = nd + 2 * pf + qf + k - p - q - P - Q + 1
        need = max(need, nd + pf + k + 1)
        self.name = f"SARIMA({p}, {d}, {q})({P}, {D}, {Q}, {s})" if s else f"ARIMA({p}, {d}, {q})"
        self.y = check_series(yl, min_length=need, what=f"an {self.name} model with {k} parameters (more "
                              f"observations than parameters after differencing ({nd}) and the first "
                              f"{pf} lags)")
        self._Xl = Xl
        self.w = lfilter(self.delta, [1.0], self.y)[nd:]
        self.Xw = _diff(self.delta, Xl)[nd:]
        self.inner = ARMA(self.w, pf, qf, trend="n", exog=self.Xw if self.Xw.shape[1] else None)
        xnames = [str(c) for c in exog.columns] if hasattr(exog, "columns") else \
            [f"x{j + 1}" for j in range(X.shape[1])]
        self.kx = Xl.shape[1]
        self.param_names = [{0: "const", 1: "drift"}[k] for k in TRENDS[trend]] + xnames + \
            [f"ar.L{i + 1}" for i in range(p)] + [f"ma.L{i + 1}" for i in range(q)] + \
            [f"ar.S.L{s * (i + 1)}" for i in range(P)] + [f"ma.S.L{s * (i + 1)}" for i in range(Q)] + ["sigma2"]

    def _with_series(self, y):
        """This model on another series of the same length (the fit's ``y / std(w)``), without
        validating the data again: a shallow copy with ``y``, ``w`` and the inner ARMA replaced."""
        m = copy.copy(self)
        m.y = np.asarray(y, dtype=np.float64)
        m.w = lfilter(self.delta, [1.0], m.y)[self.n_diff:]
        m.inner = self.inner._with_series(m.w)
        return m

    # ------------------------------------------------------------------ parameters
    def _split(self, v):
        o = self.kx
        b = v[:o]
        ar = v[o:o + self.p]
        o += self.p
        ma = v[o:o + self.q]
        o += self.q
        sar = v[o:o + self.P]
        o += self.P
        sma = v[o:o + self.Q]
        return b, ar, ma, sar, sma, v[-1]

    def _seasonal(self, c, sign):
        poly = np.zeros(self.s * len(c) + 1, dtype=np.result_type(c, float))
        poly[0] = 1.0
        if len(c):
            poly[self.s::self.s] = sign * c
        return poly

    def expand(self, params):
        """Natural parameters -> the expanded ARMA(p + sP, q + sQ) parameters of the differenced series
        (complex-safe)."""
        b, ar, ma, sar, sma, s2 = self._split(np.asarray(params))
        dt = np.result_type(np.asarray(params), float)
        arp = np.convolve(np.concatenate([np.ones(1, dt), -ar]), self._seasonal(sar, -1.0))
        map_ = np.convolve(np.concatenate([np.ones(1, dt), ma]), self._seasonal(sma, 1.0))
        return np.concatenate([b, -arp[1:], map_[1:], [s2]])

    def _check_params(self, params):
        params = _numeric("params", params)
        if params.shape != (len(self.param_names),):
            raise ValueError(f"params: expected shape ({len(self.param_names)},) for {self.param_names}, "
                             f"got {params.shape}")
        return params

    def loglike_and_grad(self, params, method="mle", *, grad=True):
        """``(llf, d llf / d params)`` (chain rule through :meth:`expand`)."""
        params = self._check_params(params)
        if not (self.P or self.Q):  # no seasonal ARMA terms: expand is the identity
            return self.inner.loglike_and_grad(params, method, grad=grad)
        llf, gf = self.inner.loglike_and_grad(self.expand(params), method, grad=grad)
        if not grad:
            return llf, gf
        return llf, complex_step_jacobian(self.expand, params).T @ gf

    def loglike(self, params, method="mle"):
        return self.loglike_and_grad(params, method, grad=False)[0]

    def loglikeobs(self, params, method="mle"):
        return self.inner.loglikeobs(self.expand(params), method)

    def start_params(self):
        Z = self.Xw
        coef = np.linalg.lstsq(Z, self.w, rcond=None)[0] if Z.shape[1] else np.zeros(0)
        e = self.w - Z @ coef
        return np.concatenate([coef, np.zeros(self.p + self.q + self.P + self.Q), [np.mean(e ** 2)]])

    def _transform(self, with_sigma2):
        return Transform([("free", self.kx), ("ar", self.p), ("ma", self.q), ("ar", self.P), ("ma", self.Q)]
                         + ([("var", 1)] if with_sigma2 else []))

    # ------------------------------------------------------------------ fitting
    def fit(self, method="mle", *, cov_type="nonrobust", df_correction=False, start_params=None, optimizer="BFGS",
            options=None, starts: int = 1, seed=None) -> FitResult:
        """Maximum likelihood (``"mle"``, from the CSS estimate found as in :meth:`ARMA.fit`) or
        conditional sum of squares (``"css"``) on exact gradients; ``cov_type`` as :meth:`ARMA.fit`;
        ``starts``/``seed``: the default start plus ``starts - 1`` random ARMA coefficients
        (unconstrained N(0, 1) draws; trend, regression and variance from the first optimum), the
        best returned with a ``RuntimeWarning`` when it is not the default start's.  Runs on
        ``y / std(w)`` and maps back (scale-free)."""
        if method not in ("mle", "css"):
            raise ValueError(f"method: expected 'mle' or 'css', got {method!r}")
        cov_type = check_cov_type(cov_type)
        df_correction = check_flag("df_correction", df_correction)
        optimizer, options, start_params = check_fit_args(optimizer, options, start_params, self.param_names,
                                                          positive=[len(self.param_names) - 1])
        if cov_type == "r-css" and method != "css":
            raise ValueError(f"cov_type: 'r-css' is R's convention for method='css', got method={method!r}")
        sc = float(np.std(self.w))
        m = self if sc == 1.0 else self._with_series(self.y / sc)
        Dv = np.concatenate([np.full(self.kx, sc), np.ones(self.p + self.q + self.P + self.Q), [sc * sc]])
        start = None if start_params is None else start_params / Dv
        starts = check_order("starts", starts, 1)
        values_s, res = m._optimize(method, start, optimizer, options)
        if starts > 1:
            values_s, res = m._multistart(method, values_s, res, starts, seed, optimizer, options)
        warn_not_converged(res, f"{self.name} fit ({method})")
        llf_s, g_s = m.loglike_and_grad(values_s, method)
        full = m.expand(values_s)
        if method == "css":
            e, _ = css_residuals(m.inner.layout, m.inner.y, m.inner.exog, full)
            resid, std, nobs, off = e, e / np.sqrt(full[-1]), len(e), self.n_diff + m.inner.p
        else:
            from .loglikeobs import arma_exact_obs
            if cov_type in ("opg", "robust"):  # scores and innovations from one pass (compiled scan or batched filter)
                G, v, F = exact_scores_and_innovations(m.inner.layout, m.inner.y, m.inner.exog, values_s,
                                                       m.expand if (self.P or self.Q) else None,
                                                       compiled=m.inner.compiled)
            else:
                _, v, F = arma_exact_obs(m.inner.layout, m.inner.y, m.inner.exog, full)
            resid, std, nobs, off = v, v / np.sqrt(F), len(v), self.n_diff
        k = len(values_s)
        if cov_type == "none":
            C = np.full((k, k), np.nan)
        else:
            H = hessian_from_gradient(lambda x: m.loglike_and_grad(x, method)[1], values_s) \
                if cov_type != "opg" else None
            if cov_type not in ("opg", "robust"):
                G = None
            elif method == "css":
                G = complex_step_scores(lambda x: m.loglikeobs(x, method), values_s)
            mask = np.zeros(k, bool)
            mask[-1] = True
            C = cov_matrix(cov_type, hessian=H, scores=G, n_used=nobs, n_total=len(m.w), df_k=k - 1,
                           df_correction=df_correction, var_mask=mask)
        return FitResult(self, list(self.param_names), values_s * Dv, float(llf_s - nobs * np.log(sc)), nobs,
                         C * np.outer(Dv, Dv), g_s / Dv, label(self.info, resid * sc, off, "resid"), res, method,
                         cov_type=cov_type, df_correction=df_correction, std_resid=std)

    def _multistart(self, method, values, res, starts, seed, optimizer, options):
        tr = self._transform(method == "mle")
        u_best = tr.inverse(values if method == "mle" else values[:-1])
        llf0 = best = self.loglike(values, method)
        rng = np.random.default_rng(seed)
        coef = slice(self.kx, self.kx + self.p + self.q + self.P + self.Q)
        best_j = 0
        for j in range(1, starts):
            u0 = u_best.copy()
            u0[coef] = rng.standard_normal(coef.stop - coef.start)
            try:
                v, r = self._optimize(method, values, optimizer, options, u0=u0)
            except (ValueError, FloatingPointError):
                continue
            llf = self.loglike(v, method)
            if np.isfinite(llf) and llf > best + 1e-9 * abs(best) + 1e-9:
                best, values, res, best_j = llf, v, r, j
        if best > llf0:
            warn_better_start(f"{self.name} fit ({method})", llf0, best, best_j)
        return values, res

    def _optimize(self, method, start, optimizer, options, u0=None):
        hess0 = None
        if start is None and method == "mle":
            start, hess0 = exact_fit_start(self, lambda: self._optimize("css", None, optimizer, options), optimizer,
                                           options, True, len(self.w), self.expand if (self.P or self.Q) else None)
        elif start is None:
            start = self.start_params()
        if method == "css":
            n = len(self.w) - self.inner.p

            def objective(par):
                full = self.expand(np.append(par, 1.0))
                S, dS, _ = css_sse_and_grad(self.inner.layout, self.inner.y, self.inner.exog, full)
                if self.P or self.Q:
                    dS = np.append(complex_step_jacobian(lambda z: self.expand(np.append(z, 1.0))[:-1], par).T
                                   @ dS[:-1], 0.0)
                return 0.5 * n * np.log(S / n), 0.5 * n * dS[:-1] / S

            if len(start) == 1:
                est, res = np.zeros(0), None
            else:
                est, res = minimize_transformed(objective, self._transform(False), start[:-1], method=optimizer,
                                                options=options, scale=n, u0=u0)
            S, _, _ = css_sse_and_grad(self.inner.layout, self.inner.y, self.inner.exog,
                                       self.expand(np.append(est, 1.0)), grad=False)
            return np.append(est, S / n), res

        def objective(par):
            llf, g = self.loglike_and_grad(par, "mle")
            return -llf, -g

        if hess0 is not None:
            options = dict(options or {}, hess_inv0=hess0)
        return minimize_transformed(objective, self._transform(True), start, method=optimizer, options=options,
                                    scale=len(self.w), u0=u0)

    # ------------------------------------------------------------------ forecasting
    def forecast(self, result, steps, *, alpha=0.05, exog=None):
        """Forecasts of the levels ``y`` (integrated back) with intervals: DataFrame (``mean``,
        ``se``, ``lower``, ``upper``) indexed after the sample."""
        steps = check_order("steps", steps, 1)
        nx = self._Xl.shape[1] - len(TRENDS[self.trend])
        fx = check_exog(exog, steps, nx, name="exog")
        N = len(self.y)
        t = np.arange(N + 1, N + steps + 1, dtype=float)
        Xf = np.column_stack([t ** k for k in TRENDS[self.trend]] + [fx])
        Xall = np.concatenate([self._Xl, Xf])
        Xwf = _diff(self.delta, Xall)[N:]
        full = self.expand(np.asarray(result.values, dtype=np.float64))
        inner_res = FitResult(self.inner, [], full, result.llf, result.nobs, result.cov, result.grad,
                              np.asarray(result.resid, dtype=np.float64) / 1.0, None, result.method)
        wmean, wse = self.inner._forecast_moments(inner_res, steps, Xwf if Xwf.shape[1] else None)
        nd = self.n_diff
        hist = list(self.y)
        mean = np.empty(steps)
        for h in range(steps):  # y_t = w_t - sum_{i>=1} delta_i y_{t-i}
            mean[h] = wmean[h] - sum(self.delta[i] * hist[-i] for i in range(1, nd + 1))
            hist.append(mean[h])
        if nd:
            ar = np.convolve(np.concatenate([[1.0], -full[self.kx:self.kx + self.inner.p]]), self.delta)
            ma = np.concatenate([[1.0], full[self.kx + self.inner.p:-1]])
            psi = lfilter(ma, ar, np.eye(1, steps)[0])
            se = np.sqrt(full[-1] * np.cumsum(psi ** 2))
        else:
            se = wse
        lo, hi = gaussian_interval(mean, se, alpha)
        return forecast_frame(self.info, N, mean=mean, se=se, lower=lo, upper=hi)

    def simulate(self, params, nsimulations, *, rng=None, burn=500):
        """Simulate ``(nsimulations,)`` levels (no trend or regressors; integrated from zero before the burn-in)."""
        n = check_order("nsimulations", nsimulations, 1)
        if self.kx:
            raise ValueError("trend, exog: simulate supports models without trend or regressors")
        full = self.expand(self._check_params(params))
        rng = np.random.default_rng(rng)
        e = rng.standard_normal(n + burn) * np.sqrt(full[-1])
        u = lfilter(np.concatenate([[1.0], full[self.inner.p:-1]]), np.concatenate([[1.0], -full[:self.inner.p]]), e)
        return lfilter([1.0], self.delta, u)[burn:]


def ARIMA(y, order=(1, 0, 0), *, trend=None, exog=None) -> SARIMA:
    """Non-seasonal :class:`SARIMA`."""
    return SARIMA(y, order, (0, 0, 0, 0), trend=trend, exog=exog)
