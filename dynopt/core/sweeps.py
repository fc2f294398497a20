r"""The engine's one forward and one backward sweep over a segment of time steps.

Full BPTT is one segment ``[0, T)``; checkpointed BPTT calls the same functions on shorter
segments; truncated BPTT and the diagnostics compose the same per-component duals
(:func:`plant_dual`, :func:`policy_dual`, :func:`cost_dual`) or observe the sweep through a
``hook``.  Neither knows what a plant is: they chain components through the contract in
:mod:`dynopt.core.components`.

Adjoint recursion (Werbos eq. 16, written for steps ``t = T-1 .. 0``)::

    lam[t] = dl_t/dx[t] + (dpi_t/dx[t])^T ubar[t] + sum_{j=0..k-1} (df_{t+j}/dx[t])^T lam[t+j+1]
    ubar[t] = dl_t/du[t] + (df_t/du[t])^T lam[t+1]

(a post-step stage cost, ``timing = "post"``, adds ``dl_t/dx[t+1]`` to ``lam[t+1]`` instead).
The *window* carries ``[lam[t+1], partial lam[t], ..., partial lam[t-k+1]]`` (k + 1 arrays,
``None`` for zero) from one step to the next.

Contract checks: the first step of every forward segment and each component's first dual in
every backward segment check the outputs (type, dtype, shape) and raise ``TypeError`` /
``ValueError`` naming the component, the expected and the given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, List, Optional

import numpy as np

from ..errors import SimulationDivergedError
from .components import SliceGrad, add_adjoint, add_param_grad
from .types import Array

CHECK_EVERY = 16
"""How often (in steps) the fast forward path checks the state for NaN/inf."""


@dataclass
class Setup:
    """Everything a sweep needs, resolved from a problem and a decision vector W.

    ``theta, phi, p_cost, p_term`` are what each component's ``bind`` returned; ``X_plant``,
    ``X_policy``, ``X_cost`` each component's exogenous inputs ``(T, B, w)`` or ``None``;
    ``hist0`` is ``(x[0], x[-1], ..., x[-k+1])``.  ``c_bar`` is the adjoint seed of every
    per-step cost, ``1 / B`` per scenario (J is the batch mean).
    """

    plant: object
    policy: object
    cost: Optional[object]
    terminal: Optional[object]
    theta: object
    phi: object
    p_cost: object
    p_term: object
    X_plant: Optional[Array]
    X_policy: Optional[Array]
    X_cost: Optional[Array]
    hist0: tuple
    T: int
    B: int
    c_bar: Array = field(init=False)
    post: bool = field(init=False)

    def __post_init__(self):
        self.c_bar = np.full(self.B, 1.0 / self.B)
        self.post = self.cost is not None and getattr(self.cost, "timing", "pre") == "post"


@dataclass
class Segment:
    """Result of a forward sweep over steps ``[t0, t1)``.

    ``xs`` holds ``x[t0+1 .. t1]`` and ``us`` holds ``u[t0 .. t1-1]`` when kept; ``costs``
    is ``(t1 - t0, B)`` stage costs; ``tape`` the per-step contexts ``(policy, cost, plant)``
    for the backward sweep; ``hist`` the history at ``t1`` (newest first).
    """

    t0: int
    t1: int
    hist: tuple
    costs: Array
    xs: List[Array]
    us: List[Array]
    tape: list


# ----------------------------------------------------------------------------- contract checks
def _name(component) -> str:
    return type(component).__name__


def check_output(component, what: str, value, shape, *, allow_none: bool = False):
    """Raise unless ``value`` is a float ndarray of ``shape`` (or ``None`` when allowed)."""
    if value is None:
        if allow_none:
            return
        raise TypeError(f"{_name(component)}.{what}: expected a float array of shape {shape}, got None")
    if isinstance(value, SliceGrad):
        return
    if isinstance(value, np.generic):
        value = np.asarray(value)
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{_name(component)}.{what}: expected a float array of shape {shape}, "
                        f"got {type(value).__name__}")
    if not np.issubdtype(value.dtype, np.floating):
        raise TypeError(f"{_name(component)}.{what}: expected a float array of shape {shape}, "
                        f"got dtype {value.dtype}")
    if value.shape != tuple(shape):
        raise ValueError(f"{_name(component)}.{what}: expected shape {tuple(shape)}, got {value.shape}"
                         + (" (a per-scenario cost must not be summed over the batch)"
                            if what.endswith("cost") and value.ndim == 0 else ""))


# ----------------------------------------------------------------------------- forward
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
    Xf, Xp, Xc = setup.X_plant, setup.X_policy, setup.X_cost
    post = setup.post
    k, B = plant.lags, setup.B
    costs = np.zeros((t1 - t0, B))
    xs, us, tape = [], [], []
    with np.errstate(all="ignore"):
        for t in range(t0, t1):
            x = hist[0]
            u, pc = policy.forward(t, x, None if Xp is None else Xp[t], phi)
            if t == t0:
                check_output(policy, "forward (control u)", u, (B, plant.n_control))
            if checked:
                _check(u, t, "policy")
            cc = None
            if cost is not None and not post:
                c, cc = cost.forward(t, x, u, None if Xc is None else Xc[t], p_cost)
                if t == t0:
                    check_output(cost, "forward (stage cost)", c, (B,))
                costs[t - t0] = c
                if checked:
                    _check(costs[t - t0], t, "stage cost")
            x_next, fc = plant.forward(hist, u, None if Xf is None else Xf[t], theta)
            if t == t0:
                check_output(plant, "forward (next state)", x_next, (B, plant.n_state))
            if checked:
                _check(x_next, t, "plant")
            elif (t - t0) % CHECK_EVERY == CHECK_EVERY - 1 and not np.isfinite(x_next).all():
                raise _NonFinite
            if post:
                c, cc = cost.forward(t, x_next, u, None if Xc is None else Xc[t], p_cost)
                if t == t0:
                    check_output(cost, "forward (stage cost)", c, (B,))
                costs[t - t0] = c
                if checked:
                    _check(costs[t - t0], t, "stage cost")
            hist = (x_next,) + hist[:k - 1]
            if keep:
                xs.append(x_next)
                us.append(u)
                tape.append((pc, cc, fc))
    if not checked and not (np.isfinite(costs).all() and np.isfinite(hist[0]).all()):
        raise _NonFinite
    return Segment(t0, t1, hist, costs, xs, us, tape)


def _check(arr, t, component, *, batched: bool = True):
    """Raise :class:`SimulationDivergedError` at the first non-finite entry of ``arr``.

    ``batched`` arrays are ``(B, ...)`` (scenario first); others are parameter adjoints."""
    if isinstance(arr, SliceGrad):
        arr, batched = arr.value, False
    if arr is None:
        return
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        if batched:
            scenario, index = int(bad[0]), (int(bad[1]) if arr.ndim > 1 else None)
        else:
            scenario, index = None, (int(bad[0]) if arr.ndim else None)
        raise SimulationDivergedError(t, component, scenario, index, arr[tuple(bad)])


def terminal_forward(setup: Setup, x_T: Array):
    """Terminal cost ``(B,)`` and its context, or ``(None, None)`` without one."""
    if setup.terminal is None:
        return None, None
    with np.errstate(all="ignore"):
        c, ctx = setup.terminal.forward(x_T, setup.p_term)
    check_output(setup.terminal, "forward (terminal cost)", c, (setup.B,))
    _check(c, setup.T, "terminal cost")
    return c, ctx


def objective_value(costs: Array, term: Optional[Array], B: int) -> float:
    """J = (sum of stage costs + terminal costs) / B, summed in a fixed order.

    Raises
    ------
    SimulationDivergedError
        ``component="objective sum"`` when every per-step cost is finite but the sum is not,
        naming the first step at which a scenario's running sum overflows.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        total = costs.sum(axis=0)
        if term is not None:
            total = total + term
        J = float(total.sum() / B)
    if not np.isfinite(J):
        raise sum_overflow(costs, term, B)
    return J


def sum_overflow(costs: Array, term: Optional[Array], B: int) -> SimulationDivergedError:
    """The error naming where the running sum of finite per-step costs overflows."""
    T = costs.shape[0]
    with np.errstate(over="ignore", invalid="ignore"):
        run = np.cumsum(costs, axis=0)
        per_t = run.sum(axis=1)
        bad = ~np.isfinite(run)
        if bad.any():
            t, b = (int(i) for i in np.argwhere(bad)[0])
            return SimulationDivergedError(t, "objective sum", b, None, run[t, b])
        bad_t = np.nonzero(~np.isfinite(per_t))[0]
        if bad_t.size:
            return SimulationDivergedError(int(bad_t[0]), "objective sum", None, None, per_t[bad_t[0]])
        if term is not None:
            tot = run[-1] + term if T else term
            bb = np.nonzero(~np.isfinite(tot))[0]
            if bb.size:
                return SimulationDivergedError(T, "objective sum", int(bb[0]), None, tot[bb[0]])
    return SimulationDivergedError(T, "objective sum", None, None, float("inf"))


# ----------------------------------------------------------------------------- backward
class Grads:
    """Accumulators for the parameter adjoints of one backward sweep."""

    def __init__(self, setup: Setup):
        self.theta = np.zeros(setup.plant.n_params)
        self.phi = np.zeros(setup.policy.n_params)
        self.p_cost = np.zeros(0 if setup.cost is None else setup.cost.n_params)
        self.p_term = np.zeros(0 if setup.terminal is None else setup.terminal.n_params)

    def finish(self, setup: Setup) -> "Grads":
        """Add the adjoints components deferred to one product over all steps (``param_grad``)."""
        for comp, bound, acc in ((setup.plant, setup.theta, self.theta), (setup.policy, setup.phi, self.phi),
                                 (setup.cost, setup.p_cost, self.p_cost),
                                 (setup.terminal, setup.p_term, self.p_term)):
            if comp is not None:
                g = comp.param_grad(bound)
                if g is not None:
                    check_output(comp, "param_grad", g, (comp.n_params,))
                    add_param_grad(acc, g)
        return self


def _add_param(grads_acc: Array, g, comp, checked: bool, first: bool, t: int, label: str):
    if g is None:
        return
    if first:
        check_output(comp, "vjp (parameter adjoint)", g, (comp.n_params,))
    if checked:
        _check(g, t, label, batched=False)
    add_param_grad(grads_acc, g)


def initial_window(setup: Setup, term_ctx, grads: Grads, *, checked: bool = False) -> list:
    """The adjoint window at ``t = T``: ``[lam[T], None, ..., None]`` (k + 1 entries).

    Adds the terminal cost's parameter adjoint into ``grads``.
    """
    lam_T = None
    if setup.terminal is not None:
        lam_T, g = setup.terminal.vjp(term_ctx, setup.c_bar)
        check_output(setup.terminal, "vjp (state adjoint)", lam_T, (setup.B, setup.plant.n_state), allow_none=True)
        if checked:
            _check(lam_T, setup.T, "terminal cost dual")
        _add_param(grads.p_term, g, setup.terminal, checked, True, setup.T, "terminal cost dual")
    return [lam_T] + [None] * setup.plant.lags


def cost_dual(setup: Setup, cc, grads: Grads, t: int, *, checked=False, first=False):
    """Dual of the stage cost at step t: returns ``(x_bar, u_bar)`` (``x_bar`` is for ``x[t+1]``
    when the cost is a post-step cost) and adds its parameter adjoint."""
    cost = setup.cost
    xc, uc, pg = cost.vjp(cc, setup.c_bar)
    if first:
        check_output(cost, "vjp (state adjoint)", xc, (setup.B, setup.plant.n_state), allow_none=True)
        check_output(cost, "vjp (control adjoint)", uc, (setup.B, setup.plant.n_control), allow_none=True)
    if checked:
        _check(xc, t, "stage cost dual")
        _check(uc, t, "stage cost dual")
    _add_param(grads.p_cost, pg, cost, checked, first, t, "stage cost dual")
    return xc, uc


def plant_dual(setup: Setup, fc, lam_next, grads: Grads, t: int, *, checked=False, first=False):
    """Dual of the plant at step t for ``lam[t+1]``: returns ``(hist_bar, u_bar)``."""
    plant = setup.plant
    hist_bar, u_bar, th = plant.vjp(fc, lam_next)
    if first:
        if not isinstance(hist_bar, (tuple, list)) or len(hist_bar) != plant.lags:
            raise TypeError(f"{_name(plant)}.vjp: expected a tuple of {plant.lags} state adjoints (one per lag), "
                            f"got {type(hist_bar).__name__}")
        for j, hb in enumerate(hist_bar):
            check_output(plant, f"vjp (state adjoint of lag {j})", hb, (setup.B, plant.n_state), allow_none=True)
        check_output(plant, "vjp (control adjoint)", u_bar, (setup.B, plant.n_control), allow_none=True)
    if checked:
        for hb in hist_bar:
            _check(hb, t, "plant dual")
        _check(u_bar, t, "plant dual")
    _add_param(grads.theta, th, plant, checked, first, t, "plant dual")
    return hist_bar, u_bar


def policy_dual(setup: Setup, pc, u_bar, grads: Grads, t: int, *, checked=False, first=False):
    """Dual of the policy at step t for ``ubar[t]``: returns ``x_bar`` (for ``x[t]``)."""
    policy = setup.policy
    xp, phb = policy.vjp(pc, u_bar)
    if first:
        check_output(policy, "vjp (state adjoint)", xp, (setup.B, setup.plant.n_state), allow_none=True)
    if checked:
        _check(xp, t, "policy dual")
    _add_param(grads.phi, phb, policy, checked, first, t, "policy dual")
    return xp


def backward_segment(setup: Setup, seg: Segment, window: list, grads: Grads, *, checked: bool = False,
                     hook: Optional[Callable] = None) -> list:
    """Run the adjoint recursion over the segment's steps, newest first.

    ``window`` enters as ``[lam[t1], partial lam[t1-1], ..., partial lam[t1-k]]`` and leaves
    as the same for ``t0``; parameter adjoints are added into ``grads``.

    Parameters
    ----------
    checked : bool
        Check every dual output for NaN/inf and raise :class:`SimulationDivergedError` naming
        the step and the dual (used to locate a non-finite gradient).
    hook : callable, optional
        ``hook(t, window, grads)`` after step t (``window[0]`` is then ``lam[t]``); observers
        such as :func:`dynopt.diagnose` read the sweep through it instead of copying it.
    """
    cost = setup.cost
    k, post = setup.plant.lags, setup.post
    tape = seg.tape
    present = {"plant"} | ({"policy"} if setup.plant.n_control else set()) | ({"cost"} if cost is not None else set())
    seen = set()  # each component's first dual in this segment is checked against the contract
    i = len(tape) - 1
    while i >= 0 and (checked or hook is not None or seen != present):
        t = seg.t0 + i
        pc, cc, fc = tape[i]
        lam_next = window[0]
        u_bar = None
        x_cost = None
        if cost is not None:
            x_cost, u_bar = cost_dual(setup, cc, grads, t, checked=checked, first="cost" not in seen)
            seen.add("cost")
            if post:
                lam_next = add_adjoint(lam_next, x_cost)
                x_cost = None
        if lam_next is not None:
            hist_bar, ub = plant_dual(setup, fc, lam_next, grads, t, checked=checked, first="plant" not in seen)
            seen.add("plant")
            u_bar = add_adjoint(u_bar, ub)
            for j in range(k):
                if hist_bar[j] is not None:
                    window[j + 1] = add_adjoint(window[j + 1], hist_bar[j])
        window[1] = add_adjoint(window[1], x_cost)
        if u_bar is not None:
            xp = policy_dual(setup, pc, u_bar, grads, t, checked=checked, first="policy" not in seen)
            seen.add("policy")
            window[1] = add_adjoint(window[1], xp)
        window = window[1:] + [None]
        if hook is not None:
            hook(t, window, grads)
        i -= 1
    if i >= 0:
        window = _backward_fast(setup, tape, i, window, grads)
    return window


def _backward_fast(setup: Setup, tape: list, i_last: int, window: list, grads: Grads) -> list:
    """The same recursion as :func:`backward_segment` for steps ``i_last .. 0`` of a segment, once
    every component's first dual has been checked: duals called directly, adjoints summed inline
    (the per-step bookkeeping is what a small-state, long-horizon problem pays for)."""
    plant_vjp, policy_vjp = setup.plant.vjp, setup.policy.vjp
    cost = setup.cost
    cost_vjp = None if cost is None else cost.vjp
    c_bar, post, k = setup.c_bar, setup.post, setup.plant.lags
    g_th, g_phi, g_pc = grads.theta, grads.phi, grads.p_cost
    for i in range(i_last, -1, -1):
        pc, cc, fc = tape[i]
        lam_next = window[0]
        u_bar = x_cost = None
        if cost_vjp is not None:
            x_cost, u_bar, pg = cost_vjp(cc, c_bar)
            if pg is not None:
                add_param_grad(g_pc, pg)
            if post:
                if x_cost is not None:
                    lam_next = x_cost if lam_next is None else lam_next + x_cost
                x_cost = None
        if lam_next is not None:
            hist_bar, ub, th = plant_vjp(fc, lam_next)
            if th is not None:
                add_param_grad(g_th, th)
            if ub is not None:
                u_bar = ub if u_bar is None else u_bar + ub
            for j in range(k):
                hb = hist_bar[j]
                if hb is not None:
                    w = window[j + 1]
                    window[j + 1] = hb if w is None else w + hb
        if x_cost is not None:
            w = window[1]
            window[1] = x_cost if w is None else w + x_cost
        if u_bar is not None:
            xp, phb = policy_vjp(pc, u_bar)
            if phb is not None:
                add_param_grad(g_phi, phb)
            if xp is not None:
                w = window[1]
                window[1] = xp if w is None else w + xp
        window = window[1:]
        window.append(None)
    return window

