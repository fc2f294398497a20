r"""The fit driver shared by every model and the result it returns.

Conventions (stated once, used by every model):

* ``llf`` is the log-likelihood the model maximises (exact Gaussian for ``method="mle"``,
  conditional Gaussian given the first ``p`` observations for ``method="css"`` and for AR/ARX/
  VAR), in natural parameters, with the innovation variance a parameter.
* ``aic = -2 llf + 2 k`` and ``bic = -2 llf + k log(nobs)``, ``k`` = number of estimated
  parameters including variances, ``nobs`` = observations entering the likelihood.
* ``cov`` in the convention chosen at fit time (``cov_type``, :mod:`.covariance`); ``H``, the
  Hessian of ``llf`` in natural parameters at the estimate, is analytic for the linear models and
  otherwise central differences of the **exact** gradient (step ``h_i = eps^(1/3) max(|x_i|,
  floor)``, error O(h^2) ~ 1e-11 relative), symmetrised.  Default ``"nonrobust"`` = ``inv(-H)``
  (statsmodels' ``cov_type="approx"``); VAR adds statsmodels' degrees-of-freedom correction.
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

from .fitargs import check_optimizer, check_options, check_start_domain

HESSIAN_REL_STEP = np.finfo(float).eps ** (1 / 3)


def _bfgs_takes_hess_inv0() -> bool:
    """Whether this SciPy's BFGS accepts an initial inverse Hessian (``hess_inv0``)."""
    import inspect
    try:
        from scipy.optimize._optimize import _minimize_bfgs
        return "hess_inv0" in inspect.signature(_minimize_bfgs).parameters
    except (ImportError, TypeError, ValueError):
        return False


_BFGS_HESS_INV0 = _bfgs_takes_hess_inv0()


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


def minimize_transformed(objective: Callable, transform, start, *, method="BFGS", options=None, scale=1.0, u0=None):
    """Minimise ``objective(params) -> (f, g)`` over ``params = transform(u)``.

    Returns ``(params, scipy result)``; ``f / scale`` is what SciPy sees.  ``u0`` (unconstrained)
    overrides ``start``.
    """
    method = check_optimizer(method)
    options = check_options(options, method)
    u0 = check_start_domain(transform, start) if u0 is None else np.asarray(u0, dtype=np.float64)

    def fun(u):
        params = transform(u)
        f, g = objective(params)
        if not np.isfinite(f):
            return np.inf, np.zeros_like(u)
        return f / scale, transform.jacobian(u).T @ g / scale

    opts = {"gtol": 1e-8, "maxiter": 2000}
    if method == "L-BFGS-B":
        opts = {"gtol": 1e-10, "ftol": 1e-15, "maxiter": 5000}
    opts.update(options)
    if opts.get("hess_inv0", 0) is None or (method != "BFGS" and "hess_inv0" in opts) or not _BFGS_HESS_INV0:
        opts.pop("hess_inv0", None)  # (a warm start only: SciPy's BFGS without it is the same method)
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
        Estimates in natural parameters (``params`` is the same, labelled).
    llf : float
        Log-likelihood at the estimate (convention in :mod:`.results`).
    nobs : int
        Observations in the likelihood.
    cov : (k, k) array
        Covariance of the estimates in the convention ``cov_type`` (:mod:`.covariance`).
    grad : (k,) array
        Exact gradient of ``llf`` at the estimate (near zero at an interior optimum).
    resid : (nobs,) array or pandas Series
        Residuals (one-step prediction errors / innovations), as the model defines them; a Series
        on the input's index when the input was a pandas object.
    optimizer : scipy.optimize.OptimizeResult or None
        The raw optimiser result in unconstrained parameters (None for closed-form fits).
    method : str
    extra : dict
    cov_type : str
        ``"nonrobust"``, ``"opg"``, ``"robust"``, ``"r-css"`` or ``"none"`` (:mod:`.covariance`),
        with ``df_correction`` stating whether the degrees-of-freedom correction was applied.
    std_resid : (nobs,) array or None
        Standardised residuals (residual / its conditional standard deviation): the input of the
        residual diagnostics in :meth:`summary`.
    """

    model: object
    param_names: List[str]
    values: np.ndarray
    llf: float
    nobs: int
    cov: np.ndarray
    grad: np.ndarray
    resid: object
    optimizer: Optional[object] = None
    method: str = ""
    extra: Dict[str, object] = field(default_factory=dict)
    cov_type: str = "nonrobust"
    df_correction: bool = False
    std_resid: Optional[np.ndarray] = None

    @property
    def params(self):
        """Estimates as a pandas Series labelled by ``param_names``."""
        import pandas as pd
        return pd.Series(np.asarray(self.values, dtype=np.float64), index=list(self.param_names), name="params")

    @property
    def k(self) -> int:
        """Estimated parameters counted by AIC/BIC: ``values`` plus variances concentrated out
        of the likelihood (``extra["n_sigma"]``: VAR's k(k+1)/2, the recurrent model's 1) and diffuse
        initial states (``extra["k_diffuse"]``, counted as statsmodels does)."""
        return len(self.values) + int(self.extra.get("n_sigma", 0)) + int(self.extra.get("k_diffuse", 0))

    @property
    def aic(self) -> float:
        return -2.0 * self.llf + 2.0 * self.k

    @property
    def bic(self) -> float:
        return -2.0 * self.llf + self.k * np.log(self.nobs)

    @property
    def hqic(self) -> float:
        return -2.0 * self.llf + 2.0 * self.k * np.log(np.log(self.nobs))

    def _series(self, v, name):
        import pandas as pd
        return pd.Series(v, index=list(self.param_names), name=name)

    @property
    def bse(self):
        """Standard errors (root diagonal of ``cov``), a Series labelled like ``params``."""
        d = np.diag(self.cov)
        with np.errstate(invalid="ignore"):
            return self._series(np.where(d > 0, np.sqrt(np.abs(d)), np.nan), "bse")

    @property
    def zvalues(self):
        with np.errstate(invalid="ignore", divide="ignore"):
            return self._series(self.values / self.bse.to_numpy(), "z")

    tvalues = zvalues

    @property
    def pvalues(self):
        """Two-sided p-values of ``z`` (normal reference distribution)."""
        return self._series(2 * norm.sf(np.abs(self.zvalues.to_numpy())), "P>|z|")

    def cov_params(self):
        """``cov`` as a labelled DataFrame."""
        import pandas as pd
        return pd.DataFrame(self.cov, index=list(self.param_names), columns=list(self.param_names))

    @property
    def converged(self) -> bool:
        return optimizer_converged(self.optimizer)

    def forecast(self, steps: int = 1, alpha: float = 0.05, **kwargs):
        """``h``-step forecasts: a DataFrame with columns ``mean``, ``se``, ``lower``, ``upper``
        (intervals at level ``1 - alpha`` from Gaussian innovations) indexed after the sample
        (dates extended for a date index); VAR: a dict of such tables, one column per series."""
        return self.model.forecast(self, steps, alpha=alpha, **kwargs)

    def simulate(self, nsimulations: int, *, rng=None, **kwargs):
        """Simulate the fitted model (see the model's ``simulate``)."""
        return self.model.simulate(self.values, nsimulations, rng=rng, **kwargs)

    def diagnostics(self, lags: int = 1):
        """Ljung-Box (at ``lags``), Jarque-Bera and heteroskedasticity tests of the standardised
        residuals (:mod:`.diagnostics`), or None when the model has no scalar residual."""
        from .diagnostics import residual_tests
        e = self.std_resid
        if e is None:
            return None
        e = np.asarray(e, dtype=np.float64)
        return residual_tests(e, lags) if e.ndim == 1 and len(e) > 3 * lags + 3 else None

    def _header(self):
        name = getattr(self.model, "name", type(self.model).__name__)
        info = getattr(self.model, "info", None)
        dep = ", ".join(info.names) if info is not None else "y"
        sample = ["0", f"- {self.nobs}"]
        idx = getattr(info, "index", None)
        if idx is not None and len(idx):
            def fmt(v):  # Periods as themselves (1871, 1959Q1), timestamps as dates
                return v.strftime("%Y-%m-%d") if hasattr(v, "strftime") and not hasattr(v, "freqstr") else str(v)
            sample = [fmt(idx[0]), f"- {fmt(idx[-1])}"]
        elif info is not None:
            sample = ["0", f"- {len(getattr(self.model, 'y', []))}"]
        left = [("Dep. Variable:", dep), ("Model:", name), ("Method:", self.method), ("Sample:", sample[0]),
                ("", sample[1]), ("Covariance Type:", self.cov_type + (" (df-corrected)" if self.df_correction
                                                                           else ""))]
        right = [("No. Observations:", f"{self.nobs}"), ("Log Likelihood", f"{self.llf:.3f}"),
                 ("AIC", f"{self.aic:.3f}"), ("BIC", f"{self.bic:.3f}"), ("HQIC", f"{self.hqic:.3f}"),
                 ("Converged:", f"{self.converged}")]
        return [f"{a:<17}{b:>21}   {c:<19}{d:>19}" for (a, b), (c, d) in zip(left, right)]

    def summary(self) -> str:
        """statsmodels-style text: header (dependent variable, model, method, sample, covariance
        type, nobs, log-likelihood, AIC/BIC/HQIC), coefficient table, residual diagnostics."""
        from .covariance import DESCRIPTIONS
        name = getattr(self.model, "name", type(self.model).__name__)
        bse = self.bse.to_numpy()
        z = self.zvalues.to_numpy()
        p = self.pvalues.to_numpy()
        lo, hi = self.values - 1.959963984540054 * bse, self.values + 1.959963984540054 * bse
        rule, thin = "=" * 80, "-" * 80
        lines = [f"{name + ' Results':^80}", rule] + self._header() + [rule,
                 f"{'':<16}{'coef':>12}{'std err':>12}{'z':>9}{'P>|z|':>9}{'[0.025':>11}{'0.975]':>11}", thin]
        for i, n in enumerate(self.param_names):
            lines.append(f"{n[:16]:<16}{self.values[i]:>12.4g}{bse[i]:>12.4g}{z[i]:>9.3f}{p[i]:>9.3f}"
                         f"{lo[i]:>11.4g}{hi[i]:>11.4g}")
        lines.append(rule)
        d = self.diagnostics()
        if d is not None:
            (q, pq), (jb, pjb), (h, ph) = d["ljung_box"], d["jarque_bera"], d["heteroskedasticity"]
            rows = [("Ljung-Box (L1) (Q):", q, "Jarque-Bera (JB):", jb), ("Prob(Q):", pq, "Prob(JB):", pjb),
                    ("Heteroskedasticity (H):", h, "Skew:", d["skew"]),
                    ("Prob(H) (two-sided):", ph, "Kurtosis:", d["kurtosis"])]
            lines += [f"{a:<26}{b:>12.2f}   {c:<26}{e:>13.2f}" for a, b, c, e in rows] + [rule]
        gmax = np.max(np.abs(self.grad)) if np.size(self.grad) else 0.0
        lines.append(f"Covariance: {DESCRIPTIONS.get(self.cov_type, self.cov_type)}"
                     + ("; coefficient block times n / (n - k)" if self.df_correction else ""))
        lines.append(f"max |d llf / d param| at the estimate: {gmax:.2e}")
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


def warn_better_start(what, llf_default, llf_best, start):
    warnings.warn(f"{what}: start {start} of the multi-start found a higher log-likelihood ({llf_best:.8g}) than the "
                  f"default start ({llf_default:.8g}); the default start stopped at a local optimum; returning "
                  f"the best",
                  RuntimeWarning, stacklevel=4)


def forecast_frame(info, n_obs, **columns):
    """Forecast columns ``(steps,)`` as a DataFrame indexed after the sample (:func:`.data.forecast_index`)."""
    import pandas as pd
    from .data import forecast_index
    steps = len(next(iter(columns.values())))
    return pd.DataFrame(columns, index=forecast_index(info, n_obs, steps))


def warn_not_converged(res, what):
    if not optimizer_converged(res):
        warnings.warn(f"{what}: the optimiser did not report success ({res.message}); check .grad", RuntimeWarning,
                      stacklevel=3)
