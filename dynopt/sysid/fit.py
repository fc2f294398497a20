r"""``identify``: fit a plant's parameters and/or initial states to measured experiments.

Weighted nonlinear least squares over all measured samples of all experiments,

.. math:: \min_z \tfrac12 \sum_{e,i,j} \Big(\frac{y_e[i]_j - h(x_e[i])_j}{\sigma_j}\Big)^2 ,

solved by :func:`scipy.optimize.least_squares` (trust-region reflective) with the exact
residual Jacobian from CasADi's forward sensitivities of the simulated records
(:mod:`dynopt.sysid.residuals`), then standard errors from Gauss-Newton (default) or the exact
Hessian, mapped to natural units by the delta method.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import casadi as ca
import numpy as np
import scipy.optimize

from ..analysis.covariance import Covariance, covariance_matrix
from ..casadi.forms import casadi_form
from ..core.components import Plant
from ..core.types import Array
from .data import Experiment
from .residuals import build_residuals
from .transforms import make_transform

__all__ = ["identify", "IdentificationResult"]

ERRORS = ("simulation", "prediction")
FIT = ("plant", "x0")
COVS = ("gauss-newton", "hessian")


@dataclass
class IdentificationResult:
    """What :func:`identify` returns.

    Attributes
    ----------
    params : dict
        Plant parameters by name (natural units), estimated and fixed, as arrays.
    theta : (n_params,) array
        The plant's full flat parameter vector (for ``Problem(params={"plant": theta})``).
    x0 : list of (n,) arrays
        Initial state of each experiment (estimated or as given).
    covariance : Covariance
        Estimates (natural units) of every fitted entry with covariance, ``se``, ``ci``, ``corr``.
    residuals : list of (N_e + 1, ny) arrays
        ``y - yhat`` per experiment (unweighted), NaN where not measured.
    outputs : list of (N_e + 1, ny) arrays
        Simulated (or one-step predicted) outputs ``yhat``.
    r2 : (ny,) array
        Coefficient of determination per output, over all measured samples.
    rss : float
        Weighted residual sum of squares ``sum (r / sigma)^2`` (measurements only).
    nobs : int
        Number of measured samples used.
    sigma2 : float
        Residual variance scale used for the covariance: 1 when ``noise_std`` states the noise,
        else ``rss / (nobs - p)``.
    loglik, aic, bic : float
        Gaussian log-likelihood (known ``noise_std``, or concentrated over an unknown common
        variance) and the information criteria (p counts the fitted entries, plus one for the
        variance when it is estimated).
    solver : scipy.optimize.OptimizeResult
        least_squares' result (``nfev``, ``njev``, ``status``, ``message``, ``optimality``).
    seconds : dict
        ``build`` (CasADi graph and Jacobian) and ``solve`` wall times [s].
    """

    params: Dict[str, Array]
    theta: Array
    x0: List[Array]
    covariance: Covariance
    residuals: List[Array]
    outputs: List[Array]
    r2: Array
    rss: float
    nobs: int
    sigma2: float
    loglik: float
    aic: float
    bic: float
    solver: scipy.optimize.OptimizeResult
    experiments: List[Experiment] = field(repr=False)
    seconds: Dict[str, float] = field(default_factory=dict)

    @property
    def success(self) -> bool:
        return bool(self.solver.success)

    @property
    def estimates(self) -> Array:
        """Every fitted entry (natural units), in the order of ``covariance.names``."""
        return self.covariance.estimates

    @property
    def se(self) -> Dict[str, float]:
        """Standard error per fitted entry name."""
        return dict(zip(self.covariance.names, self.covariance.se))

    def ci(self, alpha: float = 0.05) -> Dict[str, Array]:
        """``1 - alpha`` confidence interval per fitted entry name."""
        return dict(zip(self.covariance.names, self.covariance.ci(alpha)))

    def summary(self, alpha: float = 0.05) -> str:
        """Estimates table plus fit statistics."""
        r2 = ", ".join(f"{v:.4f}" for v in self.r2)
        return (self.covariance.summary(alpha) + f"\nnobs {self.nobs}, rss {self.rss:.6g}, sigma2 {self.sigma2:.4g}, "
                f"loglik {self.loglik:.6g}, AIC {self.aic:.6g}, BIC {self.bic:.6g}\nR2 per output: {r2}\n"
                f"least_squares: {self.solver.message} (nfev {self.solver.nfev}, njev {self.solver.njev})")

    def plot(self, experiment: Optional[int] = None, *, time=None, axes=None):
        """Measured (dots) against simulated (lines) outputs, one panel per output.

        Parameters
        ----------
        experiment : int, optional
            Which experiment (default all, overlaid).
        time : (N_e + 1,) array or float, optional
            Sample times, or the sample period [s]; default the sample index.
        axes : sequence of matplotlib Axes, optional

        Returns
        -------
        matplotlib.figure.Figure
        """
        import matplotlib.pyplot as plt
        ny = self.outputs[0].shape[1]
        if axes is None:
            fig, axes = plt.subplots(ny, 1, sharex=True, figsize=(7, 2.2 * ny), squeeze=False)
            axes = axes[:, 0]
        fig = axes[0].figure
        which = range(len(self.outputs)) if experiment is None else [experiment]
        for e in which:
            ex = self.experiments[e]
            t = np.arange(ex.N + 1, dtype=float)
            if time is not None:
                t = np.asarray(time, float) if np.ndim(time) else t * float(time)
            label = ex.name or f"experiment {e}"
            for j, ax in enumerate(axes):
                ym = np.where(ex.mask[:, j], ex.y[:, j], np.nan)
                line = ax.plot(t, self.outputs[e][:, j], "-", label=f"{label} (model)")[0]
                ax.plot(t, ym, ".", color=line.get_color(), alpha=0.6, label=f"{label} (measured)")
                ax.set_ylabel(f"y[{j}]  R2={self.r2[j]:.3f}")
        axes[0].legend(fontsize="small")
        axes[-1].set_xlabel("time" if time is not None else "sample")
        return fig


def _measure_fn(measure, n: int) -> ca.Function:
    x = ca.SX.sym("x", n)
    if measure is None:
        return ca.Function("h", [x], [x])
    if callable(measure):
        try:
            y = measure(x)
        except Exception as exc:   # the user's code on CasADi symbols: say what went wrong and where
            raise TypeError(f"measure: expected h(x) written with casadi operations for x of shape ({n}, 1), "
                            f"calling it raised {type(exc).__name__}: {exc}") from exc
        try:
            y = ca.vec(ca.SX(y)) if not isinstance(y, (list, tuple)) else ca.vertcat(*y)
        except Exception as exc:
            raise TypeError(f"measure: expected h(x) to return a casadi expression, got {type(y).__name__}") from exc
        return ca.Function("h", [x], [y])
    raw = np.asarray(measure)
    if raw.ndim == 1 and raw.dtype.kind in "iu":
        rows = raw.astype(int)
        if (rows < 0).any() or (rows >= n).any():
            raise ValueError(f"measure: expected state indices in 0..{n - 1}, got {rows.tolist()}")
        return ca.Function("h", [x], [x[rows.tolist()]])
    try:
        C = np.asarray(measure, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"measure: expected a callable h(x), a list of state indices or an (ny, {n}) matrix, "
                        f"got {type(measure).__name__}") from None
    if C.ndim != 2 or C.shape[1] != n:
        raise ValueError(f"measure: expected a callable h(x), state indices, or an (ny, {n}) matrix, "
                         f"got an array of shape {C.shape}")
    return ca.Function("h", [x], [ca.mtimes(ca.DM(C), x)])


def _named_start(plant, params) -> Array:
    if params is None:
        return np.asarray(plant.default_params(), float).copy()
    if isinstance(params, dict):
        base = plant.unflatten(np.asarray(plant.default_params(), float).copy())
        names = [n for n, _ in plant.param_spec]
        unknown = set(params) - set(names)
        if unknown:
            raise ValueError(f"params: unknown names {sorted(unknown)}; the plant's parameters are {names}")
        base.update({k: np.asarray(v, float) for k, v in params.items()})
        return plant.flatten(**base)
    a = np.asarray(params, float).ravel()
    if a.shape != (plant.n_params,):
        raise ValueError(f"params: expected {plant.n_params} values (the plant's flat parameters), got {a.shape}")
    return a.copy()


def identify(plant: Plant, experiments: Sequence[Experiment], *, measure=None, noise_std=None,
             fit: Sequence[str] = ("plant",), params=None, free: Optional[Sequence[str]] = None,
             positive: Sequence[str] = (), transform: Optional[dict] = None, bounds: Optional[dict] = None,
             error: str = "simulation", shooting: Optional[int] = None, continuity_weight: float = 1e3,
             cov: str = "gauss-newton", options: Optional[dict] = None) -> IdentificationResult:
    r"""Fit a plant to measured experiments by weighted nonlinear least squares.

    Parameters
    ----------
    plant : dynopt.Plant
        One-lag discrete-time plant with a CasADi form (``CasadiPlant``, ``CasadiODE.discretize(RK4(dt))``,
        ``Discretized(ode, RK4(dt))`` of an ODE with a form, built-in models).
    experiments : Experiment or sequence of Experiment
        Records of any lengths; NaN (or a mask) marks missing samples.
    measure : callable, index list or (ny, n) matrix, optional
        The measurement map ``y = h(x)``: ``h(x)`` written with casadi operations, the measured
        state indices, or a matrix C (``y = C x``); default: every state is measured.
    noise_std : float or (ny,) array, optional
        Noise standard deviation per output [units of y]: residuals are divided by it and the
        covariance is absolute (``sigma2 = 1``).  Default: unit weights and the noise variance
        estimated from the residuals.
    fit : subset of {"plant", "x0"}
        Estimate the plant parameters, every experiment's initial state, or both.
    params : dict or (n_params,) array, optional
        Start values (and fixed values of parameters not in ``free``); default the plant's.
    free : sequence of str, optional
        Names of the plant's parameter arrays to estimate (default all).
    positive : sequence of str
        Parameter names kept positive by log-parametrisation (``p = exp(z)``).
    transform : dict, optional
        ``{name: "log" | "identity" | (to_internal, from_internal)}`` (overrides ``positive``).
    bounds : dict, optional
        ``{name: (lo, hi)}`` in natural units (``None`` for unbounded); initial states as
        ``"x0"``.  Bounds on a log-parametrised name are mapped through ``log``.
    error : {"simulation", "prediction"}
        Multi-step simulation error, or one-step-ahead prediction error from the measured state
        (needs every state measured, ``measure=None``; initial states are not fitted).
    shooting : int, optional
        Multiple shooting: segments of this many steps, each later segment starting from a
        state node in the decision, tied by residuals ``continuity_weight (x_end - node)``.
    cov : {"gauss-newton", "hessian"}
        Covariance from ``J^T J`` or from the exact Hessian of ``0.5 |r|^2``.
    options : dict, optional
        Passed to :func:`scipy.optimize.least_squares` (``xtol``, ``ftol``, ``gtol``,
        ``max_nfev``, ``x_scale``, ``loss`` is refused: the statistics assume squares).

    Returns
    -------
    IdentificationResult
    """
    t0 = time.perf_counter()
    if not isinstance(plant, Plant):
        raise TypeError(f"plant: expected a dynopt.Plant, got {type(plant).__name__}")
    if plant.lags != 1:
        raise ValueError(f"plant: identify supports one-lag plants, got lags={plant.lags}")
    form = casadi_form(plant)
    if form is None:
        raise TypeError(f"plant: identify needs a CasADi form of the plant ({type(plant).__name__} has none); write "
                        f"it with dynopt.CasadiPlant or dynopt.CasadiODE")
    if isinstance(experiments, Experiment):
        experiments = [experiments]
    experiments = list(experiments)
    if not experiments or not all(isinstance(e, Experiment) for e in experiments):
        raise TypeError("experiments: expected an Experiment or a non-empty sequence of dynopt.sysid.Experiment")
    if error not in ERRORS:
        raise ValueError(f"error: expected one of {ERRORS}, got {error!r}")
    if cov not in COVS:
        raise ValueError(f"cov: expected one of {COVS}, got {cov!r}")
    fit = (fit,) if isinstance(fit, str) else tuple(fit)
    if not fit or any(f not in FIT for f in fit) or len(set(fit)) != len(fit):
        raise ValueError(f"fit: expected a non-empty subset of {FIT}, got {fit!r}")
    options = dict(options or {})
    if "loss" in options or "jac" in options or "bounds" in options:
        raise ValueError(f"options: 'loss', 'jac' and 'bounds' are set by identify, got {sorted(options)}")
    n, m, nX = plant.n_state, plant.n_control, plant.n_exog
    h = _measure_fn(measure, n)
    ny = h.size1_out(0)
    if h.size2_out(0) != 1 or ny == 0:
        raise ValueError(f"measure: expected h(x) to return a column of ny >= 1 outputs, got shape "
                         f"{h.size1_out(0)}x{h.size2_out(0)}")
    for i, ex in enumerate(experiments):
        ex.check(i, n, m, nX, ny)
    if error == "prediction":
        if measure is not None:
            raise ValueError("error: 'prediction' starts each step from the measured state, so every state must be "
                             "measured (measure=None); use error='simulation' with a partial measurement map")
        if "x0" in fit:
            raise ValueError("fit: one-step-ahead prediction does not use initial states; drop 'x0' from fit")
        if shooting:
            raise ValueError("shooting: multiple shooting applies to error='simulation' only")
    sig = np.ones(ny) if noise_std is None else np.broadcast_to(np.asarray(noise_std, float), (ny,)).copy()
    if not (np.isfinite(sig).all() and (sig > 0).all()):
        raise ValueError(f"noise_std: expected positive finite values (one per output, ny={ny}), got {noise_std!r}")
    if shooting is not None:
        if isinstance(shooting, bool) or not isinstance(shooting, (int, np.integer)) or shooting < 1:
            raise ValueError(f"shooting: expected a segment length >= 1 step, got {shooting!r}")
    if not (np.isfinite(continuity_weight) and continuity_weight > 0):
        raise ValueError(f"continuity_weight: expected a positive number, got {continuity_weight!r}")

    # ------------------------------------------------------------------ decision layout
    theta0 = _named_start(plant, params)
    spec = list(plant.param_spec) or [("theta", (plant.n_params,))]
    names_all = [nm for nm, _ in spec]
    free = names_all if free is None else list(free)
    unknown = [f for f in list(free) + list(positive) + list((transform or {}).keys()) + list((bounds or {}).keys())
               if f not in names_all and f != "x0"]
    if unknown:
        raise ValueError(f"free/positive/transform/bounds: unknown parameter names {sorted(set(unknown))}; the plant's "
                         f"parameters are {names_all}")
    if "plant" not in fit:
        free = []
    offsets, off = {}, 0
    for nm, shape in spec:
        size = int(np.prod(shape)) if shape else 1
        offsets[nm] = (off, size, shape)
        off += size
    tf_spec = {nm: "log" for nm in positive}
    tf_spec.update(transform or {})
    z_parts, z_names, blocks, lo_parts, hi_parts, tfs = [], [], {}, [], [], []
    zoff = 0
    for nm in free:
        o, size, shape = offsets[nm]
        tf, z0 = make_transform(nm, tf_spec.get(nm, "identity"), theta0[o:o + size])
        lo, hi = _bounds_for(nm, (bounds or {}).get(nm), size, tf)
        if ((z0 < lo) | (z0 > hi)).any():
            raise ValueError(f"params[{nm!r}]: start value {theta0[o:o + size].tolist()} outside its bounds "
                             f"{(bounds or {}).get(nm)}")
        z_parts.append(z0.ravel())
        lo_parts.append(lo)
        hi_parts.append(hi)
        tfs.append((nm, o, size, tf, zoff))
        blocks[f"plant.{nm}"] = slice(zoff, zoff + size)
        for j in range(size):
            idx = np.unravel_index(j, shape) if shape else ()
            z_names.append(f"plant.{nm}[{','.join(str(int(i)) for i in idx)}]")
        zoff += size
    x0_start = []
    for e, ex in enumerate(experiments):
        if ex.x0 is not None:
            x0_start.append(ex.x0.copy())
        elif error == "simulation" and measure is None and ex.mask[0].all():
            x0_start.append(ex.y[0].copy())
        elif error == "simulation":
            raise ValueError(f"experiments[{e}].x0: expected an initial state (start value when fitted) since "
                             f"y[0] does not measure the whole state, got None")
        else:
            x0_start.append(None)
    x0_slices = {}
    if "x0" in fit:
        blo, bhi = _bounds_for("x0", (bounds or {}).get("x0"), n, None)
        for e, ex in enumerate(experiments):
            x0_slices[e] = slice(zoff, zoff + n)
            z_parts.append(x0_start[e])
            lo_parts.append(blo)
            hi_parts.append(bhi)
            tag = ex.name or str(e)
            z_names.extend(f"x0[{tag}][{i}]" for i in range(n))
            zoff += n
        blocks["x0"] = slice(x0_slices[0].start, zoff)
    node_slices = {}
    if shooting and error == "simulation":
        for e, ex in enumerate(experiments):
            k = (ex.N - 1) // shooting
            for j in range(k):
                node_slices[(e, j)] = slice(zoff, zoff + n)
                z_names.extend(f"node[{ex.name or e}][{j}][{i}]" for i in range(n))
                z_parts.append(np.zeros(n))           # filled by a simulation from the start below
                lo_parts.append(np.full(n, -np.inf))
                hi_parts.append(np.full(n, np.inf))
                zoff += n
        if node_slices:
            blocks["nodes"] = slice(min(s.start for s in node_slices.values()), zoff)
    if zoff == 0:
        raise ValueError("fit: nothing to estimate (no free parameters and no initial states)")
    z0 = np.concatenate(z_parts)
    lo, hi = np.concatenate(lo_parts), np.concatenate(hi_parts)

    # ------------------------------------------------------------------ residual graph
    z = ca.MX.sym("z", zoff)
    free_at = {nm: (zo, tf) for nm, o, size, tf, zo in tfs}
    pieces = []
    for nm, (o, size, shape) in offsets.items():
        if nm in free_at:
            zo, tf = free_at[nm]
            pieces.append(tf.from_internal(z[zo:zo + size]))
        else:
            pieces.append(ca.DM(theta0[o:o + size]))
    p_of_z = ca.vertcat(*pieces) if pieces else ca.MX(0, 1)

    def x0_of_z(e):
        return z[x0_slices[e]] if e in x0_slices else ca.MX(ca.DM(x0_start[e]))

    def nodes_of_z(e, j):
        return z[node_slices[(e, j)]]

    step = form.function
    model = build_residuals(step, h, experiments, p_of_z=p_of_z, x0_of_z=x0_of_z, nodes_of_z=nodes_of_z, z=z,
                            sigma=sig, error=error, shooting=shooting if error == "simulation" else None,
                            continuity_weight=float(continuity_weight))
    if node_slices:   # start the nodes on the simulation from the start values
        sim = _node_starts(step, experiments, theta0, x0_start, shooting)
        for key, sl in node_slices.items():
            z0[sl] = sim[key]
    t_build = time.perf_counter() - t0

    # ------------------------------------------------------------------ solve
    memo = {}

    def rj(zv):
        key = zv.tobytes()
        if key not in memo:
            memo.clear()
            r, J = model.rj.call([zv])
            memo[key] = (r.full().ravel(), J.full())
        return memo[key]

    t1 = time.perf_counter()
    opts = dict(xtol=1e-10, ftol=1e-10, gtol=1e-10, x_scale="jac")
    opts.update(options)
    bnds = (lo, hi) if (np.isfinite(lo).any() or np.isfinite(hi).any()) else (-np.inf, np.inf)
    sol = scipy.optimize.least_squares(lambda zv: rj(zv)[0], z0, jac=lambda zv: rj(zv)[1], bounds=bnds,
                                       method="trf", **opts)
    t_solve = time.perf_counter() - t1
    zh = sol.x
    r, J = rj(zh)

    # ------------------------------------------------------------------ statistics
    nm_ = model.n_meas
    rm = r[:nm_]
    rss = float(rm @ rm)
    p = zh.size
    if noise_std is None and nm_ <= p:
        raise ValueError(f"experiments: {nm_} measured samples cannot determine {p} unknowns (need more than p)")
    dof = None if noise_std is not None else nm_ - p
    sigma2 = 1.0 if noise_std is not None else rss / dof
    if cov == "gauss-newton":
        Cz = covariance_matrix("gauss-newton", jacobian=J, scale=sigma2, names=z_names)
    else:
        Cz = covariance_matrix("hessian", hessian=model.hessian(zh), scale=sigma2, names=z_names)
    D = np.ones(p)
    est = zh.copy()
    theta = theta0.copy()
    for nm, o, size, tf, zo in tfs:
        pz = zh[zo:zo + size]
        val = np.asarray(tf.from_internal(pz.copy()), float).ravel()
        est[zo:zo + size] = val
        theta[o:o + size] = val
        D[zo:zo + size] = tf.derivative(pz)
    C = D[:, None] * Cz * D[None, :]
    covar = Covariance(est, C, tuple(z_names), cov if not any(t.name != "identity" for *_, t, _ in tfs) else
                       f"{cov} (delta method)", dof, blocks)
    x0s = [zh[x0_slices[e]].copy() if e in x0_slices else (None if x0_start[e] is None else x0_start[e].copy())
           for e in range(len(experiments))]
    outs = [np.asarray(Y).T for Y in (model.outputs(zh) if len(experiments) > 1 else [model.outputs(zh)])]
    resid = []
    for e, ex in enumerate(experiments):
        res_e = np.where(ex.mask, ex.y - outs[e], np.nan)
        if error == "prediction":
            res_e[0] = np.nan
        resid.append(res_e)
    allr = np.concatenate([np.where(ex.mask, res_e, np.nan) for ex, res_e in zip(experiments, resid)])
    ally = np.concatenate([np.where(ex.mask, ex.y, np.nan) for ex in experiments])
    ally = np.where(np.isnan(allr), np.nan, ally)
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = 1.0 - np.nansum(allr ** 2, axis=0) / np.nansum((ally - np.nanmean(ally, axis=0)) ** 2, axis=0)
    obs_sig = sig[model.meas_index[:, 2]]
    if noise_std is not None:
        loglik = -0.5 * rss - float(np.log(obs_sig).sum()) - 0.5 * nm_ * np.log(2 * np.pi)
        k_par = p
    else:
        loglik = -0.5 * nm_ * (np.log(2 * np.pi * rss / nm_) + 1.0)
        k_par = p + 1
    aic = 2 * k_par - 2 * loglik
    bic = k_par * np.log(nm_) - 2 * loglik
    return IdentificationResult(
        params=plant.unflatten(theta) if plant.param_spec else {"theta": theta}, theta=theta, x0=x0s,
        covariance=covar, residuals=resid, outputs=outs, r2=r2, rss=rss, nobs=nm_, sigma2=sigma2, loglik=float(loglik),
        aic=float(aic), bic=float(bic), solver=sol, experiments=experiments,
        seconds=dict(build=t_build, solve=t_solve))


def _bounds_for(name, b, size, tf):
    if b is None:
        return np.full(size, -np.inf), np.full(size, np.inf)
    if not (isinstance(b, (tuple, list)) and len(b) == 2):
        raise ValueError(f"bounds[{name!r}]: expected a pair (lo, hi), got {b!r}")
    lo = np.broadcast_to(np.asarray(-np.inf if b[0] is None else b[0], float), (size,)).copy()
    hi = np.broadcast_to(np.asarray(np.inf if b[1] is None else b[1], float), (size,)).copy()
    if np.isnan(lo).any() or np.isnan(hi).any() or (lo >= hi).any():
        raise ValueError(f"bounds[{name!r}]: expected lo < hi without NaN, got {b!r}")
    if tf is not None and tf.name == "log":
        with np.errstate(divide="ignore"):
            lo = np.where(lo > 0, np.log(np.maximum(lo, 1e-300)), -np.inf)
            hi = np.log(hi) if (hi > 0).all() else None
        if hi is None:
            raise ValueError(f"bounds[{name!r}]: upper bound <= 0 for a log-parametrised (positive) parameter")
    elif tf is not None and tf.name != "identity" and b != (None, None):
        raise ValueError(f"bounds[{name!r}]: bounds with a custom transform are not supported; bound the "
                         f"internal value through the transform instead")
    return lo, hi


def _node_starts(step, experiments, theta0, x0_start, L):
    out = {}
    for e, ex in enumerate(experiments):
        x = np.asarray(x0_start[e], float)
        u = ex.u if ex.u is not None else np.zeros((ex.N, 0))
        X = ex.X if ex.X is not None else np.zeros((ex.N, 0))
        j = 0
        for i in range(ex.N):
            x = np.asarray(step(x, u[i], X[i], theta0)).ravel()
            if (i + 1) % L == 0 and i + 1 < ex.N:
                out[(e, j)] = x.copy()
                j += 1
    return out
