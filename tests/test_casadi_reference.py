"""Three-way gradient check: dynopt's BPTT vs CasADi's whole-trajectory reverse AD vs finite differences.

BPTT and the CasADi reference are both exact in exact arithmetic; in float64 they round
differently (different operation order, CasADi's own derivative rules), so they agree to a
few ulps times the conditioning of the trajectory: 1e-10 relative to each block's scale
(the issue's target), observed 1e-15..1e-13 at T = 1 and <= 1e-12 at T = 1000 on these
contractive closed loops.  Central differences carry O(h^2) truncation and O(eps |J| / h)
rounding, ~1e-10 relative at T = 1 growing with |J| at T = 1000; on the reactor the default
step for the feedback bias (|w| ~ 2000 K, h ~ 0.01 K) leaves ~1e-5 of truncation error through
the Arrhenius nonlinearity.  A wrong dual is off by O(1), so FD_RTOL = 1e-4 still tells the
two apart by four orders of magnitude.
"""

import numpy as np
import pytest

import casadi as ca
import dynopt
from dynopt import RK4, Discretized, Problem
from dynopt.casadi.components import CasadiPlant, CasadiPolicy
from dynopt.casadi.reference import CasadiReference, supports
from dynopt.models import FunctionCost, LinearFeedback, MLPPolicy, OpenLoop, Pendulum, Quadratic, QuadraticTerminal
from dynopt.models.reactor import CSTR, steady_state

CASADI_RTOL = 1e-10
FD_RTOL = 1e-4


# At T >= 1000 the decision is cut to the policy block so that the 2 len(W) finite-difference
# simulations stay cheap; at T = 1 every block (policy, plant, initial history) is checked.
def _decision(T, full):
    return full if T == 1 else ("policy",)


def pendulum_mlp(T):
    x0 = np.array([[0.3, 0.0], [-0.2, 0.5]])
    hidden = (4,) if T == 1 else (2,)
    return Problem(Discretized(Pendulum(b=1.0), RK4(0.05)), MLPPolicy(2, 1, hidden, u_max=2.0, angles=(0,), seed=3),
                   Quadratic([1.0, 0.1], [0.01], scale=0.05), horizon=T, x0=x0,
                   decision=_decision(T, ("policy", "plant", "x0")))


def lag2_user_plant():
    """A user's own nonlinear two-lag plant with a disturbance input, written with CasADi."""

    def f(x, u, X, p):
        x1, x2 = x
        return ca.tanh(ca.mtimes(p["A1"], x1)) + p["a2"] * x1 * x2 + ca.mtimes(p["B"], u) + p["e"] * X[0]

    return CasadiPlant(f, n_state=2, n_control=1, n_exog=1, lags=2,
                       params=dict(A1=[[0.5, 0.2], [-0.3, 0.4]], a2=[0.1, -0.2], B=[[0.0], [0.5]], e=[0.3, 0.1]))


def lag2(T):
    r = np.random.default_rng(5)
    policy = CasadiPolicy(lambda x, p: -ca.mtimes(p["K"], x), n_state=2, n_control=1, params=dict(K=[[0.2, 0.4]]))
    return Problem(lag2_user_plant(), policy, Quadratic([1.0, 1.0], [0.1]), QuadraticTerminal(np.eye(2)),
                   horizon=T, x0=0.3 * r.standard_normal((2, 3, 2)), X=0.1 * r.standard_normal((T, 3, 1)),
                   decision=_decision(T, ("policy", "plant", "x0")))


def reactor(T):
    xs = steady_state(300.0)
    r = np.random.default_rng(8)
    x0 = xs + np.array([[0.05, 2.0], [-0.03, -1.5]])
    cost = Quadratic([100.0, 0.01], [1e-4], x_ref=xs, u_ref=[300.0], scale=0.05)
    # T_c = 300 K - 5 (T - T_s): stabilises the open-loop unstable steady state (eigenvalues
    # -0.45 and +2.83 1/min open loop, -4.0 +- 1.8j closed loop)
    # T = 1 steps through dynopt's NumPy RK4 (four CasADi ODE calls); T = 1000 through the fused
    # CasADi RK4 step (one call per step: cheaper finite differences)
    ode = CSTR(feed_disturbance=True)
    plant = Discretized(ode, RK4(0.05)) if T == 1 else ode.discretize(RK4(0.05))
    return Problem(plant,
                   LinearFeedback(2, 1, bias=True), cost, horizon=T, x0=x0, X=r.uniform(-1.0, 1.0, (T, 1)),
                   params={"policy": [0.0, 5.0, 300.0 + 5.0 * xs[1]]},
                   decision=_decision(T, ("policy", "plant", "x0")))


CASES = {"pendulum-mlp": pendulum_mlp, "lag2": lag2, "reactor": reactor}


@pytest.mark.parametrize("T", [1, 1000])
@pytest.mark.parametrize("name", sorted(CASES))
def test_three_way(name, T):
    problem = CASES[name](T)
    assert supports(problem)
    check = dynopt.check_gradient(problem)
    assert set(check.gradients) == {"checked", "casadi", "fd"}
    assert check.max_rel_error("casadi") < CASADI_RTOL, str(check)
    assert check.max_rel_error("fd") < FD_RTOL, str(check)
    J_ref, _, _ = CasadiReference().evaluate(problem, problem.W0)
    assert abs(J_ref - check.J) <= 1e-12 * abs(check.J)


def test_reactor_plant_gradient_against_casadi():
    """The reactor's own parameters (k0 = 7.2e10 1/min next to E/R = 8750 K): per-block
    relative agreement with the whole-trajectory AD."""
    p = reactor(50)
    p = Problem(p.plant, p.policy, p.cost, horizon=50, x0=p.unpack(p.W0)["x0"], X=p.X[:, 0, :],
                params={"policy": p.unpack(p.W0)["policy"]}, decision=("plant",))
    check = dynopt.check_gradient(p, references={"casadi": CasadiReference()})
    assert check.max_rel_error("casadi") < CASADI_RTOL, str(check)


def test_open_loop_reference():
    p = Problem(Discretized(Pendulum(), RK4(0.05)), OpenLoop(2, 1, horizon=30, U0=np.linspace(-1, 1, 30)),
                Quadratic([1.0, 0.1], [0.01]), horizon=30, x0=[0.5, 0.0])
    J, g = p.value_and_grad(p.W0)
    J2, g2, _ = CasadiReference().evaluate(p, p.W0)
    assert abs(J2 - J) < 1e-12 * abs(J)
    assert np.max(np.abs(g2 - g)) < CASADI_RTOL * np.max(np.abs(g))


def test_supports_is_false_without_a_form():
    p = Problem(Discretized(Pendulum(), RK4(0.05)), LinearFeedback(2, 1),
                FunctionCost(lambda t, x, u, X: (x ** 2).sum(1), lambda t, x, u, X: (2 * x, 0 * u)),
                horizon=3, x0=[0.1, 0.0])
    assert not supports(p)
    assert set(dynopt.check_gradient(p).gradients) == {"checked", "fd"}
    with pytest.raises(TypeError, match="CasADi form"):
        CasadiReference().evaluate(p, p.W0)
