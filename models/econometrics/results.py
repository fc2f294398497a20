r"""The fit driver shared by every model and the result it returns.

Conventions (stated once, used by every model):

* ``llf`` is the log-likelihood the model maximises (exact Gaussian for ``method="mle"``,
  conditional Gaussian given the first ``p`` observations for ``method="css"`` and for AR/ARX/
  VAR), in natural parameters, with the innovation variance a parameter.
* ``aic = -2 llf + 2 k`` and ``bic = -2 llf + k log(nobs)``, ``k`` = number of estimated
  parameters including variances, ``nobs`` = observations entering the likelihood.
* ``cov = inv(-H)``, ``H`` the Hessian of ``llf`` in natural parameters at the estimate,
  computed by central differences of the **exact** gradient (step ``h_i = eps^(1/3)
  max(|x_i|, 0.1)``, error O(h^2) ~ 1e-11 relative) and symmetrised; ``bse = sqrt(diag(cov))``.
  This is statsmodels' ``cov_type="approx"`` (observed information), not its default OPG.
* The optimiser is ``scipy.optimize.minimize(jac=True)`` (BFGS by default) on unconstrained
  parameters (see :mod:`.transforms`), objective ``-llf / nobs``, gradient exact and chained
  through the transform Jacobian.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import numpy as np
import scipy.optimize
from scipy.stats import norm

HESSIAN_REL_STEP = np.finfo(float).eps ** (1 / 3)


def hessian_from_gradient(grad: Callable, x, *, floor=0.1):
    """Symmetrised central-difference Jacobian of an exact gradient ``grad: (n,) -> (n,)``."""
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    H = np.empty((n, n))
    for i in range(n):
        h = HESSIAN_REL_STEP * max(abs(x[i]), floor)
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        H[:, i] = (grad(xp) - grad(xm)) / (2 * h)
    return 0.5 * (H + H.T)


def minimize_transformed(objective: Callable, transform, start, *, method="BFGS", options=None, scale=1.0):
    """Minimise ``objective(params) -> (f, g)`` over ``params = transform(u)``.

    Returns ``(params, scipy result)``; ``f / scale`` is what SciPy sees.
    """
    if method not in ("BFGS", "L-BFGS-B", "CG", "Newton-CG"):
        raise ValueError(f"optimizer: expected 'BFGS', 'L-BFGS-B', 'CG' or 'Newton-CG', got {method!r}")
    u0 = transform.inverse(start)

    def fun(u):
        params = transform(u)
        f, g = objective(params)
        if not np.isfinite(f):
            return np.inf, np.zeros_like(u)
        return f / scale, transform.jacobian(u).T @ g / scale

    opts = {"gtol": 1e-8, "maxiter": 2000}
    if method == "L-BFGS-B":
        opts = {"gtol": 1e-10, "ftol": 1e-15, "maxiter": 5000}
    opts.update(options or {})
    res = scipy.optimize.minimize(fun, u0, jac=True, method=method, options=opts)
    return transform(res.x), res


@dataclass
class FitResult:
    """Estimates and diagnostics of a fitted time-series model.

    Attributes
    ----------
    model : object
        The model (carries the data and the orders).
    param_names : list of str
    values : (k,) array
        Estimates in natural parameters.
    llf : float
        Log-likelihood at the estimate (convention in :mod:`.results`).
    nobs : int
        Observations in the likelihood.
    cov : (k, k) array
        ``inv(-H)``; ``bse`` its root diagonal.
    grad : (k,) array
        Exact gradient of ``llf`` at the estimate (near zero at an interior optimum).
    resid : array
        Residuals (one-step prediction errors / innovations), as the model defines them.
    optimizer : scipy.optimize.OptimizeResult or None
        The raw optimiser result in unconstrained parameters.
    method : str
    """

    model: object
    param_names: List[str]
    values: np.ndarray
    llf: float
    nobs: int
    cov: np.ndarray
    grad: np.ndarray
    resid: np.ndarray
    optimizer: Optional[object] = None
    method: str = ""
    extra: Dict[str, object] = field(default_factory=dict)

    @property
    def params(self) -> Dict[str, float]:
        """Named estimates, in ``param_names`` order."""
        return dict(zip(self.param_names, self.values.tolist()))

    @property
    def k(self) -> int:
        """Estimated parameters counted by AIC/BIC: ``values`` plus variances concentrated out
        of the likelihood (``extra["n_sigma"]``: VAR's k(k+1)/2, the recurrent model's 1)."""
        return len(self.values) + int(self.extra.get("n_sigma", 0))

    @property
    def aic(self) -> float:
        return -2.0 * self.llf + 2.0 * self.k

    @property
    def bic(self) -> float:
        return -2.0 * self.llf + self.k * np.log(self.nobs)

    @property
    def bse(self) -> np.ndarray:
        d = np.diag(self.cov)
        with np.errstate(invalid="ignore"):
            return np.where(d > 0, np.sqrt(np.abs(d)), np.nan)

    @property
    def converged(self) -> bool:
        return optimizer_converged(self.optimizer)

    def forecast(self, steps: int = 1, alpha: float = 0.05, **kwargs):
        """``h``-step forecasts: dict with ``mean``, ``se``, ``lower``, ``upper`` (intervals at
        level ``1 - alpha`` from Gaussian innovations), shapes ``(steps,)`` or ``(steps, k)``."""
        return self.model.forecast(self, steps, alpha=alpha, **kwargs)

    def simulate(self, nsimulations: int, *, rng=None, **kwargs):
        """Simulate the fitted model (see the model's ``simulate``)."""
        return self.model.simulate(self.values, nsimulations, rng=rng, **kwargs)

    def summary(self) -> str:
        """A plain-text table: estimate, standard error, z, p-value, 95% interval."""
        z = self.values / self.bse
        p = 2 * norm.sf(np.abs(z))
        lo, hi = self.values - 1.959963984540054 * self.bse, self.values + 1.959963984540054 * self.bse
        name = getattr(self.model, "name", type(self.model).__name__)
        lines = [f"{name}   method: {self.method}   nobs: {self.nobs}",
                 f"log-likelihood: {self.llf:.6f}   AIC: {self.aic:.4f}   BIC: {self.bic:.4f}",
                 f"max |d llf / d param| at the estimate: {np.max(np.abs(self.grad)) if self.grad.size else 0.0:.2e}"
                 f"   converged: {self.converged}",
                 f"{'':<14}{'coef':>13}{'std err':>12}{'z':>9}{'P>|z|':>9}{'[0.025':>12}{'0.975]':>12}"]
        for i, n in enumerate(self.param_names):
            lines.append(f"{n:<14}{self.values[i]:>13.6f}{self.bse[i]:>12.6f}{z[i]:>9.3f}{p[i]:>9.3f}"
                         f"{lo[i]:>12.6f}{hi[i]:>12.6f}")
        lines.append("std err: observed information inv(-H), H by central differences of the exact gradient")
        return "\n".join(lines)

    def __str__(self):
        return self.summary()


def gaussian_interval(mean, se, alpha):
    """``(lower, upper)`` of a two-sided Gaussian interval at level ``1 - alpha``."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha: expected a level in (0, 1), got {alpha}")
    z = norm.ppf(1 - alpha / 2)
    return mean - z * se, mean + z * se


GRAD_TOL = 1e-6
"""An optimiser run that ends with "precision loss" counts as converged when the largest entry of
the per-observation gradient (in unconstrained parameters) is below this."""


def optimizer_converged(res) -> bool:
    """SciPy's ``success``, or a stop for precision loss at a gradient below :data:`GRAD_TOL`."""
    if res is None or res.success:
        return True
    jac = getattr(res, "jac", None)
    return jac is not None and bool(np.all(np.isfinite(jac))) and float(np.max(np.abs(jac), initial=0.0)) < GRAD_TOL


def warn_not_converged(res, what):
    if not optimizer_converged(res):
        warnings.warn(f"{what}: the optimiser did not report success ({res.message}); check .grad", RuntimeWarning,
                      stacklevel=3)
