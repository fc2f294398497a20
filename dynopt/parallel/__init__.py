"""Parallel execution over any concurrent.futures Executor: sharded gradients, multi-start, map_fit."""

from .executors import ExecutorFailure
from .mapping import map_fit
from .sharding import Sharded, sharded_value_and_grad
from .multistart import multistart

__all__ = ["ExecutorFailure", "Sharded", "map_fit", "multistart", "sharded_value_and_grad"]
