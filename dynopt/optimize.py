"""The optimizer front end: ``scipy.optimize.minimize`` fed by one forward and one backward
sweep per distinct W."""

from __future__ import annotations

import warnings
from collections import OrderedDict
from typing import Callable, Optional

import numpy as np
import scipy.optimize

from .errors import SimulationDivergedError
from .core.problem import BLOCKS, Problem

METHODS = ("BFGS", "CG", "L-BFGS-B")
"""The scipy methods dynopt drives (all gradient based, ``jac=True``)."""


DIVERGENCE_PENALTY = 1e4
"""A diverging trial point costs ``f0 + DIVERGENCE_PENALTY * max(1, |f0|)``, f0 the start's value."""


class OptimizeResult(scipy.optimize.OptimizeResult):
    """SciPy's result plus what a dynamic-optimization user reads next.

    Attributes (besides SciPy's ``x, fun, jac, nit, nfev, njev, success, status, message``)
    ----------
    fun : float
        The objective as stated: a cost when minimising, the utility U when ``objective="max"``.
    trajectory : dynopt.Trajectory
        The simulation at ``x`` (states ``(T+1, B, n)``, controls ``(T, B, m)``, ...).
    params : dict
        ``problem.named(x)``: the optimised blocks as named arrays.
    cost_history : (nit + 1,) array
        Objective at the start and after each iteration.
    grad_norm_history : (nit + 1,) array
        ``||dJ/dW||_2`` at the same points.
    diverged_evaluations : int
        Trial points whose simulation turned non-finite (handed to SciPy as a large finite
        cost, see ``DIVERGENCE_PENALTY``).
    """


class _Evaluator:
    """Memoises (J, g, trajectory) by W so that no W is simulated twice."""

    def __init__(self, problem: Problem, sign: float, max_grad_norm: Optional[float], keep: int = 4):
        self.problem, self.sign, self.max_grad_norm = problem, sign, max_grad_norm
        self.cache: "OrderedDict[bytes, tuple]" = OrderedDict()
        self.keep = keep
        self.diverged = 0
        self.penalty = None
        self.last_divergence: Optional[SimulationDivergedError] = None

    def lookup(self, W):
        return self.cache.get(np.asarray(W, dtype=np.float64).tobytes())

    def __call__(self, W):
        key = W.tobytes()
        hit = self.cache.get(key)
        if hit is None:
            try:
                J, g, traj = self.problem.gradient.evaluate(self.problem, self.problem.check_W(W))
            except SimulationDivergedError as exc:
                if self.penalty is None:
                    raise
                # A diverging trial point is handed to SciPy as a finite cost far above the
                # start (so no sufficient-decrease test accepts it) with a zero gradient:
                # +inf made L-BFGS-B report convergence at the start, and astronomically large
                # values broke CG's step interpolation.
                self.diverged += 1
                self.last_divergence = exc
                J, g, traj = self.sign * self.penalty, np.zeros_like(W), None  # returned as penalty
            hit = (J, g, traj)
            self.cache[key] = hit
            if len(self.cache) > self.keep:
                self.cache.popitem(last=False)
        J, g, _ = hit
        g = self.sign * g
        if self.max_grad_norm is not None:
            from .gradients.clipping import clip_gradient
            g = clip_gradient(g, self.max_grad_norm)
        return self.sign * J, g


def _expand_bounds(problem: Problem, bounds):
    """Bounds as SciPy takes them; a dict maps decision blocks to ``(lo, hi)`` scalars or arrays."""
    if not isinstance(bounds, dict):
        return bounds
    lo = np.full(problem.n_decision, -np.inf)
    hi = np.full(problem.n_decision, np.inf)
    slices = problem.block_slices()
    for name, pair in bounds.items():
        if name not in slices:
            raise ValueError(f"bounds: block {name!r} is not in the decision {problem.decision}")
        try:
            b_lo, b_hi = pair
        except (TypeError, ValueError):
            raise TypeError(f"bounds[{name!r}]: expected a pair (lo, hi), got {pair!r}") from None
        sl = slices[name]
        lo[sl] = -np.inf if b_lo is None else np.broadcast_to(np.asarray(b_lo, float).ravel(), (sl.stop - sl.start,))
        hi[sl] = np.inf if b_hi is None else np.broadcast_to(np.asarray(b_hi, float).ravel(), (sl.stop - sl.start,))
    if np.any(lo > hi):
        i = int(np.argmax(lo > hi))
        raise ValueError(f"bounds: lower bound {lo[i]} exceeds upper bound {hi[i]} at W[{i}]")
    return scipy.optimize.Bounds(lo, hi)


def optimize(problem: Problem, W0=None, *, method: str = "BFGS", bounds=None,
             callback: Optional[Callable] = None, options: Optional[dict] = None, tol: Optional[float] = None,
             progress: bool = False, max_grad_norm: Optional[float] = None) -> OptimizeResult:
    """Optimise the decision vector W of ``problem`` with ``scipy.optimize.minimize``.

    Every distinct W costs one forward and one backward sweep (``jac=True``); results of
    the last few W are memoised so the final trajectory is not simulated again.

    Parameters
    ----------
    problem : Problem
    W0 : (n_decision,) array, optional
        Start; default ``problem.W0``.
    method : {"BFGS", "CG", "L-BFGS-B"}
    bounds : dict or scipy Bounds or sequence of (lo, hi), optional
        L-BFGS-B only.  A dict maps decision blocks to ``(lo, hi)`` (scalars or arrays of the
        block's size; ``None`` for unbounded), e.g. ``{"policy": (-2, 2)}`` for control limits
        of an open-loop sequence.
    callback : callable, optional
        Called after each iteration as ``callback(intermediate_result)`` with ``x``, ``fun``
        (as stated), ``grad_norm`` and ``nit``; returning True stops the run.
    options : dict, optional
        Passed to SciPy (``maxiter``, ``gtol``, ...); unknown options make SciPy warn.
    tol : float, optional
        Passed to SciPy.
    progress : bool
        Show a tqdm progress bar with the objective and gradient norm.
    max_grad_norm : float, optional
        Clip the gradient handed to SciPy to this 2-norm.  This makes the gradient
        inconsistent with J away from small steps; meant for exploding-gradient phases.

    Returns
    -------
    OptimizeResult
        SciPy's fields plus ``trajectory``, ``params``, ``cost_history``,
        ``grad_norm_history``, ``diverged_evaluations``.  Warns (``RuntimeWarning``) with
        SciPy's message when the run did not succeed.
    """
    if not isinstance(problem, Problem):
        raise TypeError(f"problem: expected a dynopt.Problem, got {type(problem).__name__}")
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise ValueError(f"method: expected one of {list(METHODS)}, got {method!r}")
    method = method.upper()
    if bounds is not None and method != "L-BFGS-B":
        raise ValueError(f"bounds: only method 'L-BFGS-B' takes bounds, got method {method!r}")
    if max_grad_norm is not None and not max_grad_norm > 0:
        raise ValueError(f"max_grad_norm: expected a positive number, got {max_grad_norm}")
    W0 = problem.check_W(problem.W0 if W0 is None else W0).copy()
    bounds = _expand_bounds(problem, bounds)
    sign = -1.0 if problem.objective == "max" else 1.0
    ev = _Evaluator(problem, sign, max_grad_norm)

    f0, g0 = ev(W0)  # the minimised value sign * J; a start that diverges raises here
    ev.penalty = f0 + DIVERGENCE_PENALTY * max(1.0, abs(f0))
    history, gnorms = [sign * f0], [float(np.linalg.norm(g0))]
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=(options or {}).get("maxiter"), desc=f"dynopt {method}", unit="it")
        bar.set_postfix(J=f"{history[0]:.6g}", grad=f"{gnorms[0]:.3g}")

    def scipy_callback(intermediate_result):
        x = intermediate_result.x
        hit = ev.lookup(x)
        J, g = (hit[0], hit[1]) if hit is not None else (sign * intermediate_result.fun, None)
        gn = float(np.linalg.norm(g)) if g is not None else float("nan")
        history.append(J)
        gnorms.append(gn)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(J=f"{J:.6g}", grad=f"{gn:.3g}")
        if callback is not None:
            info = scipy.optimize.OptimizeResult(x=x.copy(), fun=J, grad_norm=gn, nit=len(history) - 1)
            if callback(info):
                raise StopIteration

    try:
        res = scipy.optimize.minimize(ev, W0, jac=True, method=method, bounds=bounds, tol=tol,
                                      callback=scipy_callback, options=options)
    finally:
        if bar is not None:
            bar.close()

    out = OptimizeResult(res)
    out.fun = sign * float(res.fun)
    if getattr(res, "jac", None) is not None:
        out.jac = sign * np.asarray(res.jac)
    hit = ev.lookup(res.x)
    traj = hit[2] if hit is not None else None
    out.trajectory = traj if traj is not None else problem.simulate(res.x)
    out.params = problem.named(res.x)
    out.cost_history = np.asarray(history)
    out.grad_norm_history = np.asarray(gnorms)
    out.diverged_evaluations = ev.diverged
    if not res.success:
        warnings.warn(f"dynopt.optimize ({method}) did not succeed: {res.message}", RuntimeWarning, stacklevel=2)
    return out
