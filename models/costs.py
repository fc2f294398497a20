"""Costs: quadratic stage and terminal costs, the pendulum swing-up cost, and a cost made of
user functions."""

from __future__ import annotations

from typing import Callable

import numpy as np

from dynopt import StageCost, TerminalCost
from ._checks import number, positive, real_array


_vecdot = getattr(np, "vecdot", None)


def _rowdot(a, b):
    """Row-wise dot products ``(B,)`` of two (B, k) arrays."""
    return _vecdot(a, b) if _vecdot is not None else np.einsum("bi,bi->b", a, b)


def _weight(name, M, what):
    """A symmetric weight: an (k, k) matrix or its diagonal (k,); returns (matrix, diagonal or None)."""
    M = real_array(name, M)
    if M.ndim == 0:
        raise ValueError(f"{name}: expected the ({what}) weight as a (k, k) matrix or its diagonal (k,), "
                         f"got the scalar {float(M)!r} (write [{float(M)!r}] for a 1 x 1 weight)")
    if M.ndim == 1:
        if M.size == 0:
            raise ValueError(f"{name}: expected at least one weight, got an empty array")
        return np.diag(M), M.copy()
    if M.ndim != 2 or M.shape[0] != M.shape[1] or M.shape[0] == 0:
        raise ValueError(f"{name}: expected a square (k, k) matrix or its diagonal (k,) ({what}), got shape {M.shape}")
    if not np.allclose(M, M.T):
        raise ValueError(f"{name}: expected a symmetric matrix, got one with max asymmetry {np.abs(M - M.T).max():.3g}")
    M = 0.5 * (M + M.T)
    d = np.diag(M)
    return M, (d.copy() if np.count_nonzero(M - np.diag(d)) == 0 else None)


class _WeightOp:
    """``v -> v (scale M)`` for (B, k) rows by the cheapest exact route: the rows themselves
    (identity), one scalar product (a multiple of the identity), an element-wise product
    (diagonal), or a matrix product (picklable, unlike a closure)."""

    __slots__ = ("kind", "a")

    def __init__(self, M, d, scale):
        if d is not None:
            ds = scale * d
            if np.all(ds == ds[0]):
                self.a = float(ds[0])
                self.kind = "identity" if self.a == 1.0 else "scalar"
            else:
                self.kind, self.a = "diagonal", ds
        else:
            self.kind, self.a = "matrix", scale * M

    def __getstate__(self):
        return (self.kind, self.a)

    def __setstate__(self, state):
        self.kind, self.a = state

    def __call__(self, v):
        kind = self.kind
        if kind == "identity":
            return v
        if kind == "matrix":
            return np.dot(v, self.a)
        return v * self.a


def _apply(M, d, scale):
    return _WeightOp(M, d, scale)


def _ref(name, value, size, what):
    if value is None:
        return np.zeros(size), True
    v = real_array(name, value)
    if v.shape != (size,):
        raise ValueError(f"{name}: expected shape ({size},) ({what}), got {v.shape}")
    return v, not v.any()


def _size_error(weight, k, what, got):
    return ValueError(f"{weight}: expected a weight for the plant's {got} {what}, got a ({k}, {k}) weight "
                      f"(the cost was built for {k} {what})")


class Quadratic(StageCost):
    r"""``l = scale * ((x - x_ref)' Q (x - x_ref) + (u - u_ref)' R (u - u_ref))``.

    Parameters
    ----------
    Q : (n, n) array or its diagonal (n,)
        Symmetric state weight.
    R : (m, m) array or its diagonal (m,), optional
        Symmetric control weight (no control term without it).
    x_ref : (n,) array, optional
        State setpoint (units of the state); default zeros.
    u_ref : (m,) array, optional
        Control setpoint; needs ``R``.
    scale : float
        Real and finite, e.g. the time step ``dt`` [s] to approximate an integral cost (a
        negative scale turns the cost into a utility).

    Weights that are a multiple of the identity cost one scalar product (none for the identity),
    diagonal ones an element-wise product; ``scale`` is folded into the weights once.
    """

    def __init__(self, Q, R=None, x_ref=None, u_ref=None, scale: float = 1.0):
        self.Q, qd = _weight("Q", Q, "n x n state")
        n = self.Q.shape[0]
        self.R, rd = (None, None) if R is None else _weight("R", R, "m x m control")
        m = 0 if self.R is None else self.R.shape[0]
        if u_ref is not None and R is None:
            raise ValueError("u_ref: expected no control setpoint without a control weight R, got "
                             f"u_ref={u_ref!r} and R=None")
        self.x_ref, self._x0ref = _ref("x_ref", x_ref, n, "the state setpoint, n = Q's size")
        self.u_ref, self._u0ref = _ref("u_ref", u_ref, m, "the control setpoint, m = R's size")
        self.scale = number("scale", scale)
        self.n_state, self._m = n, m
        s = self.scale
        self._qop = _apply(self.Q, qd, s)
        self._rop = None if self.R is None else _apply(self.R, rd, s)

    def forward(self, t, x, u, X, p):
        if x.shape[1] != self.n_state:
            raise _size_error("Q", self.n_state, "states", x.shape[1])
        dx = x if self._x0ref else x - self.x_ref
        qx = self._qop(dx)
        c = _rowdot(qx, dx)
        ru = None
        if self._rop is not None:
            if u.shape[1] != self._m:
                raise _size_error("R", self._m, "controls", u.shape[1])
            du = u if self._u0ref else u - self.u_ref
            ru = self._rop(du)
            c += _rowdot(ru, du)
        return c, (qx, ru)

    def vjp(self, ctx, c_bar):
        qx, ru = ctx
        w = (2.0 * c_bar)[:, None]
        return w * qx, (None if ru is None else w * ru), None


class QuadraticTerminal(TerminalCost):
    """``l_T = (x - x_ref)' P (x - x_ref)``.

    Parameters
    ----------
    P : (n, n) array or its diagonal (n,)
        Symmetric terminal weight, e.g. the DARE solution.
    x_ref : (n,) array, optional
        Terminal setpoint; default zeros.
    """

    def __init__(self, P, x_ref=None):
        self.P, pd = _weight("P", P, "n x n state")
        self._pop = _apply(self.P, pd, 1.0)
        n = self.P.shape[0]
        self.n_state = n
        self.x_ref, self._x0ref = _ref("x_ref", x_ref, n, "the terminal setpoint, n = P's size")

    def forward(self, x, p):
        if x.shape[1] != self.n_state:
            raise _size_error("P", self.n_state, "states", x.shape[1])
        dx = x if self._x0ref else x - self.x_ref
        px = self._pop(dx)
        return _rowdot(px, dx), px

    def vjp(self, px, c_bar):
        return (2.0 * c_bar)[:, None] * px, None


class SwingUpCost(StageCost):
    r"""Pendulum swing-up: ``l = dt * (w_theta (1 - cos theta) + w_omega omega^2 + w_u u^2)``.

    State ``(theta, omega)`` with theta = 0 upright; ``dt`` [s] (> 0) the step so that the
    sum approximates the integral; weights real and finite.
    """

    def __init__(self, dt: float, w_theta=1.0, w_omega=0.1, w_u=0.01):
        self.dt = positive("dt", dt)
        self.w = (number("w_theta", w_theta), number("w_omega", w_omega), number("w_u", w_u))
        wt, ww, wu = self.w
        self._k = (self.dt * wt, self.dt * ww, self.dt * wu)
        self._D = np.diag([0.0, 2.0 * self.dt * ww])   # x D = (0, 2 dt w_omega omega)

    def forward(self, t, x, u, X, p):
        if x.shape[1] != 2 or u.shape[1] != 1:
            raise ValueError(f"SwingUpCost: expected a pendulum of 2 states and 1 control, got x of shape "
                             f"{x.shape} and u of shape {u.shape}")
        wt, ww, wu = self.w
        th, om, uu = x[:, 0], x[:, 1], u[:, 0]
        return self.dt * (wt * (1.0 - np.cos(th)) + ww * om * om + wu * uu * uu), (x, u)

    def vjp(self, ctx, c_bar):
        x, u = ctx
        kt, _, ku = self._k
        x_bar = np.dot(x, self._D)
        np.multiply(np.sin(x[:, 0]), kt, out=x_bar[:, 0])
        w = c_bar[:, None]
        x_bar *= w
        return x_bar, u * (w * (2.0 * ku)), None


class FunctionCost(StageCost):
    """A stage cost from two user functions: the value and its gradient.

    Parameters
    ----------
    value : callable ``(t, x (B, n), u (B, m), X) -> (B,)``
    grad : callable ``(t, x, u, X) -> (dl/dx (B, n), dl/du (B, m))``
        Its correctness is the user's; ``dynopt.check_gradient`` verifies it.
    n_exog : int
        How many exogenous inputs the cost reads.
    """

    def __init__(self, value: Callable, grad: Callable, n_exog: int = 0):
        if not callable(value) or not callable(grad):
            raise TypeError(f"value, grad: expected callables, got {type(value).__name__}, {type(grad).__name__}")
        from ._checks import integer
        self.value, self.grad, self.n_exog = value, grad, integer("n_exog", n_exog, minimum=0)

    def forward(self, t, x, u, X, p):
        c = np.asarray(self.value(t, x, u, X), dtype=np.float64)
        if c.shape != (x.shape[0],):
            raise ValueError(f"FunctionCost.value: expected shape ({x.shape[0]},), got {c.shape}")
        return c, (t, x, u, X)

    def vjp(self, ctx, c_bar):
        gx, gu = self.grad(*ctx)
        return c_bar[:, None] * gx, c_bar[:, None] * gu, np.zeros(0)
