"""Multi-start: independent optimizations of one problem from many starts, run in parallel."""

from __future__ import annotations

import inspect
import warnings
from numbers import Integral
from typing import List, Optional

import numpy as np

from .executors import DEFAULT_RETRIES, DEFAULT_TIMEOUT, ExecutorFailure, as_executor, run_tasks
from .sharding import local_copy
from .transport import _Payload
from ..optimize import OptimizeResult, optimize
from ..core.problem import Problem

__all__ = ["multistart"]


class _Run:
    """One optimization from one start; what a worker runs (serialised once, with the problem)."""

    def __init__(self, problem: Problem, method: str, kwargs: dict):
        self.problem, self.method, self.kwargs = problem, method, kwargs

    def __call__(self, index: int, W0):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                res = optimize(self.problem, W0, method=self.method, **self.kwargs)
            except Exception as exc:  # a failed run is a result, not the end of the search
                res = OptimizeResult(x=np.array(W0, dtype=np.float64), fun=np.nan, success=False, status=-1,
                                     message=f"{type(exc).__name__}: {exc}", nit=0)
                res.error = f"{type(exc).__name__}: {exc}"
        res.start = index
        res.W0 = np.array(W0, dtype=np.float64)
        res.warnings = [str(w.message) for w in caught]
        return res


def _lost_run(index: int, W0, failure: ExecutorFailure) -> OptimizeResult:
    """The result of a run whose worker died or hung past the timeout."""
    res = OptimizeResult(x=np.array(W0, dtype=np.float64), fun=np.nan, success=False, status=-1,
                         message=f"ExecutorFailure: {failure}", nit=0)
    res.error = res.message
    res.start, res.W0, res.warnings = index, np.array(W0, dtype=np.float64), []
    return res


def _starts(problem: Problem, starts, seed, spread) -> List[np.ndarray]:
    if isinstance(starts, Integral) and not isinstance(starts, bool):
        if starts < 1:
            raise ValueError(f"starts: expected a number of starts >= 1 or a list of W0, got {starts}")
        rng = np.random.default_rng(seed)
        spread = np.broadcast_to(np.asarray(spread, dtype=np.float64), (problem.n_decision,))
        W0 = problem.W0
        return [W0 + spread * rng.standard_normal(problem.n_decision) for _ in range(int(starts))]
    if seed is not None:
        raise ValueError("seed: only used when starts is a number of random starts; got a list of starts and a seed")
    try:
        out = [problem.check_W(W) for W in starts]
    except TypeError as exc:
        if "iterable" in str(exc):
            raise TypeError(f"starts: expected an int or a sequence of W0 arrays, got {type(starts).__name__}") from None
        raise
    if not out:
        raise ValueError("starts: expected at least one start, got an empty sequence")
    return out


def multistart(problem: Problem, starts, executor=None, *, method: str = "BFGS", seed: Optional[int] = None,
               spread=1.0, retries: int = DEFAULT_RETRIES, timeout: Optional[float] = DEFAULT_TIMEOUT,
               **optimize_kwargs) -> List[OptimizeResult]:
    """Run :func:`dynopt.optimize` from many starts, in parallel on ``executor``; best first.

    Parameters
    ----------
    problem : Problem
        Shipped to the workers once per call (cloudpickle).  A problem whose gradient is
        :class:`~dynopt.parallel.distributed.Sharded` runs each start with the inner method when an
        executor is given (runs are the parallel unit); with ``executor=None`` the runs go
        one after the other and each evaluation is sharded.
    starts : int or sequence of (n_decision,) arrays
        The starts W0; an int n draws ``problem.W0 + spread * N(0, 1)`` n times from
        ``numpy.random.default_rng(seed)``.
    executor : concurrent.futures.Executor, distributed.Client or None
        ``None`` runs in this process.
    method : {"BFGS", "CG", "L-BFGS-B"}
    seed : int, optional
        Seed of the random starts (int ``starts`` only).
    spread : float or (n_decision,) array
        Standard deviation of the random starts around ``problem.W0``, in the units of W.
    retries : int
        Resubmissions of a run whose worker died or hung.
    timeout : float or None
        Seconds to wait for the next run to finish; past it the runs that have started count
        as stuck (hung or lost worker) and are resubmitted while ``retries`` last; a run that
        still does not finish becomes a failed result (``success=False``, ``error`` says
        why) and the other runs are kept.  Default ``DEFAULT_TIMEOUT`` (3600 s); ``None``
        waits forever.  No timeout applies with ``executor=None``.
    **optimize_kwargs
        Passed to :func:`dynopt.optimize` (``options``, ``bounds``, ``tol``, ...).

    Returns
    -------
    list of OptimizeResult, one per start, best objective first (lowest cost, or highest
    utility for ``objective="max"``); runs that raised or ended non-finite come last.  Each
    result also carries ``start`` (its index in ``starts``), ``W0`` and ``warnings`` (the
    messages of warnings raised during the run); a run that raised has ``success=False``,
    ``fun=nan`` and ``error``.  Warns once (``RuntimeWarning``) if some runs did not succeed.
    """
    if not isinstance(problem, Problem):
        raise TypeError(f"problem: expected a dynopt.Problem, got {type(problem).__name__}")
    allowed = set(inspect.signature(optimize).parameters) - {"problem", "W0", "method"}
    unknown = set(optimize_kwargs) - allowed
    if unknown:
        raise TypeError(f"multistart: unknown keyword arguments {sorted(unknown)}; dynopt.optimize takes {sorted(allowed)}")
    W0s = _starts(problem, starts, seed, spread)
    if executor is None:
        run = _Run(problem, method, optimize_kwargs)
        results = run_tasks(None, run, list(enumerate(W0s)), retries=retries)
    else:
        executor = as_executor(executor)
        run = _Run(local_copy(problem), method, optimize_kwargs)
        results = run_tasks(executor, run, list(enumerate(W0s)), retries=retries, what="multistart",
                            payload=_Payload(run), timeout=timeout, failures="return")
        results = [_lost_run(i, W0s[i], r) if isinstance(r, ExecutorFailure) else r for i, r in enumerate(results)]
    sign = -1.0 if problem.objective == "max" else 1.0

    def key(res):
        f = float(res.fun)
        return (0, sign * f) if np.isfinite(f) else (1, 0.0)

    results.sort(key=key)  # stable: ties keep the order of the starts
    failed = [r for r in results if not r.success]
    if failed:
        shown = "; ".join(f"start {r.start}: {r.message}" for r in failed[:3])
        warnings.warn(f"dynopt.multistart: {len(failed)} of {len(results)} runs did not succeed ({shown})",
                      RuntimeWarning, stacklevel=2)
    return results
