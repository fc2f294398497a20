r"""Continuous-time plants: a right-hand side dx/dt and the integrators that step it.

``Discretized(ode, RK4(dt))`` is a :class:`~dynopt.core.components.Plant` whose forward map is
one integrator step (control held constant over the step, zero-order hold) and whose dual
runs back through every integrator stage exactly, so BPTT differentiates the discrete map
actually simulated, not an approximation of the ODE's sensitivity.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Optional, Tuple

import numpy as np

from .components import Component, Plant, add_adjoint
from .types import Array, Batch, Context
from .validation import as_float_array


class ODE(Component):
    r"""Right-hand side :math:`\dot x = g(x, u, X; \theta)` of a continuous-time plant.

    Time is in the units the user chooses; ``dt`` of the integrator is in the same units.
    """

    n_state: int
    n_control: int = 0
    n_exog: int = 0

    @abstractmethod
    def forward(self, x: Batch, u: Batch, X: Optional[Batch], theta: Array) -> Tuple[Batch, Context]:
        """Return ``dx/dt`` of shape (B, n) and a context."""

    @abstractmethod
    def vjp(self, ctx: Context, xdot_bar: Batch) -> Tuple[Optional[Batch], Optional[Batch], Array]:
        """Return ``(x_bar (B, n), u_bar (B, m), theta_bar (n_params,))``."""


class Integrator(ABC):
    """A one-step explicit integration scheme with its exact dual."""

    def __init__(self, dt: float):
        dt = float(as_float_array("dt", dt))
        if not dt > 0:
            raise ValueError(f"dt: expected a positive step size, got {dt}")
        self.dt = dt

    @abstractmethod
    def step(self, ode: ODE, x, u, X, theta):
        """Return ``(x_next, ctx)``."""

    @abstractmethod
    def step_vjp(self, ode: ODE, ctx, x_next_bar):
        """Return ``(x_bar, u_bar, theta_bar)``."""

    def __repr__(self):
        return f"{type(self).__name__}(dt={self.dt})"


class Euler(Integrator):
    """Explicit Euler: ``x+ = x + dt g(x, u)``."""

    def step(self, ode, x, u, X, theta):
        k, c = ode.forward(x, u, X, theta)
        return x + self.dt * k, c

    def step_vjp(self, ode, ctx, xb):
        gx, gu, gth = ode.vjp(ctx, self.dt * xb)
        return add_adjoint(xb, gx), gu, gth


class RK4(Integrator):
    """Classical fourth-order Runge-Kutta, control held over the step."""

    def step(self, ode, x, u, X, theta):
        h = self.dt
        k1, c1 = ode.forward(x, u, X, theta)
        k2, c2 = ode.forward(x + (0.5 * h) * k1, u, X, theta)
        k3, c3 = ode.forward(x + (0.5 * h) * k2, u, X, theta)
        k4, c4 = ode.forward(x + h * k3, u, X, theta)
        acc = k2 + k3
        acc *= 2.0
        acc += k1
        acc += k4
        acc *= h / 6.0
        acc += x
        return acc, (c1, c2, c3, c4)

    def step_vjp(self, ode, ctx, xb):
        # x+ = x + h/6 (k1 + 2 k2 + 2 k3 + k4), k_i = g(x + a_i h k_{i-1}): run the stages backward
        h = self.dt
        c1, c2, c3, c4 = ctx
        kb4 = (h / 6.0) * xb
        kb23 = 2.0 * kb4
        x4, u4, t4 = ode.vjp(c4, kb4)
        kb3 = kb23 if x4 is None else kb23 + h * x4
        x3, u3, t3 = ode.vjp(c3, kb3)
        kb2 = kb23 if x3 is None else kb23 + (0.5 * h) * x3
        x2, u2, t2 = ode.vjp(c2, kb2)
        kb1 = kb4 if x2 is None else kb4 + (0.5 * h) * x2
        x1, u1, t1 = ode.vjp(c1, kb1)
        x_bar = xb.copy()
        for g in (x1, x2, x3, x4):
            if g is not None:
                x_bar += g
        u_bar = None
        for g in (u1, u2, u3, u4):
            if g is not None:
                if u_bar is None:
                    u_bar = g.copy()
                else:
                    u_bar += g
        t1 = t1 + t2
        t1 += t3
        t1 += t4
        return x_bar, u_bar, t1


class Discretized(Plant):
    """A discrete-time plant made of an :class:`ODE` and an :class:`Integrator` (lag 1).

    Parameters
    ----------
    ode : ODE
        The right-hand side; its parameters become the plant's parameters.
    integrator : Integrator
        e.g. ``RK4(dt=0.05)``.
    """

    lags = 1

    def __init__(self, ode: ODE, integrator: Integrator):
        if not isinstance(ode, ODE):
            raise TypeError(f"ode: expected a dynopt.ODE, got {type(ode).__name__}")
        if not isinstance(integrator, Integrator):
            raise TypeError(
                f"integrator: expected a dynopt Integrator such as RK4(dt), got {integrator!r}"
            )
        self.ode = ode
        self.integrator = integrator
        self.n_state = ode.n_state
        self.n_control = ode.n_control
        self.n_exog = ode.n_exog
        self.param_spec = ode.param_spec

    def default_params(self):
        return self.ode.default_params()

    def forward(self, hist, u, X, theta):
        return self.integrator.step(self.ode, hist[0], u, X, theta)

    def vjp(self, ctx, xb):
        gx, gu, gth = self.integrator.step_vjp(self.ode, ctx, xb)
        return (gx,), gu, gth

    def __repr__(self):
        return f"Discretized({self.ode!r}, {self.integrator!r})"
