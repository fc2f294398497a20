r"""Forward and backward sweeps over a segment of time steps.

These are the engine's two loops.  Full BPTT is one segment ``[0, T)``; checkpointed BPTT
calls the same functions on shorter segments.  Neither knows what a plant is: they chain
components through the contract in :mod:`dynopt.core.components`.

Adjoint recursion (Werbos eq. 16, written for steps ``t = T-1 .. 0``)::

    lam[t] = dl_t/dx[t] + (dpi_t/dx[t])^T ubar[t] + sum_{j=0..k-1} (df_{t+j}/dx[t])^T lam[t+j+1]
    ubar[t] = dl_t/du[t] + (df_t/du[t])^T lam[t+1]

The *window* carries ``[lam[t+1], partial lam[t], ..., partial lam[t-k+1]]`` (k + 1 arrays,
``None`` for zero) from one step to the next.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

from .components import add_adjoint, add_param_grad
from ..errors import SimulationDivergedError
from .types import Array

CHECK_EVERY = 16
"""How often (in steps) the fast forward path checks the state for NaN/inf."""


@dataclass
class Setup:
    """Everything a sweep needs, resolved from a problem and a decision vector W.

    ``X`` is ``(T, B, nX)`` or ``None``; ``hist0`` is ``(x[0], x[-1], ..., x[-k+1])``.
    ``c_bar`` is the adjoint seed of every per-step cost, ``sign / B`` per scenario.
    """

    plant: object
    policy: object
    cost: Optional[object]
    terminal: Optional[object]
    theta: Array
    phi: Array
    p_cost: Array
    p_term: Array
    X: Optional[Array]
    hist0: tuple
    T: int
    B: int
    sign: float
    c_bar: Array = field(init=False)

    def __post_init__(self):
        self.c_bar = np.full(self.B, self.sign / self.B)


@dataclass
class Segment:
    """Result of a forward sweep over steps ``[t0, t1)``.

    ``xs`` holds ``x[t0+1 .. t1]`` and ``us`` holds ``u[t0 .. t1-1]`` when kept; ``costs``
    is ``(t1 - t0, B)`` stage costs; ``tape`` the per-step contexts for the backward sweep;
    ``hist`` the history at ``t1`` (newest first).
    """

    t0: int
    t1: int
    hist: tuple
    costs: Array
    xs: List[Array]
    us: List[Array]
    tape: list


def _x_at(setup: Setup, t: int):
    return None if setup.X is None else setup.X[t]


def forward_segment(setup: Setup, hist: tuple, t0: int, t1: int, *, keep: bool) -> Segment:
    """Simulate steps ``t0 .. t1-1`` from history ``hist`` (states at ``t0``, newest first).

    Parameters
    ----------
    keep : bool
        Keep contexts (for a backward sweep) and the states and controls (for a trajectory).

    Raises
    ------
    SimulationDivergedError
        If a state, control or cost is non-finite; names the step and the component.  The
        fast path checks the state every ``CHECK_EVERY`` steps and the costs at the end; on a
        hit it re-runs the segment checking every output to name the first culprit.
    """
    try:
        return _sweep(setup, tuple(hist), t0, t1, keep, checked=False)
    except _NonFinite:
        return _sweep(setup, tuple(hist), t0, t1, keep, checked=True)


class _NonFinite(Exception):
    """Internal signal: the fast sweep saw a non-finite value."""


def _sweep(setup, hist, t0, t1, keep, checked):
    plant, policy, cost = setup.plant, setup.policy, setup.cost
    theta, phi, p_cost = setup.theta, setup.phi, setup.p_cost
    k = plant.lags
    costs = np.zeros((t1 - t0, setup.B))
    xs, us, tape = [], [], []
    with np.errstate(all="ignore"):
        for t in range(t0, t1):
            Xt = None if setup.X is None else setup.X[t]
            x = hist[0]
            u, pc = policy.forward(t, x, Xt, phi)
            if checked:
                _check(u, t, "policy")
            cc = None
            if cost is not None:
                c, cc = cost.forward(t, x, u, Xt, p_cost)
                costs[t - t0] = c
                if checked:
                    _check(costs[t - t0], t, "stage cost")
            x_next, fc = plant.forward(hist, u, Xt, theta)
            if checked:
                _check(x_next, t, "plant")
            elif (t - t0) % CHECK_EVERY == CHECK_EVERY - 1 and not np.isfinite(x_next).all():
                raise _NonFinite
            hist = (x_next,) + hist[:k - 1]
            if keep:
                xs.append(x_next)
                us.append(u)
                tape.append((pc, cc, fc))
    if not checked and not (np.isfinite(costs).all() and np.isfinite(hist[0]).all()):
        raise _NonFinite
    return Segment(t0, t1, hist, costs, xs, us, tape)


def _check(arr, t, component):
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        scenario = int(bad[0])
        index = int(bad[1]) if arr.ndim > 1 else None
        raise SimulationDivergedError(t, component, scenario, index, arr[tuple(bad)])


def terminal_forward(setup: Setup, x_T: Array):
    """Terminal cost ``(B,)`` and its context, or ``(None, None)`` without one."""
    if setup.terminal is None:
        return None, None
    with np.errstate(all="ignore"):
        c, ctx = setup.terminal.forward(x_T, setup.p_term)
    _check(c, setup.T, "terminal cost")
    return c, ctx


class Grads:
    """Accumulators for the parameter adjoints of one backward sweep."""

    def __init__(self, setup: Setup):
        self.theta = np.zeros(setup.plant.n_params)
        self.phi = np.zeros(setup.policy.n_params)
        self.p_cost = np.zeros(0 if setup.cost is None else setup.cost.n_params)
        self.p_term = np.zeros(0 if setup.terminal is None else setup.terminal.n_params)


def initial_window(setup: Setup, term_ctx, grads: Grads) -> list:
    """The adjoint window at ``t = T``: ``[lam[T], None, ..., None]`` (k + 1 entries).

    Adds the terminal cost's parameter adjoint into ``grads``.
    """
    lam_T = None
    if setup.terminal is not None:
        lam_T, g = setup.terminal.vjp(term_ctx, setup.c_bar)
        grads.p_term += g
    return [lam_T] + [None] * setup.plant.lags


def backward_segment(setup: Setup, seg: Segment, window: list, grads: Grads) -> list:
    """Run the adjoint recursion over the segment's steps, newest first.

    ``window`` enters as ``[lam[t1], partial lam[t1-1], ..., partial lam[t1-k]]`` and leaves
    as the same for ``t0``; parameter adjoints are added into ``grads``.
    """
    plant, policy, cost = setup.plant, setup.policy, setup.cost
    c_bar = setup.c_bar
    k = plant.lags
    tape = seg.tape
    for i in range(len(tape) - 1, -1, -1):
        pc, cc, fc = tape[i]
        lam_next = window[0]
        u_bar = None
        if lam_next is not None:
            hist_bar, u_bar, th = plant.vjp(fc, lam_next)
            add_param_grad(grads.theta, th)
            for j in range(k):
                if hist_bar[j] is not None:
                    window[j + 1] = add_adjoint(window[j + 1], hist_bar[j])
        if cost is not None:
            xc, uc, pg = cost.vjp(cc, c_bar)
            add_param_grad(grads.p_cost, pg)
            window[1] = add_adjoint(window[1], xc)
            u_bar = add_adjoint(u_bar, uc)
        if u_bar is not None:
            xp, phb = policy.vjp(pc, u_bar)
            add_param_grad(grads.phi, phb)
            window[1] = add_adjoint(window[1], xp)
        window = window[1:] + [None]
    return window
