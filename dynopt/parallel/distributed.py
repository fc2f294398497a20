r"""Scale-out over any :class:`concurrent.futures.Executor`: sharded gradients, parallel fits.

The objective is a mean over the B scenarios of a batch, so the cost and its gradient are
sums over scenarios.  :func:`sharded_value_and_grad` splits the batch into contiguous shards
``b0:b1``, sends each shard (a sub-:class:`~dynopt.Problem` with its rows of ``x0`` and ``X``)
to a worker, and adds what comes back:

.. math::
    J = \frac{1}{B}\sum_{s} \underbrace{\sum_{b \in s} J_b}_{\text{task } s},\qquad
    \frac{\partial J}{\partial W} = \frac{1}{B}\sum_{s}\sum_{b \in s}\frac{\partial J_b}{\partial W}

Each task returns its shard's *summed* cost, summed gradient and scenario count; the
driver checks that the counts add up to B before using the sum.  The ``"x0"`` block of W
is per scenario, so its gradient rows are placed, not added.

Any executor works: a local :class:`~concurrent.futures.ProcessPoolExecutor`, a thread
pool, or a Dask cluster through ``distributed.Client(address).get_executor()`` (a
``Client`` itself is accepted and converted).  dynopt never schedules work itself.

Transport: problems and callables are serialised once on the driver with cloudpickle
(lambdas and locally defined components travel), inside CasADi's pickle context so
CasADi ``Function``\ s and symbols travel too; workers cache what they unpickled.

Faults: a task whose future fails (worker process died, connection lost, task lost) is
submitted again, at most ``retries`` times, then :class:`ExecutorFailure` is raised.  An
error raised *by the computation* (a diverging simulation, a bad argument) is not retried:
it is raised on the driver as itself.  No sum is ever formed from an incomplete set of
shards.
"""

from __future__ import annotations

import concurrent.futures as cf
import io
import os
import pickle
import re
import sys
import threading
import time
import traceback
import uuid
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import SimulationDivergedError
from ..gradients.base import BPTT, Evaluation, GradientMethod
from ..core.problem import Problem
from ..core.types import Array
from ..core.validation import check_int

try:  # ships with dask; plain pickle (no lambdas, no local classes) without it
    import cloudpickle as _pickler
except ImportError:  # pragma: no cover - dask[distributed] brings cloudpickle
    _pickler = pickle

__all__ = [
    "ExecutorFailure", "Sharded", "as_executor", "dumps", "loads", "map_fit", "run_tasks",
    "shard_bounds", "sharded_value_and_grad",
]

DEFAULT_RETRIES = 2
"""Resubmissions allowed per task after its future failed (worker died, connection lost)."""


class ExecutorFailure(RuntimeError):
    """The executor could not complete a task: workers died more often than ``retries``
    allows, the executor is shut down or broken, or a shard came back incomplete."""


# ----------------------------------------------------------------------------- transport
class _Pickler(getattr(_pickler, "Pickler", pickle.Pickler)):
    """cloudpickle's pickler, plus: ``threading.local`` storage travels empty.  Components keep
    per-thread scratch (CasADi evaluation buffers) there; it is meaningless in another process
    and is rebuilt on first use."""

    def reducer_override(self, obj):
        if type(obj) is threading.local:
            return threading.local, ()
        parent = getattr(super(), "reducer_override", None)
        return NotImplemented if parent is None else parent(obj)


def _dump(obj) -> bytes:
    buf = io.BytesIO()
    _Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    return buf.getvalue()


def dumps(obj: Any) -> bytes:
    """Serialise ``obj`` for a worker: cloudpickle, inside CasADi's pickle context when CasADi
    is loaded (so CasADi symbols serialise as well as ``Function``\\ s); thread-local storage
    travels empty."""
    if "casadi" in sys.modules:
        import casadi
        with casadi.global_pickle_context():
            return b"C" + _dump(obj)
    return b"P" + _dump(obj)


def loads(data: bytes) -> Any:
    """Inverse of :func:`dumps`."""
    tag, body = data[:1], data[1:]
    if tag == b"C":
        import casadi
        with casadi.global_unpickle_context():
            return pickle.loads(body)
    if tag == b"P":
        return pickle.loads(body)
    raise ValueError(f"data: expected bytes made by dynopt.parallel.distributed.dumps, got a payload starting {data[:8]!r}")


_CACHE: "OrderedDict[tuple, Any]" = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 32


def _cached_load(token: str, data: bytes) -> Any:
    """Unpickle ``data`` once per worker process and thread (components keep scratch state,
    so threads do not share one copy)."""
    key = (token, threading.get_ident())
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
            return hit
    obj = loads(data)
    with _CACHE_LOCK:
        _CACHE[key] = obj
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return obj


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


class _Payload:
    """A callable serialised once on the driver, with a token workers cache it under.

    On a Dask executor the bytes are scattered to the cluster once (``client.scatter``) and
    tasks refer to them, so a problem's data cross the network once, not with every task;
    a lost copy (its worker died) is scattered again.
    """

    def __init__(self, fn: Callable):
        self.token = uuid.uuid4().hex
        self._remote = weakref.WeakKeyDictionary()  # Dask client -> Future of self.data
        try:
            self.data = dumps(fn)
        except Exception as exc:
            raise TypeError(
                f"cannot serialise {fn!r} for the workers ({type(exc).__name__}: {exc}); components, "
                f"problems and callables must be picklable (cloudpickle handles lambdas and local classes)"
            ) from exc

    def ref(self, client=None, *, fresh: bool = False, broadcast: bool = False):
        """``self.data``, or for a Dask client a Future of it (scattered on first use, or again
        when ``fresh`` or when the copy was lost).  ``broadcast`` copies it to every worker:
        for a callable all tasks need, so that tasks are not piled where the one copy lives."""
        if client is None:
            return self.data
        fut = None if fresh else self._remote.get(client)
        if fut is None or fut.status != "finished":
            fut = client.scatter(self.data, hash=False, broadcast=broadcast)
            self._remote[client] = fut
        return fut


# ----------------------------------------------------------------------------- executors
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
              payload: Optional[_Payload] = None) -> list:
    """Run ``fn(*args)`` for every ``args`` in ``args_list``; results in input order, all present.

    Parameters
    ----------
    executor : Executor or None
        ``None`` runs the calls one after the other in this process.
    fn : callable
        Serialised once (cloudpickle) and cached on the workers.
    args_list : sequence of tuples
        Arguments of each call; pickled by the executor (keep them to arrays and bytes).  A
        top-level argument that is a ``_Payload`` reaches ``fn`` as its serialised bytes
        (scattered once on a Dask cluster).
    retries : int
        Resubmissions per task after its *future* failed (dead worker, lost connection).
    errors : {"raise", "return"}
        An exception raised by ``fn`` itself is raised on the driver (pending tasks are
        cancelled), or put in the result list in its task's place.
    what : str
        Names the work in error messages.
    payload : optional
        ``fn`` already serialised (reuse across calls avoids pickling it again).

    Raises
    ------
    ExecutorFailure
        A task's future failed more than ``retries`` times, or the executor refused work.
    """
    retries = check_int("retries", retries, minimum=0)
    if errors not in ("raise", "return"):
        raise ValueError(f"errors: expected 'raise' or 'return', got {errors!r}")
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

    pending = {}
    try:
        for i in range(n):
            pending[submit(i)] = i
        while pending:
            done, _ = cf.wait(list(pending), return_when=cf.FIRST_COMPLETED)
            for fut in done:
                i = pending.pop(fut)
                try:
                    value = fut.result()
                except BaseException as exc:  # the worker, not the computation, failed
                    if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                        raise
                    attempts[i] += 1
                    if attempts[i] > retries:
                        raise ExecutorFailure(
                            f"{what}: task {i} of {n} failed {attempts[i]} times "
                            f"({type(exc).__name__}: {exc}); gave up after retries={retries}. A worker died "
                            f"or lost its connection; no partial result was used"
                        ) from exc
                    pending[submit(i)] = i
                    continue
                if isinstance(value, _TaskError):
                    if errors == "raise":
                        value.reraise(f"{what} (task {i} of {n})")
                    value = value.exc if value.exc is not None else RuntimeError(f"{value.type_name}: {value.message}")
                results[i] = value
    finally:
        for fut in pending:
            fut.cancel()
    return results


# ----------------------------------------------------------------------------- sharding
def shard_bounds(B: int, shard_size: Optional[int] = None, n_shards: Optional[int] = None) -> List[Tuple[int, int]]:
    """Contiguous ``(b0, b1)`` scenario ranges covering ``0..B``.

    ``shard_size`` gives shards of that many scenarios (the last may be smaller);
    ``n_shards`` gives that many shards of sizes differing by at most one (at most B).
    """
    B = check_int("B", B, minimum=1)
    if shard_size is not None and n_shards is not None:
        raise ValueError(f"shard_size, n_shards: give one of them, got shard_size={shard_size} and n_shards={n_shards}")
    if shard_size is not None:
        size = check_int("shard_size", shard_size, minimum=1)
        return [(b, min(b + size, B)) for b in range(0, B, size)]
    k = min(check_int("n_shards", n_shards if n_shards is not None else 1, minimum=1), B)
    edges = [B * j // k for j in range(k + 1)]
    return [(edges[j], edges[j + 1]) for j in range(k)]


@dataclass
class _Diverged:
    """A :class:`SimulationDivergedError` raised on a shard (the exception itself does not
    survive pickling); re-raised on the driver with the scenario index of the whole batch."""

    step: int
    component: str
    scenario: int
    index: Optional[int]
    value: Optional[float]


def _divergence_value(exc: SimulationDivergedError) -> Optional[float]:
    value = getattr(exc, "value", None)
    if value is not None:
        return value
    m = re.search(r"non-finite value \((.*?)\)", str(exc))
    try:
        return float(m.group(1)) if m else None
    except ValueError:
        return None


class _ShardEvaluation:
    """The callable a worker runs for one shard: ``W_shard -> (count, sum J_b, sum dJ_b/dW)``."""

    def __init__(self, problem: Problem):
        self.problem = problem

    def __call__(self, W_shard: Array):
        p = self.problem
        try:
            J, g = p.value_and_grad(W_shard)
        except SimulationDivergedError as exc:
            return _Diverged(exc.step, exc.component, exc.scenario, exc.index, _divergence_value(exc))
        # the shard's J and gradient are means over its B_s scenarios; the sums are B_s times them
        return p.B, J * p.B, np.asarray(g, dtype=np.float64) * p.B


@dataclass
class _Plan:
    bounds: List[Tuple[int, int]]
    payloads: List[_Payload]
    inner: GradientMethod
    x0_shape: Tuple[int, int, int]  # (k, B, n)


_PLANS: "weakref.WeakKeyDictionary[Problem, dict]" = weakref.WeakKeyDictionary()


def _sub_problem(problem: Problem, b0: int, b1: int, inner: GradientMethod) -> Problem:
    """The scenarios ``b0:b1`` of ``problem`` as a Problem of their own, built with the public
    constructor from the problem's public attributes."""
    return problem.scenarios(b0, b1).replace(gradient=inner)


def _plan(problem: Problem, bounds: List[Tuple[int, int]], inner: GradientMethod) -> _Plan:
    plans = _PLANS.setdefault(problem, {})
    key = (tuple(bounds), id(inner))
    plan = plans.get(key)
    if plan is None:  # the plan keeps `inner` alive, so its id is not reused while cached
        payloads = [_Payload(_ShardEvaluation(_sub_problem(problem, b0, b1, inner))) for b0, b1 in bounds]
        plan = _Plan(bounds, payloads, inner, (problem.plant.lags, problem.B, problem.plant.n_state))
        plans[key] = plan
    return plan


def _shard_W(problem: Problem, W: Array, x0_shape, b0: int, b1: int) -> Array:
    parts = []
    for name, sl in problem.block_slices().items():
        if name == "x0":
            parts.append(W[sl].reshape(x0_shape)[:, b0:b1, :].ravel())
        else:
            parts.append(W[sl])
    return np.concatenate(parts)


def sharded_value_and_grad(problem: Problem, W, executor, shard_size: Optional[int] = None, *,
                           n_shards: Optional[int] = None, inner: Optional[GradientMethod] = None,
                           retries: int = DEFAULT_RETRIES) -> Tuple[float, Array]:
    """``(J, dJ/dW)`` of ``problem`` at ``W``, the batch split into shards run on ``executor``.

    Parameters
    ----------
    problem : Problem
        B scenarios; each shard is the sub-problem of scenarios ``b0:b1`` (rows of ``x0`` and
        of ``X``), with the same components, horizon, fixed parameters and decision.
    W : (n_decision,) array
    executor : concurrent.futures.Executor or distributed.Client
    shard_size : int, optional
        Scenarios per shard (>= 1).  Default: ``n_shards`` shards.
    n_shards : int, optional
        Number of shards; default the executor's width (pool workers, Dask threads).
    inner : GradientMethod, optional
        How each shard is differentiated; default the problem's own method (BPTT unless the
        problem was given another; a :class:`Sharded` problem contributes its ``inner``).
    retries : int
        Resubmissions per shard after a worker failure.

    Returns
    -------
    J : float
        Equal to the single-process value up to summation order (~1e-15 relative).
    g : (n_decision,) array

    Raises
    ------
    ExecutorFailure
        A shard could not be completed within ``retries``, or came back with a scenario count
        other than its size (the counts must add up to B; a partial sum is never returned).
    SimulationDivergedError
        A shard's simulation diverged; ``scenario`` is the index in the whole batch.
    """
    if not isinstance(problem, Problem):
        raise TypeError(f"problem: expected a dynopt.Problem, got {type(problem).__name__}")
    executor = as_executor(executor)
    W = problem.check_W(W)
    if inner is None:
        inner = problem.gradient.inner if isinstance(problem.gradient, Sharded) else problem.gradient
    if not isinstance(inner, GradientMethod):
        raise TypeError(f"inner: expected a dynopt GradientMethod such as BPTT(), got {inner!r}")
    if isinstance(inner, Sharded):
        raise ValueError("inner: expected a local GradientMethod (e.g. BPTT()), got Sharded; shards are not sharded again")
    if shard_size is None and n_shards is None:
        n_shards = executor_width(executor)
    bounds = shard_bounds(problem.B, shard_size, n_shards)
    plan = _plan(problem, bounds, inner)

    # one task per shard; each shard has its own payload (its sub-problem), cached on workers
    args = [(pl.token, pl, (_shard_W(problem, W, plan.x0_shape, b0, b1),))
            for (b0, b1), pl in zip(bounds, plan.payloads)]
    outs = run_tasks(executor, _dispatch, args, retries=retries, what="sharded gradient", payload=_DISPATCH)

    k, B, n = plan.x0_shape
    J_sum = 0.0
    g = np.zeros(problem.n_decision)
    slices = problem.block_slices()
    counted = 0
    for s, ((b0, b1), out) in enumerate(zip(bounds, outs)):
        if isinstance(out, _Diverged):
            raise SimulationDivergedError(out.step, out.component, None if out.scenario is None else out.scenario + b0,
                                          out.index, out.value)
        count, J_s, g_s = out
        g_s = np.asarray(g_s, dtype=np.float64)
        n_dec_s = problem.n_decision - (k * B * n - k * (b1 - b0) * n if "x0" in slices else 0)
        if count != b1 - b0 or g_s.shape != (n_dec_s,):
            raise ExecutorFailure(
                f"shard {s} (scenarios {b0}:{b1}) came back with count {count} and a gradient of shape "
                f"{g_s.shape}; expected count {b1 - b0} and shape ({n_dec_s},). Refusing a partial sum"
            )
        counted += count
        J_sum += J_s
        off = 0
        for name, sl in slices.items():
            size = (k * (b1 - b0) * n) if name == "x0" else sl.stop - sl.start
            part = g_s[off:off + size]
            off += size
            if name == "x0":
                g[sl].reshape(k, B, n)[:, b0:b1, :] = part.reshape(k, b1 - b0, n)
            else:
                g[sl] += part
    if counted != B:
        raise ExecutorFailure(f"the shards covered {counted} scenarios, expected B={B}; refusing a partial sum")
    with np.errstate(over="ignore", invalid="ignore"):
        return J_sum / B, g / B


def _dispatch(token: str, data: bytes, args: tuple):
    """Run a per-task serialised callable (each shard has its own sub-problem)."""
    return _cached_load(token, data)(*args)


class _ModulePayload(_Payload):
    """A module-level function, pickled by reference (no per-call cost)."""

    def __init__(self, fn):
        self.token = f"{fn.__module__}.{fn.__qualname__}"
        self.data = b"P" + pickle.dumps(fn)

    def ref(self, client=None, *, fresh: bool = False, broadcast: bool = False):
        return self.data  # a few bytes: not worth a scatter


_DISPATCH = _ModulePayload(_dispatch)


class Sharded(GradientMethod):
    """Gradient strategy: split the batch into shards evaluated on an executor, then add.

    ``Problem(..., gradient=Sharded(executor))`` makes ``value_and_grad`` and
    :func:`dynopt.optimize` run every evaluation through ``executor``.

    Parameters
    ----------
    executor : concurrent.futures.Executor or distributed.Client
        Where shards run: ``ProcessPoolExecutor(2)``, or a Dask cluster's executor.
    shard_size : int, optional
        Scenarios per shard; default one shard per worker (``n_shards``).
    n_shards : int, optional
        Number of shards (default the executor's width).
    inner : GradientMethod, optional
        Method applied to each shard; default :class:`~dynopt.BPTT`.
    retries : int
        Resubmissions per shard after a worker died.

    Notes
    -----
    ``evaluate`` returns no trajectory (the states stay on the workers);
    ``problem.simulate(W)`` runs locally.  The shards (sub-problems with their rows of ``x0``
    and ``X``) are built and serialised at the first evaluation of a problem and reused: the
    problem's data are taken as fixed after construction.  Sharding pays when a shard's sweep takes much
    longer than a task's round trip (see ``benchmarks/bench_scaleout.py``).
    """

    def __init__(self, executor, shard_size: Optional[int] = None, *, n_shards: Optional[int] = None,
                 inner: Optional[GradientMethod] = None, retries: int = DEFAULT_RETRIES):
        self.executor = as_executor(executor)
        if shard_size is not None and n_shards is not None:
            raise ValueError(f"shard_size, n_shards: give one of them, got shard_size={shard_size} and n_shards={n_shards}")
        self.shard_size = None if shard_size is None else check_int("shard_size", shard_size, minimum=1)
        self.n_shards = None if n_shards is None else check_int("n_shards", n_shards, minimum=1)
        inner = BPTT() if inner is None else inner
        if not isinstance(inner, GradientMethod) or isinstance(inner, Sharded):
            raise TypeError(f"inner: expected a local dynopt GradientMethod such as BPTT(), got {inner!r}")
        self.inner = inner
        self.retries = check_int("retries", retries, minimum=0)

    def _evaluate(self, problem, W):
        J, g = sharded_value_and_grad(problem, W, self.executor, self.shard_size, n_shards=self.n_shards,
                                      inner=self.inner, retries=self.retries)
        # one forward and one backward sweep over the whole batch (the template counts them)
        return Evaluation(J, g, None, {"forward": 1, "backward": 1})

    def __reduce__(self):
        raise TypeError("Sharded holds an executor and cannot be pickled; ship the problem with a local "
                        "gradient method (dynopt.multistart does this for you)")

    def __repr__(self):
        size = f"shard_size={self.shard_size}" if self.shard_size else f"n_shards={self.n_shards}"
        return f"Sharded({type(self.executor).__name__}, {size}, inner={self.inner!r})"


def local_copy(problem: Problem) -> Problem:
    """``problem`` with a :class:`Sharded` gradient replaced by its inner method (for shipping
    the whole problem to one worker, e.g. one run of a multi-start)."""
    if not isinstance(problem.gradient, Sharded):
        return problem
    return problem.replace(gradient=problem.gradient.inner)


# ----------------------------------------------------------------------------- many fits
def map_fit(fn: Callable, items: Iterable, executor=None, *, retries: int = DEFAULT_RETRIES,
            errors: str = "raise") -> list:
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
        Resubmissions per item after a worker died.
    errors : {"raise", "return"}
        ``"raise"``: the first exception raised by ``fn`` is raised here (naming the item) and
        the remaining tasks are cancelled.  ``"return"``: the exception object takes the item's
        place in the result list.

    Returns
    -------
    list, ``len(items)`` entries, in the order of ``items``.
    """
    if not callable(fn):
        raise TypeError(f"fn: expected a callable, got {type(fn).__name__}")
    items = list(items)
    if executor is not None:
        executor = as_executor(executor)
    return run_tasks(executor, fn, [(item,) for item in items], retries=retries, errors=errors,
                     what=f"map_fit({getattr(fn, '__name__', type(fn).__name__)})")
