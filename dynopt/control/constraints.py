r"""State, path and terminal constraints on a :class:`dynopt.Problem`, written like costs.

A constraint is ``lower <= g(...) <= upper`` (rows with ``lower == upper`` are equalities):

==========================  ==========================  ====================================
class                       function                    enforced at
==========================  ==========================  ====================================
:class:`PathConstraint`     ``g(x, u) -> (r, 1)``        ``(x[t], u[t])``, t in ``steps``
                                                        (default ``0 .. T-1``)
:class:`StateConstraint`    ``g(x) -> (r, 1)``           ``x[t]``, t in ``steps``
                                                        (default ``1 .. T``; ``x[0]`` is given)
:class:`TerminalConstraint` ``g(x) -> (r, 1)``           ``x[T]``
==========================  ==========================  ====================================

``g`` is either a Python callable written with CasADi operations (traced once on SX symbols;
the dual comes from CasADi's reverse mode) or a :class:`ConstraintFunction`, a NumPy component
with its own dual, batched over scenarios.  Every constraint applies to every scenario.

:class:`ConstrainedProblem` binds constraints to a problem and :func:`solve` solves

.. math:: \min_W J(W) \quad\text{s.t.}\quad h(W) = 0,\; s(W) \le 0

where ``h`` are the equality rows ``g - lower`` and ``s`` the inequality rows ``lower - g``
and ``g - upper`` at every active step and scenario, by

* ``method="auglag"`` (default): a Powell-Hestenes-Rockafellar augmented Lagrangian around
  :func:`dynopt.optimize`.  The penalty terms are folded into the stage and terminal costs
  (one forward and one adjoint sweep per evaluation); the multipliers are time-indexed data
  held as fixed parameters of those costs, so an outer iteration only replaces parameters.
* ``method="SLSQP"`` or ``"trust-constr"``: scipy with the exact objective gradient and exact
  constraint Jacobians (one adjoint sweep per constraint row: for small problems).

Multipliers ``y`` are returned per constraint in the layout of ``g``, with the sign convention
:math:`\nabla J + \sum y \nabla g = 0` at a KKT point (``y >= 0`` on an active upper bound,
``y <= 0`` on an active lower bound).
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from typing import Callable, Dict, List, Optional, Sequence

import casadi as ca
import numpy as np
import scipy.optimize

from ..core.components import SliceGrad, StageCost, TerminalCost, add_adjoint
from ..core.problem import Problem
from ..core.validation import as_float_array, check_int
from ..errors import SimulationDivergedError
from ..optimize import OptimizeResult

__all__ = ["ConstraintFunction", "PathConstraint", "StateConstraint", "TerminalConstraint", "ConstrainedProblem",
           "ConstrainedResult", "solve"]

_EMPTY_GRAD = SliceGrad(slice(0, 0), np.zeros(0))


# --------------------------------------------------------------------------- constraint functions
class ConstraintFunction(ABC):
    r"""A vector constraint function with its dual, batched over scenarios (NumPy form).

    Subclasses set ``n_state``, ``n_control`` (0 for functions of the state alone) and
    ``n_out`` = r, and implement

    * ``forward(t, x (B, n), u (B, m) or None) -> (g (B, r), ctx)``;
    * ``vjp(ctx, g_bar (B, r)) -> (x_bar (B, n) or None, u_bar (B, m) or None)``.
    """

    n_state: int
    n_control: int = 0
    n_out: int

    @abstractmethod
    def forward(self, t: int, x, u):
        """Return ``g (B, r)`` and a context."""

    @abstractmethod
    def vjp(self, ctx, g_bar):
        """Return ``(x_bar, u_bar)``."""


class _CasadiConstraintFunction(ConstraintFunction):
    """``g(x[, u])`` traced once on SX symbols; forward and reverse mode mapped over B."""

    def __init__(self, fn: Callable, n_state: int, n_control: int, label: str):
        if not callable(fn):
            raise TypeError(f"{label}: expected a callable written with casadi operations or a "
                            f"dynopt.control.ConstraintFunction, got {type(fn).__name__}")
        self.n_state, self.n_control = n_state, n_control
        x, u = ca.SX.sym("x", n_state), ca.SX.sym("u", n_control)
        args = (x, u) if n_control else (x,)
        sig = "(x, u)" if n_control else "(x)"
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            try:
                out = fn(*args)
            except Exception as exc:
                raise TypeError(f"{label}: the function must accept {sig} as casadi SX symbols (x: ({n_state}, 1)"
                                + (f", u: ({n_control}, 1)" if n_control else "") + f") and use casadi operations; "
                                f"calling it failed with {type(exc).__name__}: {exc}") from exc
        if isinstance(out, (list, tuple)):
            out = ca.vertcat(*out)
        if isinstance(out, (int, float, np.floating, np.integer)):
            out = ca.SX(float(out))
        if isinstance(out, ca.DM):
            out = ca.SX(out)
        if not isinstance(out, ca.SX):
            raise TypeError(f"{label}: the function returned {type(out).__name__}; expected a casadi SX column (r, 1)")
        if out.shape[1] != 1 or out.shape[0] < 1:
            raise ValueError(f"{label}: the function returned shape {out.shape}; expected a column (r, 1) with "
                             f"r >= 1 (use ca.vertcat(...))")
        self.n_out = out.shape[0]
        self.F = ca.Function("constraint", [x, u], [out])
        self._maps: Dict[int, tuple] = {}

    def _pair(self, B):
        try:
            return self._maps[B]
        except KeyError:
            Fm = self.F.map(B)
            self._maps[B] = (Fm, Fm.reverse(1))
            return self._maps[B]

    def forward(self, t, x, u):
        B = x.shape[0]
        Fm, _ = self._pair(B)
        uu = np.zeros((self.n_control, B)) if u is None or not self.n_control else u.T
        g = np.array(Fm(x.T, uu)).T.reshape(B, self.n_out)
        return g, (x.T, uu, g.T, B)

    def vjp(self, ctx, g_bar):
        xT, uT, gT, B = ctx
        _, R = self._pair(B)
        xb, ub = R(xT, uT, gT, g_bar.T)
        return np.array(xb).T.reshape(B, self.n_state), (np.array(ub).T.reshape(B, self.n_control)
                                                          if self.n_control else None)


# --------------------------------------------------------------------------- constraints
class _Constraint:
    """Shared parts: the function, the bounds and the normalised rows."""

    kind = ""
    uses_control = False

    def __init__(self, g, lower, upper, *, n_state: int, n_control: int = 0, steps=None, name: Optional[str] = None):
        self.name = name or type(self).__name__
        self.n_state = check_int("n_state", n_state, minimum=1)
        self.n_control = check_int("n_control", n_control, minimum=0) if self.uses_control else 0
        if isinstance(g, ConstraintFunction):
            if g.n_state != self.n_state:
                raise ValueError(f"{self.name}: the ConstraintFunction has n_state={g.n_state}, expected {self.n_state}")
            fn = g
        else:
            fn = _CasadiConstraintFunction(g, self.n_state, self.n_control, f"{self.name} function")
        self.fn = fn
        r = check_int(f"{self.name}: n_out of the function", fn.n_out, minimum=1)
        self.n_out = r
        if lower is None and upper is None:
            raise ValueError(f"{self.name}: expected lower and/or upper bounds, got neither")
        self.lower = self._bound("lower", lower, -np.inf, r)
        self.upper = self._bound("upper", upper, np.inf, r)
        bad = np.nonzero(self.lower > self.upper)[0]
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"{self.name}: infeasible bounds, lower[{i}] = {self.lower[i]} exceeds "
                             f"upper[{i}] = {self.upper[i]}")
        eq = self.lower == self.upper
        self.eq_rows = np.nonzero(eq)[0]
        self.lo_rows = np.nonzero(~eq & np.isfinite(self.lower))[0]
        self.hi_rows = np.nonzero(~eq & np.isfinite(self.upper))[0]
        self.n_rows = self.eq_rows.size + self.lo_rows.size + self.hi_rows.size
        self.n_eq = self.eq_rows.size
        if self.n_rows == 0:
            raise ValueError(f"{self.name}: every bound is infinite; nothing to constrain")
        self._steps = steps

    def _bound(self, which, value, default, r):
        if value is None:
            return np.full(r, default)
        arr = np.asarray(value, dtype=np.float64)
        if np.isnan(arr).any():
            raise ValueError(f"{self.name}: {which} contains NaN")
        if arr.ndim == 0:
            return np.full(r, float(arr))
        arr = arr.ravel()
        if arr.shape != (r,):
            raise ValueError(f"{self.name}: {which} has {arr.size} entries but the function returns r={r} rows "
                             f"(expected a scalar or shape ({r},))")
        return arr.copy()

    def active_steps(self, T: int) -> np.ndarray:
        """Boolean mask over the steps the constraint can be active at."""
        raise NotImplementedError

    # normalised rows: [eq: g - lo | lower: lo - g | upper: g - hi]
    def normalise(self, g):
        """``(..., r)`` values -> ``(..., n_rows)`` normalised rows (equalities first)."""
        return np.concatenate([g[..., self.eq_rows] - self.lower[self.eq_rows],
                               self.lower[self.lo_rows] - g[..., self.lo_rows],
                               g[..., self.hi_rows] - self.upper[self.hi_rows]], axis=-1)

    def denormalise_bar(self, nb):
        """Adjoint of :meth:`normalise`: ``(..., n_rows) -> (..., r)``."""
        gb = np.zeros(nb.shape[:-1] + (self.n_out,))
        e, lo = self.eq_rows.size, self.lo_rows.size
        gb[..., self.eq_rows] += nb[..., :e]
        gb[..., self.lo_rows] -= nb[..., e:e + lo]
        gb[..., self.hi_rows] += nb[..., e + lo:]
        return gb

    def __repr__(self):
        return f"{type(self).__name__}({self.name!r}, r={self.n_out})"


class PathConstraint(_Constraint):
    """``lower <= g(x[t], u[t]) <= upper`` at the steps ``steps`` (default ``0 .. T-1``).

    Parameters
    ----------
    g : callable ``g(x, u) -> (r, 1)`` written with casadi operations, or ConstraintFunction
    lower, upper : float or (r,) array_like, optional
        Bounds (``-inf``/``inf`` or ``None`` for none); equal entries make equality rows.
    n_state, n_control : int
        Sizes of ``x`` and ``u``.
    steps : sequence of int, optional
        Steps t in ``0 .. T-1`` where the constraint holds.
    name : str, optional
        Used in messages and as the key of the result's multipliers.
    """

    kind = "stage"
    uses_control = True

    def __init__(self, g, lower=None, upper=None, *, n_state: int, n_control: int, steps=None,
                 name: Optional[str] = None):
        super().__init__(g, lower, upper, n_state=n_state, n_control=n_control, steps=steps, name=name)

    def active_steps(self, T):
        return _mask(self.name, self._steps, T + 1, range(T), T - 1)


class StateConstraint(_Constraint):
    """``lower <= g(x[t]) <= upper`` at the steps ``steps`` (default ``1 .. T``: ``x[0]`` is given).

    ``t = T`` (the final state) is included by default.  Parameters as :class:`PathConstraint`
    without ``n_control``.
    """

    kind = "state"

    def __init__(self, g, lower=None, upper=None, *, n_state: int, steps=None, name: Optional[str] = None):
        super().__init__(g, lower, upper, n_state=n_state, steps=steps, name=name)

    def active_steps(self, T):
        return _mask(self.name, self._steps, T + 1, range(1, T + 1), T)


class TerminalConstraint(_Constraint):
    """``lower <= g(x[T]) <= upper``; ``equal=`` is shorthand for ``lower = upper = equal``.

    Parameters as :class:`StateConstraint` (no ``steps``).
    """

    kind = "terminal"

    def __init__(self, g, lower=None, upper=None, *, n_state: int, equal=None, name: Optional[str] = None):
        if equal is not None:
            if lower is not None or upper is not None:
                raise ValueError("TerminalConstraint: give either equal= or lower=/upper=, not both")
            lower = upper = equal
        super().__init__(g, lower, upper, n_state=n_state, name=name)

    def active_steps(self, T):
        m = np.zeros(T + 1, dtype=bool)
        m[T] = True
        return m


def _mask(name, steps, size, default, last):
    m = np.zeros(size, dtype=bool)
    if steps is None:
        m[list(default)] = True
        return m
    idx = np.asarray(list(steps) if not isinstance(steps, range) else steps)
    if idx.ndim != 1 or idx.size == 0 or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"{name}: steps must be a non-empty sequence of integers, got {steps!r}")
    if idx.min() < 0 or idx.max() > last:
        raise ValueError(f"{name}: steps must lie in 0 .. {last}, got min {idx.min()} and max {idx.max()}")
    m[idx] = True
    return m


# --------------------------------------------------------------------------- cost components
class _FoldedParams:
    """Parameter plumbing shared by the constraint cost components: the vector is
    ``[user component's params, data of every constraint (steps, B, n_rows), rho]``; the user
    component's ``bind``/``param_grad`` are passed through."""

    _steps = 1  # rows of data per constraint in time: T for stage costs, 1 for the terminal cost

    def split(self, p):
        if isinstance(p, tuple):
            return p
        p = np.asarray(p)
        user = p[:self.n_user]
        off, data = self.n_user, []
        for c, size in zip(self.cons, self.sizes):
            data.append(p[off:off + size].reshape(self._steps, self.B, c.n_rows))
            off += size
        return user, data, float(p[off])

    def bind(self, params, *, grad: bool):
        user, data, rho = self.split(params)
        b = getattr(self.user, "bind", None)
        return (user if b is None else b(user, grad=grad)), data, rho

    def _finish_dual(self, xb, pb, c_bar):
        """The state adjoint (zeros when nothing reached it) and the parameter adjoint as a slice
        of the user block (the data and rho get none)."""
        if pb is None:
            pb = _EMPTY_GRAD
        elif not isinstance(pb, SliceGrad):
            pb = SliceGrad(slice(0, self.n_user), pb)
        if xb is None:
            xb = np.zeros((c_bar.shape[0], self.n_state))
        return xb, pb

    def param_grad(self, bound):
        pg = getattr(self.user, "param_grad", None)
        if pg is None or not isinstance(bound, tuple):
            return None
        g = pg(bound[0])
        return None if g is None else SliceGrad(slice(0, self.n_user), np.asarray(g))


class _ConstraintStageCost(_FoldedParams, StageCost):
    r"""User stage cost (optional) plus constraint terms at the stage steps, B-scaled.

    ``mode="al"``: PHR terms :math:`\lambda h + \rho h^2/2` and
    :math:`(\max(0, \mu + \rho s)^2 - \mu^2)/(2\rho)`; ``mode="linear"``: :math:`w \cdot c`.
    Parameters: ``[user cost params, data of every constraint (T, B, n_rows), rho]``.
    """

    def __init__(self, user: Optional[StageCost], cons: List[_Constraint], masks, T: int, B: int, mode: str,
                 n_state: int, n_control: int):
        self.user, self.cons, self.masks, self.T, self.B, self.mode = user, cons, masks, T, B, mode
        self._steps = T
        self.n_state, self.n_control = n_state, n_control
        self.n_exog = getattr(user, "n_exog", 0) if user is not None else 0
        if user is not None and getattr(user, "channels", None) is not None:
            self.channels = user.channels
        self.n_user = 0 if user is None else user.n_params
        self.sizes = [T * B * c.n_rows for c in cons]
        self.param_spec = (("user", (self.n_user,)), ("data", (sum(self.sizes),)), ("rho", (1,)))

    def forward(self, t, x, u, X, p):
        user_p, data, rho = self.split(p)
        B = x.shape[0]
        total, uc = (np.zeros(B), None) if self.user is None else self.user.forward(t, x, u, X, user_p)
        parts = []
        for c, mask, d in zip(self.cons, self.masks, data):
            if not mask[t]:
                continue
            g, gc = c.fn.forward(t, x, u if c.uses_control else None)
            _check_g(c, g, B)
            val, dval = _penalty(self.mode, c, c.normalise(g), d[t], rho)
            total = total + self.B * val
            parts.append((c, gc, dval))
        return total, (uc, parts)

    def vjp(self, ctx, c_bar):
        uc, parts = ctx
        if self.user is not None:
            xb, ub, pb = self.user.vjp(uc, c_bar)
        else:
            xb = ub = pb = None
        for c, gc, dval in parts:
            gb = c.denormalise_bar((self.B * c_bar)[:, None] * dval)
            gx, gu = c.fn.vjp(gc, gb)
            xb = add_adjoint(xb, gx)
            if c.uses_control:
                ub = add_adjoint(ub, gu)
        xb, pb = self._finish_dual(xb, pb, c_bar)
        return xb, ub, pb


class _ConstraintTerminalCost(_FoldedParams, TerminalCost):
    """User terminal cost (optional) plus constraint terms at ``x[T]``; data (1, B, n_rows)."""

    def __init__(self, user: Optional[TerminalCost], cons: List[_Constraint], T: int, B: int, mode: str,
                 n_state: int):
        self.user, self.cons, self.T, self.B, self.mode, self.n_state = user, cons, T, B, mode, n_state
        self.n_user = 0 if user is None else user.n_params
        self.sizes = [B * c.n_rows for c in cons]
        self.param_spec = (("user", (self.n_user,)), ("data", (sum(self.sizes),)), ("rho", (1,)))

    def forward(self, x, p):
        user_p, data, rho = self.split(p)
        B = x.shape[0]
        total, uc = (np.zeros(B), None) if self.user is None else self.user.forward(x, user_p)
        parts = []
        for c, d in zip(self.cons, data):
            g, gc = c.fn.forward(self.T, x, None)
            _check_g(c, g, B)
            val, dval = _penalty(self.mode, c, c.normalise(g), d[0], rho)
            total = total + self.B * val
            parts.append((c, gc, dval))
        return total, (uc, parts)

    def vjp(self, ctx, c_bar):
        uc, parts = ctx
        xb, pb = (None, None) if self.user is None else self.user.vjp(uc, c_bar)
        for c, gc, dval in parts:
            gx, _ = c.fn.vjp(gc, c.denormalise_bar((self.B * c_bar)[:, None] * dval))
            xb = add_adjoint(xb, gx)
        return self._finish_dual(xb, pb, c_bar)


def _check_g(c, g, B):
    if not isinstance(g, np.ndarray) or g.shape != (B, c.n_out):
        shape = getattr(g, "shape", type(g).__name__)
        raise ValueError(f"{c.name}: the constraint function returned {shape}; expected (B, r) = ({B}, {c.n_out})")


def _penalty(mode, c, s, d, rho):
    """Per-scenario penalty ``(B,)`` and its derivative ``(B, n_rows)`` w.r.t. the normalised rows."""
    if mode == "linear":
        return (d * s).sum(axis=1), d
    e = c.n_eq
    h, lam = s[:, :e], d[:, :e]
    si, mu = s[:, e:], d[:, e:]
    act = np.maximum(0.0, mu + rho * si)
    val = (lam * h).sum(axis=1) + 0.5 * rho * (h * h).sum(axis=1) + ((act * act - mu * mu) / (2.0 * rho)).sum(axis=1)
    return val, np.concatenate([lam + rho * h, act], axis=1)


# --------------------------------------------------------------------------- the constrained problem
class ConstrainedProblem:
    r"""A :class:`dynopt.Problem` with constraints.

    Parameters
    ----------
    problem : Problem
        Objective ``J(W)`` (``objective="min"``); its stage and terminal costs may be absent.
    constraints : sequence of PathConstraint, StateConstraint, TerminalConstraint

    embedding : (P, c, w0), optional
        Solve over ``w`` with ``W = P w + c`` (P ``(n_decision, n_w)``, dense or scipy
        sparse; ``w0`` the start): how :class:`~dynopt.control.MultipleShooting` ties
        duplicated node states together.  Default: ``w = W``.

    Attributes
    ----------
    n_eq, n_ineq : int
        Number of equality rows ``h`` and inequality rows ``s <= 0`` over all steps and
        scenarios (the length of :meth:`values`' outputs).
    n_w : int
        Length of the vector solved for (``problem.n_decision`` without an embedding).
    w0 : (n_w,) array
        Default start.
    """

    def __init__(self, problem: Problem, constraints: Sequence[_Constraint], *, embedding=None):
        if not isinstance(problem, Problem):
            raise TypeError(f"problem: expected a dynopt.Problem, got {type(problem).__name__}")
        if problem.objective != "min":
            raise ValueError("problem: constrained problems are stated as minimisation; got objective='max' "
                             "(negate the utility in a cost instead)")
        if isinstance(constraints, _Constraint):
            constraints = [constraints]
        constraints = list(constraints)
        if not constraints:
            raise ValueError("constraints: expected at least one constraint, got none")
        for c in constraints:
            if not isinstance(c, _Constraint):
                raise TypeError(f"constraints: expected PathConstraint/StateConstraint/TerminalConstraint, "
                                f"got {type(c).__name__}")
            if c.n_state != problem.plant.n_state:
                raise ValueError(f"{c.name}: n_state={c.n_state}, but the plant has n={problem.plant.n_state} states")
            if c.uses_control and c.n_control != problem.plant.n_control:
                raise ValueError(f"{c.name}: n_control={c.n_control}, but the plant has m={problem.plant.n_control}")
        names = [c.name for c in constraints]
        if len(set(names)) != len(names):
            raise ValueError(f"constraints: names must be unique (they key the multipliers), got {names}")
        if getattr(problem.cost, "timing", "pre") != "pre":
            raise ValueError("problem: constraints need a stage cost evaluated at x[t] (timing 'pre'), "
                             f"got timing {problem.cost.timing!r}")
        for blk in ("cost", "terminal"):
            if blk in problem.decision:
                raise ValueError(f"problem: the {blk!r} block cannot be a decision variable of a constrained "
                                 f"problem (its component carries the multipliers)")
        self.problem = problem
        self.constraints = constraints
        T, B = problem.horizon, problem.B
        self.T, self.B = T, B
        # stage part: path constraints and state constraints at t < T; terminal part: state at T + terminal
        self.stage, self.stage_masks, self.term = [], [], []
        for c in constraints:
            m = c.active_steps(T)
            if c.kind in ("stage", "state") and m[:T].any():
                self.stage.append(c)
                self.stage_masks.append(m[:T])
            if c.kind in ("state", "terminal") and m[T]:
                self.term.append(c)
        self._masks = {c.name: c.active_steps(T) for c in constraints}
        self.n_eq = sum(int(self._masks[c.name].sum()) * B * c.n_eq for c in constraints)
        self.n_ineq = sum(int(self._masks[c.name].sum()) * B * (c.n_rows - c.n_eq) for c in constraints)
        blocks = problem.unpack(problem.W0)
        self._user_cost = np.asarray(blocks["cost"]).ravel()
        self._user_term = np.asarray(blocks["terminal"]).ravel()
        n, m = problem.plant.n_state, problem.plant.n_control
        # "al": the user's costs plus PHR terms; "linear": weighted constraint rows alone (Jacobians)
        self._cost = {"al": _ConstraintStageCost(problem.cost, self.stage, self.stage_masks, T, B, "al", n, m),
                      "linear": _ConstraintStageCost(None, self.stage, self.stage_masks, T, B, "linear", n, m)}
        self._term = {"al": _ConstraintTerminalCost(problem.terminal_cost, self.term, T, B, "al", n),
                      "linear": _ConstraintTerminalCost(None, self.term, T, B, "linear", n)}
        self._template = {}
        if embedding is None:
            self._P, self._c = None, None
            self.n_w, self.w0 = problem.n_decision, problem.W0
        else:
            try:
                P, c, w0 = embedding
            except (TypeError, ValueError):
                raise TypeError("embedding: expected a tuple (P, c, w0)") from None
            c = as_float_array("embedding c", c).ravel()
            w0 = as_float_array("embedding w0", w0).ravel()
            if P.shape != (problem.n_decision, w0.size) or c.shape != (problem.n_decision,):
                raise ValueError(f"embedding: expected P ({problem.n_decision}, n_w), c ({problem.n_decision},) and "
                                 f"w0 (n_w,), got {P.shape}, {c.shape}, {w0.shape}")
            self._P, self._c = P, c
            self.n_w, self.w0 = w0.size, w0
        self._check_fixed_x0()

    # ----------------------------------------------------------------- the solved-for vector w
    def lift(self, w):
        """``W = P w + c`` (identity without an embedding), shape ``(n_decision,)``."""
        w = as_float_array("w", w)
        if w.shape != (self.n_w,):
            raise ValueError(f"w: expected shape ({self.n_w},), got {w.shape}")
        return w if self._P is None else self._P @ w + self._c

    def pull(self, g):
        """Adjoint of :meth:`lift`: ``P^T g``."""
        return g if self._P is None else self._P.T @ g

    def objective(self, w):
        """``(J, dJ/dw)`` of the unconstrained objective."""
        J, g = self.problem.value_and_grad(self.lift(w))
        return J, self.pull(g)

    def _check_fixed_x0(self):
        if "x0" in self.problem.decision:
            return
        x0 = self.problem.unpack(self.problem.W0)["x0"]
        x0 = np.asarray(x0).reshape(-1, self.B, self.problem.plant.n_state)[0]
        for c in self.constraints:
            if c.kind == "state" and self._masks[c.name][0]:
                s = c.normalise(c.fn.forward(0, x0, None)[0])
                e = c.n_eq
                bad = max(np.abs(s[:, :e]).max(initial=0.0), s[:, e:].max(initial=-np.inf))
                if bad > 1e-12:
                    raise ValueError(f"{c.name}: infeasible: it is enforced at step 0 but the fixed initial state "
                                     f"x0 violates it by {bad:g} (x0 is not a decision variable)")

    # ----------------------------------------------------------------- problems with constraint costs
    def _problem(self, mode, stage_data, term_data, rho) -> Problem:
        """The problem with constraint costs of ``mode`` holding ``stage_data``/``term_data``."""
        user_c = self._user_cost if mode == "al" else np.zeros(0)
        user_t = self._user_term if mode == "al" else np.zeros(0)
        params = {"cost": np.concatenate([user_c] + [d.ravel() for d in stage_data] + [[rho]]),
                  "terminal": np.concatenate([user_t] + [d.ravel() for d in term_data] + [[rho]])}
        base = self._template.get(mode)
        if base is None:
            base = _with(self.problem, params, cost=self._cost[mode], terminal_cost=self._term[mode])
            self._template[mode] = base
            return base
        return _with(base, params)

    def zeros(self):
        """Zero multipliers ``(stage, terminal)``: lists of (T, B, n_rows) and (1, B, n_rows) arrays."""
        return ([np.zeros((self.T, self.B, c.n_rows)) for c in self.stage],
                [np.zeros((1, self.B, c.n_rows)) for c in self.term])

    def augmented(self, stage_mult, term_mult, rho: float) -> Problem:
        """The problem whose objective is the PHR augmented Lagrangian for these multipliers."""
        return self._problem("al", stage_mult, term_mult, float(rho))

    # ----------------------------------------------------------------- values and Jacobians
    def normalised_values(self, W, trajectory=None):
        """Normalised rows per constraint at W: ``{name: (T+1, B, n_rows)}`` (NaN where inactive)."""
        traj = self.problem.simulate(self.lift(W)) if trajectory is None else trajectory
        out = {}
        for c in self.constraints:
            mask = self._masks[c.name]
            vals = np.full((self.T + 1, self.B, c.n_rows), np.nan)
            for t in np.nonzero(mask)[0]:
                u = traj.u[t] if (c.uses_control and t < self.T) else None
                g, _ = c.fn.forward(int(t), traj.x[t], u)
                _check_g(c, g, self.B)
                vals[t] = c.normalise(g)
            out[c.name] = vals
        return out

    def values(self, W, trajectory=None):
        """``(h (n_eq,), s (n_ineq,))``: equality rows and inequality rows (feasible: h = 0, s <= 0),
        ordered by constraint, step, scenario, row."""
        nv = self.normalised_values(W, trajectory)
        h, s = [], []
        for c in self.constraints:
            v = nv[c.name][self._masks[c.name]]
            h.append(v[..., :c.n_eq].ravel())
            s.append(v[..., c.n_eq:].ravel())
        return np.concatenate(h), np.concatenate(s)

    def violation(self, W, trajectory=None) -> float:
        """Largest constraint violation ``max(|h|, max(s, 0))`` at W."""
        h, s = self.values(W, trajectory)
        return float(max(np.abs(h).max(initial=0.0), np.maximum(s, 0.0).max(initial=0.0)))

    def _weights_from_vector(self, w_eq, w_in):
        """Per-constraint weight arrays (stage, terminal) from weights on the rows of :meth:`values`."""
        stage = {c.name: np.zeros((self.T, self.B, c.n_rows)) for c in self.stage}
        term = {c.name: np.zeros((1, self.B, c.n_rows)) for c in self.term}
        oe = oi = 0
        for c in self.constraints:
            mask = self._masks[c.name]
            k = int(mask.sum())
            full = np.zeros((self.T + 1, self.B, c.n_rows))
            ne, ni = k * self.B * c.n_eq, k * self.B * (c.n_rows - c.n_eq)
            sel = np.zeros((k, self.B, c.n_rows))
            sel[..., :c.n_eq] = w_eq[oe:oe + ne].reshape(k, self.B, c.n_eq)
            sel[..., c.n_eq:] = w_in[oi:oi + ni].reshape(k, self.B, c.n_rows - c.n_eq)
            oe, oi = oe + ne, oi + ni
            full[mask] = sel
            if c.name in stage:
                stage[c.name] = full[:self.T]
            if c.name in term:
                term[c.name] = full[self.T:]
        return [stage[c.name] for c in self.stage], [term[c.name] for c in self.term]

    def vjp(self, W, w_eq, w_in):
        r"""``w_eq^T dh/dW + w_in^T ds/dW``, shape ``(n_decision,)``, from one adjoint sweep."""
        st, te = self._weights_from_vector(np.asarray(w_eq, float), np.asarray(w_in, float))
        _, g = self._problem("linear", st, te, 1.0).value_and_grad(self.lift(W))
        return self.pull(g)

    def jacobians(self, W):
        """Exact ``(dh/dw (n_eq, n_w), ds/dw (n_ineq, n_w))``, one adjoint sweep per row."""
        Je = np.zeros((self.n_eq, self.n_w))
        Ji = np.zeros((self.n_ineq, self.n_w))
        for i in range(self.n_eq):
            e = np.zeros(self.n_eq)
            e[i] = 1.0
            Je[i] = self.vjp(W, e, np.zeros(self.n_ineq))
        for i in range(self.n_ineq):
            e = np.zeros(self.n_ineq)
            e[i] = 1.0
            Ji[i] = self.vjp(W, np.zeros(self.n_eq), e)
        return Je, Ji

    def multipliers_by_name(self, y_eq, y_in):
        """KKT multipliers on the rows of :meth:`values` -> ``{name: (T+1, B, r)}`` in the layout of g
        (``(B, r)`` for terminal constraints), sign convention ``grad J + sum y grad g = 0``."""
        out = {}
        oe = oi = 0
        for c in self.constraints:
            mask = self._masks[c.name]
            k = int(mask.sum())
            ne, ni = k * self.B * c.n_eq, k * self.B * (c.n_rows - c.n_eq)
            rows = np.zeros((k, self.B, c.n_rows))
            rows[..., :c.n_eq] = np.asarray(y_eq[oe:oe + ne]).reshape(k, self.B, c.n_eq)
            rows[..., c.n_eq:] = np.asarray(y_in[oi:oi + ni]).reshape(k, self.B, c.n_rows - c.n_eq)
            oe, oi = oe + ne, oi + ni
            y = c.denormalise_bar(rows)  # d(row)/dg applied to the row multipliers
            full = np.zeros((self.T + 1, self.B, c.n_out))
            full[mask] = y
            out[c.name] = full[self.T] if c.kind == "terminal" else full
        return out

    def __repr__(self):
        return (f"ConstrainedProblem({self.problem!r}, constraints={[c.name for c in self.constraints]}, "
                f"n_eq={self.n_eq}, n_ineq={self.n_ineq})")


def _with(problem: Problem, params: dict, **components) -> Problem:
    """``problem.replace(...)`` when Problem has it, else a new Problem from its public attributes."""
    rep = getattr(problem, "replace", None)
    if rep is not None:
        return rep(params=params, **components)
    blocks = problem.unpack(problem.W0)
    allp = {name: blocks[name] for name in ("policy", "plant", "cost", "terminal")
            if np.asarray(blocks[name]).size}
    for name in ("cost", "terminal"):
        allp.pop(name, None)
    allp.update(params)
    kw = dict(cost=problem.cost, terminal_cost=problem.terminal_cost)
    kw.update(components)
    X = problem.X
    if X is not None and not isinstance(X, np.ndarray):
        X = dict(X)
    return Problem(problem.plant, problem.policy, kw["cost"], kw["terminal_cost"], horizon=problem.horizon,
                   x0=blocks["x0"], X=X, params=allp, decision=problem.decision, objective=problem.objective,
                   gradient=problem.gradient)


# --------------------------------------------------------------------------- solvers
class ConstrainedResult(OptimizeResult):
    """:class:`dynopt.OptimizeResult` plus

    Attributes
    ----------
    multipliers : dict
        ``{constraint name: array}``: ``(T+1, B, r)`` for path/state constraints (zero at
        inactive steps), ``(B, r)`` for terminal constraints; ``grad J + sum y grad g = 0``.
    max_violation : float
        ``max(|h|, max(s, 0))`` at ``x``.
    outer_iterations : int
        Augmented-Lagrangian outer iterations (0 for SLSQP / trust-constr).
    inner_iterations : int
        Total iterations of the inner optimizer.
    rho : float
        Final penalty parameter (augmented Lagrangian).
    """


def solve(cproblem: ConstrainedProblem, w0=None, *, method: str = "auglag", bounds=None, tol: float = 1e-8,
          gtol: float = 1e-9, max_outer: int = 40, rho0: float = 100.0, inner_method: str = "L-BFGS-B",
          options: Optional[dict] = None) -> ConstrainedResult:
    r"""Solve a :class:`ConstrainedProblem`.

    Parameters
    ----------
    cproblem : ConstrainedProblem
    w0 : (n_w,) array, optional
        Start (the problem's decision vector W unless the problem has an embedding);
        default ``cproblem.w0``.
    method : {"auglag", "SLSQP", "trust-constr"}
        Augmented Lagrangian (inner problems by scipy's ``inner_method``, each evaluation one
        forward and one adjoint sweep), or scipy with exact constraint Jacobians (one adjoint
        sweep per constraint row and iterate: small problems).
    bounds : dict or scipy Bounds or sequence of (lo, hi), optional
        Simple bounds on w; a dict maps decision blocks to ``(lo, hi)`` as in
        :func:`dynopt.optimize` (problems without an embedding).  With ``"auglag"`` they
        need ``inner_method="L-BFGS-B"``.
    tol : float
        Required constraint violation ``max(|h|, max(s, 0))``.
    gtol : float
        Gradient tolerance of the last inner problem (auglag; earlier ones are looser),
        ``gtol``/``xtol`` of trust-constr, ``ftol`` of SLSQP.
    max_outer : int
        Outer iterations of the augmented Lagrangian.
    rho0 : float
        Initial penalty (multiplied by 10 when the violation does not fall by 4x).
    inner_method : {"L-BFGS-B", "BFGS"}
        scipy method for the inner problems.
    options : dict, optional
        Passed to the inner scipy method (auglag) or to scipy (SLSQP, trust-constr).

    Returns
    -------
    ConstrainedResult
        Warns (``RuntimeWarning``) when the violation is above ``tol`` or the solver failed.
    """
    if not isinstance(cproblem, ConstrainedProblem):
        raise TypeError(f"cproblem: expected a dynopt.control.ConstrainedProblem, got {type(cproblem).__name__}")
    w = as_float_array("w0", cproblem.w0 if w0 is None else w0).copy()
    if w.shape != (cproblem.n_w,):
        raise ValueError(f"w0: expected shape ({cproblem.n_w},), got {w.shape}")
    if not tol > 0:
        raise ValueError(f"tol: expected a positive constraint tolerance, got {tol}")
    if isinstance(bounds, dict):
        if cproblem._P is not None:
            raise ValueError("bounds: a dict of blocks needs a problem without an embedding; give scipy Bounds on w")
        bounds = _block_bounds(cproblem.problem, bounds)
    if method == "auglag":
        if bounds is not None and inner_method != "L-BFGS-B":
            raise ValueError(f"bounds: the augmented Lagrangian takes bounds with inner_method='L-BFGS-B', "
                             f"got {inner_method!r}")
        if inner_method not in ("L-BFGS-B", "BFGS"):
            raise ValueError(f"inner_method: expected 'L-BFGS-B' or 'BFGS', got {inner_method!r}")
        res = _auglag(cproblem, w, bounds, tol, gtol, check_int("max_outer", max_outer, minimum=1), float(rho0),
                      inner_method, options)
    elif method in ("SLSQP", "trust-constr"):
        res = _scipy(cproblem, w, method, bounds, gtol, options)
    else:
        raise ValueError(f"method: expected 'auglag', 'SLSQP' or 'trust-constr', got {method!r}")
    if res.max_violation > tol or not res.success:
        warnings.warn(f"dynopt.control.solve ({method}): max violation {res.max_violation:.3g} (tol {tol:g}); "
                      f"{res.message}", RuntimeWarning, stacklevel=2)
    return res


def _block_bounds(problem: Problem, bounds: dict) -> scipy.optimize.Bounds:
    """``{block: (lo, hi)}`` (scalars, arrays of the block's size or None) -> scipy Bounds on W."""
    lo = np.full(problem.n_decision, -np.inf)
    hi = np.full(problem.n_decision, np.inf)
    slices = problem.block_slices()
    for name, pair in bounds.items():
        if name not in slices:
            raise ValueError(f"bounds: block {name!r} is not in the decision {problem.decision}")
        try:
            b_lo, b_hi = pair
        except (TypeError, ValueError):
            raise TypeError(f"bounds[{name!r}]: expected a pair (lo, hi), got {pair!r}") from None
        sl = slices[name]
        size = sl.stop - sl.start
        if b_lo is not None:
            lo[sl] = np.broadcast_to(as_float_array(f"bounds[{name!r}] lower", b_lo).ravel(), (size,))
        if b_hi is not None:
            hi[sl] = np.broadcast_to(as_float_array(f"bounds[{name!r}] upper", b_hi).ravel(), (size,))
    bad = np.nonzero(lo > hi)[0]
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"bounds: infeasible, lower bound {lo[i]} exceeds upper bound {hi[i]} at W[{i}]")
    return scipy.optimize.Bounds(lo, hi)


class _Memo:
    """(value, gradient) of the augmented Lagrangian by w; diverging trial points cost a penalty."""

    def __init__(self, cp, prob):
        self.cp, self.prob, self.key, self.val, self.penalty = cp, prob, None, None, None

    def __call__(self, w):
        key = w.tobytes()
        if key != self.key:
            try:
                J, g = self.prob.value_and_grad(self.cp.lift(w))
                if not np.isfinite(J):
                    raise SimulationDivergedError("non-finite augmented Lagrangian")
                val = (J, self.cp.pull(g))
            except SimulationDivergedError:
                if self.penalty is None:
                    raise
                val = (self.penalty, np.zeros_like(w))
            self.key, self.val = key, val
        return self.val


def _auglag(cp: ConstrainedProblem, w, bounds, tol, gtol, max_outer, rho, inner_method, options):
    stage_m, term_m = cp.zeros()
    inner_total, V_prev, success, message = 0, np.inf, False, ""
    opts = dict(options or {})
    opts.setdefault("maxiter", 3000)
    if inner_method == "L-BFGS-B":
        opts.setdefault("ftol", 1e-16)
        opts.setdefault("maxcor", 50)  # more memory: ~2x fewer inner iterations on small problems
    k, inner_msg = 0, ""
    for k in range(1, max_outer + 1):
        f = _Memo(cp, cp.augmented(stage_m, term_m, rho))
        f0, _ = f(w)
        f.penalty = f0 + 1e4 * max(1.0, abs(f0))
        inner_opts = dict(opts)
        inner_opts["gtol"] = max(gtol, 10.0 ** (-2 - k))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            res = scipy.optimize.minimize(f, w, jac=True, method=inner_method, bounds=bounds, options=inner_opts)
        w, inner_msg = res.x, res.message
        inner_total += int(res.nit)
        traj = cp.problem.simulate(cp.lift(w))
        nv = cp.normalised_values(w, traj)
        V = 0.0
        new_stage, new_term = [], []
        for c, d, mask in zip(cp.stage, stage_m, cp.stage_masks):
            nd, Vc = _update(c, np.nan_to_num(nv[c.name][:cp.T]), d, rho, mask)
            new_stage.append(nd)
            V = max(V, Vc)
        for c, d in zip(cp.term, term_m):
            nd, Vc = _update(c, nv[c.name][cp.T:], d, rho, None)
            new_term.append(nd)
            V = max(V, Vc)
        stage_m, term_m = new_stage, new_term
        viol = cp.violation(w, traj)
        if viol <= tol and V <= tol and inner_opts["gtol"] <= gtol * (1 + 1e-9):
            success, message = True, "constraints satisfied and the last inner problem converged"
            break
        if V > 0.25 * V_prev:
            rho *= 10.0
        V_prev = V
    else:
        message = f"max_outer={max_outer} outer iterations reached"
    fun, jac = cp.objective(w)
    out = ConstrainedResult(x=w, fun=fun, jac=jac, success=success, status=0 if success else 1, message=message,
                            nit=k)
    out.trajectory = cp.problem.simulate(cp.lift(w))
    out.params = cp.problem.named(cp.lift(w))
    out.max_violation = cp.violation(w, out.trajectory)
    out.outer_iterations, out.inner_iterations, out.rho = k, inner_total, rho
    out.inner_message = inner_msg
    y_eq, y_in = _vector_from_data(cp, stage_m, term_m)
    out.multipliers = cp.multipliers_by_name(y_eq, y_in)
    return out


def _update(c, v, d, rho, mask):
    """PHR update of one constraint's data ``d`` (T or 1, B, n_rows) from rows ``v``; returns the
    new data and the KKT measure ``max(|h|, |max(s, -mu/rho)|)``."""
    e = c.n_eq
    nd = d.copy()
    h, si = v[..., :e], v[..., e:]
    nd[..., :e] = d[..., :e] + rho * h
    nd[..., e:] = np.maximum(0.0, d[..., e:] + rho * si)
    comp = np.maximum(si, -d[..., e:] / rho)
    if mask is not None:
        nd[~mask] = 0.0
        h, comp = h[mask], comp[mask]
    return nd, float(max(np.abs(h).max(initial=0.0), np.abs(comp).max(initial=0.0)))


def _vector_from_data(cp, stage_m, term_m):
    """Row multipliers in the order of :meth:`ConstrainedProblem.values` from the per-constraint data."""
    by = {c.name: d for c, d in zip(cp.stage, stage_m)}
    tb = {c.name: d for c, d in zip(cp.term, term_m)}
    y_eq, y_in = [], []
    for c in cp.constraints:
        full = np.zeros((cp.T + 1, cp.B, c.n_rows))
        if c.name in by:
            full[:cp.T] = by[c.name]
        if c.name in tb:
            full[cp.T:] = tb[c.name]
        v = full[cp._masks[c.name]]
        y_eq.append(v[..., :c.n_eq].ravel())
        y_in.append(v[..., c.n_eq:].ravel())
    return np.concatenate(y_eq), np.concatenate(y_in)


def _scipy(cp: ConstrainedProblem, w, method, bounds, gtol, options):
    cache = {}

    def vals(w):
        key = w.tobytes()
        if cache.get("v", (None,))[0] != key:
            cache["v"] = (key, cp.values(w))
        return cache["v"][1]

    def jacs(w):
        key = w.tobytes()
        if cache.get("j", (None,))[0] != key:
            cache["j"] = (key, cp.jacobians(w))
        return cache["j"][1]

    opts = dict(options or {})
    cons = []
    kw = {}
    if method == "SLSQP":
        opts.setdefault("maxiter", 500)
        opts.setdefault("ftol", gtol)
        if cp.n_eq:
            cons.append({"type": "eq", "fun": lambda w: vals(w)[0], "jac": lambda w: jacs(w)[0]})
        if cp.n_ineq:
            cons.append({"type": "ineq", "fun": lambda w: -vals(w)[1], "jac": lambda w: -jacs(w)[1]})
    else:
        opts.setdefault("maxiter", 2000)
        opts.setdefault("gtol", gtol)
        opts.setdefault("xtol", gtol)
        kw["hess"] = scipy.optimize.BFGS()
        if cp.n_eq:
            cons.append(scipy.optimize.NonlinearConstraint(lambda w: vals(w)[0], 0.0, 0.0, jac=lambda w: jacs(w)[0],
                                                           hess=scipy.optimize.BFGS()))
        if cp.n_ineq:
            cons.append(scipy.optimize.NonlinearConstraint(lambda w: vals(w)[1], -np.inf, 0.0,
                                                           jac=lambda w: jacs(w)[1], hess=scipy.optimize.BFGS()))
    with warnings.catch_warnings():
        # trust-constr warns when a quasi-Newton update is skipped (delta_grad == 0): not a failure
        warnings.filterwarnings("ignore", message=".*delta_grad == 0.0.*", category=UserWarning)
        res = scipy.optimize.minimize(cp.objective, w, jac=True, method=method, bounds=bounds, constraints=cons,
                                      options=opts, **kw)
    out = ConstrainedResult(res)
    out.trajectory = cp.problem.simulate(cp.lift(res.x))
    out.params = cp.problem.named(cp.lift(res.x))
    out.max_violation = cp.violation(res.x, out.trajectory)
    out.outer_iterations, out.inner_iterations, out.rho = 0, int(getattr(res, "nit", 0)), float("nan")
    y_eq, y_in = np.zeros(cp.n_eq), np.zeros(cp.n_ineq)
    if method == "SLSQP" and getattr(res, "multipliers", None) is not None:
        mlt = np.asarray(res.multipliers)
        # SLSQP: grad f = sum m_i grad c_i with c = h (eq) and c = -s >= 0 (ineq, m >= 0)
        y_eq, y_in = -mlt[:cp.n_eq], mlt[cp.n_eq:cp.n_eq + cp.n_ineq]
    elif method == "trust-constr" and getattr(res, "v", None) is not None:
        i = 0
        if cp.n_eq:
            y_eq, i = np.asarray(res.v[0]), 1  # trust-constr: grad f + sum v grad c = 0
        if cp.n_ineq:
            y_in = np.asarray(res.v[i])
    out.multipliers = cp.multipliers_by_name(y_eq, y_in)
    return out
