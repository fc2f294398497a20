"""Multi-start: independent optimizations of one problem from many starts, run in parallel."""

from __future__ import annotations

import contextlib
import inspect
import threading
import warnings
from numbers import Integral
from typing import List, Optional

import numpy as np

from .executors import DEFAULT_RETRIES, DEFAULT_TIMEOUT, ExecutorFailure, as_executor, check_timeout, run_tasks
from .sharding import local_copy
from .transport import _Payload
from ..core.validation import check_int
from ..optimize import OptimizeResult, Status, optimize
from ..core.problem import Problem

__all__ = ["multistart"]


class _Run:
    """One optimization from one start; what a worker runs (serialised once, with the problem)."""

    def __init__(self, problem: Problem, method: str, kwargs: dict):
        self.problem, self.method, self.kwargs = problem, method, kwargs

    def __call__(self, index: int, W0):
        # Python's warning state (filters, showwarning) is process-wide: catch_warnings in a pool's
        # worker thread would also catch (and, while a run hangs, keep) the warnings of every other
        # thread, the driver's included.  So a run records its warnings only on a process's main
        # thread (sequential runs, process-pool workers); on worker threads (thread pools, Dask's
        # workers) they take the usual way.
        record = threading.current_thread() is threading.main_thread()
        with warnings.catch_warnings(record=True) if record else contextlib.nullcontext([]) as caught:
            if record:
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


def _not_run(index: int, W0) -> OptimizeResult:
    """The place of a run that Ctrl-C stopped before it finished (or started)."""
    res = OptimizeResult(x=np.array(W0, dtype=np.float64), fun=np.nan, success=False, status=Status.INTERRUPTED,
                         message="interrupted (KeyboardInterrupt) before this run finished", nit=0)
    res.interrupted = True
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
    messages of warnings raised during the run, recorded where the run had a process's main thread:
    sequentially or in a process pool; empty on worker threads (a thread pool, Dask's workers), whose
    runs' warnings are shown as usual because Python's warning state is shared by all threads); a run that raised has ``success=False``,
    ``fun=nan`` and ``error``.  Warns once (``RuntimeWarning``) if some runs did not succeed.

    Ctrl-C (KeyboardInterrupt) does not lose finished runs: the list is returned with the runs
    that finished, the interrupted run at its best point (in this process) and every other run
    as ``status=Status.INTERRUPTED``, ``fun=nan``; a warning says how many finished.
    """
    if not isinstance(problem, Problem):
        raise TypeError(f"problem: expected a dynopt.Problem, got {type(problem).__name__}")
    allowed = set(inspect.signature(optimize).parameters) - {"problem", "W0", "method"}
    unknown = set(optimize_kwargs) - allowed
    if unknown:
        raise TypeError(f"multistart: unknown keyword arguments {sorted(unknown)}; dynopt.optimize takes {sorted(allowed)}")
    W0s = _starts(problem, starts, seed, spread)
    interrupted = False
    if executor is None:
        retries = check_int("retries", retries, minimum=0)
        check_timeout(timeout)
        run = _Run(problem, method, {"on_interrupt": "raise", **optimize_kwargs})
        results = []
        try:
            for i, W0 in enumerate(W0s):
                results.append(run(i, W0))
        except KeyboardInterrupt as exc:  # keep the finished runs and the interrupted one's best point
            interrupted = True
            current = getattr(exc, "result", None)
            if current is not None:
                current.start, current.W0, current.warnings = len(results), W0s[len(results)].copy(), []
                results.append(current)
            results += [_not_run(j, W0s[j]) for j in range(len(results), len(W0s))]
    else:
        executor = as_executor(executor)
        run = _Run(local_copy(problem), method, optimize_kwargs)
        try:
            results = run_tasks(executor, run, list(enumerate(W0s)), retries=retries, what="multistart",
                                payload=_Payload(run), timeout=timeout, failures="return")
        except KeyboardInterrupt as exc:  # keep the runs that finished
            interrupted = True
            results = list(getattr(exc, "partial", [None] * len(W0s)))
        results = [_lost_run(i, W0s[i], r) if isinstance(r, ExecutorFailure) else
                   _not_run(i, W0s[i]) if r is None else r for i, r in enumerate(results)]
    sign = -1.0 if problem.objective == "max" else 1.0

    def key(res):
        f = float(res.fun)
        return (0, sign * f) if np.isfinite(f) else (1, 0.0)

    results.sort(key=key)  # stable: ties keep the order of the starts
    failed = [r for r in results if not r.success]
    if interrupted:
        done = sum(1 for r in results if r.status != Status.INTERRUPTED)
        warnings.warn(f"dynopt.multistart: interrupted (KeyboardInterrupt); {done} of {len(results)} runs finished, "
                      f"the others are marked status=Status.INTERRUPTED (an interrupted run keeps its best point)",
                      RuntimeWarning, stacklevel=2)
    elif failed:
        shown = "; ".join(f"start {r.start}: {r.message}" for r in failed[:3])
        warnings.warn(f"dynopt.multistart: {len(failed)} of {len(results)} runs did not succeed ({shown})",
                      RuntimeWarning, stacklevel=2)
    return results
