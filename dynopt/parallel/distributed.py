r"""Scale-out over any :class:`concurrent.futures.Executor`: sharded gradients, parallel fits.

How the batch is split and summed: :mod:`.sharding`.

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

Timeouts: when no task finishes for ``timeout`` seconds, the started, unfinished tasks count
as stuck (a hung or silently lost worker) and are resubmitted within the same ``retries``
budget, then fail with :class:`ExecutorFailure` naming the task and the timeout.  Defaults:
600 s for the shards of one evaluation (:class:`Sharded`), 3600 s for whole runs and fits
(:func:`~dynopt.multistart`, :func:`map_fit`); ``timeout=None`` waits forever.

Modules: :mod:`.transport` (serialisation, worker caches), :mod:`.executors` (``run_tasks``,
retries, timeouts), :mod:`.sharding` (``Sharded``), :mod:`.mapping` (``map_fit``); this module
re-exports their names.
"""

from __future__ import annotations

# The implementation lives in small modules; this module keeps the names it always exported.
from .executors import (DEFAULT_RETRIES, DEFAULT_SHARD_TIMEOUT, DEFAULT_TIMEOUT, ExecutorFailure, _portable,  # noqa: F401
                        _run_call, _TaskError, as_executor, executor_width, run_tasks)
from .mapping import map_fit  # noqa: F401
from .sharding import (Sharded, _Diverged, _plan, _shard_W, _ShardEvaluation, _sub_problem, local_copy,  # noqa: F401
                       shard_bounds, sharded_value_and_grad)
from .transport import _DISPATCH, _cached_load, _dispatch, _ModulePayload, _Payload, _Pickler, dumps, loads  # noqa: F401

__all__ = [
    "ExecutorFailure", "Sharded", "as_executor", "dumps", "loads", "map_fit", "run_tasks",
    "shard_bounds", "sharded_value_and_grad",
]
