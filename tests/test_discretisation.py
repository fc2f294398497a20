"""Discretisation: RK4/Euler sub-steps, integral (quadrature) costs on the same stages, zero-order
hold over k steps.  References: scipy.integrate.solve_ivp, scipy.linalg.expm (Van Loan's
integral), CasADi's reverse AD of an independently written plant, finite differences."""

import casadi as ca
import numpy as np
import pytest
import scipy.integrate
import scipy.linalg

import dynopt
from dynopt.control.shooting import OpenLoopHold
from dynopt.core.integrators import IntegralCost
from dynopt.models import LinearPlant, OpenLoop, Pendulum, Quadratic


# --------------------------------------------------------------------------- sub-steps
def pend_rhs(x, u, g=9.81, l=1.0, m=1.0, b=0.0):
    return ca.vertcat(x[1], -g / l * ca.sin(x[0]) + u[0] / (m * l * l))


def test_substeps_reject_bad_values():
    with pytest.raises(ValueError, match=r"substeps: expected an integer >= 1 \(sub-steps per step\), got 0"):
        dynopt.RK4(0.1, substeps=0)
    with pytest.raises(ValueError, match="substeps: expected an integer >= 1"):
        dynopt.Euler(0.1, substeps=-2)
    with pytest.raises(TypeError, match=r"substeps: expected an integer >= 1, got 2.5"):
        dynopt.RK4(0.1, substeps=2.5)
    assert repr(dynopt.RK4(0.1, substeps=3)) == "RK4(dt=0.1, substeps=3)"


def test_rk4_substeps_converge_to_solve_ivp_at_fourth_order():
    ode = dynopt.CasadiODE(lambda x, u, p: pend_rhs(x, u), n_state=2, n_control=1)
    x0, u, dt = np.array([[2.0, 0.0]]), np.array([[0.3]]), 0.4
    exact = scipy.integrate.solve_ivp(lambda t, x: [x[1], -9.81 * np.sin(x[0]) + 0.3], (0, dt), x0[0],
                                      rtol=1e-13, atol=1e-13).y[:, -1]
    errs = []
    for s in (1, 2, 4, 8):
        x1, _ = dynopt.Discretized(ode, dynopt.RK4(dt, substeps=s)).forward((x0,), u, None, np.zeros(0))
        errs.append(np.abs(x1[0] - exact).max())
    ratios = np.array(errs[:-1]) / np.array(errs[1:])
    assert np.all((ratios > 12) & (ratios < 20)), ratios       # 2^4 = 16 for a fourth-order method
    e1 = []
    for s in (4, 8):
        x1, _ = dynopt.Discretized(ode, dynopt.Euler(dt, substeps=s)).forward((x0,), u, None, np.zeros(0))
        e1.append(np.abs(x1[0] - exact).max())
    assert 1.6 < e1[0] / e1[1] < 2.4                              # first order


@pytest.mark.parametrize("integrator", ["RK4", "Euler"])
def test_substep_gradient_vs_casadi_reference_and_fd(integrator):
    """BPTT through dynopt's sub-stepped integrator vs CasADi's reverse AD of a plant that
    writes the same sub-steps itself (no dynopt integrator code involved)."""
    dt, s, T = 0.1, 3, 15
    h = dt / s

    def step(x, u, p):
        for _ in range(s):
            if integrator == "RK4":
                k1 = pend_rhs(x, u)
                k2 = pend_rhs(x + h / 2 * k1, u)
                k3 = pend_rhs(x + h / 2 * k2, u)
                k4 = pend_rhs(x + h * k3, u)
                x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
            else:
                x = x + h * pend_rhs(x, u)
        return x

    ref_plant = dynopt.CasadiPlant(step, n_state=2, n_control=1)
    ode = dynopt.CasadiODE(lambda x, u, p: pend_rhs(x, u), n_state=2, n_control=1)
    plant = dynopt.Discretized(ode, getattr(dynopt, integrator)(dt, substeps=s))
    cost = dynopt.CasadiStageCost(lambda x, u, p: x[0] ** 2 + 0.1 * x[1] ** 2 + 0.01 * u[0] ** 2, n_state=2, n_control=1)
    x0 = [[0.3, 0.0], [-1.0, 0.5]]
    W = np.random.default_rng(3).normal(size=T + 4)
    kw = dict(horizon=T, x0=x0, decision=("policy", "x0"))
    mine = dynopt.Problem(plant, OpenLoop(2, 1, T), cost, gradient=dynopt.BPTT(), **kw)
    ref = dynopt.Problem(ref_plant, OpenLoop(2, 1, T), cost, gradient=dynopt.CasadiReference(), **kw)
    J1, g1 = mine.value_and_grad(W)
    J2, g2 = ref.value_and_grad(W)
    assert abs(J1 - J2) <= 1e-12 * abs(J2)
    np.testing.assert_allclose(g1, g2, rtol=1e-10, atol=1e-12)
    assert dynopt.check_gradient(mine, W, casadi=False).max_rel_error() < 1e-6


# --------------------------------------------------------------------------- quadrature
def van_loan_integral(A, B, Q, R, x, u, h):
    """Exact int_0^h x(s)'Q x(s) + u'R u ds for x' = A x + B u, u constant (Van Loan 1978)."""
    n, m = B.shape
    F = np.zeros((n + m, n + m))
    F[:n, :n], F[:n, n:] = A, B
    Mw = scipy.linalg.block_diag(Q, R)
    C = np.zeros((2 * (n + m), 2 * (n + m)))
    C[:n + m, :n + m], C[:n + m, n + m:], C[n + m:, n + m:] = -F.T, Mw, F
    E = scipy.linalg.expm(C * h)
    G = E[n + m:, n + m:].T @ E[:n + m, n + m:]
    z = np.concatenate([x, u])
    return float(z @ G @ z)


class LinODE(dynopt.ODE):
    def __init__(self, A, B):
        self.A, self.B = A, B
        self.n_state, self.n_control = B.shape

    def forward(self, x, u, X, theta):
        return x @ self.A.T + u @ self.B.T, None

    def vjp(self, ctx, yb):
        return yb @ self.A, yb @ self.B, np.zeros(0)


def test_integral_cost_matches_exact_integral_and_converges():
    A = np.array([[0.0, 1.0], [-2.0, -0.3]])
    B = np.array([[0.0], [1.0]])
    Q, R = np.diag([1.0, 0.5]), np.array([[0.2]])
    x, u, dt = np.array([1.0, -0.5]), np.array([0.7]), 0.5
    exact = van_loan_integral(A, B, Q, R, x, u, dt)
    errs = {}
    for s in (1, 2, 4, 32):
        plant = dynopt.Discretized(LinODE(A, B), dynopt.RK4(dt, substeps=s))
        c, _ = IntegralCost(Quadratic(Q, R), plant).forward(0, x[None], u[None], None, np.zeros(0))
        errs[s] = abs(c[0] - exact)
    assert 12 < errs[1] / errs[2] < 20 and 12 < errs[2] / errs[4] < 20   # fourth order
    assert errs[32] < 1e-8 * exact and 0.5 < errs[1] / errs[32] / 32 ** 4 < 2   # h^4 down to s = 32


def test_integral_cost_gradient_vs_fd_and_closed_form():
    """J = sum of exact step integrals for a linear plant with RK4 sub-steps; dJ/du by BPTT vs
    central differences, and J vs the Van Loan sum along the (exact) expm trajectory."""
    A = np.array([[0.0, 1.0], [-2.0, -0.3]])
    B = np.array([[0.0], [1.0]])
    Q, R = np.diag([1.0, 0.5]), np.array([[0.2]])
    dt, T = 0.2, 12
    plant = dynopt.Discretized(LinODE(A, B), dynopt.RK4(dt, substeps=16))
    prob = dynopt.Problem(plant, OpenLoop(2, 1, T), IntegralCost(Quadratic(Q, R), plant), horizon=T,
                          x0=[[1.0, 0.0], [0.0, -1.0]], decision=("policy", "x0"))
    W = np.random.default_rng(0).normal(size=prob.n_decision)
    assert dynopt.check_gradient(prob, W, casadi=False).max_rel_error() < 1e-6
    # closed form: exact discretisation and exact integrals
    Ad = scipy.linalg.expm(np.block([[A, B], [np.zeros((1, 3))]]) * dt)
    U = W[:T]
    total = 0.0
    for x in np.array([[1.0, 0.0], [0.0, -1.0]]):
        for t in range(T):
            total += van_loan_integral(A, B, Q, R, x, U[t:t + 1], dt)
            x = Ad[:2, :2] @ x + Ad[:2, 2] * U[t]
    assert abs(prob.value(np.concatenate([U, [1.0, 0.0, 0.0, -1.0]])) - total / 2) < 1e-9 * total


def test_integral_cost_bad_input():
    plant = dynopt.Discretized(Pendulum(), dynopt.RK4(0.1))
    with pytest.raises(TypeError, match="plant: expected a dynopt.Discretized"):
        IntegralCost(Quadratic(np.eye(2)), LinearPlant(np.eye(2), np.ones((2, 1))))
    with pytest.raises(TypeError, match="integrand: expected a dynopt.StageCost"):
        IntegralCost(lambda x: x, plant)
    with pytest.raises(ValueError, match=r"theta: expected shape \(4,\)"):
        IntegralCost(Quadratic(np.eye(2)), plant, theta=[1.0])


# --------------------------------------------------------------------------- zero-order hold
def test_zero_order_hold_equals_expanded_open_loop():
    """OpenLoopHold(hold=k, control_horizon=Nc) is OpenLoop with the moves repeated; its gradient
    is the expansion's transpose applied to the OpenLoop gradient computed by CasADi's AD."""
    T, k, Nc = 20, 3, 5                     # moves at t = 0, 3, 6, 9, 12; the last held to t = 19
    ode = dynopt.CasadiODE(lambda x, u, p: pend_rhs(x, u), n_state=2, n_control=1)
    plant = dynopt.Discretized(ode, dynopt.RK4(0.05))
    cost = dynopt.CasadiStageCost(lambda x, u, p: (x[0] - 1) ** 2 + 0.01 * u[0] ** 2, n_state=2, n_control=1)
    hold = OpenLoopHold(2, 1, T, hold=k, control_horizon=Nc)
    V = np.random.default_rng(2).normal(size=Nc)
    E = np.zeros((T, Nc))
    for t in range(T):
        E[t, min(t // k, Nc - 1)] = 1.0
    np.testing.assert_array_equal(hold.expand(V)[:, 0], E @ V)
    x0 = [[0.1, 0.0], [0.5, -0.2]]
    p_hold = dynopt.Problem(plant, hold, cost, horizon=T, x0=x0)
    p_ref = dynopt.Problem(plant, OpenLoop(2, 1, T), cost, horizon=T, x0=x0, gradient=dynopt.CasadiReference())
    J1, g1 = p_hold.value_and_grad(V)
    J2, g2 = p_ref.value_and_grad(E @ V)
    assert abs(J1 - J2) <= 1e-12 * J2
    np.testing.assert_allclose(g1, E.T @ g2, rtol=1e-10)
    assert dynopt.check_gradient(p_hold, V, casadi=False).max_rel_error() < 1e-6
    np.testing.assert_allclose(p_hold.simulate(V).u[:, 0, 0], E @ V)


def test_zero_order_hold_bad_input():
    with pytest.raises(ValueError, match="hold"):
        OpenLoopHold(2, 1, 10, hold=0)
    with pytest.raises(ValueError, match=r"control_horizon: expected at most ceil\(horizon / hold\) = 4 moves"):
        OpenLoopHold(2, 1, 10, hold=3, control_horizon=5)
    with pytest.raises(ValueError, match="V0"):
        OpenLoopHold(2, 1, 10, hold=5, V0=np.zeros(3))


@pytest.mark.parametrize("integ", [dynopt.RK4, dynopt.Euler])
def test_substepped_plant_has_the_same_casadi_form(integ):
    """The CasADi form of a sub-stepped plant takes the same sub-steps: NumPy and CasADi trajectories
    agree, and BPTT agrees with CasADi's AD of the unrolled trajectory and with compiled sweeps."""
    from dynopt.casadi.forms import casadi_form
    ode = dynopt.CasadiODE(lambda x, u, p: pend_rhs(x, u), n_state=2, n_control=1)
    plant = dynopt.Discretized(ode, integ(0.1, substeps=3))
    assert casadi_form(plant) is not None
    prob = dynopt.Problem(plant, OpenLoop(2, 1, 5), dynopt.CasadiStageCost(lambda x, u, p: x[0] ** 2, n_state=2,
                          n_control=1), horizon=5, x0=[0.1, 0.0], gradient=dynopt.BPTT())
    W = np.linspace(-1, 1, 5)
    chk = dynopt.check_gradient(prob, W)
    assert chk.max_rel_error("casadi") < 1e-12 and chk.max_rel_error("fd") < 1e-6
    one = dynopt.Problem(dynopt.Discretized(ode, integ(0.1)), OpenLoop(2, 1, 5), prob.cost, horizon=5,
                         x0=[0.1, 0.0])
    assert abs(one.value(W) - prob.value(W)) > 1e-8  # three sub-steps are another map than one step
    Jc, gc = dynopt.CompiledBPTT().value_and_grad(prob, W)
    J, g = prob.value_and_grad(W)
    assert abs(Jc - J) <= 1e-13 * abs(J) and np.max(np.abs(gc - g)) <= 1e-12 * np.max(np.abs(g))


def test_integral_cost_gradient_vs_casadi_reference():
    """IntegralCost (RK4, 2 sub-steps) vs a CasADi stage cost that writes the same quadrature
    itself, differentiated by CasADi's reverse AD over the unrolled trajectory."""
    dt, s, T = 0.2, 2, 10
    h = dt / s

    def q(x, u):
        return (x[0] - 0.5) ** 2 + 0.1 * x[1] ** 2 + 0.01 * u[0] ** 2

    def quad(x, u, p):
        Q = 0
        for _ in range(s):
            k1 = pend_rhs(x, u)
            k2 = pend_rhs(x + h / 2 * k1, u)
            k3 = pend_rhs(x + h / 2 * k2, u)
            k4 = pend_rhs(x + h * k3, u)
            Q = Q + h / 6 * (q(x, u) + 2 * q(x + h / 2 * k1, u) + 2 * q(x + h / 2 * k2, u) + q(x + h * k3, u))
            x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        return Q

    def step(x, u, p):
        for _ in range(s):
            k1 = pend_rhs(x, u)
            k2 = pend_rhs(x + h / 2 * k1, u)
            k3 = pend_rhs(x + h / 2 * k2, u)
            k4 = pend_rhs(x + h * k3, u)
            x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        return x

    ode = dynopt.CasadiODE(lambda x, u, p: pend_rhs(x, u), n_state=2, n_control=1)
    plant = dynopt.Discretized(ode, dynopt.RK4(dt, substeps=s))
    integrand = dynopt.CasadiStageCost(lambda x, u, p: q(x, u), n_state=2, n_control=1)
    kw = dict(horizon=T, x0=[[0.3, 0.0], [-1.0, 0.5]], decision=("policy", "x0"))
    mine = dynopt.Problem(plant, OpenLoop(2, 1, T), IntegralCost(integrand, plant), gradient=dynopt.BPTT(), **kw)
    ref = dynopt.Problem(dynopt.CasadiPlant(step, n_state=2, n_control=1), OpenLoop(2, 1, T),
                         dynopt.CasadiStageCost(quad, n_state=2, n_control=1), gradient=dynopt.CasadiReference(), **kw)
    W = np.random.default_rng(4).normal(size=T + 4)
    J1, g1 = mine.value_and_grad(W)
    J2, g2 = ref.value_and_grad(W)
    assert abs(J1 - J2) <= 1e-12 * abs(J2)
    np.testing.assert_allclose(g1, g2, rtol=1e-10, atol=1e-12)
