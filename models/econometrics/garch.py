r"""GARCH(1, 1) with a constant or ARMA(p, q) mean, Gaussian likelihood.

    y_t = mu + u_t                      (constant mean; or u_t the CSS residual of an ARMA mean)
    sigma2_t = omega + alpha u_{t-1}^2 + beta sigma2_{t-1}
    sigma2_0 = omega + (alpha + beta) * backcast

``backcast`` is arch's: the exponentially weighted (0.94^i, first 75) mean of squared
residuals at the start values, fixed during the fit.  The variance recursion is the all-pole
filter ``lfilter([1], [1, -beta], d)``; its dual is the same filter backward in time
(:mod:`.filters`).  ``llf = -1/2 sum_t (log 2 pi + log sigma2_t + u_t^2 / sigma2_t)``.

Parameters: ``mu`` (constant mean) or ``const, ar.L1.., ma.L1..`` (ARMA mean), then
``omega, alpha[1], beta[1]``.  Transforms: ``omega = exp``, ``(alpha, beta)`` logistic with
``alpha, beta > 0``, ``alpha + beta < 1``; the ARMA mean stationary/invertible.
"""

from __future__ import annotations

import numpy as np

from .arma import css_residuals, css_residuals_vjp
from .covariance import check_cov_type, complex_step_scores, cov_matrix
from .data import check_not_constant, check_order, check_series, label, series_info
from . import garch_compiled, garch_newton
from .filters import allpole, allpole_adjoint
from .fitargs import NOT_GIVEN, check_fit_args, check_start_domain
from .kalman import ARMALayout
from .results import (FitResult, forecast_frame, gaussian_interval, hessian_from_gradient, minimize_transformed,
                      warn_not_converged)
from .transforms import Transform

LOG2PI = np.log(2 * np.pi)
PRECONDITION_N = 2000


def arch_backcast(resid):
    """arch's backcast: ``sum_i w_i u_i^2``, ``w_i ~ 0.94^i``, ``i < min(75, N)``."""
    tau = min(75, len(resid))
    w = 0.94 ** np.arange(tau)
    return float(np.sum(resid[:tau] ** 2 * (w / w.sum())))


class GARCH:
    """GARCH(1, 1) with mean ``"constant"`` or ``"arma"`` (orders ``p``, ``q``, with a constant).

    Parameters
    ----------
    y : (N,) array or pandas Series
        Needs more observations than parameters after the first p.
    mean : {"constant", "arma"}
    p, q : int
        ARMA orders of the **mean** (``mean="arma"`` only; the variance is always GARCH(1, 1)).
    """

    def __init__(self, y, mean: str = "constant", p: int = 0, q: int = 0):
        if mean not in ("constant", "arma"):
            raise ValueError(f"mean: expected 'constant' or 'arma', got {mean!r}")
        p, q = check_order("p", p), check_order("q", q)
        if mean == "constant" and (p or q):
            raise ValueError(f"p, q: the ARMA orders of the mean need mean='arma'; got p={p}, q={q} with "
                             f"mean='constant' (the variance equation is GARCH(1, 1) whatever p and q)")
        self.p, self.q = p, q
        self.mean = mean
        self.info = series_info(y)
        k = 1 + p + q + 3
        self.y = check_series(y, min_length=2 * p + k + 1,
                              what=f"a GARCH(1, 1) model with {k} parameters (more observations than parameters "
                                   f"after the first p = {p})")
        check_not_constant(self.y)
        self.layout = ARMALayout(self.p, self.q, 0, "c")
        self._x = np.zeros((len(self.y), 0))
        self.n_mean = self.layout.n_params - 1  # without sigma2
        mean_names = ["mu"] if mean == "constant" else ["const"] + [f"ar.L{i + 1}" for i in range(self.p)] + \
            [f"ma.L{j + 1}" for j in range(self.q)]
        self.param_names = mean_names + ["omega", "alpha[1]", "beta[1]"]
        self.name = "GARCH(1, 1), " + ("constant mean" if mean == "constant" else f"ARMA({self.p}, {self.q}) mean")
        self.backcast = None

    def _resid(self, values):
        if self.mean == "constant":  # u = y - mu; the context is None (dual: -sum(u_bar))
            return self.y - values[0], None
        return css_residuals(self.layout, self.y, self._x, np.append(values[:self.n_mean], 1.0))

    def variances(self, values, resid, backcast):
        """Conditional variances ``sigma2 (n,)`` for residuals ``resid (n,)``."""
        omega, alpha, beta = values[self.n_mean:]
        d = np.empty(resid.shape, dtype=np.result_type(resid, values))
        d[0] = omega + (alpha + beta) * backcast
        d[1:] = omega + alpha * resid[:-1] ** 2
        return allpole(np.array([1.0, -beta]), d)

    def loglike_and_grad(self, values, *, backcast=None, grad: bool = True):
        """``(llf, d llf / d params)`` with the backcast held fixed (default: the fit's)."""
        values = np.asarray(values, dtype=np.float64)
        if values.shape != (len(self.param_names),):
            raise ValueError(f"params: expected shape ({len(self.param_names)},) for {self.param_names}, "
                             f"got {values.shape}")
        bc = self._backcast(backcast)
        omega, alpha, beta = values[self.n_mean:]
        u, ctx = self._resid(values)
        s2 = self.variances(values, u, bc)
        if not s2.min() > 0:
            return -np.inf, (np.zeros_like(values) if grad else None)
        llf = -0.5 * float(np.sum(LOG2PI + np.log(s2) + u * u / s2))
        if not grad:
            return llf, None
        # adjoints of L = -llf
        s2_bar = 0.5 * (1.0 / s2 - u * u / (s2 * s2))
        u_bar = u / s2
        lam, a_bar = allpole_adjoint(np.array([1.0, -beta]), s2, s2_bar)
        g_omega = lam.sum()
        g_alpha = lam[0] * bc + lam[1:] @ (u[:-1] ** 2)
        g_beta = -a_bar[0] + lam[0] * bc
        u_bar[:-1] += 2.0 * alpha * u[:-1] * lam[1:]
        g_mean = np.array([-u_bar.sum()]) if ctx is None else css_residuals_vjp(ctx, u_bar)[:-1]
        return llf, -np.concatenate([g_mean, [g_omega, g_alpha, g_beta]])

    def _backcast(self, backcast):
        if backcast is not None:
            return float(backcast)
        if self.backcast is None:
            self.backcast = arch_backcast(self._resid(self.start_params())[0])
        return self.backcast

    def start_params(self):
        """Mean: sample mean (ARMA coefficients 0); variance: omega = 0.1 var, alpha = 0.1, beta = 0.8."""
        v = np.var(self.y)
        return np.concatenate([[np.mean(self.y)], np.zeros(self.p + self.q), [0.1 * v, 0.1, 0.8]])

    def _start_inverse_hessian(self, start, backcast, tr, n):
        """BFGS's initial inverse Hessian: the inverse of ``J' H J / n`` at the start (``H`` from
        central differences of the exact gradient, ``J`` the transform's Jacobian), eigenvalues
        floored at 1e-3 of the largest (positive definite).  A Newton-scaled first step: 2000 S&P
        returns converge in 6 BFGS iterations instead of 28."""
        H = -hessian_from_gradient(lambda v: self.loglike_and_grad(v, backcast=backcast)[1], start, floor=1e-2)
        J = tr.jacobian(tr.inverse(start))
        Hu = J.T @ H @ J / n
        w, V = np.linalg.eigh(0.5 * (Hu + Hu.T))
        if not np.all(np.isfinite(w)) or w.max() <= 0:
            return None
        Hi = (V / np.maximum(w, 1e-3 * w.max())) @ V.T
        return 0.5 * (Hi + Hi.T)

    def _grid_start(self, backcast):
        """:meth:`start_params` with ``(alpha, beta)`` from the best point of a small grid of
        persistence ``alpha + beta`` and ``alpha`` (``omega = var (1 - persistence)``), as arch does
        (:func:`.garch_compiled.grid_candidates`; all candidates in one compiled loop when it is
        available)."""
        base = self.start_params()
        v = np.var(self.y)
        grid = garch_compiled.grid_candidates()
        omega, alpha, beta = v * (1 - grid[:, 0]), grid[:, 1], grid[:, 0] - grid[:, 1]
        llfs = None
        if self.mean == "constant":
            llfs = garch_compiled.grid_loglikes(self.y, base[0], omega, alpha, beta, backcast)
        if llfs is None:
            llfs = []
            for w, a, b in zip(omega, alpha, beta):
                cand = base.copy()
                cand[self.n_mean:] = [w, a, b]
                llfs.append(garch_newton.loglike(cand, self.y, backcast) if self.mean == "constant" else
                            self.loglike_and_grad(cand, backcast=backcast, grad=False)[0])
        llfs = np.where(np.isnan(llfs), -np.inf, llfs)
        if not np.isfinite(llfs).any():
            return base
        k = int(np.argmax(llfs))
        out = base.copy()
        out[self.n_mean:] = [omega[k], alpha[k], beta[k]]
        return out

    def loglikeobs(self, values, *, backcast=None):
        """Per-observation log-likelihood ``(N - p,)`` (complex-safe)."""
        values = np.asarray(values)
        u, _ = self._resid(values)
        s2 = self.variances(values, u, self._backcast(backcast))
        return -0.5 * (LOG2PI + np.log(s2) + u * u / s2)

    def fit(self, *, cov_type: str = "robust", start_params=None, optimizer=NOT_GIVEN,
            options=None) -> FitResult:
        """Maximum likelihood on exact derivatives in transformed parameters.

        ``optimizer`` not given (default): with the constant mean and no ``options``, Newton's method on
        the exact Hessian (:mod:`.garch_newton`; falls back to BFGS if it does not converge), whose
        Hessian and scores at the estimate also give the covariance; otherwise BFGS.  Newton's
        derivatives come from one compiled pass over the data (:mod:`.garch_compiled`, built once per
        machine in the background from the first fit on) or, until it is ready or with
        ``DYNOPT_COMPILE=0``, from the lfilter form: the same numbers to rounding.  Which one ran is
        in ``result.extra["path"]``.  A SciPy
        method name (``"BFGS"``, ``"L-BFGS-B"``, ``"CG"``, ``"Newton-CG"``) runs that method.

        ``cov_type``: ``"robust"`` (QMLE sandwich, arch's default and its convention: the score
        covariance demeaned and divided by ``n - 1``), ``"nonrobust"`` (arch's ``"classic"``),
        ``"opg"`` or ``"none"``.  The optimisation runs on ``y / std(y)`` and maps
        back (scale-free); the backcast is arch's, from the start values.
        """
        cov_type = check_cov_type(cov_type, ("nonrobust", "opg", "robust", "none"))
        k = len(self.param_names)  # omega, alpha, beta > 0 (and alpha + beta < 1: the transform's domain)
        newton = optimizer is NOT_GIVEN and options is None and self.mean == "constant"
        optimizer, options, start_params = check_fit_args("BFGS" if optimizer is NOT_GIVEN else optimizer, options,
                                                          start_params, self.param_names,
                                                          positive=range(self.n_mean, k))
        sd = float(np.std(self.y))
        m = self if sd == 1.0 else GARCH(self.y / sd, self.mean, self.p, self.q)
        D = np.concatenate([[sd], np.ones(self.p + self.q), [sd * sd, 1.0, 1.0]])
        bc = m._backcast(None)
        # the start's grid search and the initial inverse Hessian (per observation) only precondition
        # the fit: on long series they use the first PRECONDITION_N observations
        pre = m if len(m.y) <= PRECONDITION_N else GARCH(m.y[:PRECONDITION_N], self.mean, self.p, self.q)
        start = pre._grid_start(bc) if start_params is None else start_params / D
        self.backcast = bc * sd * sd
        tr = Transform([("free", 1), ("ar", self.p), ("ma", self.q), ("var", 1), ("garch", 2)])
        check_start_domain(tr, start)

        def objective(v):
            llf, g = m.loglike_and_grad(v, backcast=bc)
            return -llf, -g

        n = len(self.y) - self.p
        exact = None
        if newton:
            derivs = garch_compiled.pass_function(m.y, bc)
            values_s, llf_s, g_s, H, S, res = garch_newton.newton_fit(m.y, bc, start, derivs=derivs)
            exact = (H, S) if res.success else None
            path = f"Newton, {'compiled pass' if derivs is not None else 'lfilter pass'}"
        if exact is None:
            path = f"{optimizer}" + (" (Newton did not converge)" if newton else "")
            if optimizer == "BFGS" and not (options and "hess_inv0" in options):
                options = dict(options or {},
                               hess_inv0=pre._start_inverse_hessian(start, bc, tr, len(pre.y) - self.p))
            values_s, res = minimize_transformed(objective, tr, start, method=optimizer, options=options, scale=n)
            llf_s, g_s = m.loglike_and_grad(values_s, backcast=bc)
        warn_not_converged(res, f"{self.name} fit")
        k = len(values_s)
        if cov_type == "none":
            C = np.full((k, k), np.nan)
        else:
            if exact is not None:
                H, S = exact
                g_sum = g_s  # the scores' sum
            else:
                H = hessian_from_gradient(lambda v: m.loglike_and_grad(v, backcast=bc)[1], values_s, floor=1e-2) \
                    if cov_type != "opg" else None
                G = complex_step_scores(lambda v: m.loglikeobs(v, backcast=bc), values_s) \
                    if cov_type != "nonrobust" else None
                S, g_sum = (None, None) if G is None else (G.T @ G, G.sum(axis=0))
            if cov_type == "robust":  # arch: the score covariance is np.cov (demeaned, divided by n - 1)
                S = (S - np.outer(g_sum, g_sum) / n) * (n / (n - 1))
            C = cov_matrix(cov_type, hessian=H, opg=S)
        u_s, _ = m._resid(values_s)
        s2_s = m.variances(values_s, u_s, bc)
        values = values_s * D
        out = FitResult(self, list(self.param_names), values, float(llf_s - n * np.log(sd)), n, C * np.outer(D, D),
                        g_s / D, label(self.info, u_s * sd, self.p, "resid"), res, "mle", cov_type=cov_type,
                        std_resid=u_s / np.sqrt(s2_s))
        out.extra["sigma2"] = s2_s * sd * sd
        out.extra["backcast"] = self.backcast
        out.extra["path"] = path
        out.conditional_volatility = label(self.info, np.sqrt(s2_s) * sd, self.p, "cond_vol")
        return out

    def forecast(self, result, steps, *, alpha=0.05):
        """Variance forecasts ``E[sigma2_{N+h}]`` and the mean (constant mean only) with intervals
        ``mean +/- z sqrt(sigma2_{N+h})`` (conditional Gaussian)."""
        steps = check_order("steps", steps, 1)
        if self.mean != "constant":
            raise ValueError("mean: forecasts are implemented for the constant mean; got mean='arma'")
        mu, omega, a, b = np.asarray(result.values, dtype=np.float64)
        u, s2 = np.asarray(result.resid, dtype=np.float64), result.extra["sigma2"]
        var = np.empty(steps)
        var[0] = omega + a * u[-1] ** 2 + b * s2[-1]
        for h in range(1, steps):
            var[h] = omega + (a + b) * var[h - 1]
        mean = np.full(steps, mu)
        lo, hi = gaussian_interval(mean, np.sqrt(var), alpha)
        return forecast_frame(self.info, len(self.y), mean=mean, se=np.sqrt(var), variance=var, lower=lo, upper=hi)

    def simulate(self, values, nsimulations, *, rng=None, burn=500):
        """Simulate a constant-mean GARCH(1, 1) path ``(nsimulations,)``."""
        n = check_order("nsimulations", nsimulations, 1)
        if self.mean != "constant":
            raise ValueError("mean: simulate is implemented for the constant mean; got mean='arma'")
        mu, omega, a, b = np.asarray(values, float)
        rng = np.random.default_rng(rng)
        z = rng.standard_normal(n + burn)
        s2, u_prev = omega / max(1 - a - b, 1e-12), 0.0
        out = np.empty(n + burn)
        for t in range(n + burn):
            s2 = omega + a * u_prev ** 2 + b * s2
            u_prev = np.sqrt(s2) * z[t]
            out[t] = mu + u_prev
        return out[burn:]
