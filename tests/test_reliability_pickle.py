"""Issue 11 item 6: a Problem built from CasADi components pickles with the standard ``pickle``
and the copy computes the same J and gradient (checked against central finite differences)."""

import pickle

import numpy as np
import pytest
import scipy.optimize

import dynopt
from dynopt.models import MLPPolicy, Pendulum, SwingUpCost


def _casadi_problem():
    ode = dynopt.CasadiODE(lambda x, u, p: -p[0] * x + u, n_state=1, n_control=1, params=[1.0])
    policy = dynopt.CasadiPolicy(lambda x, p: -p[0] * x, n_state=1, n_control=1, params=[0.5])
    cost = dynopt.CasadiStageCost(lambda x, u, p: x.T @ x + 0.1 * u.T @ u, n_state=1, n_control=1)
    term = dynopt.CasadiTerminalCost(lambda x, p: 2.0 * x.T @ x, n_state=1)
    return dynopt.Problem(dynopt.Discretized(ode, dynopt.RK4(0.1)), policy, cost, term, horizon=15,
                          x0=np.array([[1.0], [-0.5]]))


def test_casadi_problem_pickles_with_plain_pickle():
    prob = _casadi_problem()
    copy = pickle.loads(pickle.dumps(prob))
    W = np.array([0.8])
    J, g = copy.value_and_grad(W)
    J0, g0 = prob.value_and_grad(W)
    assert J == J0 and np.array_equal(g, g0)
    fd = scipy.optimize.approx_fprime(W, copy.value, 1e-6)
    assert g == pytest.approx(fd, rel=1e-6)
    # the copy stays usable from another thread (per-thread CasADi buffers are rebuilt)
    import threading
    out = []
    t = threading.Thread(target=lambda: out.append(copy.value(W)))
    t.start()
    t.join(10)
    assert out == [J]


def test_as_casadi_mlp_policy_pickles_and_agrees():
    pol = dynopt.as_casadi(MLPPolicy(2, 1, (6,), u_max=2.0, angles=(0,)))
    prob = dynopt.Problem(dynopt.Discretized(Pendulum(), dynopt.RK4(0.05)), pol, SwingUpCost(0.05), horizon=10,
                          x0=np.array([[1.0, 0.0], [-0.5, 0.3]]))
    copy = pickle.loads(pickle.dumps(prob))
    J, g = copy.value_and_grad(copy.W0)
    J0, g0 = prob.value_and_grad(prob.W0)
    assert J == pytest.approx(J0, rel=1e-13)
    assert g == pytest.approx(g0, rel=1e-10, abs=1e-14)


def test_simulation_diverged_error_round_trips():
    err = dynopt.SimulationDivergedError(12, "plant dual", 3, 1, float("inf"))
    back = pickle.loads(pickle.dumps(err))
    assert (back.step, back.component, back.scenario, back.index, back.value) == (12, "plant dual", 3, 1, float("inf"))
    assert str(back) == str(err) and "t=12" in str(back)
