r"""Shooting formulations that work on unstable plants and long horizons.

* :class:`OpenLoopHold` - open-loop controls held over ``hold`` steps (zero-order hold) with a
  control horizon that may be shorter than the prediction horizon:
  ``u[t] = V[min(t // hold, Nc - 1)]``.
* :class:`FeedbackPlusOpenLoop` - open-loop corrections on top of a feedback law,
  ``u[t] = pi(x[t]) + V[...]`` (``pi(x) = -K x`` for a gain matrix).  With a stabilising
  ``K`` (e.g. from the discrete LQR) the map from ``V`` to the cost is well conditioned even
  where open-loop single shooting of an unstable plant is hopeless: it is the same set of
  control sequences, reparameterised around a stable closed loop.
* :class:`MultipleShooting` - the horizon cut into S segments whose initial states (nodes)
  are decision variables; the segments are the scenarios of one batched problem, and
  continuity ``x_end[s] = node[s+1]`` is a terminal equality constraint solved by
  :func:`dynopt.control.solve`.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import scipy.optimize
import scipy.sparse

from ..core.components import Plant, Policy, SliceGrad, StageCost, TerminalCost
from ..core.problem import Problem
from ..core.validation import as_float_array, check_int
from .constraints import (ConstrainedProblem, ConstraintFunction, PathConstraint, StateConstraint,
                          TerminalConstraint)

__all__ = ["OpenLoopHold", "FeedbackPlusOpenLoop", "MultipleShooting"]


def _hold_layout(horizon, hold, control_horizon):
    T = check_int("horizon", horizon, minimum=1)
    k = check_int("hold", hold, minimum=1)
    n_moves = -(-T // k)
    if control_horizon is None:
        Nc = n_moves
    else:
        Nc = check_int("control_horizon", control_horizon, minimum=1)
        if Nc > n_moves:
            raise ValueError(f"control_horizon: expected at most ceil(horizon / hold) = {n_moves} moves "
                             f"(horizon {T}, hold {k}), got {Nc}")
    return T, k, Nc


class OpenLoopHold(Policy):
    r"""Open-loop controls held over ``hold`` steps: ``u[t] = V[min(t // hold, Nc - 1)]``.

    Parameters
    ----------
    n_state, n_control : int
        n and m.
    horizon : int
        T, the prediction horizon in steps.
    hold : int
        k >= 1 steps per control move (zero-order hold over k steps).
    control_horizon : int, optional
        Nc, number of distinct moves (default ``ceil(T / k)``); the last move is held to the
        end of the horizon.
    V0 : (Nc, m) array_like, optional
        Start values (default zeros).

    The policy block of W is ``V`` of shape (Nc, m), row-major, the same for every scenario;
    bounds on it are control limits.
    """

    def __init__(self, n_state: int, n_control: int, horizon: int, *, hold: int = 1,
                 control_horizon: Optional[int] = None, V0=None):
        self.n_state = check_int("n_state", n_state, minimum=1)
        self.n_control = check_int("n_control", n_control, minimum=1)
        self.horizon, self.hold, self.control_horizon = _hold_layout(horizon, hold, control_horizon)
        self.param_spec = (("V", (self.control_horizon, self.n_control)),)
        self._V0 = _start("V0", V0, (self.control_horizon, self.n_control))

    def move(self, t: int) -> int:
        """Index of the control move applied at step t."""
        return min(t // self.hold, self.control_horizon - 1)

    def default_params(self):
        return self._V0.copy()

    def forward(self, t, x, X, phi):
        m, j = self.n_control, self.move(t)
        return np.broadcast_to(phi[j * m:(j + 1) * m], (x.shape[0], m)), j

    def vjp(self, j, u_bar):
        m = self.n_control
        return None, SliceGrad(slice(j * m, (j + 1) * m), u_bar.sum(axis=0))

    def expand(self, V) -> np.ndarray:
        """The per-step controls ``(T, m)`` of moves ``V`` (Nc, m) or its flat vector."""
        V = as_float_array("V", V).reshape(self.control_horizon, self.n_control)
        return V[[self.move(t) for t in range(self.horizon)]]

    def __repr__(self):
        return (f"OpenLoopHold(n={self.n_state}, m={self.n_control}, horizon={self.horizon}, hold={self.hold}, "
                f"control_horizon={self.control_horizon})")


def _start(name, value, shape):
    if value is None:
        return np.zeros(int(np.prod(shape)))
    arr = as_float_array(name, value)
    if arr.size != int(np.prod(shape)):
        raise ValueError(f"{name}: expected {shape} values, got shape {arr.shape}")
    return arr.ravel().copy()


class FeedbackPlusOpenLoop(Policy):
    r"""Feedback plus open-loop corrections: ``u[t] = pi(x[t], X[t]) + V[min(t // hold, Nc - 1)]``.

    Parameters
    ----------
    feedback : (m, n) array_like or Policy
        A gain matrix K (``pi(x) = -K x``, fixed), or any time-invariant Policy whose
        parameters come first in the policy block (then trained with ``V`` when the policy
        block is the decision).
    horizon, hold, control_horizon, V0 :
        As :class:`OpenLoopHold`.
    n_state, n_control : int, optional
        Needed only to check a gain matrix against the plant (taken from its shape).

    Notes
    -----
    Why: for an unstable plant, ``dJ/du[t]`` of open-loop single shooting grows like the
    unstable eigenvalue to the power ``T - t``; the quasi-Newton model is then useless and
    line searches fail.  With ``u = -K x + v`` and ``A - B K`` stable, a correction ``v[t]``
    moves the trajectory by a decaying amount.  The optimum over ``v`` is the optimum over
    ``u`` (the map is a bijection for a fixed x0).
    """

    def __init__(self, feedback, horizon: int, *, hold: int = 1, control_horizon: Optional[int] = None, V0=None,
                 n_state: Optional[int] = None, n_control: Optional[int] = None):
        if isinstance(feedback, Policy):
            self.pi, self.K = feedback, None
            self.n_state, self.n_control = feedback.n_state, feedback.n_control
            self.n_exog = getattr(feedback, "n_exog", 0) or 0
            if getattr(feedback, "channels", None) is not None:
                self.channels = feedback.channels
            n_pi = feedback.n_params
        else:
            K = as_float_array("feedback", feedback)
            if K.ndim != 2 or K.size == 0:
                raise ValueError(f"feedback: expected a gain matrix K of shape (m, n) or a dynopt.Policy, "
                                 f"got an array of shape {K.shape}")
            self.pi, self.K = None, K
            self.n_control, self.n_state = K.shape
            n_pi = 0
        if n_state is not None and n_state != self.n_state:
            raise ValueError(f"feedback: expected n={n_state} states, got a feedback of n={self.n_state}")
        if n_control is not None and n_control != self.n_control:
            raise ValueError(f"feedback: expected m={n_control} controls, got a feedback of m={self.n_control}")
        self.horizon, self.hold, self.control_horizon = _hold_layout(horizon, hold, control_horizon)
        self.n_pi = n_pi
        spec = list(feedback.param_spec) if self.pi is not None else []
        names = {nm for nm, _ in spec}
        self._vname = "V" if "V" not in names else "V_correction"
        self.param_spec = tuple(spec + [(self._vname, (self.control_horizon, self.n_control))])
        self._V0 = _start("V0", V0, (self.control_horizon, self.n_control))

    def move(self, t: int) -> int:
        """Index of the correction applied at step t."""
        return min(t // self.hold, self.control_horizon - 1)

    def default_params(self):
        head = self.pi.default_params() if self.pi is not None else np.zeros(0)
        return np.concatenate([np.asarray(head, float).ravel(), self._V0])

    def bind(self, params, *, grad: bool):
        params = np.asarray(params)
        head = params[:self.n_pi]
        if self.pi is not None:
            b = getattr(self.pi, "bind", None)
            head = head if b is None else b(head, grad=grad)
        return (head, params[self.n_pi:])

    def param_grad(self, bound):
        pg = getattr(self.pi, "param_grad", None) if self.pi is not None else None
        if pg is None or not isinstance(bound, tuple):
            return None
        g = pg(bound[0])
        if g is None:
            return None
        out = np.zeros(self.n_params)
        out[:self.n_pi] = g
        return out

    def forward(self, t, x, X, phi):
        if isinstance(phi, tuple):
            head, V = phi
        else:
            head, V = phi[:self.n_pi], phi[self.n_pi:]
        m, j = self.n_control, self.move(t)
        if self.pi is None:
            u = x @ (-self.K.T)
            ctx = None
        else:
            u, ctx = self.pi.forward(t, x, X, head)
            u = np.array(u, dtype=np.float64)
        u += V[j * m:(j + 1) * m]
        return u, (j, ctx)

    def vjp(self, ctx, u_bar):
        j, pctx = ctx
        m = self.n_control
        vs = slice(self.n_pi + j * m, self.n_pi + (j + 1) * m)
        if self.pi is None:
            return u_bar @ (-self.K), SliceGrad(vs, u_bar.sum(axis=0))
        xb, pb = self.pi.vjp(pctx, u_bar)
        if pb is None or self.n_pi == 0:
            return xb, SliceGrad(vs, u_bar.sum(axis=0))
        full = np.zeros(self.n_params)
        if isinstance(pb, SliceGrad):
            full[pb.where] += pb.value
        else:
            full[:self.n_pi] = pb
        full[vs] += u_bar.sum(axis=0)
        return xb, full

    def __repr__(self):
        fb = f"K {self.K.shape}" if self.pi is None else repr(self.pi)
        return f"FeedbackPlusOpenLoop({fb}, horizon={self.horizon}, hold={self.hold})"


# --------------------------------------------------------------------------- multiple shooting
class _NodePlant(Plant):
    """State ``[x, z]``: ``x`` follows the plant, ``z`` (the next node) is carried unchanged."""

    lags = 1

    def __init__(self, plant: Plant):
        self.plant = plant
        self.n = plant.n_state
        self.n_state, self.n_control, self.n_exog = 2 * self.n, plant.n_control, 0
        self.param_spec = plant.param_spec

    def default_params(self):
        return self.plant.default_params()

    def bind(self, params, *, grad):
        b = getattr(self.plant, "bind", None)
        return params if b is None else b(params, grad=grad)

    def param_grad(self, bound):
        pg = getattr(self.plant, "param_grad", None)
        return None if pg is None else pg(bound)

    def forward(self, hist, u, X, theta):
        xa = hist[0]
        xn, c = self.plant.forward((np.ascontiguousarray(xa[:, :self.n]),), u, None, theta)
        return np.concatenate([xn, xa[:, self.n:]], axis=1), c

    def vjp(self, ctx, xb):
        (hx,), ub, tb = self.plant.vjp(ctx, np.ascontiguousarray(xb[:, :self.n]))
        out = np.empty_like(xb)
        out[:, self.n:] = xb[:, self.n:]
        if hx is None:
            out[:, :self.n] = 0.0
        else:
            out[:, :self.n] = hx
        return (out,), ub, tb


class _SegmentControls(Policy):
    """Per-segment open-loop controls: scenario b at local step t applies ``U[b L + t]``."""

    def __init__(self, n_state, n_control, S, L):
        self.n_state, self.n_control, self.S, self.L = n_state, n_control, S, L
        self.param_spec = (("U", (S * L, n_control)),)

    def forward(self, t, x, X, phi):
        U = np.asarray(phi).reshape(self.S, self.L, self.n_control)
        return np.ascontiguousarray(U[:, t, :]), t

    def vjp(self, t, u_bar):
        g = np.zeros((self.S, self.L, self.n_control))
        g[:, t, :] = u_bar
        return None, g.ravel()


class _SegmentStageCost(StageCost):
    """The user's stage cost on the ``x`` part, at global step ``s L + t``, times S (J = sum of segments)."""

    def __init__(self, cost: StageCost, n: int, m: int, S: int, L: int):
        self.cost, self.n, self.S, self.L = cost, n, S, L
        self.n_state, self.n_control = 2 * n, m
        self.param_spec = cost.param_spec

    def default_params(self):
        return self.cost.default_params()

    def forward(self, t, x, u, X, p):
        c, ctx = self.cost.forward(t, np.ascontiguousarray(x[:, :self.n]), u, None, p)
        return self.S * c, ctx

    def vjp(self, ctx, c_bar):
        xb, ub, pb = self.cost.vjp(ctx, self.S * c_bar)
        out = np.zeros((c_bar.shape[0], 2 * self.n))
        if xb is not None:
            out[:, :self.n] = xb
        return out, ub, pb


class _LastSegmentTerminal(TerminalCost):
    """The user's terminal cost on the last segment's end state, times S."""

    def __init__(self, cost: Optional[TerminalCost], n: int, S: int):
        self.cost, self.n, self.S = cost, n, S
        self.n_state = 2 * n
        self.param_spec = () if cost is None else cost.param_spec

    def default_params(self):
        return np.zeros(0) if self.cost is None else self.cost.default_params()

    def forward(self, x, p):
        out = np.zeros(x.shape[0])
        ctx = None
        if self.cost is not None:
            c, ctx = self.cost.forward(np.ascontiguousarray(x[-1:, :self.n]), p)
            out[-1] = self.S * c[0]
        return out, ctx

    def vjp(self, ctx, c_bar):
        out = np.zeros((c_bar.shape[0], 2 * self.n))
        if self.cost is None:
            return out, SliceGrad(slice(0, 0), np.zeros(0))
        xb, pb = self.cost.vjp(ctx, self.S * c_bar[-1:])
        if xb is not None:
            out[-1, :self.n] = xb[0]
        return out, pb


class MultipleShooting:
    r"""Multiple shooting of an open-loop control problem with one initial state.

    The horizon T is cut into S segments of L = T / S steps.  The decision vector is
    ``w = [U (T, m), nodes (S, n)]``: the controls, and the states at the start of segments
    1 .. S-1 plus the end state (node S).  Each segment is one scenario of a batched
    :class:`dynopt.Problem` started from its node, with state ``[x, z]`` where ``z`` carries
    the next node; continuity ``x_end[s] = node[s+1]`` is a
    :class:`~dynopt.control.TerminalConstraint` ``x - z = 0``, solved with the other
    constraints by :func:`dynopt.control.solve`.

    Parameters
    ----------
    plant : Plant
        One lag, no exogenous inputs.
    cost : StageCost, optional
        ``l(t, x, u)``; ``t`` is the step within the segment.
    terminal_cost : TerminalCost, optional
        On ``x[T]``.
    horizon : int
        T, a multiple of ``segments``.
    x0 : (n,) array_like
    segments : int
        S >= 1.
    constraints : sequence of PathConstraint / StateConstraint, optional
        Enforced at every step (``steps`` must be left at its default): a path constraint at
        ``(x[t], u[t])``, t = 0 .. T-1, a state constraint at ``x[t]``, t = 1 .. T; their
        functions receive the step within the segment.
    U0 : (T, m) array_like, optional
        Start controls; the start nodes come from simulating them (clipped to finite values)
        unless ``nodes0`` is given.
    nodes0 : (S, n) array_like, optional
    gradient : GradientMethod, optional

    Attributes
    ----------
    problem : Problem
        The batched segment problem (B = S).
    constrained : ConstrainedProblem
        With the continuity constraint and the embedding of w.
    """

    def __init__(self, plant: Plant, cost: Optional[StageCost] = None, terminal_cost: Optional[TerminalCost] = None,
                 *, horizon: int, x0, segments: int, constraints=(), U0=None, nodes0=None, gradient=None):
        if not isinstance(plant, Plant):
            raise TypeError(f"plant: expected a dynopt.Plant, got {type(plant).__name__}")
        if plant.lags != 1 or plant.n_exog:
            raise ValueError(f"plant: multiple shooting needs a plant with one lag and no exogenous inputs, "
                             f"got lags={plant.lags}, n_exog={plant.n_exog}")
        if plant.n_control < 1:
            raise ValueError("plant: multiple shooting optimises controls; the plant has none")
        T = check_int("horizon", horizon, minimum=1)
        S = check_int("segments", segments, minimum=1)
        if T % S:
            raise ValueError(f"segments: expected a divisor of the horizon T={T}, got {S}")
        L = T // S
        n, m = plant.n_state, plant.n_control
        x0 = as_float_array("x0", x0).ravel()
        if x0.shape != (n,):
            raise ValueError(f"x0: expected shape ({n},), got {x0.shape}")
        if cost is None and terminal_cost is None:
            raise ValueError("cost: expected a stage cost, a terminal cost or both; got neither")
        self.T, self.S, self.L, self.n, self.m, self.x0 = T, S, L, n, m, x0
        U0 = np.zeros((T, m)) if U0 is None else as_float_array("U0", U0).reshape(T, m)
        if nodes0 is None:
            nodes0 = self._simulate_nodes(plant, U0)
        nodes0 = as_float_array("nodes0", nodes0).reshape(S, n)
        self.plant = plant
        aug0 = self._aug_x0(nodes0[1:].ravel(), nodes0[-1])
        self.problem = Problem(_NodePlant(plant), _SegmentControls(2 * n, m, S, L),
                               None if cost is None else _SegmentStageCost(cost, n, m, S, L),
                               _LastSegmentTerminal(terminal_cost, n, S), horizon=L, x0=aug0,
                               params={"policy": U0.ravel()}, decision=("policy", "x0"), gradient=gradient)
        # w = [U (T m), nodes 1..S (S n)]  ->  W = [U, x0 block (S, 2n)]: rows [node_s, node_{s+1}]
        nU = T * m
        rows, cols = list(range(nU)), list(range(nU))
        c = np.zeros(nU + S * 2 * n)
        for s in range(S):
            base = nU + s * 2 * n
            for i in range(n):
                if s == 0:
                    c[base + i] = x0[i]
                else:
                    rows.append(base + i)
                    cols.append(nU + (s - 1) * n + i)
                rows.append(base + n + i)
                cols.append(nU + s * n + i)
        P = scipy.sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(nU + S * 2 * n, nU + S * n))
        w0 = np.concatenate([U0.ravel(), nodes0[1:].ravel(), self._end_state(plant, U0, nodes0)])
        cont = TerminalConstraint(_Continuity(n), equal=0.0, n_state=2 * n, name="continuity")
        cons = [cont] + [_on_segments(con, n, m) for con in constraints]
        self.constrained = ConstrainedProblem(self.problem, cons, embedding=(P, c, w0))

    def _aug_x0(self, inner, end):
        nodes = np.concatenate([self.x0, inner, end]).reshape(self.S + 1, self.n)
        return np.concatenate([nodes[:-1], nodes[1:]], axis=1)

    def _simulate_nodes(self, plant, U0):
        nodes = np.zeros((self.S, self.n))
        x = self.x0[None, :].copy()
        theta = plant.default_params()
        b = getattr(plant, "bind", None)
        if b is not None:
            theta = b(theta, grad=False)
        for t in range(self.T):
            if t % self.L == 0:
                nodes[t // self.L] = np.nan_to_num(x[0], posinf=1e6, neginf=-1e6)
                x = nodes[t // self.L][None, :].copy()
            x, _ = plant.forward((x,), U0[t][None, :], None, theta)
        self._last = np.nan_to_num(x[0], posinf=1e6, neginf=-1e6)
        return nodes

    def _end_state(self, plant, U0, nodes0):
        last = getattr(self, "_last", None)
        if last is not None:
            return last
        x = nodes0[-1][None, :].copy()
        theta = plant.default_params()
        b = getattr(plant, "bind", None)
        if b is not None:
            theta = b(theta, grad=False)
        for t in range((self.S - 1) * self.L, self.T):
            x, _ = plant.forward((x,), U0[t][None, :], None, theta)
        return x[0]

    @property
    def w0(self) -> np.ndarray:
        """Start ``[U (T m), nodes 1..S (S n)]``."""
        return self.constrained.w0

    def control_bounds(self, lower, upper) -> scipy.optimize.Bounds:
        """Bounds on w for :func:`dynopt.control.solve`: ``lower <= u[t] <= upper`` (scalars or
        (m,) arrays; ``None`` for unbounded), nodes free."""
        lo_u = np.full((self.T, self.m), -np.inf if lower is None else 0.0)
        hi_u = np.full((self.T, self.m), np.inf if upper is None else 0.0)
        if lower is not None:
            lo_u += np.broadcast_to(as_float_array("lower", lower), (self.m,))
        if upper is not None:
            hi_u += np.broadcast_to(as_float_array("upper", upper), (self.m,))
        if np.any(lo_u > hi_u):
            raise ValueError(f"lower: infeasible control bounds, lower {lower} exceeds upper {upper}")
        free = np.full(self.S * self.n, np.inf)
        return scipy.optimize.Bounds(np.concatenate([lo_u.ravel(), -free]), np.concatenate([hi_u.ravel(), free]))

    def controls(self, w) -> np.ndarray:
        """The controls ``(T, m)`` of ``w``."""
        return np.asarray(w)[:self.T * self.m].reshape(self.T, self.m)

    def nodes(self, w) -> np.ndarray:
        """The node states ``(S + 1, n)``: x0, the segment starts, the end state."""
        return np.concatenate([self.x0, np.asarray(w)[self.T * self.m:]]).reshape(self.S + 1, self.n)

    def states(self, w) -> np.ndarray:
        """States ``(T + 1, n)`` from the segments (each started from its node)."""
        traj = self.problem.simulate(self.constrained.lift(w))
        xs = traj.x[:, :, :self.n]  # (L + 1, S, n)
        out = np.empty((self.T + 1, self.n))
        for s in range(self.S):
            out[s * self.L:(s + 1) * self.L] = xs[:self.L, s]
        out[self.T] = xs[self.L, self.S - 1]
        return out

    def __repr__(self):
        return f"MultipleShooting(T={self.T}, segments={self.S}, n={self.n}, m={self.m})"


def _on_segments(con, n, m):
    """A user's path/state constraint on the segment problem's state ``[x, z]``."""
    if not isinstance(con, (PathConstraint, StateConstraint)):
        raise TypeError(f"constraints: multiple shooting takes PathConstraint and StateConstraint, got "
                        f"{type(con).__name__} (state a terminal condition as a StateConstraint with bounds "
                        f"on x[T] is not supported yet)")
    if con._steps is not None:
        raise ValueError(f"{con.name}: multiple shooting enforces constraints at every step; got steps={con._steps!r}")
    fn = _FirstHalf(con.fn, n)
    if isinstance(con, PathConstraint):
        return PathConstraint(fn, con.lower, con.upper, n_state=2 * n, n_control=m, name=con.name)
    return StateConstraint(fn, con.lower, con.upper, n_state=2 * n, name=con.name)


class _FirstHalf(ConstraintFunction):
    """``g(x, u)`` applied to the ``x`` part of ``[x, z]``."""

    def __init__(self, fn, n):
        self.fn, self.n = fn, n
        self.n_state, self.n_control, self.n_out = 2 * n, fn.n_control, fn.n_out

    def forward(self, t, x, u):
        return self.fn.forward(t, np.ascontiguousarray(x[:, :self.n]), u)

    def vjp(self, ctx, g_bar):
        xb, ub = self.fn.vjp(ctx, g_bar)
        out = np.zeros((g_bar.shape[0], 2 * self.n))
        if xb is not None:
            out[:, :self.n] = xb
        return out, ub


class _Continuity(ConstraintFunction):
    """``[x, z] -> x - z`` (NumPy form with dual) for the continuity constraint."""

    def __init__(self, n):
        self.n_state, self.n_control, self.n_out, self.n = 2 * n, 0, n, n

    def forward(self, t, x, u):
        return x[:, :self.n] - x[:, self.n:], None

    def vjp(self, ctx, g_bar):
        return np.concatenate([g_bar, -g_bar], axis=1), None
