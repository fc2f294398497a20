"""Many independent fits (one model per series) on an executor: ordered, complete results."""

from __future__ import annotations

from typing import Callable, Iterable, Optional

from .executors import DEFAULT_RETRIES, DEFAULT_TIMEOUT, as_executor, run_tasks

__all__ = ["map_fit"]


def map_fit(fn: Callable, items: Iterable, executor=None, *, retries: int = DEFAULT_RETRIES,
            errors: str = "raise", timeout: Optional[float] = DEFAULT_TIMEOUT) -> list:
    """``[fn(item) for item in items]`` run on ``executor``: ordered, complete results.

    Meant for fitting many independent series (one model fit per series) on a process pool
    or a Dask cluster.  ``fn`` is serialised once with cloudpickle (a lambda or a closure over
    a model works); each item is pickled with its task.

    Parameters
    ----------
    fn : callable
        ``fn(item) -> result``; the result must be picklable.
    items : iterable
    executor : concurrent.futures.Executor, distributed.Client or None
        ``None`` runs in this process, in order.
    retries : int
        Resubmissions per item after a worker died or hung.
    errors : {"raise", "return"}
        ``"raise"``: the first exception raised by ``fn`` is raised here (naming the item) and
        the remaining tasks are cancelled.  ``"return"``: the exception object takes the item's
        place in the result list; so does an :class:`ExecutorFailure` for an item whose worker
        died or hung more than ``retries`` times (with ``"raise"`` it is raised).
    timeout : float or None
        Seconds to wait for the next item to finish; past it the unfinished items that have
        started count as stuck (hung or lost worker) and are resubmitted while ``retries``
        last.  Default ``DEFAULT_TIMEOUT`` (3600 s); ``None`` waits forever.  No timeout
        applies with ``executor=None``.

    Returns
    -------
    list, ``len(items)`` entries, in the order of ``items``.
    """
    if not callable(fn):
        raise TypeError(f"fn: expected a callable, got {type(fn).__name__}")
    items = list(items)
    if executor is not None:
        executor = as_executor(executor)
    return run_tasks(executor, fn, [(item,) for item in items], retries=retries, errors=errors, timeout=timeout,
                     failures=errors, what=f"map_fit({getattr(fn, '__name__', type(fn).__name__)})")
