"""Costs: quadratic stage and terminal costs, the pendulum swing-up cost, and a cost made of
user functions."""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from dynopt import StageCost, TerminalCost
from dynopt.core.validation import as_float_array, check_shape


def _weight(name, M, size):
    M = as_float_array(name, M)
    if M.ndim == 1:
        M = np.diag(M)
    check_shape(name, M, (size, size))
    if not np.allclose(M, M.T):
        raise ValueError(f"{name}: expected a symmetric matrix, got one with max asymmetry {np.abs(M - M.T).max():.3g}")
    return M


class Quadratic(StageCost):
    r"""``l = scale * ((x - x_ref)' Q (x - x_ref) + (u - u_ref)' R (u - u_ref))``.

    ``Q`` (n, n) or its diagonal (n,); ``R`` (m, m) or (m,); ``x_ref`` (n,), ``u_ref`` (m,);
    ``scale`` e.g. the time step ``dt`` [s] to approximate an integral cost.
    """

    def __init__(self, Q, R=None, x_ref=None, u_ref=None, scale: float = 1.0):
        Qa = as_float_array("Q", Q)
        n = Qa.shape[0]
        self.Q = _weight("Q", Qa, n)
        self.R = None if R is None else _weight("R", R, np.atleast_1d(as_float_array("R", R)).shape[0])
        self.x_ref = np.zeros(n) if x_ref is None else check_shape("x_ref", as_float_array("x_ref", x_ref), (n,))
        m = 0 if self.R is None else self.R.shape[0]
        self.u_ref = np.zeros(m) if u_ref is None else check_shape("u_ref", as_float_array("u_ref", u_ref), (m,))
        self.scale = float(scale)

    def forward(self, t, x, u, X, p):
        dx = x - self.x_ref
        qx = dx @ self.Q
        c = np.einsum("bi,bi->b", qx, dx)
        ru = None
        if self.R is not None:
            du = u - self.u_ref
            ru = du @ self.R
            c = c + np.einsum("bi,bi->b", ru, du)
        return self.scale * c, (qx, ru)

    def vjp(self, ctx, c_bar):
        qx, ru = ctx
        w = (2.0 * self.scale) * c_bar[:, None]
        return w * qx, (None if ru is None else w * ru), np.zeros(0)


class QuadraticTerminal(TerminalCost):
    """``l_T = (x - x_ref)' P (x - x_ref)``; ``P`` (n, n), e.g. the DARE solution."""

    def __init__(self, P, x_ref=None):
        Pa = as_float_array("P", P)
        self.P = _weight("P", Pa, Pa.shape[0])
        n = self.P.shape[0]
        self.x_ref = np.zeros(n) if x_ref is None else check_shape("x_ref", as_float_array("x_ref", x_ref), (n,))

    def forward(self, x, p):
        dx = x - self.x_ref
        px = dx @ self.P
        return np.einsum("bi,bi->b", px, dx), px

    def vjp(self, px, c_bar):
        return 2.0 * c_bar[:, None] * px, np.zeros(0)


class SwingUpCost(StageCost):
    r"""Pendulum swing-up: ``l = dt * (w_theta (1 - cos theta) + w_omega omega^2 + w_u u^2)``.

    State ``(theta, omega)`` with theta = 0 upright; ``dt`` [s] the step so that the sum
    approximates the integral.
    """

    def __init__(self, dt: float, w_theta=1.0, w_omega=0.1, w_u=0.01):
        self.dt, self.w = float(dt), (float(w_theta), float(w_omega), float(w_u))

    def forward(self, t, x, u, X, p):
        wt, ww, wu = self.w
        th, om, uu = x[:, 0], x[:, 1], u[:, 0]
        return self.dt * (wt * (1.0 - np.cos(th)) + ww * om * om + wu * uu * uu), (x, u)

    def vjp(self, ctx, c_bar):
        x, u = ctx
        wt, ww, wu = self.w
        s = self.dt * c_bar
        x_bar = np.empty_like(x)
        x_bar[:, 0] = s * wt * np.sin(x[:, 0])
        x_bar[:, 1] = s * 2.0 * ww * x[:, 1]
        return x_bar, (s * 2.0 * wu * u[:, 0])[:, None], np.zeros(0)


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
        self.value, self.grad, self.n_exog = value, grad, n_exog

    def forward(self, t, x, u, X, p):
        c = np.asarray(self.value(t, x, u, X), dtype=np.float64)
        if c.shape != (x.shape[0],):
            raise ValueError(f"FunctionCost.value: expected shape ({x.shape[0]},), got {c.shape}")
        return c, (t, x, u, X)

    def vjp(self, ctx, c_bar):
        gx, gu = self.grad(*ctx)
        return c_bar[:, None] * gx, c_bar[:, None] * gu, np.zeros(0)
