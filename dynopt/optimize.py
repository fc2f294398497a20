"""The optimizer front end: ``scipy.optimize.minimize`` fed by one forward and one backward
sweep per distinct W.

What this layer adds to SciPy, so that nothing fails silently and nothing is lost:

* arguments (``method``, ``bounds`` in every form, ``options``, ``tol``) are checked before
  SciPy sees them;
* a trial point whose simulation diverges is handed to SciPy as a finite wall above the
  current iterate (never NaN or inf), and a run that could not get past it says so, naming
  the step and component; a start that diverges returns a failed result;
* objectives and gradients of astronomical size are rescaled by a power of two so SciPy's
  inner products cannot overflow;
* at the end, stationarity is checked (projected gradient under bounds, relative to the
  scale of J); a quasi-Newton run that stalled is restarted (``restarts``), and a run that
  still is not stationary is reported as such;
* Ctrl-C returns the best point so far;
* the progress display degrades to periodic plain lines without a terminal.
"""

from __future__ import annotations

import enum
import contextlib
import threading
import warnings
from typing import Callable, Optional

import numpy as np
import scipy.optimize

from .core.problem import Problem
from .errors import SimulationDivergedError
from .optim.arguments import (BOUNDED, SECOND_ORDER, _integer, _number, check_options, expand_bounds,  # noqa: F401
                              scipy_option_names)
from .optim.evaluator import (DIVERGENCE_PENALTY, NONFINITE_STREAK, SCALE_THRESHOLD, _Evaluator,  # noqa: F401
                              _finite_at, _norm, _power_of_two_scale, _projected_gradient, _Rescale, _Stall)
from .optim.progress import PROGRESS_INTERVAL, _Progress

METHODS = ("BFGS", "CG", "L-BFGS-B", "Newton-CG", "trust-ncg", "trust-krylov", "trust-constr")
"""The scipy methods dynopt drives (all gradient based, ``jac=True``)."""


STATIONARITY_RTOL = 1e-3
"""Default ``stationarity_tol``: a run counts as stationary when the largest entry of the
projected gradient is at most this times the scale of J (``max(|J_start|, |J_end|)``), or at
most the requested ``gtol``."""


class Status(enum.IntEnum):
    """``OptimizeResult.status`` values dynopt adds to SciPy's (which are >= 0)."""

    DIVERGED_START = -1
    """The simulation or its gradient at W0 is non-finite; nothing was optimised."""
    ZERO_GRADIENT_START = -2
    """dJ/dW is exactly zero at W0 (saturated controller, dead units, flat plateau)."""
    INTERRUPTED = -3
    """KeyboardInterrupt (Ctrl-C); the best point so far is returned."""
    NOT_STATIONARY = -4
    """SciPy reported success but the projected gradient is not small relative to J."""
    STALLED = -5
    """SciPy's method kept proposing non-finite trial points even after the restarts."""

    def __str__(self):
        return self.name.lower().replace("_", " ")


class OptimizeResult(scipy.optimize.OptimizeResult):
    """SciPy's result plus what a dynamic-optimization user reads next.

    Attributes (besides SciPy's ``x, fun, jac, nit, nfev, njev, success, status, message``)
    ----------
    fun : float
        The objective as stated: a cost when minimising, the utility U when ``objective="max"``.
    trajectory : dynopt.Trajectory or None
        The simulation at ``x`` (states ``(T+1, B, n)``, controls ``(T, B, m)``, ...); None
        only when the start itself diverged.
    params : dict
        ``problem.named(x)``: the optimised blocks as named arrays.
    cost_history : (nit + 1,) array
        Objective at the start and after each iteration.
    grad_norm_history : (nit + 1,) array
        ``||dJ/dW||_2`` at the same points.
    diverged_evaluations : int
        Trial points whose simulation turned non-finite (see ``DIVERGENCE_PENALTY``).
    divergence : SimulationDivergedError or None
        The last divergence met (its ``step`` and ``component`` say where).
    projected_gradient : float
        Largest entry of the projected gradient at ``x`` (NaN when not computed).
    restarts : int
        How many times the method was restarted from where it stalled.
    interrupted : bool
        True when the run was stopped by KeyboardInterrupt.
    method, strategy : str
        The SciPy method and the gradient strategy used.
    gradient_path : str
        Which path the strategy ran and why (``dynopt.Auto``: "compiled (compiled sweeps 1.6 ms vs
        NumPy 80 ms per gradient)" or "numpy (...)"); the strategy's name for other strategies.
    """

def _strategy_name(problem: Problem) -> str:
    return type(problem.gradient).__name__


# ----------------------------------------------------------------------------- the front end
def optimize(problem: Problem, W0=None, *, method: str = "BFGS", bounds=None,
             callback: Optional[Callable] = None, options: Optional[dict] = None, tol: Optional[float] = None,
             progress=False, max_grad_norm: Optional[float] = None, restarts: int = 1,
             stationarity_tol: float = STATIONARITY_RTOL, on_interrupt: str = "return") -> OptimizeResult:
    """Optimise the decision vector W of ``problem`` with ``scipy.optimize.minimize``.

    Every distinct W costs one forward and one backward sweep (``jac=True``); results of
    the last few W are memoised so the final trajectory is not simulated again.

    Parameters
    ----------
    problem : Problem
    W0 : (n_decision,) array, optional
        Start; default ``problem.W0``.  Clipped into ``bounds`` (as L-BFGS-B does).
    method : {"BFGS", "CG", "L-BFGS-B", "Newton-CG", "trust-ncg", "trust-krylov", "trust-constr"}
        The Newton-type methods get exact Hessian-vector products (``problem.hessp``: forward
        mode over the adjoint sweep) as SciPy's ``hessp``.
    bounds : dict or scipy Bounds or sequence of (lo, hi), optional
        L-BFGS-B and trust-constr.  A dict maps decision blocks to ``(lo, hi)`` (scalars or arrays of the
        block's size; ``None`` for unbounded), e.g. ``{"policy": (-2, 2)}`` for control limits
        of an open-loop sequence.  Checked by :func:`expand_bounds` (length, order, NaN).
    callback : callable, optional
        Called after each iteration as ``callback(intermediate_result)`` with ``x``, ``fun``
        (as stated), ``grad_norm`` and ``nit``; returning True stops the run.
    options : dict, optional
        SciPy options of ``method`` (``maxiter``, ``gtol``, ``ftol``, ``maxcor``, ...), checked
        by :func:`check_options`: unknown names, NaN, inf or negative tolerances and counts
        below 1 are refused.  ``maxiter`` bounds the iterations of all restarts together.
    tol : float, optional
        Finite and >= 0; folded into ``options`` as SciPy does.
    progress : bool or float
        Show progress with the method and gradient strategy: a tqdm bar on a terminal,
        otherwise a plain line on stderr every ``PROGRESS_INTERVAL`` seconds (or every
        ``progress`` seconds when a positive number is given).
    max_grad_norm : float, optional
        Clip the gradient handed to SciPy to this 2-norm.  This makes the gradient
        inconsistent with J away from small steps; meant for exploding-gradient phases.
    restarts : int
        How many times a run that stalled (SciPy's line search failed, or SciPy reported
        success at a point that is not stationary) is continued from where it stopped with a
        fresh quasi-Newton memory and a fresh scale.  Runs stopped by ``maxiter``, the
        callback or Ctrl-C are not restarted.
    stationarity_tol : float
        Relative stationarity test applied at the end: the largest entry of the projected
        gradient must be at most ``stationarity_tol * |J|`` at the end (or at most the
        requested ``gtol``, default 1e-5).
    on_interrupt : {"return", "raise"}
        What Ctrl-C (KeyboardInterrupt) does: return the best point so far as a result with
        ``status=Status.INTERRUPTED``, or re-raise KeyboardInterrupt carrying that result as
        its ``.result`` attribute (for loops of optimizations, e.g. receding-horizon control,
        that must stop as a whole).

    Returns
    -------
    OptimizeResult
        SciPy's fields plus ``trajectory``, ``params``, ``cost_history``,
        ``grad_norm_history``, ``diverged_evaluations``, ``divergence``,
        ``projected_gradient``, ``restarts``, ``interrupted``, ``method``, ``strategy``.
        ``success`` is True only when SciPy converged *and* the point is stationary.  A run
        that did not succeed warns (``RuntimeWarning``) with the message.  Never raises for a
        diverging simulation: a diverging start gives ``status=Status.DIVERGED_START`` and a
        message naming the step and component; diverging trial points are stepped around or
        named in the message.  Ctrl-C gives ``status=Status.INTERRUPTED`` at the best point
        evaluated so far.  An exactly zero gradient at the start gives
        ``status=Status.ZERO_GRADIENT_START``, ``success=False``.

    Raises
    ------
    TypeError, ValueError
        Bad arguments (problem, W0, method, bounds, options, tol, max_grad_norm, restarts,
        progress, stationarity_tol), before any simulation.
    """
    if not isinstance(problem, Problem):
        raise TypeError(f"problem: expected a dynopt.Problem, got {type(problem).__name__}")
    canonical = {m.upper(): m for m in METHODS}
    if not isinstance(method, str) or method.upper() not in canonical:
        raise ValueError(f"method: expected one of {list(METHODS)}, got {method!r}")
    method = canonical[method.upper()]
    if bounds is not None and method not in BOUNDED:
        raise ValueError(f"bounds: only methods {list(BOUNDED)} take bounds, got method {method!r}")
    if max_grad_norm is not None:
        max_grad_norm = _number("max_grad_norm", max_grad_norm, minimum=0.0, strict=True)
    restarts = _integer("restarts", restarts, 0)
    if on_interrupt not in ("return", "raise"):
        raise ValueError(f"on_interrupt: expected 'return' or 'raise', got {on_interrupt!r}")
    stationarity_tol = _number("stationarity_tol", stationarity_tol, minimum=0.0)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback: expected a callable or None, got {type(callback).__name__}")
    if isinstance(progress, bool):
        interval = PROGRESS_INTERVAL
    else:
        interval = _number("progress", progress, minimum=0.0, strict=True)
        progress = True
    opts = check_options(method, options, None)
    if tol is not None:
        opts = check_options(method, opts, tol)
    if method == "trust-krylov":
        # trlib's inexact subproblem solves produced non-finite trial points on a plain LQ problem
        # (thousands, then maxiter); exact subproblem solves converge in a few iterations
        opts.setdefault("inexact", False)
    W0 = problem.check_W(problem.W0 if W0 is None else W0).copy()
    bounds = expand_bounds(problem, bounds)
    if bounds is not None:
        W0 = np.clip(W0, bounds.lb, bounds.ub)
    sign = -1.0 if problem.objective == "max" else 1.0
    strategy = _strategy_name(problem)
    ev = _Evaluator(problem, sign, max_grad_norm)

    def finish(x, f, g, traj, *, success, status, message, nit, nfev, njev, history, gnorms, pg=float("nan"),
               n_restarts=0, interrupted=False, warn=True):
        out = OptimizeResult(x=np.asarray(x, dtype=np.float64).copy(), fun=sign * f if f is not None else np.nan,
                             jac=None if g is None else sign * np.asarray(g), success=bool(success), status=status,
                             message=message, nit=int(nit), nfev=int(nfev), njev=int(njev))
        out.trajectory = traj
        out.params = problem.named(out.x)
        out.cost_history = np.asarray(history, dtype=np.float64)
        out.grad_norm_history = np.asarray(gnorms, dtype=np.float64)
        out.diverged_evaluations = ev.diverged
        out.divergence = ev.last_divergence
        out.projected_gradient = float(pg)
        out.restarts = int(n_restarts)
        out.interrupted = bool(interrupted)
        out.method, out.strategy = method, strategy
        describe = getattr(problem.gradient, "describe", None)
        out.gradient_path = describe(problem) if callable(describe) else strategy
        if warn and not out.success:
            warnings.warn(f"dynopt.optimize ({method}, {strategy}) did not succeed: {message}", RuntimeWarning,
                          stacklevel=3)
        return out

    # ---- the start
    try:
        f0, g0, traj0 = ev.raw(W0)
    except SimulationDivergedError as exc:
        ev.last_divergence = exc
        J = np.nan
        if exc.component.endswith("dual") or exc.component == "gradient":
            try:
                J = problem.value(W0)
            except SimulationDivergedError:
                pass
        traj = None
        try:
            traj = problem.simulate(W0)
        except SimulationDivergedError:
            pass
        return finish(W0, sign * J, None, traj, success=False, status=Status.DIVERGED_START,
                      message=f"the start W0 diverged, nothing was optimised: {exc}", nit=0, nfev=1, njev=1,
                      history=[J], gnorms=[np.nan])
    history, gnorms = [sign * f0], [_norm(g0)]
    ev.set_anchor(W0, f0)
    if not np.any(g0):
        msg = ("zero gradient at the start: dJ/dW = 0 exactly at W0, so there is no direction to follow; "
               "typical causes are a saturated controller (every control at its limit), dead activations or "
               "a flat plateau of the cost. Perturb W0, widen the saturation, or use dynopt.multistart")
        return finish(W0, f0, g0, traj0 if traj0 is not None else problem.simulate(W0), success=False,
                      status=Status.ZERO_GRADIENT_START, message=msg, nit=0, nfev=1, njev=1, history=history,
                      gnorms=gnorms, pg=0.0)

    bar = None
    if progress:
        bar = _Progress(f"dynopt {method} [{strategy}]", opts.get("maxiter"), interval)
        bar.update(0, history[0], gnorms[0], step=False, path=ev.path)

    def scipy_callback(intermediate_result):
        x = intermediate_result.x
        hit = ev.lookup(x)
        if hit is not None:
            f, gn = hit[0], _norm(hit[1])
        else:
            f, gn = float(intermediate_result.fun) * ev.scale, float("nan")
        ev.set_anchor(x, f)
        J = sign * f
        history.append(J)
        rescale = ev.scale != 1.0 and hit is not None and _power_of_two_scale(f, hit[1]) < ev.scale * 2.0 ** -100
        gnorms.append(gn)
        if bar is not None:
            bar.update(len(history) - 1, J, gn, path=ev.path)
        if callback is not None:
            info = scipy.optimize.OptimizeResult(x=x.copy(), fun=J, grad_norm=gn, nit=len(history) - 1)
            if callback(info):
                raise StopIteration
        if rescale:  # the objective fell by > 30 orders of magnitude: SciPy's steps would be stale
            raise _Rescale

    gtol_req = opts.get("gtol", 1e-5)
    maxiter = opts.get("maxiter")
    nit = 0
    n_restarts = 0
    x, res = W0, None
    interrupted = False
    stalled_note = ""
    try:
        while True:
            x_run = x.copy()
            f_x, g_x, _ = ev.raw(x)
            ev.set_anchor(x, f_x)
            ev.scale = _power_of_two_scale(f_x, g_x)
            run_opts = dict(opts)
            if ("gtol" in run_opts or ev.scale != 1.0) and "gtol" in scipy_option_names(method):
                run_opts["gtol"] = gtol_req / ev.scale
            if maxiter is not None:
                run_opts["maxiter"] = max(maxiter - nit, 0)
            try:
                # SciPy's "precision loss"/"maxiter" warnings are reported in the message below.  The
                # warning state is process-wide: changing it from a pool's worker thread would reach
                # (and, while a run hangs, hold) every thread's warnings, so only the main thread does
                main = threading.current_thread() is threading.main_thread()
                with warnings.catch_warnings() if main else contextlib.nullcontext():
                    if main:
                        warnings.simplefilter("ignore", scipy.optimize.OptimizeWarning)
                    extra = {"hessp": ev.hessp} if method in SECOND_ORDER else {}
                    # trlib (trust-krylov) probes NaN directions on some subproblems; ev.hessp answers
                    # them with zero curvature and the warning is SciPy-internal
                    with np.errstate(all="ignore") if method == "trust-krylov" else contextlib.nullcontext():
                        res = scipy.optimize.minimize(ev, x, jac=True, method=method, bounds=bounds,
                                                      callback=scipy_callback, options=run_opts, **extra)
                # SciPy's shortcut for bounds that fix every variable returns no status
                res.setdefault("status", 0 if res.get("success", False) else 2)
                res.setdefault("message", "")
            except _Rescale:
                x = ev.anchor[0]
                nit = len(history) - 1
                continue
            except _Stall:  # SciPy's subproblem solver kept proposing NaN points: restart from the best
                nit = len(history) - 1
                x = ev.best[1]
                if n_restarts >= restarts:
                    f_x, g_x, _ = ev.raw(x)
                    pg = float(np.max(np.abs(_projected_gradient(x, g_x, bounds)))) if x.size else 0.0
                    scale_J = abs(f_x)
                    stationary = pg <= max(gtol_req, stationarity_tol * scale_J)
                    if pg <= gtol_req:  # the NaN steps came at a point that already meets gtol
                        res = scipy.optimize.OptimizeResult(
                            x=x, success=True, status=0,
                            message=f"converged: the projected gradient {pg:.3g} meets gtol={gtol_req:.3g} at the best "
                                    f"point, where {method} went on proposing non-finite trial points")
                    else:
                        res = scipy.optimize.OptimizeResult(
                            x=x, success=False, status=Status.STALLED,
                            message=f"{method} kept proposing non-finite trial points ({NONFINITE_STREAK} in a row); "
                                    f"stopped at the best point evaluated (projected gradient {pg:.3g})")
                    break
                n_restarts += 1
                stalled_note = f"; restarted {n_restarts} time(s) from where {method} stalled"
                continue
            nit = len(history) - 1
            x = np.asarray(res.x, dtype=np.float64)
            if not np.isfinite(x).all() or ev.lookup(x) is None and not _finite_at(ev, x):
                x = ev.best[1]
            f_x, g_x, _ = ev.raw(x)
            if ev.best is not None and ev.best[0] < f_x:  # SciPy returned a worse point than it saw
                x = ev.best[1]
                f_x, g_x, _ = ev.raw(x)
            pg = float(np.max(np.abs(_projected_gradient(x, g_x, bounds)))) if x.size else 0.0
            scale_J = abs(f_x)
            stationary = pg <= max(gtol_req, stationarity_tol * scale_J)
            stop_reason = _hard_stop(method, res, maxiter, nit)
            if stop_reason or (res.success and stationary):
                break
            if n_restarts >= restarts or np.array_equal(x, x_run):  # restarting an unchanged state repeats it
                break
            n_restarts += 1
            stalled_note = f"; restarted {n_restarts} time(s) from where {method} stalled"
            if bar is not None:
                bar.note(f"restart {n_restarts}")
    except KeyboardInterrupt:
        interrupted = True
    except BaseException:
        if bar is not None:
            bar.close("stopped by an error")
        raise

    if interrupted:
        if ev.best is None:  # pragma: no cover - the start is always evaluated first
            raise KeyboardInterrupt
        f_b, x_b, g_b = ev.best
        hit = ev.lookup(x_b)
        traj = hit[2] if hit is not None and hit[2] is not None else problem.simulate(x_b)
        pg = float(np.max(np.abs(_projected_gradient(x_b, g_b, bounds)))) if x_b.size else 0.0
        msg = (f"interrupted (KeyboardInterrupt) after {len(history) - 1} iterations; returning the best point "
               f"evaluated so far (J={sign * f_b:.6g})")
        if bar is not None:
            bar.close(msg)
        out = finish(x_b, f_b, g_b, traj, success=False, status=Status.INTERRUPTED, message=msg,
                     nit=len(history) - 1, nfev=max(ev.calls, 1), njev=max(ev.calls, 1), history=history,
                     gnorms=gnorms, pg=pg, n_restarts=n_restarts, interrupted=True, warn=False)
        if on_interrupt == "raise":
            exc = KeyboardInterrupt(msg)
            exc.result = out
            raise exc
        return out

    message = str(res.message)
    success = bool(res.success)
    status = int(res.status)
    if success and not stationary:
        success, status = False, Status.NOT_STATIONARY
        message = (f"{method} reported '{message}' but the point is not stationary: the largest projected gradient "
                   f"entry is {pg:.3g}, above max(gtol={gtol_req:.3g}, stationarity_tol * |J| = "
                   f"{stationarity_tol * scale_J:.3g}); the stopping test fired early (e.g. ftol on a slowly "
                   f"decreasing objective): tighten ftol, rescale W, or raise restarts")
    elif not success and stationary and status == 2:
        message = f"{message} (at a stationary point: projected gradient {pg:.3g})"
    if not success and (ev.diverged or ev.nonfinite_points):
        d = ev.last_divergence
        message += (f"; {ev.diverged} trial point(s) diverged" + (f", the last: {d}" if d is not None else "")
                    + (f"; SciPy produced {ev.nonfinite_points} non-finite trial point(s)" if ev.nonfinite_points else ""))
    message += stalled_note if not success or n_restarts else ""
    hit = ev.lookup(x)
    traj = hit[2] if hit is not None and hit[2] is not None else problem.simulate(x)
    if bar is not None:
        bar.close(message)
    return finish(x, f_x, g_x, traj, success=success, status=status, message=message, nit=nit, nfev=ev.calls, njev=ev.calls,
                  history=history, gnorms=gnorms, pg=pg, n_restarts=n_restarts)


def _hard_stop(method: str, res, maxiter, nit) -> str:
    """Why the run must not be restarted ('' if it may): maxiter/maxfun reached or the callback stopped it."""
    if int(res.status) == 99:
        return "callback"
    if maxiter is not None and nit >= maxiter:
        return "maxiter"
    if method == "L-BFGS-B":
        return "limit" if int(res.status) == 1 else ""
    if method == "trust-constr":  # 0: maxiter, 1/2: converged, 3: callback
        return {0: "maxiter", 3: "callback"}.get(int(res.status), "")
    return "maxiter" if int(res.status) == 1 else ""


optimize.Status = Status  # ``dynopt.optimize.Status.INTERRUPTED``: the package attribute is the function
