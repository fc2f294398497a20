r"""Sharded gradients: the batch split into contiguous shards evaluated on an executor.

The objective is a mean over the B scenarios of a batch, so the cost and its gradient are
sums over scenarios.  :func:`sharded_value_and_grad` splits the batch into contiguous shards
``b0:b1``, sends each shard (a sub-:class:`~dynopt.Problem` with its rows of ``x0`` and ``X``)
to a worker, and adds what comes back:

.. math::
    J = \frac{1}{B}\sum_{s} \underbrace{\sum_{b \in s} J_b}_{\text{task } s},\qquad
    \frac{\partial J}{\partial W} = \frac{1}{B}\sum_{s}\sum_{b \in s}\frac{\partial J_b}{\partial W}

Each task returns its shard's *summed* cost, summed gradient and scenario count; the
driver checks that the counts add up to B before using the sum.  The ``"x0"`` block of W
is per scenario, so its gradient rows are placed, not added.  No sum is ever formed from an
incomplete set of shards.
"""

from __future__ import annotations

import re
import weakref
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np

from ..errors import SimulationDivergedError
from ..gradients.base import BPTT, Evaluation, GradientMethod
from ..core.problem import Problem
from ..core.types import Array
from ..core.validation import check_int
from .executors import (DEFAULT_RETRIES, DEFAULT_SHARD_TIMEOUT, ExecutorFailure, as_executor, check_timeout,
                        executor_width, run_tasks)
from .transport import _DISPATCH, _dispatch, _Payload

__all__ = ["Sharded", "local_copy", "shard_bounds", "sharded_value_and_grad"]


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
                           retries: int = DEFAULT_RETRIES,
                           timeout: Optional[float] = DEFAULT_SHARD_TIMEOUT) -> Tuple[float, Array]:
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
        Resubmissions per shard after a worker failure or a timeout.
    timeout : float or None
        Seconds to wait for the next shard to finish before the unfinished shards count as
        stuck (hung or lost worker) and are resubmitted; ``None`` waits forever.  Default
        ``DEFAULT_SHARD_TIMEOUT`` (600 s).

    Returns
    -------
    J : float
        Equal to the single-process value up to summation order (~1e-15 relative).
    g : (n_decision,) array

    Raises
    ------
    ExecutorFailure
        A shard could not be completed within ``retries`` (worker died, or hung past
        ``timeout``), or came back with a scenario count
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
    outs = run_tasks(executor, _dispatch, args, retries=retries, what="sharded gradient", payload=_DISPATCH,
                     timeout=timeout)

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
        Resubmissions per shard after a worker died or hung.
    timeout : float or None
        Seconds to wait for the next shard of an evaluation to finish; past it the unfinished
        shards count as stuck (hung or lost worker): resubmitted while ``retries`` last, then
        :class:`ExecutorFailure`.  Default 600 s; ``None`` waits forever.

    Notes
    -----
    ``evaluate`` returns no trajectory (the states stay on the workers);
    ``problem.simulate(W)`` runs locally.  The shards (sub-problems with their rows of ``x0``
    and ``X``) are built and serialised at the first evaluation of a problem and reused: the
    problem's data are taken as fixed after construction.  Sharding pays when a shard's sweep takes much
    longer than a task's round trip (see ``benchmarks/bench_scaleout.py``).
    """

    def __init__(self, executor, shard_size: Optional[int] = None, *, n_shards: Optional[int] = None,
                 inner: Optional[GradientMethod] = None, retries: int = DEFAULT_RETRIES,
                 timeout: Optional[float] = DEFAULT_SHARD_TIMEOUT):
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
        self.timeout = check_timeout(timeout)

    def _evaluate(self, problem, W):
        J, g = sharded_value_and_grad(problem, W, self.executor, self.shard_size, n_shards=self.n_shards,
                                      inner=self.inner, retries=self.retries, timeout=self.timeout)
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
