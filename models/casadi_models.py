r"""CasADi forms of the model library's NumPy models.

Importing ``dynopt.models`` registers these with :func:`dynopt.casadi.forms.register_casadi_form`,
so every built-in plant, policy and cost is CasADi-expressible: the whole-trajectory CasADi
reference (:class:`dynopt.casadi.reference.CasadiReference`), the compiled sweeps
(:class:`dynopt.casadi.compiled.CompiledBPTT`) and :func:`dynopt.casadi.components.as_casadi`
use them.  Each form is the same arithmetic as the NumPy ``forward`` on one scenario (column
vectors), with the same flat parameter vector (C order); tests check trajectories to 1e-12 and
gradients to 1e-10 against the hand-written NumPy duals.

Every form also has a *batched* variant (columns = scenarios, matrix operations, MX), which
CasADi's virtual machine evaluates several times faster than ``map(B)`` of the scalar form;
the right-hand sides index rows (``x[0, :]``) so that one expression serves both.

Units are those of the NumPy models (SI, see :mod:`dynopt.models.mechanics`).
:class:`~dynopt.models.FunctionCost` (arbitrary NumPy user functions) has no form.
"""

from __future__ import annotations

import casadi as ca

from dynopt.casadi.forms import CasadiForm, register_casadi_form

from .costs import Quadratic, QuadraticTerminal, SwingUpCost
from .linear import LinearPlant
from .mechanics import CartPole, DoubleIntegrator, Pendulum
from .policies import LinearFeedback, MLPPolicy, OpenLoop

SX = ca.SX


def _ode(name, n, m, nX, n_p, rhs):
    def build(S, B):
        x, u, X, p = S.sym("x", n, B), S.sym("u", m, B), S.sym("X", nX, B), S.sym("p", n_p)
        return ca.Function(name if S is SX else f"{name}_b{B}", [x, u, X, p], [rhs(x, u, X, p)],
                           ["x", "u", "X", "p"], ["xdot"])
    return CasadiForm("ode", build(SX, 1), batched=lambda B: build(ca.MX, B))


def _mat(v, r, c):
    """(r, c) matrix from a row-major flat symbol slice."""
    return ca.reshape(v, c, r).T


def pendulum_rhs(x, u, X, p):
    r"""Pendulum :math:`(\dot\theta, \dot\omega)`; ``p = (g, l, m, b)`` as :class:`~dynopt.models.Pendulum`."""
    g, l, m, b = p[0], p[1], p[2], p[3]
    ml2 = m * l * l
    return ca.vertcat(x[1, :], (g / l) * ca.sin(x[0, :]) + ((1.0 / ml2) * u[0, :] - (b / ml2) * x[1, :]))


def cartpole_rhs(x, u, X, p):
    """Cart-pole ``(v, omega, a, alpha)``; ``p = (m_c, m_p, l, g)`` as :class:`~dynopt.models.CartPole`."""
    mc, mp, l, g = p[0], p[1], p[2], p[3]
    s, c, w = ca.sin(x[1, :]), ca.cos(x[1, :]), x[3, :]
    a = (u[0, :] + mp * s * (l * w * w - g * c)) / (mc + mp * s * s)
    return ca.vertcat(x[2, :], w, a, (g * s - c * a) / l)


def double_integrator_rhs(x, u, X, p):
    """``(v, F / m)``; ``p = (m,)``."""
    return ca.vertcat(x[1, :], u[0, :] / p[0])


def _linear_form(plant: LinearPlant) -> CasadiForm:
    n, m, k, nX = plant.n_state, plant.n_control, plant.lags, plant.n_exog

    def build(S, B):
        hist = [S.sym(f"x{j}", n, B) for j in range(k)]
        u, X, p = S.sym("u", m, B), S.sym("X", nX, B), S.sym("p", plant.n_params)
        off, xn = 0, S.zeros(n, B)
        for j in range(k):
            xn += ca.mtimes(_mat(p[off:off + n * n], n, n), hist[j])
            off += n * n
        if m:
            xn += ca.mtimes(_mat(p[off:off + n * m], n, m), u)
        off += n * m
        if nX:
            xn += ca.mtimes(_mat(p[off:off + n * nX], n, nX), X)
        return ca.Function("linear_plant" if S is SX else f"linear_plant_b{B}", hist + [u, X, p], [xn],
                           [f"x{j}" for j in range(k)] + ["u", "X", "p"], ["x_next"])
    return CasadiForm("plant", build(SX, 1), batched=lambda B: build(ca.MX, B))


def _mlp_form(pol: MLPPolicy) -> CasadiForm:
    def build(S, B):
        x, X, p = S.sym("x", pol.n_state, B), S.sym("X", pol.n_exog, B), S.sym("p", pol.n_params)
        feats = []
        for i in range(pol.n_state):
            feats += [ca.cos(x[i, :]), ca.sin(x[i, :])] if i in pol.angles else [x[i, :]]
        feats += [X[i, :] for i in range(pol.n_exog)]   # exogenous channels appended to obs
        h, off = ca.vertcat(*feats), 0
        L = len(pol.sizes) - 1
        for i in range(L):
            o, nin = pol.sizes[i + 1], pol.sizes[i]
            Wm = _mat(p[off:off + o * nin], o, nin)
            off += o * nin
            h = ca.mtimes(Wm, h) + ca.repmat(p[off:off + o], 1, B)
            off += o
            if i < L - 1:
                h = ca.tanh(h)
        if pol.u_max is not None:
            h = pol.u_max * ca.tanh(h)
        return ca.Function("mlp_policy" if S is SX else f"mlp_policy_b{B}", [x, X, p], [h], ["x", "X", "p"], ["u"])
    return CasadiForm("policy", build(SX, 1), batched=lambda B: build(ca.MX, B))


def _linear_feedback_form(pol: LinearFeedback) -> CasadiForm:
    n, m, nX = pol.n_state, pol.n_control, pol.n_exog

    def build(S, B):
        x, X, p = S.sym("x", n, B), S.sym("X", nX, B), S.sym("p", pol.n_params)
        u = -ca.mtimes(_mat(p[:m * n], m, n), x)
        off = m * n
        if pol.bias:
            u = u + ca.repmat(p[off:off + m], 1, B)
            off += m
        if nX:
            u = u + ca.mtimes(_mat(p[off:off + m * nX], m, nX), X)
        return ca.Function("linear_feedback" if S is SX else f"linear_feedback_b{B}", [x, X, p], [u],
                           ["x", "X", "p"], ["u"])
    return CasadiForm("policy", build(SX, 1), batched=lambda B: build(ca.MX, B))


def _open_loop_form(pol: OpenLoop):
    if pol.n_exog:   # u = U[t] + G X[t]: G is not in the per-step slice a form reads
        return None
    m = pol.n_control
    x, X, p = SX.sym("x", pol.n_state), SX.sym("X", 0), SX.sym("p", m)
    return CasadiForm("policy", ca.Function("open_loop", [x, X, p], [p], ["x", "X", "p"], ["u"]), step_slice=m)


def _quad(W, d):
    """Column-wise quadratic forms ``d_b' W d_b`` as a (1, B) row."""
    return ca.sum1(d * ca.mtimes(ca.DM(W), d))


def _quadratic_form(cost: Quadratic) -> CasadiForm:
    n = cost.Q.shape[0]
    m = 0 if cost.R is None else cost.R.shape[0]

    def build(S, B):
        x, u, X, p = S.sym("x", n, B), S.sym("u", m, B), S.sym("X", 0, B), S.sym("p", 0)
        c = _quad(cost.Q, x - ca.repmat(ca.DM(cost.x_ref), 1, B))
        if cost.R is not None:
            c = c + _quad(cost.R, u - ca.repmat(ca.DM(cost.u_ref), 1, B))
        return ca.Function("quadratic" if S is SX else f"quadratic_b{B}", [x, u, X, p], [cost.scale * c],
                           ["x", "u", "X", "p"], ["l"])
    return CasadiForm("cost", build(SX, 1), batched=lambda B: build(ca.MX, B))


def _quadratic_terminal_form(cost: QuadraticTerminal) -> CasadiForm:
    def build(S, B):
        x, p = S.sym("x", cost.P.shape[0], B), S.sym("p", 0)
        c = _quad(cost.P, x - ca.repmat(ca.DM(cost.x_ref), 1, B))
        return ca.Function("quadratic_terminal" if S is SX else f"quadratic_terminal_b{B}", [x, p], [c],
                           ["x", "p"], ["lT"])
    return CasadiForm("terminal", build(SX, 1), batched=lambda B: build(ca.MX, B))


def _swingup_form(cost: SwingUpCost) -> CasadiForm:
    wt, ww, wu = cost.w

    def build(S, B):
        x, u, X, p = S.sym("x", 2, B), S.sym("u", 1, B), S.sym("X", 0, B), S.sym("p", 0)
        th, om, uu = x[0, :], x[1, :], u[0, :]
        c = cost.dt * (wt * (1.0 - ca.cos(th)) + ww * om * om + wu * uu * uu)
        return ca.Function("swingup" if S is SX else f"swingup_b{B}", [x, u, X, p], [c], ["x", "u", "X", "p"], ["l"])
    return CasadiForm("cost", build(SX, 1), batched=lambda B: build(ca.MX, B))


def register_all() -> None:
    """Register the CasADi form of every NumPy model (done on import of ``dynopt.models``)."""
    register_casadi_form(Pendulum, lambda c: _ode("pendulum", 2, 1, 0, 4, pendulum_rhs))
    register_casadi_form(CartPole, lambda c: _ode("cartpole", 4, 1, 0, 4, cartpole_rhs))
    register_casadi_form(DoubleIntegrator, lambda c: _ode("double_integrator", 2, 1, 0, 1, double_integrator_rhs))
    register_casadi_form(LinearPlant, _linear_form)
    register_casadi_form(MLPPolicy, _mlp_form)
    register_casadi_form(LinearFeedback, _linear_feedback_form)
    register_casadi_form(OpenLoop, _open_loop_form)
    register_casadi_form(Quadratic, _quadratic_form)
    register_casadi_form(QuadraticTerminal, _quadratic_terminal_form)
    register_casadi_form(SwingUpCost, _swingup_form)


register_all()

__all__ = ["cartpole_rhs", "double_integrator_rhs", "pendulum_rhs", "register_all"]
