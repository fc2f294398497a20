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
(the columns of statsmodels' ``VARResults.params``).  Standard errors use the MLE ``Sigma``
(statsmodels' use ``Sigma * n / (n - k p - 1)``).
"""

from __future__ import annotations

import numpy as np

from ..linear import LinearPlant
from .data import check_multiseries, check_order
from .results import FitResult, gaussian_interval, hessian_from_gradient, minimize_transformed, warn_not_converged
from .transforms import Transform

LOG2PI = np.log(2 * np.pi)


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
        self.y = check_multiseries(y, min_length=self.p + 2, what=f"a VAR({self.p}) model")
        N, k = self.y.shape
        self.k = k
        self.nobs = N - self.p
        if self.nobs <= k * self.p + 1:
            raise ValueError(f"y: expected more than {k * self.p + 1 + self.p} observations for a VAR({self.p}) "
                             f"of {k} series, got {N}")
        self.name = f"VAR({self.p}), {k} series"
        self.plant = LinearPlant(np.zeros((self.p, k, k)), np.zeros((k, 0)), E=np.zeros((k, 1)))
        # observed history, time as the batch: hist[j][t] = y[p + t - 1 - j]
        self._hist = tuple(self.y[self.p - 1 - j:N - 1 - j] for j in range(self.p))
        self._target = self.y[self.p:]
        self._ones = np.ones((self.nobs, 1))
        self._u = np.zeros((self.nobs, 0))
        self.param_names = [f"y{j + 1}.const" for j in range(k)]
        self.param_names = [f"y{j + 1}." + n for j in range(k) for n in
                            ["const"] + [f"L{i + 1}.y{m + 1}" for i in range(self.p) for m in range(k)]]

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
        Z = np.concatenate([self._ones] + list(self._hist), axis=1)
        coef = np.linalg.lstsq(Z, self._target, rcond=None)[0]  # (1 + k p, k)
        return coef.T.ravel()

    def fit(self, *, start="ols", optimizer: str = "BFGS", options=None, hessian: str = "analytic") -> FitResult:
        """Maximise the concentrated likelihood by BFGS on exact gradients.

        ``start``: ``"ols"`` (the closed-form maximiser, confirmed by the gradient), ``"zeros"``
        or an array of coefficients.  ``hessian``: ``"analytic"`` (at the maximum the profile
        Hessian is ``-(Sigma^-1 kron Z'Z)``, ``Z`` the regressors ``(1, y_{t-1}, ..)``) or
        ``"differences"`` (central differences of the exact gradient; the tests check both agree).
        """
        if hessian not in ("analytic", "differences"):
            raise ValueError(f"hessian: expected 'analytic' or 'differences', got {hessian!r}")
        if isinstance(start, str):
            if start not in ("ols", "zeros"):
                raise ValueError(f"start: expected 'ols', 'zeros' or an array, got {start!r}")
            start = self.ols() if start == "ols" else np.zeros(len(self.param_names))
        start = np.asarray(start, dtype=np.float64)

        def objective(v):
            llf, g = self.loglike_and_grad(v)
            return -llf, -g

        values, res = minimize_transformed(objective, Transform([("free", len(start))]), start, method=optimizer,
                                           options=options, scale=self.nobs)
        warn_not_converged(res, f"{self.name} fit")
        llf, g = self.loglike_and_grad(values)
        E = self.residuals(values)
        if hessian == "analytic":
            Z = np.concatenate([self._ones] + list(self._hist), axis=1)
            C = np.kron(E.T @ E / self.nobs, np.linalg.inv(Z.T @ Z))
        else:
            C = np.linalg.inv(-hessian_from_gradient(lambda v: self.loglike_and_grad(v)[1], values))
        out = FitResult(self, list(self.param_names), values, float(llf), self.nobs, C, g, E, res, "conditional mle")
        out.extra["sigma_u"] = E.T @ E / self.nobs
        out.extra["n_sigma"] = self.k * (self.k + 1) // 2
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
        Sig = result.extra["sigma_u"]
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
        return {"mean": mean, "se": se, "lower": lo, "upper": hi, "mse": mse}

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
