"""Running tasks on any :class:`concurrent.futures.Executor`: ordered, complete results,
retries after worker failures, and a timeout for hung or lost workers.

A task whose future fails (worker process died, connection lost, task lost) or that makes no
progress within ``timeout`` seconds is submitted again, at most ``retries`` times, then
:class:`ExecutorFailure` is raised (or returned in the task's place).  An error raised *by the
computation* is carried back as a value and never retried.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import pickle
import time
import traceback
import uuid
import weakref
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Sequence

from ..core.validation import check_int
from .transport import _cached_load, _Payload

__all__ = ["DEFAULT_RETRIES", "DEFAULT_TIMEOUT", "ExecutorFailure", "as_executor", "executor_width", "run_tasks"]

DEFAULT_RETRIES = 2
"""Resubmissions allowed per task after its future failed or timed out."""

DEFAULT_TIMEOUT = 3600.0
"""Seconds without any task finishing after which the unfinished tasks count as stuck (whole
runs: :func:`~dynopt.multistart`, :func:`~dynopt.map_fit`)."""

DEFAULT_SHARD_TIMEOUT = 600.0
"""The same for the shards of one gradient evaluation (:class:`~dynopt.Sharded`)."""


class ExecutorFailure(RuntimeError):
    """The executor could not complete a task: workers died or hung more often than
    ``retries`` allows, the executor is shut down or broken, or a shard came back incomplete."""


@dataclass
class _TaskError:
    """An exception raised by the computation inside a task, carried back as a value so that
    a failed future always means a failed worker, never a failed computation."""

    exc: Optional[BaseException]
    type_name: str
    message: str
    remote_traceback: str

    def reraise(self, what: str):
        note = f"raised in a worker while running {what}; remote traceback:\n{self.remote_traceback}"
        exc = self.exc if self.exc is not None else RuntimeError(f"{self.type_name}: {self.message}")
        if hasattr(exc, "add_note"):
            exc.add_note(note)
        raise exc


def _portable(exc: BaseException) -> Optional[BaseException]:
    """``exc`` if it survives a pickle round trip (many custom exceptions do not), else None."""
    try:
        return pickle.loads(pickle.dumps(exc))
    except Exception:
        return None


def _run_call(fn_token: str, fn_data: bytes, args: tuple, nonce: str):
    """Worker entry point: load the callable (cached), call it, return its value or a
    :class:`_TaskError`.  ``nonce`` makes every submission unique (Dask deduplicates tasks
    with equal arguments, which would turn a retry into the failed task)."""
    try:
        fn = _cached_load(fn_token, fn_data)
        return fn(*args)
    except Exception as exc:  # carried back as a value; the driver re-raises it
        return _TaskError(_portable(exc), type(exc).__name__, str(exc), traceback.format_exc())


def as_executor(executor, name: str = "executor") -> cf.Executor:
    """Return ``executor`` as a :class:`concurrent.futures.Executor`.

    A Dask ``distributed.Client`` is converted with ``client.get_executor()``; anything else
    that is not an ``Executor`` raises ``TypeError``.
    """
    if isinstance(executor, cf.Executor):
        return executor
    if type(executor).__module__.split(".")[0] == "distributed" and hasattr(executor, "get_executor"):
        return executor.get_executor()
    raise TypeError(
        f"{name}: expected a concurrent.futures.Executor (e.g. ProcessPoolExecutor(2), or "
        f"distributed.Client(address).get_executor() for a Dask cluster), got {type(executor).__name__}"
    )


_WIDTHS: "weakref.WeakKeyDictionary[cf.Executor, Tuple[float, int]]" = weakref.WeakKeyDictionary()
WIDTH_TTL = 10.0
"""Seconds a Dask cluster's measured width is reused (asking the scheduler is a round trip)."""


def executor_width(executor: cf.Executor) -> int:
    """How many tasks ``executor`` runs at once: a pool's ``max_workers``, the threads of a Dask
    cluster (asked at most every ``WIDTH_TTL`` seconds, so adaptive clusters are followed),
    else ``os.cpu_count()``."""
    client = getattr(executor, "_client", None)
    if client is not None and hasattr(client, "nthreads"):
        now = time.monotonic()
        try:
            hit = _WIDTHS.get(executor)
        except TypeError:  # not weak-referenceable
            hit = None
        if hit is not None and now - hit[0] < WIDTH_TTL:
            return hit[1]
        try:
            n = int(sum(client.nthreads().values()))
        except Exception:  # scheduler unreachable: fall back to the machine's cores
            n = 0
        if n > 0:
            try:
                _WIDTHS[executor] = (now, n)
            except TypeError:
                pass
            return n
    n = getattr(executor, "_max_workers", None)
    if isinstance(n, int) and n > 0:
        return n
    return os.cpu_count() or 1


def run_tasks(executor: Optional[cf.Executor], fn: Callable, args_list: Sequence[tuple], *,
              retries: int = DEFAULT_RETRIES, errors: str = "raise", what: str = "a task",
              payload: Optional[_Payload] = None, timeout: Optional[float] = DEFAULT_TIMEOUT,
              failures: str = "raise") -> list:
    """Run ``fn(*args)`` for every ``args`` in ``args_list``; results in input order, all present.

    Parameters
    ----------
    executor : Executor or None
        ``None`` runs the calls one after the other in this process (no timeout applies).
    fn : callable
        Serialised once (cloudpickle) and cached on the workers.
    args_list : sequence of tuples
        Arguments of each call; pickled by the executor (keep them to arrays and bytes).  A
        top-level argument that is a ``_Payload`` reaches ``fn`` as its serialised bytes
        (scattered once on a Dask cluster).
    retries : int
        Resubmissions per task after its *future* failed (dead worker, lost connection) or
        it timed out.
    errors : {"raise", "return"}
        An exception raised by ``fn`` itself is raised on the driver (pending tasks are
        cancelled), or put in the result list in its task's place.
    what : str
        Names the work in error messages.
    payload : optional
        ``fn`` already serialised (reuse across calls avoids pickling it again).
    timeout : float or None
        Seconds (> 0) the driver waits for the next task to finish.  When none finishes in
        that time, the unfinished tasks that have started (all unfinished tasks if the
        executor does not say which started) count as stuck: each is submitted again (one
        of its ``retries``) and, with no retries left, fails with :class:`ExecutorFailure`.
        ``None`` waits forever.  A hung worker keeps its slot in a process pool: after a
        timeout, replace the pool (``shutdown(wait=False, cancel_futures=True)``).
    failures : {"raise", "return"}
        A task that failed or timed out more than ``retries`` times raises
        :class:`ExecutorFailure` (pending tasks are cancelled), or the ``ExecutorFailure``
        takes its place in the result list while the other tasks complete.

    Raises
    ------
    ExecutorFailure
        A task's future failed or timed out more than ``retries`` times, or the executor
        refused work.
    KeyboardInterrupt
        Ctrl-C while waiting: pending tasks are cancelled and the exception carries
        ``partial``, the results so far (``None`` for unfinished tasks).
    """
    retries = check_int("retries", retries, minimum=0)
    if errors not in ("raise", "return"):
        raise ValueError(f"errors: expected 'raise' or 'return', got {errors!r}")
    if failures not in ("raise", "return"):
        raise ValueError(f"failures: expected 'raise' or 'return', got {failures!r}")
    timeout = check_timeout(timeout)
    n = len(args_list)
    if executor is None:
        out = []
        for i, args in enumerate(args_list):
            args = tuple(a.data if isinstance(a, _Payload) else a for a in args)
            try:
                out.append(fn(*args))
            except Exception as exc:
                if errors == "raise":
                    raise
                out.append(exc)
        return out
    executor = as_executor(executor)
    payload = payload or _Payload(fn)
    results: List[Any] = [None] * n
    attempts = [0] * n
    # Dask hashes the arguments of "pure" tasks to deduplicate them (~7 ms for a shard's payload
    # on a busy core); dynopt's tasks are unique anyway (nonce), so skip that.
    dask = type(executor).__module__.startswith("distributed.")
    extra = {"pure": False} if dask else {}
    client = getattr(executor, "_client", None) if dask else None

    def submit(i):
        fresh = attempts[i] > 0  # a retry may have lost the scattered copies with its worker
        try:
            args = tuple(a.ref(client, fresh=fresh) if isinstance(a, _Payload) else a for a in args_list[i])
            return executor.submit(_run_call, payload.token, payload.ref(client, fresh=fresh, broadcast=True), args,
                                   uuid.uuid4().hex, **extra)
        except Exception as exc:  # BrokenProcessPool, "cannot schedule new futures after shutdown"
            raise ExecutorFailure(
                f"{what}: the executor refused task {i} of {n} ({type(exc).__name__}: {exc}). A "
                f"ProcessPoolExecutor whose worker died is broken for good: create a new pool, or use "
                f"a Dask cluster, whose nannies restart dead workers"
            ) from exc

    live = {}           # future -> task index (a retried task may have several live futures)
    finished = set()

    def settle(i, value):
        finished.add(i)
        results[i] = value
        for f, j in list(live.items()):
            if j == i:
                f.cancel()
                del live[f]

    def give_up(i, failure):
        if failures == "raise":
            raise failure
        settle(i, failure)

    try:
        for i in range(n):
            live[submit(i)] = i
        last_progress = time.monotonic()
        while len(finished) < n:
            wait_for = None if timeout is None else max(0.0, last_progress + timeout - time.monotonic())
            done, _ = cf.wait(list(live), timeout=wait_for, return_when=cf.FIRST_COMPLETED)
            if not done:  # nothing finished within `timeout`: the started tasks are stuck
                unfinished = sorted({j for j in live.values() if j not in finished})
                started = sorted({j for f, j in live.items() if j not in finished and f.running()})
                for i in started or unfinished:
                    attempts[i] += 1
                    if attempts[i] > retries:
                        give_up(i, ExecutorFailure(
                            f"{what}: task {i} of {n} did not finish within timeout={timeout:g} s "
                            f"({attempts[i]} attempt(s)); gave up after retries={retries}. A worker is hung or "
                            f"was lost; no partial result was used. Raise timeout= if the task is just slow "
                            f"(None waits forever); a hung process-pool worker keeps its slot, so replace the pool"))
                        continue
                    for f, j in list(live.items()):
                        if j == i and not f.running():
                            f.cancel()
                            del live[f]
                    live[submit(i)] = i
                last_progress = time.monotonic()
                continue
            for fut in done:
                i = live.pop(fut, None)
                if i is None or i in finished:
                    continue
                try:
                    value = fut.result()
                except BaseException as exc:  # the worker, not the computation, failed
                    if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                        raise
                    if any(j == i for j in live.values()):
                        continue  # another attempt of this task is still running
                    attempts[i] += 1
                    if attempts[i] > retries:
                        failure = ExecutorFailure(
                            f"{what}: task {i} of {n} failed {attempts[i]} times "
                            f"({type(exc).__name__}: {exc}); gave up after retries={retries}. A worker died "
                            f"or lost its connection; no partial result was used")
                        failure.__cause__ = exc
                        give_up(i, failure)
                        continue
                    live[submit(i)] = i
                    continue
                last_progress = time.monotonic()
                if isinstance(value, _TaskError):
                    if errors == "raise":
                        value.reraise(f"{what} (task {i} of {n})")
                    value = value.exc if value.exc is not None else RuntimeError(f"{value.type_name}: {value.message}")
                settle(i, value)
    except KeyboardInterrupt as exc:  # Ctrl-C: what finished travels with the exception
        exc.partial = [results[i] if i in finished else None for i in range(n)]
        raise
    finally:
        for fut in live:
            fut.cancel()
    return results


def check_timeout(timeout) -> Optional[float]:
    """``timeout`` as a positive float, or None; ``ValueError``/``TypeError`` naming it otherwise."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout: expected a number of seconds > 0 or None, got {type(timeout).__name__} {timeout!r}")
    t = float(timeout)
    if not t > 0 or t != t:
        raise ValueError(f"timeout: expected a number of seconds > 0 or None, got {timeout}")
    return t
