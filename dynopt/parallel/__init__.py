"""Parallel execution over any concurrent.futures Executor: sharded gradients, multi-start, map_fit."""

from .distributed import ExecutorFailure, Sharded, map_fit, sharded_value_and_grad
from .multistart import multistart

__all__ = ["ExecutorFailure", "Sharded", "map_fit", "multistart", "sharded_value_and_grad"]
