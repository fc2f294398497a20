r"""Continuous-time plants: a right-hand side dx/dt and the integrators that step it.

``Discretized(ode, RK4(dt))`` is a :class:`~dynopt.core.components.Plant` whose forward map is
one integrator step (control held constant over the step, zero-order hold) and whose dual
runs back through every integrator stage exactly, so BPTT differentiates the discrete map
actually simulated, not an approximation of the ODE's sensitivity.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import NamedTuple, Optional, Tuple

import numpy as np

from .components import Component, Plant, SliceGrad, StageCost, add_adjoint, add_param_grad
from .types import Array, Batch, Context
from .validation import as_float_array, as_real


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
    r"""A one-step explicit integration scheme with its exact dual.

    One step of the discrete plant covers ``dt`` (time units of the ODE) and is made of
    ``substeps`` = s >= 1 sub-steps of size ``h = dt / s``, the control held over the whole
    step (zero-order hold).  The dual runs back through every stage of every sub-step.

    Parameters
    ----------
    dt : float
        Step of the discrete plant, > 0.
    substeps : int, keyword-only
        Number of sub-steps per step, >= 1 (default 1).

    Notes
    -----
    :meth:`step_quadrature` also integrates a running cost ``q(x(s), u)`` over the step with
    the same stages (``Q = h/6 (q1 + 2 q2 + 2 q3 + q4)`` summed over the sub-steps for RK4):
    the "quadrature" of CasADi's ``direct_single_shooting`` example.
    """

    def __init__(self, dt: float, *, substeps: int = 1):
        dt = as_real("dt", dt)  # a scalar: an array of steps is refused naming dt
        if not dt > 0:
            raise ValueError(f"dt: expected a positive step size, got {dt}")
        if isinstance(substeps, bool) or not isinstance(substeps, (int, np.integer)):
            raise TypeError(f"substeps: expected an integer >= 1, got {substeps!r} ({type(substeps).__name__})")
        if substeps < 1:
            raise ValueError(f"substeps: expected an integer >= 1 (sub-steps per step), got {substeps}")
        self.dt = dt
        self.substeps = int(substeps)

    @property
    def h(self) -> float:
        """Sub-step size ``dt / substeps``."""
        return self.dt / self.substeps

    # one sub-step, with an optional running cost q integrated on the same stages
    @abstractmethod
    def _substep(self, ode, q, x, u, X, theta, t, p):
        """Return ``(x_next, Q or None, ctx)`` for one sub-step of size ``h``."""

    @abstractmethod
    def _substep_vjp(self, ode, q, ctx, xb, Qb):
        """Return ``(x_bar, u_bar, theta_bar, p_bar)`` of one sub-step (None = zero)."""

    def step(self, ode: ODE, x, u, X, theta):
        """One step ``x[t] -> x[t+1]`` (s sub-steps).

        Parameters
        ----------
        ode : ODE
        x : (B, n) array
        u : (B, m) array
        X : (B, nX) array or None
        theta : (n_params,) array

        Returns
        -------
        x_next : (B, n) array
        ctx : object for :meth:`step_vjp`
        """
        ctxs = []
        for _ in range(self.substeps):
            x, _, c = self._substep(ode, None, x, u, X, theta, None, None)
            ctxs.append(c)
        return x, ctxs

    def step_vjp(self, ode: ODE, ctx, x_next_bar):
        """Dual of :meth:`step`: ``(x_bar (B, n), u_bar (B, m) or None, theta_bar (n_params,))``."""
        xb, ub, tb = x_next_bar, None, None
        for c in reversed(ctx):
            xb, gu, gt, _ = self._substep_vjp(ode, None, c, xb, None)
            ub, tb = add_adjoint(ub, gu), add_adjoint(tb, gt)
        return xb, ub, tb

    def step_quadrature(self, ode: ODE, integrand, x, u, X, theta, t, p):
        r"""One step and the integral of ``integrand`` over it, on the same stages.

        .. math:: Q = \int_{t\,dt}^{(t+1)\,dt} q(x(s), u[t], X[t]; p)\, ds

        approximated by the integrator's own quadrature weights (RK4: Simpson-like
        ``h/6 (q1 + 2 q2 + 2 q3 + q4)`` per sub-step, Euler: ``h q1``).

        Parameters
        ----------
        integrand : StageCost
            ``q(t, x, u, X; p)``, called at every stage state with the step index ``t``.
        t : int
            Step index passed to the integrand.
        p : (n_params of integrand,) array

        Returns
        -------
        x_next : (B, n) array
        Q : (B,) array
        ctx : object for :meth:`step_quadrature_vjp`
        """
        ctxs, Q = [], 0.0
        for _ in range(self.substeps):
            x, dQ, c = self._substep(ode, integrand, x, u, X, theta, t, p)
            Q = Q + dQ
            ctxs.append(c)
        return x, Q, ctxs

    def step_quadrature_vjp(self, ode: ODE, integrand, ctx, x_next_bar, Q_bar):
        """Dual of :meth:`step_quadrature`.

        Parameters
        ----------
        x_next_bar : (B, n) array or None
        Q_bar : (B,) array

        Returns
        -------
        x_bar, u_bar, theta_bar, p_bar
            ``(B, n)``, ``(B, m)`` or None, ``(n_params,)`` of the ODE and of the integrand.
        """
        xb, ub, tb, pb = x_next_bar, None, None, None
        for c in reversed(ctx):
            xb, gu, gt, gp = self._substep_vjp(ode, integrand, c, xb, Q_bar)
            ub, tb, pb = add_adjoint(ub, gu), add_adjoint(tb, gt), _add_param(pb, gp, integrand)
        return xb, ub, tb, pb

    def __repr__(self):
        extra = f", substeps={self.substeps}" if self.substeps != 1 else ""
        return f"{type(self).__name__}(dt={self.dt}{extra})"


class _IntegralBound(NamedTuple):
    p: object
    theta: object


def _add_param(acc, g, component):
    """Sum parameter adjoints (full vectors or SliceGrad) into a full vector."""
    if g is None:
        return acc
    if acc is None:
        acc = np.zeros(component.n_params)
    add_param_grad(acc, g)
    return acc


def _stage(ode, q, x, u, X, theta, t, p):
    k, c = ode.forward(x, u, X, theta)
    if q is None:
        return k, None, (c, None)
    qv, cq = q.forward(t, x, u, X, p)
    return k, qv, (c, cq)


def _stage_vjp(ode, q, ctx, kb, qb):
    """Adjoints ``(x_bar, u_bar, theta_bar, p_bar)`` of one stage ``(k, q) = (g(x), q(x))``."""
    c, cq = ctx
    gx, gu, gt = ode.vjp(c, kb) if kb is not None else (None, None, None)
    if q is None or qb is None:
        return gx, gu, gt, None
    qx, qu, qp = q.vjp(cq, qb)
    return add_adjoint(gx, qx), add_adjoint(gu, qu), gt, qp


class Euler(Integrator):
    """Explicit Euler: ``x+ = x + h g(x, u)`` per sub-step (``h = dt / substeps``)."""

    def _substep(self, ode, q, x, u, X, theta, t, p):
        h = self.h
        k, qv, c = _stage(ode, q, x, u, X, theta, t, p)
        return x + h * k, (None if qv is None else h * qv), c

    def _substep_vjp(self, ode, q, ctx, xb, Qb):
        h = self.h
        gx, gu, gt, gp = _stage_vjp(ode, q, ctx, None if xb is None else h * xb,
                                    None if Qb is None else h * Qb)
        return add_adjoint(xb, gx), gu, gt, gp


class RK4(Integrator):
    """Classical fourth-order Runge-Kutta per sub-step, control held over the step."""

    def step(self, ode, x, u, X, theta):
        if self.substeps != 1:
            return super().step(ode, x, u, X, theta)
        # one sub-step, no quadrature: the stages inline (the same arithmetic as _substep)
        f, h = ode.forward, self.h
        k1, c1 = f(x, u, X, theta)
        k2, c2 = f(x + (0.5 * h) * k1, u, X, theta)
        k3, c3 = f(x + (0.5 * h) * k2, u, X, theta)
        k4, c4 = f(x + h * k3, u, X, theta)
        acc = k2 + k3
        acc *= 2.0
        acc += k1
        acc += k4
        acc *= h / 6.0
        acc += x
        return acc, _RK4Stages((c1, c2, c3, c4))

    def step_vjp(self, ode, ctx, xb):
        if not isinstance(ctx, _RK4Stages):
            return super().step_vjp(ode, ctx, xb)
        c1, c2, c3, c4 = ctx
        v, h = ode.vjp, self.h
        kb4 = (h / 6.0) * xb
        kb23 = 2.0 * kb4
        x4, u4, t4 = v(c4, kb4)
        x3, u3, t3 = v(c3, kb23 if x4 is None else kb23 + h * x4)
        x2, u2, t2 = v(c2, kb23 if x3 is None else kb23 + (0.5 * h) * x3)
        x1, u1, t1 = v(c1, kb4 if x2 is None else kb4 + (0.5 * h) * x2)
        x_bar = xb.copy()
        for g in (x1, x2, x3, x4):
            if g is not None:
                x_bar += g
        u_bar = th = None
        for g in (u1, u2, u3, u4):
            if g is not None:
                u_bar = g if u_bar is None else u_bar + g
        for g in (t1, t2, t3, t4):
            if g is not None:
                th = g if th is None else th + g
        return x_bar, u_bar, th

    def _substep(self, ode, q, x, u, X, theta, t, p):
        h = self.h
        k1, q1, c1 = _stage(ode, q, x, u, X, theta, t, p)
        k2, q2, c2 = _stage(ode, q, x + (0.5 * h) * k1, u, X, theta, t, p)
        k3, q3, c3 = _stage(ode, q, x + (0.5 * h) * k2, u, X, theta, t, p)
        k4, q4, c4 = _stage(ode, q, x + h * k3, u, X, theta, t, p)
        acc = k2 + k3
        acc *= 2.0
        acc += k1
        acc += k4
        acc *= h / 6.0
        acc += x
        Q = None if q is None else (h / 6.0) * (q1 + 2.0 * (q2 + q3) + q4)
        return acc, Q, (c1, c2, c3, c4)

    def _substep_vjp(self, ode, q, ctx, xb, Qb):
        # x+ = x + h/6 (k1 + 2 k2 + 2 k3 + k4), Q = h/6 (q1 + 2 q2 + 2 q3 + q4),
        # (k_i, q_i) = (g, q)(x + a_i h k_{i-1}): run the stages backward
        h = self.h
        c1, c2, c3, c4 = ctx
        qb1 = qb2 = None
        if Qb is not None:
            qb1 = (h / 6.0) * Qb
            qb2 = 2.0 * qb1
        if xb is None:
            kb4 = kb23 = None
        else:
            kb4 = (h / 6.0) * xb
            kb23 = 2.0 * kb4
        x4, u4, t4, p4 = _stage_vjp(ode, q, c4, kb4, qb1)
        kb3 = add_adjoint(kb23, None if x4 is None else h * x4)
        x3, u3, t3, p3 = _stage_vjp(ode, q, c3, kb3, qb2)
        kb2 = add_adjoint(kb23, None if x3 is None else (0.5 * h) * x3)
        x2, u2, t2, p2 = _stage_vjp(ode, q, c2, kb2, qb2)
        kb1 = add_adjoint(kb4, None if x2 is None else (0.5 * h) * x2)
        x1, u1, t1, p1 = _stage_vjp(ode, q, c1, kb1, qb1)
        x_bar = None if xb is None else xb.copy()
        for g in (x1, x2, x3, x4):
            x_bar = add_adjoint(x_bar, g)
        u_bar = None
        for g in (u1, u2, u3, u4):
            u_bar = add_adjoint(u_bar, g)
        th = None
        for g in (t1, t2, t3, t4):
            th = add_adjoint(th, g)
        pb = None
        for g in (p1, p2, p3, p4):
            pb = _add_param(pb, g, q)
        return x_bar, u_bar, th, pb


class _RK4Stages(tuple):
    """Contexts of the four stages of a single-sub-step RK4 step (the inlined fast path)."""


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

    def bind(self, params, *, grad: bool):
        """The ODE's own ``bind`` (parameters parsed once per evaluation), if it has one."""
        b = getattr(self.ode, "bind", None)
        return params if b is None else b(params, grad=grad)

    def param_grad(self, bound):
        """The ODE's deferred parameter adjoint, if it defers one."""
        pg = getattr(self.ode, "param_grad", None)
        return None if pg is None else pg(bound)

    def forward(self, hist, u, X, theta):
        return self.integrator.step(self.ode, hist[0], u, X, theta)

    def vjp(self, ctx, xb):
        gx, gu, gth = self.integrator.step_vjp(self.ode, ctx, xb)
        return (gx,), gu, gth

    @property
    def channels(self):
        """The ODE's exogenous channels (see :class:`dynopt.Problem`)."""
        return getattr(self.ode, "channels", None)

    def __repr__(self):
        return f"Discretized({self.ode!r}, {self.integrator!r})"


class IntegralCost(StageCost):
    r"""A stage cost that is the integral of a running cost over each step of a plant.

    .. math:: l(t, x[t], u[t]) = \int_{t\,dt}^{(t+1)\,dt} q(x(s), u[t], X[t]; p)\, ds

    integrated with the **same stages** (and sub-steps) as ``plant``'s integrator, so that the
    cost is exactly what CasADi's ``direct_single_shooting`` example calls the quadrature
    ``qf``; the dual runs back through every stage.  The stages are recomputed from
    ``(x[t], u[t])`` (the plant's ODE is evaluated twice per step).

    Parameters
    ----------
    integrand : StageCost
        ``q(t, x, u, X; p)`` per unit time; its parameters are this cost's parameters.
    plant : Discretized
        The plant whose ODE and integrator define the stages.
    theta : (n_params of the ODE,) array_like, optional
        ODE parameters used for the stages; default ``plant.default_params()``.  They are
        fixed: when the plant's parameters are decision variables, give them as an extra
        state and integrate the running cost as that state instead.

    Notes
    -----
    The parameter block ``"cost"`` of a Problem holds the integrand's parameters.
    """

    def __init__(self, integrand: StageCost, plant: "Discretized", theta=None):
        if not isinstance(integrand, StageCost):
            raise TypeError(f"integrand: expected a dynopt.StageCost (the running cost q), got {type(integrand).__name__}")
        if not isinstance(plant, Discretized):
            raise TypeError(f"plant: expected a dynopt.Discretized (an ODE and an integrator), got {type(plant).__name__}")
        self.integrand, self.plant = integrand, plant
        self.n_state, self.n_control, self.n_exog = plant.n_state, plant.n_control, max(
            plant.n_exog, getattr(integrand, "n_exog", 0) or 0)
        self.param_spec = integrand.param_spec
        th = plant.default_params() if theta is None else as_float_array("theta", theta).ravel()
        if th.shape != (plant.n_params,):
            raise ValueError(f"theta: expected shape ({plant.n_params},) (the ODE's parameters), got {th.shape}")
        self.theta = th

    def default_params(self):
        return self.integrand.default_params()

    def bind(self, params, *, grad: bool):
        """Bind the integrand's parameters and the (fixed) ODE parameters once per evaluation."""
        b = getattr(self.integrand, "bind", None)
        return _IntegralBound(params if b is None else b(params, grad=grad), self.plant.bind(self.theta, grad=False))

    def param_grad(self, bound):
        pg = getattr(self.integrand, "param_grad", None)
        return None if pg is None or not isinstance(bound, _IntegralBound) else pg(bound.p)

    def forward(self, t, x, u, X, p):
        if isinstance(p, _IntegralBound):
            p, theta = p.p, p.theta
        else:  # an engine that does not bind
            theta = self.theta
        _, Q, ctx = self.plant.integrator.step_quadrature(self.plant.ode, self.integrand, x, u, X, theta, t, p)
        return Q, ctx

    def vjp(self, ctx, c_bar):
        xb, ub, _, pb = self.plant.integrator.step_quadrature_vjp(self.plant.ode, self.integrand, ctx, None, c_bar)
        if pb is None:
            pb = SliceGrad(slice(0, 0), np.zeros(0))
        return xb, ub, pb

    def __repr__(self):
        return f"IntegralCost({self.integrand!r}, {self.plant!r})"
