"""Mechanical plants as continuous-time right-hand sides (wrap with ``Discretized(ode, RK4(dt))``).

SI units throughout: angles in rad, lengths in m, masses in kg, forces in N, torques in N m,
time in s.
"""

from __future__ import annotations

import numpy as np

from dynopt import ODE


class Pendulum(ODE):
    r"""Damped pendulum driven by a torque, angle measured from upright (not wrapped).

    State ``(theta [rad], omega [rad/s])``, control ``u`` torque [N m].

    .. math:: \dot\theta = \omega,\quad
              \dot\omega = \frac{g}{l}\sin\theta + \frac{u}{m l^2} - \frac{b\,\omega}{m l^2}

    Parameters (the plant block of W, in this order): ``g`` [m/s^2], ``l`` [m], ``m`` [kg],
    ``b`` [N m s/rad].
    """

    n_state, n_control = 2, 1
    param_spec = (("g", ()), ("l", ()), ("m", ()), ("b", ()))

    def __init__(self, g=9.81, l=1.0, m=1.0, b=0.1):
        self._defaults = np.array([g, l, m, b], dtype=np.float64)

    def default_params(self):
        return self._defaults.copy()

    @staticmethod
    def _coeffs(theta):
        g, l, m, b = theta.tolist()
        ml2 = m * l * l
        return g, l, m, b, g / l, 1.0 / ml2, b / ml2

    def forward(self, x, u, X, theta):
        co = self._coeffs(theta)
        _, _, _, _, c1, c2, c3 = co
        w = x[:, 1]
        s = np.sin(x[:, 0])
        out = np.empty_like(x)
        out[:, 0] = w
        out[:, 1] = c1 * s + (c2 * u[:, 0] - c3 * w)
        return out, (x, u, s, co)

    def vjp(self, ctx, bar):
        x, u, s, co = ctx
        g, l, m, b, c1, c2, c3 = co
        bw = bar[:, 1]
        x_bar = np.empty_like(x)
        x_bar[:, 0] = np.cos(x[:, 0]) * (c1 * bw)
        x_bar[:, 1] = bar[:, 0] - c3 * bw
        u_bar = c2 * bar[:, 1:2]
        d1, d2, d3 = np.dot(s, bw), np.dot(u[:, 0], bw), -np.dot(x[:, 1], bw)
        # chain c1 = g/l, c2 = 1/(m l^2), c3 = b/(m l^2) to (g, l, m, b)
        ml2 = m * l * l
        th_bar = np.array([
            d1 / l,
            -d1 * g / (l * l) - 2.0 * (d2 + d3 * b) / (ml2 * l),
            -(d2 + d3 * b) / (ml2 * m),
            d3 / ml2,
        ])
        return x_bar, u_bar, th_bar

    def __repr__(self):
        g, l, m, b = self._defaults
        return f"Pendulum(g={g}, l={l}, m={m}, b={b})"


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
        self._defaults = np.array([m_c, m_p, l, g], dtype=np.float64)

    def default_params(self):
        return self._defaults.copy()

    def forward(self, x, u, X, theta):
        mc, mp, l, g = theta
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
        x, u, s, c, num, den, a, theta = ctx
        mc, mp, l, g = theta
        w = x[:, 3]
        b_alpha = bar[:, 3]
        # alpha = (g s - c a) / l
        b_a = bar[:, 2] - c * b_alpha / l
        b_s = g * b_alpha / l
        b_c = -a * b_alpha / l
        b_l = -np.sum(b_alpha * (g * s - c * a)) / (l * l)
        b_g = np.sum(b_alpha * s) / l
        # a = num / den
        b_num = b_a / den
        b_den = -b_a * num / (den * den)
        # den = mc + mp s^2
        b_mc = np.sum(b_den)
        b_mp = np.sum(b_den * s * s)
        b_s = b_s + b_den * 2.0 * mp * s
        # num = F + mp s (l w^2 - g c)
        inner = l * w * w - g * c
        b_u = b_num
        b_mp = b_mp + np.sum(b_num * s * inner)
        b_s = b_s + b_num * mp * inner
        b_inner = b_num * mp * s
        b_l = b_l + np.sum(b_inner * w * w)
        b_w = b_inner * 2.0 * l * w
        b_g = b_g - np.sum(b_inner * c)
        b_c = b_c - b_inner * g
        x_bar = np.empty_like(x)
        x_bar[:, 0] = 0.0
        x_bar[:, 1] = b_s * c - b_c * s
        x_bar[:, 2] = bar[:, 0]
        x_bar[:, 3] = bar[:, 1] + b_w
        return x_bar, b_u[:, None], np.array([b_mc, b_mp, b_l, b_g])

    def __repr__(self):
        return "CartPole(m_c={}, m_p={}, l={}, g={})".format(*self._defaults)


class DoubleIntegrator(ODE):
    r"""A mass pushed by a force: :math:`\dot p = v,\ \dot v = F / m`.

    State ``(p [m], v [m/s])``, control ``F`` [N], parameter ``m`` [kg].
    """

    n_state, n_control = 2, 1
    param_spec = (("m", ()),)

    def __init__(self, m=1.0):
        self._defaults = np.array([m], dtype=np.float64)

    def default_params(self):
        return self._defaults.copy()

    def forward(self, x, u, X, theta):
        out = np.empty_like(x)
        out[:, 0] = x[:, 1]
        out[:, 1] = u[:, 0] / theta[0]
        return out, (u, theta[0])

    def vjp(self, ctx, bar):
        u, m = ctx
        x_bar = np.zeros_like(bar)
        x_bar[:, 1] = bar[:, 0]
        u_bar = (bar[:, 1] / m)[:, None]
        return x_bar, u_bar, np.array([-np.dot(bar[:, 1], u[:, 0]) / (m * m)])

    def __repr__(self):
        return f"DoubleIntegrator(m={self._defaults[0]})"
