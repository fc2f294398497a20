"""Mechanical plants as continuous-time right-hand sides (wrap with ``Discretized(ode, RK4(dt))``).

SI units throughout: angles in rad, lengths in m, masses in kg, forces in N, torques in N m,
time in s.
"""

from __future__ import annotations

import numpy as np

from dynopt import ODE

from ._checks import number, positive


class _PendulumBound:
    """Pendulum coefficients computed once per evaluation, and the deferred parameter adjoint:
    the sums over all stages and steps of ``d l / d(c1, c2, c3)``, chained to ``(g, l, m, b)``
    once by :meth:`Pendulum.param_grad`."""

    __slots__ = ("g", "l", "m", "b", "c1", "c2", "c3", "M", "N", "grad", "defer", "d")

    def __init__(self, theta, grad, defer):
        g, l, m, b = (float(v) for v in theta)
        ml2 = m * l * l
        self.g, self.l, self.m, self.b = g, l, m, b
        self.c1, self.c2, self.c3 = g / l, 1.0 / ml2, b / ml2
        # the linear parts as one (2, 2) product each: x M = (omega, -c3 omega) and
        # bar N = (0, bar_theta - c3 bar_omega)
        self.M = np.array([[0.0, 0.0], [1.0, -self.c3]])
        self.N = np.array([[0.0, 1.0], [0.0, -self.c3]])
        self.grad, self.defer = grad, defer
        self.d = [0.0, 0.0, 0.0]

    def chain(self, d1, d2, d3):
        """``(g, l, m, b)`` adjoint from the adjoints of ``c1 = g/l, c2 = 1/(m l^2), c3 = b/(m l^2)``."""
        g, l, m, b = self.g, self.l, self.m, self.b
        ml2 = m * l * l
        return np.array([
            d1 / l,
            -d1 * g / (l * l) - 2.0 * (d2 + d3 * b) / (ml2 * l),
            -(d2 + d3 * b) / (ml2 * m),
            d3 / ml2,
        ])


class Pendulum(ODE):
    r"""Damped pendulum driven by a torque, angle measured from upright (not wrapped).

    State ``(theta [rad], omega [rad/s])``, control ``u`` torque [N m].

    .. math:: \dot\theta = \omega,\quad
              \dot\omega = \frac{g}{l}\sin\theta + \frac{u}{m l^2} - \frac{b\,\omega}{m l^2}

    Parameters (the plant block of W, in this order): ``g`` [m/s^2], ``l`` [m] (> 0),
    ``m`` [kg] (> 0), ``b`` [N m s/rad].  The coefficients are formed once per evaluation;
    the parameter adjoint is formed only when the plant block is a decision variable, as one
    sum over all stages and steps.
    """

    n_state, n_control = 2, 1
    param_spec = (("g", ()), ("l", ()), ("m", ()), ("b", ()))

    def __init__(self, g=9.81, l=1.0, m=1.0, b=0.1):
        self._defaults = np.array([number("g", g), positive("l", l), positive("m", m), number("b", b)])

    @property
    def n_params(self) -> int:
        return 4

    def default_params(self):
        return self._defaults.copy()

    def bind(self, params, *, grad: bool):
        """Coefficients once per evaluation; ``grad=False`` skips the parameter adjoint."""
        return _PendulumBound(_params(self, params), bool(grad), grad != "per_step")

    def param_grad(self, bound):
        if not isinstance(bound, _PendulumBound) or not (bound.grad and bound.defer):
            return None
        d, bound.d = bound.d, [0.0, 0.0, 0.0]
        return bound.chain(*d)

    def forward(self, x, u, X, theta):
        if not isinstance(theta, _PendulumBound):  # called outside an engine evaluation
            theta = _PendulumBound(_params(self, theta), True, False)
        s = np.sin(x[:, 0])
        out = np.dot(x, theta.M)              # (omega, -c3 omega)
        v = out[:, 1]
        v += theta.c1 * s
        v += theta.c2 * u[:, 0]
        return out, (x, u, s, theta)

    def vjp(self, ctx, bar):
        x, u, s, co = ctx
        bw = bar[:, 1]
        x_bar = np.dot(bar, co.N)             # (0, bar_theta - c3 bar_omega)
        c0 = np.cos(x[:, 0])
        c0 *= bw
        np.multiply(c0, co.c1, out=x_bar[:, 0])
        u_bar = co.c2 * bar[:, 1:2]
        if not co.grad:
            return x_bar, u_bar, None
        d1, d2, d3 = np.dot(s, bw), np.dot(u[:, 0], bw), -np.dot(x[:, 1], bw)
        if co.defer:
            acc = co.d
            acc[0] += d1
            acc[1] += d2
            acc[2] += d3
            return x_bar, u_bar, None
        return x_bar, u_bar, co.chain(d1, d2, d3)

    def __repr__(self):
        g, l, m, b = self._defaults
        return f"Pendulum(g={g}, l={l}, m={m}, b={b})"


def _params(comp, theta):
    theta = np.asarray(theta, dtype=np.float64)
    if theta.shape != (comp.n_params,):
        raise ValueError(f"{type(comp).__name__} parameters: expected shape ({comp.n_params},), got {theta.shape}")
    return theta


class _Bound:
    """Parameters of a small ODE with a flag telling whether their adjoint is needed."""

    __slots__ = ("theta", "grad")

    def __init__(self, theta, grad):
        self.theta, self.grad = theta, grad


class CartPole(ODE):
    r"""Cart with a point-mass pole on a massless rod, frictionless, pole angle from upright.

    State ``(p [m], theta [rad], v [m/s], omega [rad/s])``, control ``F`` force on the cart [N].

    .. math::
        \ddot p = \frac{F + m_p \sin\theta\,(l\,\omega^2 - g\cos\theta)}{m_c + m_p\sin^2\theta},
        \qquad \ddot\theta = \frac{g\sin\theta - \cos\theta\,\ddot p}{l}

    (Lagrange's equations for the cart and the pole's point mass.)  Parameters:
    ``m_c`` [kg], ``m_p`` [kg], ``l`` [m], ``g`` [m/s^2].
    """

    n_state, n_control = 4, 1
    param_spec = (("m_c", ()), ("m_p", ()), ("l", ()), ("g", ()))

    def __init__(self, m_c=1.0, m_p=0.1, l=0.5, g=9.81):
        self._defaults = np.array([positive("m_c", m_c), positive("m_p", m_p), positive("l", l), number("g", g)])

    @property
    def n_params(self) -> int:
        return 4

    def default_params(self):
        return self._defaults.copy()

    def bind(self, params, *, grad: bool):
        """Parameters as floats once per evaluation; ``grad=False`` skips their adjoint."""
        return _Bound(tuple(float(v) for v in _params(self, params)), bool(grad))

    def forward(self, x, u, X, theta):
        if not isinstance(theta, _Bound):  # called outside an engine evaluation
            theta = _Bound(tuple(float(v) for v in _params(self, theta)), True)
        mc, mp, l, g = theta.theta
        th, v, w = x[:, 1], x[:, 2], x[:, 3]
        s, c = np.sin(th), np.cos(th)
        num = u[:, 0] + mp * s * (l * w * w - g * c)
        den = mc + mp * s * s
        a = num / den
        alpha = (g * s - c * a) / l
        out = np.empty_like(x)
        out[:, 0] = v
        out[:, 1] = w
        out[:, 2] = a
        out[:, 3] = alpha
        return out, (x, u, s, c, num, den, a, theta)

    def vjp(self, ctx, bar):
        x, u, s, c, num, den, a, bound = ctx
        mc, mp, l, g = bound.theta
        grad = bound.grad
        w = x[:, 3]
        b_alpha = bar[:, 3]
        # alpha = (g s - c a) / l
        b_a = bar[:, 2] - c * b_alpha / l
        b_s = g * b_alpha / l
        b_c = -a * b_alpha / l
        if grad:
            b_l = -np.sum(b_alpha * (g * s - c * a)) / (l * l)
            b_g = np.sum(b_alpha * s) / l
        # a = num / den
        b_num = b_a / den
        b_den = -b_a * num / (den * den)
        # den = mc + mp s^2
        if grad:
            b_mc = np.sum(b_den)
            b_mp = np.sum(b_den * s * s)
        b_s = b_s + b_den * 2.0 * mp * s
        # num = F + mp s (l w^2 - g c)
        inner = l * w * w - g * c
        b_u = b_num
        b_s = b_s + b_num * mp * inner
        b_inner = b_num * mp * s
        b_w = b_inner * 2.0 * l * w
        if grad:
            b_mp = b_mp + np.sum(b_num * s * inner)
            b_l = b_l + np.sum(b_inner * w * w)
            b_g = b_g - np.sum(b_inner * c)
        b_c = b_c - b_inner * g
        x_bar = np.empty_like(x)
        x_bar[:, 0] = 0.0
        x_bar[:, 1] = b_s * c - b_c * s
        x_bar[:, 2] = bar[:, 0]
        x_bar[:, 3] = bar[:, 1] + b_w
        return x_bar, b_u[:, None], (np.array([b_mc, b_mp, b_l, b_g]) if grad else None)

    def __repr__(self):
        return "CartPole(m_c={}, m_p={}, l={}, g={})".format(*self._defaults)


class DoubleIntegrator(ODE):
    r"""A mass pushed by a force: :math:`\dot p = v,\ \dot v = F / m`.

    State ``(p [m], v [m/s])``, control ``F`` [N], parameter ``m`` [kg].
    """

    n_state, n_control = 2, 1
    param_spec = (("m", ()),)

    def __init__(self, m=1.0):
        self._defaults = np.array([positive("m", m)])

    @property
    def n_params(self) -> int:
        return 1

    def default_params(self):
        return self._defaults.copy()

    def bind(self, params, *, grad: bool):
        """The mass as a float once per evaluation; ``grad=False`` skips its adjoint."""
        return _Bound(float(_params(self, params)[0]), bool(grad))

    def forward(self, x, u, X, theta):
        if not isinstance(theta, _Bound):  # called outside an engine evaluation
            theta = _Bound(float(_params(self, theta)[0]), True)
        out = np.empty_like(x)
        out[:, 0] = x[:, 1]
        out[:, 1] = u[:, 0] / theta.theta
        return out, (u, theta)

    def vjp(self, ctx, bar):
        u, bound = ctx
        m = bound.theta
        x_bar = np.zeros_like(bar)
        x_bar[:, 1] = bar[:, 0]
        u_bar = (bar[:, 1] / m)[:, None]
        if not bound.grad:
            return x_bar, u_bar, None
        return x_bar, u_bar, np.array([-np.dot(bar[:, 1], u[:, 0]) / (m * m)])

    def __repr__(self):
        return f"DoubleIntegrator(m={self._defaults[0]})"
