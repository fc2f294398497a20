"""How to differentiate: strategy objects a :class:`~dynopt.Problem` is given.

``Problem(..., gradient=BPTT())`` is the default; tests and :func:`dynopt.check_gradient`
swap strategies on one problem.  A strategy's :meth:`GradientMethod.evaluate` returns
``(J, dJ/dW, trajectory or None)``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Optional, Tuple

import numpy as np

from ..core.problem import Problem, Trajectory, objective_value
from ..core.sweeps import Grads, backward_segment, forward_segment, initial_window, terminal_forward
from ..core.types import Array


class GradientMethod(ABC):
    """A way of computing ``(J, dJ/dW)`` for a problem."""

    @abstractmethod
    def evaluate(self, problem: Problem, W: Array) -> Tuple[float, Array, Optional[Trajectory]]:
        """Return ``J``, ``dJ/dW`` of shape ``(n_decision,)`` and, if it came for free, the trajectory."""

    def value_and_grad(self, problem: Problem, W: Array) -> Tuple[float, Array]:
        """``(J, dJ/dW)`` only."""
        J, g, _ = self.evaluate(problem, W)
        return J, g

    def __repr__(self):
        return f"{type(self).__name__}()"


def assemble_gradient(problem: Problem, grads: Grads, window: list) -> Array:
    """Pack the parameter adjoints and the initial-history adjoint into ``dJ/dW``.

    ``window`` is the adjoint window after the sweep reached ``t = 0``:
    ``[lam[0], lam[-1], ..., lam[-k+1], ...]``.
    """
    parts = []
    for name in problem.decision:
        if name == "x0":
            k, B, n = problem.plant.lags, problem.B, problem.plant.n_state
            lam = np.zeros((k, B, n))
            for j in range(k):
                if window[j] is not None:
                    lam[j] = window[j]
            parts.append(lam.ravel())
        else:
            parts.append({"policy": grads.phi, "plant": grads.theta,
                          "cost": grads.p_cost, "terminal": grads.p_term}[name])
    return np.concatenate(parts)


class BPTT(GradientMethod):
    """Backpropagation through time with the whole trajectory stored.

    One forward sweep keeps every step's context; one backward sweep runs the adjoint
    recursion of :mod:`dynopt.core.sweeps`.  Memory O(T B n); cost a small constant times one
    simulation, whatever the size of W (Werbos 1990).
    """

    def evaluate(self, problem, W):
        setup = problem.setup(W)
        problem.counts["forward"] += 1
        seg = forward_segment(setup, setup.hist0, 0, setup.T, keep=True)
        term, tctx = terminal_forward(setup, seg.hist[0])
        traj = problem._trajectory(setup, seg, term)
        grads = Grads(setup)
        problem.counts["backward"] += 1
        window = self.backward(setup, seg, tctx, grads)
        return traj.objective, assemble_gradient(problem, grads, window), traj

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
        if step is not None and not step > 0:
            raise ValueError(f"step: expected a positive number, got {step}")
        self.step = step

    def steps(self, W: Array) -> Array:
        """Per-entry step sizes ``(len(W),)``."""
        if self.step is not None:
            return np.full(W.shape, float(self.step))
        return np.finfo(float).eps ** (1 / 3) * np.maximum(1.0, np.abs(W))

    def evaluate(self, problem, W):
        W = np.array(W, dtype=np.float64)
        J = problem.value(W)
        g = np.empty_like(W)
        for i, h in enumerate(self.steps(W)):
            w = W[i]
            W[i] = w + h
            fp = problem.value(W)
            W[i] = w - h
            fm = problem.value(W)
            W[i] = w
            g[i] = (fp - fm) / (2 * h)
        return J, g, None

    def __repr__(self):
        return f"FiniteDifferences(step={self.step})"
