"""Bad input raises ValueError/TypeError naming the argument, the expected and the given."""

import numpy as np
import pytest

import dynopt
from dynopt import RK4, Discretized, Problem
from dynopt.models import LinearFeedback, LinearPlant, OpenLoop, Pendulum, Quadratic, SwingUpCost


def _parts():
    return Discretized(Pendulum(), RK4(0.05)), LinearFeedback(2, 1), SwingUpCost(0.05)


@pytest.mark.parametrize("kwargs, exc, pattern", [
    ({"horizon": 0}, ValueError, r"horizon: expected an integer >= 1, got 0"),
    ({"horizon": 2.5}, TypeError, r"horizon: expected an integer >= 1, got 2.5"),
    ({"x0": np.zeros((3, 3))}, ValueError, r"x0: expected shape \(B, n\) or \(n,\) with n=2, got \(3, 3\)"),
    ({"x0": [[0.0, np.nan]]}, ValueError, r"x0: expected finite values, got nan at index \(0, 1\)"),
    ({"x0": [[0.0, np.inf]]}, ValueError, r"x0: expected finite values, got inf"),
    ({"x0": "abc"}, TypeError, r"x0: expected a numeric array, got str"),
    ({"params": {"policy": [1.0]}}, ValueError, r"params\['policy'\]: expected shape \(2,\), got \(1,\)"),
    ({"params": {"pollicy": [1.0]}}, ValueError, r"params: unknown block 'pollicy'"),
    ({"decision": ("cost",)}, ValueError, r"decision: block 'cost' has no parameters"),
    ({"decision": ("gains",)}, ValueError, r"decision: unknown block 'gains'"),
    ({"objective": "maximise"}, ValueError, r"objective: expected 'min' or 'max', got 'maximise'"),
    ({"X": np.zeros((10, 1))}, ValueError, r"X: no component reads exogenous inputs"),
])
def test_problem_rejects_bad_input(kwargs, exc, pattern):
    plant, policy, cost = _parts()
    args = {"horizon": 10, "x0": np.zeros((2, 2))} | kwargs
    with pytest.raises(exc, match=pattern):
        Problem(plant, policy, cost, **args)


def test_exogenous_input_shapes_and_values():
    plant = LinearPlant(np.eye(2), np.ones((2, 1)), E=np.ones((2, 3)))
    make = lambda X: Problem(plant, LinearFeedback(2, 1), Quadratic(np.eye(2)), horizon=5, x0=np.zeros((4, 2)), X=X)
    with pytest.raises(ValueError, match=r"X: expected shape \(5, 4, 3\), got \(5, 3, 3\)"):
        make(np.zeros((5, 3, 3)))
    with pytest.raises(ValueError, match=r"X: expected shape \(5, 3\), got \(4, 3\)"):
        make(np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"X: expected finite values, got nan"):
        make(np.full((5, 3), np.nan))
    with pytest.raises(ValueError, match=r"X: the components read nX=3"):
        make(None)
    assert make(np.zeros((5, 3))).X.shape == (5, 4, 3)  # shared over scenarios


def test_multi_lag_history_shape():
    plant = LinearPlant([np.eye(2), 0.1 * np.eye(2)], np.ones((2, 1)))
    with pytest.raises(ValueError, match=r"x0: expected shape \(k, B, n\) with n=2, k=2, got \(3, 2\)"):
        Problem(plant, LinearFeedback(2, 1), Quadratic(np.eye(2)), horizon=3, x0=np.zeros((3, 2)))


def test_wrong_W_and_wrong_components():
    plant, policy, cost = _parts()
    prob = Problem(plant, policy, cost, horizon=5, x0=np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"W: expected shape \(2,\) \(policy: 2\), got \(3,\)"):
        prob.value_and_grad(np.zeros(3))
    with pytest.raises(ValueError, match=r"W: expected finite values, got nan"):
        prob.value([np.nan, 0.0])
    with pytest.raises(TypeError, match="plant: expected a dynopt.Plant, got Pendulum"):
        Problem(Pendulum(), policy, cost, horizon=5, x0=np.zeros(2))
    with pytest.raises(ValueError, match=r"policy: expected 1 controls \(the plant's m\), got a policy with 2"):
        Problem(plant, LinearFeedback(2, 2), cost, horizon=5, x0=np.zeros(2))
    with pytest.raises(ValueError, match="policy: the plant has m=1 controls"):
        Problem(plant, None, cost, horizon=5, x0=np.zeros(2))
    with pytest.raises(ValueError, match="cost: expected a stage cost, a terminal cost or both"):
        Problem(plant, policy, horizon=5, x0=np.zeros(2))
    with pytest.raises(ValueError, match=r"dt: expected a positive step size, got -0.1"):
        RK4(-0.1)
    with pytest.raises(TypeError, match=r"integrator: expected a dynopt Integrator"):
        Discretized(Pendulum(), 0.05)


def test_named_results_round_trip():
    plant, policy, cost = _parts()
    prob = Problem(plant, OpenLoop(2, 1, 4), cost, horizon=4, x0=np.zeros((3, 2)), decision=("policy", "x0", "plant"))
    W = np.arange(prob.n_decision, dtype=float)
    blocks = prob.unpack(W)
    assert blocks["policy"].tolist() == [0, 1, 2, 3]
    assert blocks["x0"].shape == (3, 2) and blocks["x0"][0].tolist() == [4, 5]
    assert prob.named(W)["plant"]["b"] == 13.0
    assert np.array_equal(prob.pack(**{k: blocks[k] for k in prob.decision}), W)
