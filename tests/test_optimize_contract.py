"""optimize(): one forward and one backward sweep per distinct W, divergence handling, callback,
result fields; check_gradient reports per named block."""

import numpy as np
import pytest

import dynopt
from dynopt import BPTT, Problem
from dynopt.models import LinearFeedback, LinearPlant, MLPPolicy, Pendulum, Quadratic, SwingUpCost

METHODS = ["BFGS", "CG", "L-BFGS-B"]


class CountingBPTT(BPTT):
    """BPTT that records every W it is asked for."""

    def __init__(self):
        self.seen = []

    def evaluate(self, problem, W):
        self.seen.append(W.tobytes())
        return super().evaluate(problem, W)


def _pendulum(gradient=None, T=40, B=4):
    r = np.random.default_rng(2)
    x0 = np.stack([r.uniform(-np.pi, np.pi, B), r.uniform(-1, 1, B)], 1)
    return Problem(dynopt.Discretized(Pendulum(), dynopt.RK4(0.05)), MLPPolicy(2, 1, (6,), u_max=2.0, angles=(0,)),
                   SwingUpCost(0.05), horizon=T, x0=x0, gradient=gradient)


@pytest.mark.filterwarnings("ignore:dynopt.optimize:RuntimeWarning")  # maxiter reached by design
@pytest.mark.parametrize("method", METHODS)
def test_never_two_forward_sweeps_for_one_W(method):
    strategy = CountingBPTT()
    prob = _pendulum(strategy)
    res = dynopt.optimize(prob, method=method, options={"maxiter": 15})
    assert len(strategy.seen) == len(set(strategy.seen))           # no W twice
    assert prob.counts["forward"] == prob.counts["backward"] == len(strategy.seen)
    assert res.fun < res.cost_history[0]
    assert len(res.cost_history) == res.nit + 1
    assert res.trajectory.x.shape == (41, 4, 2) and res.trajectory.u.shape == (40, 4, 1)
    assert res.trajectory.objective == res.fun


class _ScalarUnstable:
    """x+ = 0.5 x + 5 u, u = -k x: stable only for k in (-0.1, 0.3); optimise from k = -0.09.
    The first trial step of every method (length ~1 in W) lands at k ~ 0.9, where the closed loop
    multiplies x by -4 per step and the 1000-step simulation overflows."""

    @staticmethod
    def problem():
        return Problem(LinearPlant([[0.5]], [[5.0]]), LinearFeedback(1, 1), Quadratic([1.0], [0.01]),
                       horizon=1000, x0=np.ones((2, 1)), params={"policy": [-0.09]})


def test_divergence_names_step_and_component():
    prob = _ScalarUnstable.problem()
    with pytest.raises(dynopt.SimulationDivergedError) as info:
        prob.value([0.92])
    err = info.value
    # |0.5 - 4.6|^t overflows a squared cost near t = log(1.8e308) / (2 log 4.1) ~ 252
    assert err.step == 252 and err.component == "stage cost" and err.scenario == 0
    assert "t=252" in str(err)


def test_divergence_in_the_plant_is_attributed_to_the_plant():
    prob = Problem(LinearPlant([[0.5]], [[5.0]]), LinearFeedback(1, 1), terminal_cost=dynopt.models.QuadraticTerminal([[1.0]]),
                   horizon=1000, x0=np.ones((1, 1)))
    with pytest.raises(dynopt.SimulationDivergedError) as info:
        prob.value([0.92])
    assert info.value.component == "plant" and info.value.index == 0
    assert info.value.step == 502  # 4.1^t overflows at t = 709.78 / log(4.1) ~ 502


@pytest.mark.parametrize("method", METHODS)
def test_diverging_trial_points_do_not_crash_the_run(method):
    res = dynopt.optimize(_ScalarUnstable.problem(), method=method)
    assert res.diverged_evaluations >= 1
    assert res.success
    # optimum of sum x^2 + 0.01 u^2 for this scalar plant, by the scalar Riccati equation
    a, b, q, r = 0.5, 5.0, 1.0, 0.01
    P = np.roots([b * b, -(a * a * r + q * b * b - r), -q * r]).max() / 1.0
    k = a * b * P / (r + b * b * P)
    assert res.x[0] == pytest.approx(k, rel=1e-4)


@pytest.mark.filterwarnings("ignore:dynopt.optimize:RuntimeWarning")  # stopped by the callback
def test_callback_sees_each_iteration_and_can_stop():
    seen = []

    def cb(info):
        seen.append((info.nit, info.fun, info.grad_norm))
        return info.nit >= 3

    res = dynopt.optimize(_pendulum(), callback=cb)
    assert [s[0] for s in seen] == [1, 2, 3]
    assert res.nit == 3
    assert all(np.isfinite(s[2]) for s in seen)


def test_unsuccessful_run_warns_with_scipys_message():
    with pytest.warns(RuntimeWarning, match="Maximum number of iterations"):
        dynopt.optimize(_pendulum(), options={"maxiter": 2})


def test_bad_method_and_options():
    prob = _pendulum()
    with pytest.raises(ValueError, match="method: expected one of"):
        dynopt.optimize(prob, method="Nelder-Mead")
    with pytest.raises(ValueError, match=r"W: expected shape \(\d+,\)"):
        dynopt.optimize(prob, W0=np.zeros(3))
    with pytest.raises(ValueError, match="bounds: block 'plant' is not in the decision"):
        dynopt.optimize(prob, method="L-BFGS-B", bounds={"plant": (0, 1)})
    with pytest.raises(TypeError, match="problem: expected a dynopt.Problem"):
        dynopt.optimize("not a problem")


def test_progress_bar_runs(capsys):
    with pytest.warns(RuntimeWarning):
        res = dynopt.optimize(_pendulum(), options={"maxiter": 3}, progress=True)
    assert "dynopt BFGS" in capsys.readouterr().err
    assert res.nit == 3


def test_check_gradient_names_every_block():
    prob = _pendulum()
    rep = dynopt.check_gradient(prob, casadi=False)
    blocks = {r.block for r in rep.rows}
    assert blocks == {"policy.W1", "policy.b1", "policy.W2", "policy.b2"}
    assert "policy.W2" in rep.summary()
    # a planted wrong gradient is caught
    class Wrong(BPTT):
        def evaluate(self, problem, W):
            J, g, t = super().evaluate(problem, W)
            g = g.copy()
            g[-1] *= 1.01
            return J, g, t
    bad = _pendulum(Wrong())
    rep = dynopt.check_gradient(bad, casadi=False)
    assert rep.max_rel_error("fd") > 1e-3
