r"""VAR(p) for k series, conditional Gaussian likelihood given the first p observations.

    y_t = c + A_1 y_{t-1} + ... + A_p y_{t-p} + e_t,     e_t ~ N(0, Sigma)

The one-step prediction is a :class:`dynopt.models.LinearPlant` step (``x[t+1] = sum_j A_j
x[t-j] + E X[t]`` with ``X = 1`` for the constant) evaluated on the observed history with the
time axis as the batch; its dual (``LinearPlant.vjp``) gives the gradient.  ``Sigma`` is
concentrated out (``Sigma = E'E / n``), so the maximised objective is
``llf = -n/2 (k log 2 pi + log det(E'E / n) + k)``, whose maximiser over the coefficients is
ordinary least squares equation by equation: :meth:`VAR.fit` starts there by default
(``start="ols"``) and confirms it with the exact gradient; ``start="zeros"`` runs BFGS from zero.

Parameters, equation by equation: for series ``j``: ``y{j}.const, y{j}.L1.y1, ..., y{j}.Lp.yk``
(the columns of statsmodels' ``VARResults.params``; ``VARResult.params_table`` is that table).
Standard errors and ``sigma_u`` use statsmodels' df-corrected ``Sigma = E'E / (n - k p - 1)``
(``df_correction=False``: the MLE ``E'E / n``).
"""

from __future__ import annotations

import numpy as np

from dataclasses import dataclass
from typing import Optional

from dynopt.core.validation import check_flag

from ..linear import LinearPlant
from .covariance import check_cov_type
from .data import check_full_rank, check_multiseries, least_squares, check_order, forecast_index, label, series_info
from .fitargs import NOT_GIVEN, check_fit_args, check_start_params
from .results import FitResult, gaussian_interval, hessian_from_gradient, minimize_transformed, warn_not_converged
from .transforms import Transform

LOG2PI = np.log(2 * np.pi)


@dataclass
class VARResult(FitResult):
    """:class:`FitResult` of a VAR with the coefficient matrices as named attributes.

    Attributes
    ----------
    intercept : (k,) array
    coefs : (p, k, k) array
        ``coefs[i][j, m]``: coefficient of series m at lag i + 1 in equation j (statsmodels' ``coefs``).
    sigma_u : (k, k) array
        Innovation covariance, ``E'E / (n - k p - 1)`` with the df correction (statsmodels'
        ``sigma_u``), else the MLE.
    sigma_u_mle : (k, k) array
        ``E'E / n`` (statsmodels' ``sigma_u_mle``).
    """

    intercept: Optional[np.ndarray] = None
    coefs: Optional[np.ndarray] = None
    sigma_u: Optional[np.ndarray] = None
    sigma_u_mle: Optional[np.ndarray] = None

    @property
    def params_table(self):
        """Coefficients as statsmodels' ``params``: DataFrame ``(1 + k p, k)``, one column per equation."""
        import pandas as pd
        m = self.model
        rows = ["const"] + [f"L{i + 1}.{nm}" for i in range(m.p) for nm in m.info.names]
        return pd.DataFrame(np.asarray(self.values).reshape(m.k, -1).T, index=rows, columns=list(m.info.names))


class VAR:
    """Vector autoregression of order p with a constant.

    Parameters
    ----------
    y : (N, k) array
        k series in columns.
    p : int
        Lag order >= 1.
    """

    def __init__(self, y, p: int = 1):
        self.p = check_order("p", p, 1)
        self.info = series_info(y)
        self.y = check_multiseries(y, min_length=self.p + 2, what=f"a VAR({self.p}) model")
        N, k = self.y.shape
        self.k = k
        self.nobs = N - self.p
        if self.nobs <= k * self.p + 1:
            raise ValueError(f"y: expected at least {k * self.p + 2 + self.p} observations for a VAR({self.p}) "
                             f"of {k} series (more than k p + 1 = {k * self.p + 1} after the first p), got {N}")
        self.name = f"VAR({self.p}), {k} series"
        self.plant = LinearPlant(np.zeros((self.p, k, k)), np.zeros((k, 0)), E=np.zeros((k, 1)))
        # observed history, time as the batch: hist[j][t] = y[p + t - 1 - j]
        self._hist = tuple(self.y[self.p - 1 - j:N - 1 - j] for j in range(self.p))
        self._target = self.y[self.p:]
        self._ones = np.ones((self.nobs, 1))
        self._u = np.zeros((self.nobs, 0))
        nm = list(self.info.names)
        self.param_names = [f"{nm[j]}." + n for j in range(k) for n in
                            ["const"] + [f"L{i + 1}.{nm[m]}" for i in range(self.p) for m in range(k)]]
        self._Z = np.concatenate([self._ones] + list(self._hist), axis=1)
        self._ZtZ = self._Z.T @ self._Z
        check_full_rank(self._Z, ["const"] + [f"L{i + 1}.{nm[m]}" for i in range(self.p) for m in range(k)],
                        name="y", G=self._ZtZ)

    # coefficient layout: values (k * (1 + k p),) equation-major  <->  plant theta (A_1..A_p, B, E)
    def _to_theta(self, values):
        k, p = self.k, self.p
        V = values.reshape(k, 1 + k * p)
        A = V[:, 1:].reshape(k, p, k).transpose(1, 0, 2)  # A_i[j, m] = coefficient of y_m at lag i in eq j
        return np.concatenate([A.ravel(), V[:, 0]])

    def _from_theta(self, theta):
        k, p = self.k, self.p
        A = theta[:p * k * k].reshape(p, k, k).transpose(1, 0, 2).reshape(k, p * k)
        return np.concatenate([theta[p * k * k:][:, None], A], axis=1).ravel()

    def residuals(self, values):
        """``E (n, k)``: observed minus one-step predictions, ``t = p .. N-1``."""
        pred, _ = self.plant.forward(self._hist, self._u, self._ones, self._to_theta(np.asarray(values, float)))
        return self._target - pred

    def _residuals_ctx(self, values):
        pred, ctx = self.plant.forward(self._hist, self._u, self._ones, self._to_theta(values))
        return self._target - pred, ctx

    def loglike_and_grad(self, values, *, grad: bool = True):
        """Concentrated log-likelihood and its gradient with respect to the coefficients."""
        values = np.asarray(values, dtype=np.float64)
        if values.shape != (len(self.param_names),):
            raise ValueError(f"params: expected shape ({len(self.param_names)},), got {values.shape}")
        E, ctx = self._residuals_ctx(values)
        n, k = E.shape
        S = E.T @ E
        sign, logdet = np.linalg.slogdet(S / n)
        llf = -0.5 * n * (k * LOG2PI + logdet + k)
        if not grad:
            return llf, None
        # d llf / d E = -n E S^{-1}; predictions = target - E, so d llf / d pred = n E S^{-1}
        pred_bar = (n * E) @ np.linalg.inv(S)  # S is k x k and symmetric
        _, _, theta_bar = self.plant.vjp(ctx, pred_bar)
        return llf, self._from_theta(theta_bar)

    def ols(self):
        """Equation-by-equation least squares (the closed-form conditional MLE)."""
        coef = least_squares(self._Z, self._target, self._ZtZ)  # (1 + k p, k)
        return coef.T.ravel()

    def loglikeobs(self, values, sigma=None):
        """Per-observation conditional log-likelihood ``(n,)`` at ``Sigma`` (default the MLE one)."""
        E = self.residuals(values)
        S = E.T @ E / len(E) if sigma is None else np.asarray(sigma)
        Si = np.linalg.inv(S)
        return -0.5 * (self.k * LOG2PI + np.linalg.slogdet(S)[1] + np.einsum("ti,ij,tj->t", E, Si, E))

    def fit(self, *, cov_type: str = "nonrobust", df_correction: bool = True, start=None, optimizer=NOT_GIVEN,
            options=None, hessian: str = "analytic") -> "VARResult":
        """Fit by least squares equation by equation (the closed-form conditional MLE), or, given
        ``start``, ``optimizer`` or ``options``, maximise the concentrated likelihood by SciPy on exact
        gradients (a cross-check).

        Parameters
        ----------
        cov_type : {"nonrobust", "none"}
            ``Sigma kron inv(Z'Z)``, ``Z`` the regressors ``(1, y_{t-1}, ..)``.
        df_correction : bool
            ``Sigma = E'E / (n - k p - 1)`` in the covariance and in ``sigma_u`` (statsmodels' and
            R vars' default); ``False``: the MLE ``E'E / n``.
        start : {"ols", "zeros"} or (k (1 + k p),) array, optional
            Run the optimiser from there instead of the closed form (default ``"zeros"`` when only
            ``optimizer`` or ``options`` is given; none of the three: the closed form).
        optimizer : {"BFGS", "L-BFGS-B", "CG", "Newton-CG"}, optional
            SciPy method of the numerical fit (default ``"BFGS"``).
        options : dict, optional
            ``scipy.optimize.minimize`` options for ``optimizer`` (checked: :func:`.fitargs.check_options`).
        hessian : {"analytic", "differences"}
            ``"analytic"`` (at the maximum the profile Hessian is ``-(Sigma^-1 kron Z'Z)``) or
            ``"differences"`` (central differences of the exact gradient; the tests check both agree).
        """
        cov_type = check_cov_type(cov_type, ("nonrobust", "none"))
        df_correction = check_flag("df_correction", df_correction)
        if not isinstance(hessian, str) or hessian not in ("analytic", "differences"):
            raise ValueError(f"hessian: expected 'analytic' or 'differences', got {hessian!r}")
        numerical = start is not None or optimizer is not NOT_GIVEN or options is not None
        optimizer, options, _ = check_fit_args("BFGS" if optimizer is NOT_GIVEN else optimizer, options)
        if isinstance(start, str):
            if start not in ("ols", "zeros"):
                raise ValueError(f"start: expected 'ols', 'zeros' or an array, got {start!r}")
        elif start is not None:
            start = check_start_params(start, self.param_names, name="start")
        res = None
        if not numerical:
            values = self.ols()
        else:
            start = "zeros" if start is None else start
            if isinstance(start, str):
                start = self.ols() if start == "ols" else np.zeros(len(self.param_names))

            def objective(v):
                llf, g = self.loglike_and_grad(v)
                return -llf, -g

            values, res = minimize_transformed(objective, Transform([("free", len(start))]), start,
                                               method=optimizer, options=options, scale=self.nobs)
            warn_not_converged(res, f"{self.name} fit")
        n, k, p = self.nobs, self.k, self.p
        B = np.asarray(values).reshape(k, -1).T  # (1 + k p, k), one column per equation
        E = self._target - self._Z @ B
        Smle = E.T @ E / n
        if np.min(np.linalg.eigvalsh(Smle)) <= 1e-14 * np.max(np.diag(Smle)):
            raise ValueError(f"y: the residual covariance of the {self.name} is singular (a series is constant, "
                             f"fitted exactly, or a linear combination of the others); expected {k} series whose "
                             f"innovations are linearly independent")
        if res is None:  # closed form: the concentrated likelihood and its gradient n Z'E Sigma^-1 directly
            llf = -0.5 * n * (k * LOG2PI + np.linalg.slogdet(Smle)[1] + k)
            g = (self._Z.T @ E @ np.linalg.inv(E.T @ E) * n).T.ravel()
        else:
            llf, g = self.loglike_and_grad(values)
        dfk = k * p + 1
        sig = Smle * n / (n - dfk) if df_correction else Smle
        if cov_type == "none":
            C = np.full((len(values),) * 2, np.nan)
        elif hessian == "analytic":
            C = np.kron(sig, np.linalg.inv(self._ZtZ))
        else:
            C = np.linalg.inv(-hessian_from_gradient(lambda v: self.loglike_and_grad(v)[1], values))
            C = C * (n / (n - dfk) if df_correction else 1.0)
        c, A = self.coefs(values)
        out = VARResult(self, list(self.param_names), values, float(llf), n, C, g, label(self.info, E, p), res,
                        "ols" if res is None else "conditional mle", cov_type=cov_type, df_correction=df_correction)
        out.extra["sigma_u"] = sig
        out.extra["sigma_u_mle"] = Smle
        out.extra["n_sigma"] = k * (k + 1) // 2
        out.intercept, out.coefs, out.sigma_u, out.sigma_u_mle = c, A, sig, Smle
        return out

    def coefs(self, values):
        """``(c (k,), A (p, k, k))`` from the flat coefficients."""
        theta = self._to_theta(np.asarray(values, float))
        k, p = self.k, self.p
        return theta[p * k * k:], theta[:p * k * k].reshape(p, k, k)

    def forecast(self, result, steps, *, alpha=0.05):
        """Iterated forecasts ``(steps, k)``; ``se`` from ``MSE_h = sum_{j<h} Psi_j Sigma Psi_j'``."""
        steps = check_order("steps", steps, 1)
        c, A = self.coefs(result.values)
        Sig = result.extra["sigma_u"]  # statsmodels: df-corrected unless fitted with df_correction=False
        k, p = self.k, self.p
        hist = [self.y[-1 - j] for j in range(p)]
        mean = np.empty((steps, k))
        for h in range(steps):
            mean[h] = c + sum(A[j] @ hist[j] for j in range(p))
            hist = [mean[h]] + hist[:-1]
        Psi = [np.eye(k)]
        for h in range(1, steps):
            Psi.append(sum(A[j] @ Psi[h - 1 - j] for j in range(min(p, h))))
        mse = np.cumsum([P @ Sig @ P.T for P in Psi], axis=0)
        se = np.sqrt(np.einsum("hii->hi", mse))
        lo, hi = gaussian_interval(mean, se, alpha)
        idx = forecast_index(self.info, len(self.y), steps)
        import pandas as pd

        def frame(a):
            return pd.DataFrame(a, index=idx, columns=list(self.info.names))

        return {"mean": frame(mean), "se": frame(se), "lower": frame(lo), "upper": frame(hi), "mse": mse}

    def simulate(self, values, nsimulations, *, rng=None, sigma=None, burn=500):
        """Simulate ``(nsimulations, k)`` with Gaussian innovations of covariance ``sigma`` (default I)."""
        n = check_order("nsimulations", nsimulations, 1)
        c, A = self.coefs(values)
        k, p = self.k, self.p
        L = np.linalg.cholesky(np.eye(k) if sigma is None else np.asarray(sigma, float))
        rng = np.random.default_rng(rng)
        e = rng.standard_normal((n + burn, k)) @ L.T
        y = np.zeros((n + burn + p, k))
        for t in range(p, n + burn + p):
            y[t] = c + sum(A[j] @ y[t - 1 - j] for j in range(p)) + e[t - p]
        return y[p + burn:]
