r"""How problems and callables travel to workers: serialised once on the driver with
cloudpickle (lambdas and locally defined components travel), inside CasADi's pickle context
so CasADi ``Function``\ s and symbols travel too; workers cache what they unpickled; on a Dask
cluster the bytes are scattered once."""

from __future__ import annotations

import io
import pickle
import sys
import threading
import uuid
import weakref
from collections import OrderedDict
from typing import Any, Callable

try:  # ships with dask; plain pickle (no lambdas, no local classes) without it
    import cloudpickle as _pickler
except ImportError:  # pragma: no cover - dask[distributed] brings cloudpickle
    _pickler = pickle

__all__ = ["dumps", "loads"]


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
