"""How to differentiate: strategy objects a :class:`~dynopt.Problem` is given.

Every strategy is a :class:`GradientMethod`; its public :meth:`~GradientMethod.evaluate`
is one template that all strategies share:

1. validate W, run the strategy's own :meth:`~GradientMethod._evaluate`;
2. add the sweeps it reports (``stats["forward"]``, ``stats["backward"]``, ...) to
   ``problem.counts`` (the only place counts change);
3. check J and dJ/dW for non-finite values; on a hit, locate it with the NumPy sweeps
   (forward: per-step values, then the running sum of costs; backward: every dual output)
   and raise :class:`~dynopt.SimulationDivergedError` naming the step and the component, so
   swapping the strategy never changes how a divergence is reported;
4. return an :class:`Evaluation` ``(J, grad, trajectory)`` with ``.stats`` (run
   statistics travel with the result, never stored on the strategy).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Optional, Tuple

import numpy as np

from ..core.problem import Problem, Trajectory
from ..core.sweeps import (Grads, backward_segment, forward_segment, initial_window, objective_value,
                           terminal_forward)
from ..core.types import Array
from ..errors import SimulationDivergedError


class Evaluation(tuple):
    """``(J, grad, trajectory)`` as a tuple, plus ``.stats`` (a dict of run statistics).

    ``trajectory`` is ``None`` when the strategy did not produce one for free.
    """

    def __new__(cls, J: float, grad: Array, trajectory: Optional[Trajectory] = None, stats: Optional[dict] = None):
        obj = super().__new__(cls, (J, grad, trajectory))
        obj.stats = dict(stats or {})
        return obj

    @property
    def J(self) -> float:
        return self[0]

    @property
    def grad(self) -> Array:
        return self[1]

    @property
    def trajectory(self) -> Optional[Trajectory]:
        return self[2]

    def __reduce__(self):
        return (Evaluation, (self[0], self[1], self[2], self.stats))


COUNTED = ("forward", "backward", "recomputed_steps")
"""Run statistics the template adds up in ``problem.counts``."""


def _record(problem: Problem, stats: dict) -> None:
    for key in COUNTED:
        if key in stats:
            problem.counts[key] = problem.counts.get(key, 0) + int(stats[key])


class GradientMethod(ABC):
    """A way of computing ``(J, dJ/dW)`` for a problem (see the module docstring).

    Subclasses implement :meth:`_evaluate` (and may override :meth:`_value`); they never
    touch ``problem.counts`` and keep no per-run state on themselves.
    """

    def evaluate(self, problem: Problem, W) -> Evaluation:
        """``Evaluation(J, dJ/dW (n_decision,), trajectory or None)`` with ``.stats``.

        Raises
        ------
        SimulationDivergedError
            If J or dJ/dW is non-finite, naming the step and the component.
        """
        W = problem.check_W(W)
        out = self._evaluate(problem, W)
        stats = dict(getattr(out, "stats", {}) or {})
        J, g, traj = out[0], out[1], out[2]
        _record(problem, stats)
        J = float(J)
        g = np.asarray(g, dtype=np.float64)
        if not np.isfinite(J):
            raise locate_forward(problem, W)
        if not np.isfinite(g).all():
            raise locate_backward(problem, W, g)
        return Evaluation(J, g, traj, stats)

    def value_and_grad(self, problem: Problem, W) -> Tuple[float, Array]:
        """``(J, dJ/dW)`` only (SciPy's ``jac=True`` convention)."""
        ev = self.evaluate(problem, W)
        return ev[0], ev[1]

    def value(self, problem: Problem, W) -> float:
        """J(W) from one forward sweep, storing nothing for a backward sweep."""
        W = problem.check_W(W)
        J, stats = self._value(problem, W)
        _record(problem, stats)
        if not np.isfinite(J):
            raise locate_forward(problem, W)
        return float(J)

    @abstractmethod
    def _evaluate(self, problem: Problem, W: Array):
        """Return ``Evaluation(J, g, trajectory or None, stats)`` (or a 3-tuple)."""

    def _value(self, problem: Problem, W: Array):
        """Return ``(J, stats)`` from a forward sweep (default: the NumPy sweep)."""
        setup = problem.setup(W)
        seg = forward_segment(setup, setup.hist0, 0, setup.T, keep=False)
        term, _ = terminal_forward(setup, seg.hist[0])
        return objective_value(seg.costs, term, setup.B), {"forward": 1}

    def __repr__(self):
        return f"{type(self).__name__}()"


def locate_forward(problem: Problem, W: Array) -> SimulationDivergedError:
    """Re-run the NumPy forward sweep to name where J became non-finite (step, component)."""
    try:
        setup = problem.setup(W)
        seg = forward_segment(setup, setup.hist0, 0, setup.T, keep=False)
        term, _ = terminal_forward(setup, seg.hist[0])
        objective_value(seg.costs, term, setup.B)
    except SimulationDivergedError as exc:
        return exc
    return SimulationDivergedError(None, "objective sum", None, None, float("nan"))


def locate_backward(problem: Problem, W: Array, g: Optional[Array] = None) -> SimulationDivergedError:
    """Re-run the NumPy sweeps, checking every dual output, to name where dJ/dW became non-finite."""
    try:
        setup = problem.setup(W)
        seg = forward_segment(setup, setup.hist0, 0, setup.T, keep=True)
        term, tctx = terminal_forward(setup, seg.hist[0])
        grads = Grads(setup)
        with np.errstate(all="ignore"):
            window = initial_window(setup, tctx, grads, checked=True)
            backward_segment(setup, seg, window, grads, checked=True)
            grads.finish(setup)
    except SimulationDivergedError as exc:
        return exc
    index = None
    value = float("nan")
    if g is not None and not np.isfinite(g).all():
        index = int(np.argmax(~np.isfinite(g)))
        value = float(g[index])
    return SimulationDivergedError(None, "gradient", None, index, value)


class BPTT(GradientMethod):
    """Backpropagation through time with the whole trajectory stored.

    One forward sweep keeps every step's context; one backward sweep runs the adjoint
    recursion of :mod:`dynopt.core.sweeps`.  Memory O(T B n); cost a small constant times one
    simulation, whatever the size of W (Werbos 1990).
    """

    def _evaluate(self, problem, W):
        setup = problem.setup(W)
        seg = forward_segment(setup, setup.hist0, 0, setup.T, keep=True)
        term, tctx = terminal_forward(setup, seg.hist[0])
        traj = problem.trajectory(setup, seg, term)
        grads = Grads(setup)
        with np.errstate(all="ignore"):
            window = self.backward(setup, seg, tctx, grads)
            grads.finish(setup)
        return Evaluation(traj.objective, problem.gradient_from(grads, window), traj, {"forward": 1, "backward": 1})

    def backward(self, setup, seg, term_ctx, grads):
        """The backward sweep over the stored segment: adds parameter adjoints into ``grads``
        and returns the adjoint window at ``t = 0``."""
        return backward_segment(setup, seg, initial_window(setup, term_ctx, grads), grads)


class FiniteDifferences(GradientMethod):
    """Central finite differences, ``2 len(W)`` forward sweeps (a cross-check, not a method).

    Parameters
    ----------
    step : float, optional
        Absolute step; default ``eps**(1/3) * max(1, |w_i|)`` per entry, which balances
        truncation error O(h^2) against rounding error O(eps/h).
    """

    def __init__(self, step: Optional[float] = None):
        if step is not None:
            if isinstance(step, bool) or not isinstance(step, (int, float, np.floating, np.integer)):
                raise TypeError(f"step: expected a positive number, got {step!r}")
            if not (np.isfinite(step) and step > 0):
                raise ValueError(f"step: expected a positive finite number, got {step}")
        self.step = step

    def steps(self, W: Array) -> Array:
        """Per-entry step sizes ``(len(W),)``."""
        if self.step is not None:
            return np.full(W.shape, float(self.step))
        return np.finfo(float).eps ** (1 / 3) * np.maximum(1.0, np.abs(W))

    def _value_at(self, problem, W):
        J, stats = self._value(problem, W)
        if not np.isfinite(J):
            raise locate_forward(problem, W)
        return J, stats["forward"]

    def _evaluate(self, problem, W):
        W = np.array(W, dtype=np.float64)
        J, sweeps = self._value_at(problem, W)
        g = np.empty_like(W)
        for i, h in enumerate(self.steps(W)):
            w = W[i]
            W[i] = w + h
            fp, a = self._value_at(problem, W)
            W[i] = w - h
            fm, b = self._value_at(problem, W)
            W[i] = w
            sweeps += a + b
            g[i] = (fp - fm) / (2 * h)
        return Evaluation(J, g, None, {"forward": sweeps})

    def __repr__(self):
        return f"FiniteDifferences(step={self.step})"


def assemble_gradient(problem: Problem, grads: Grads, window: list) -> Array:
    """``problem.gradient_from(grads, window)`` (kept for strategies written against 0.1)."""
    return problem.gradient_from(grads, window)
