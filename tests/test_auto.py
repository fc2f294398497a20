"""The default strategy (dynopt.Auto): picks NumPy or compiled sweeps by measurement, never
changes the answer, says what it picked, and keeps divergence reporting identical."""

import shutil

import numpy as np
import pytest

import dynopt
from dynopt import BPTT, RK4, Auto, Discretized, Plant, Problem, SimulationDivergedError
from dynopt.models import LinearPlant, MLPPolicy, Pendulum, Quadratic, QuadraticTerminal, SwingUpCost

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")


def pendulum(B=1, T=40):
    x0 = np.random.default_rng(0).uniform(-1, 1, (B, 2))
    return Problem(Discretized(Pendulum(), RK4(0.05)), MLPPolicy(2, 1, hidden=(8,), u_max=2.0, angles=(0,)),
                   SwingUpCost(0.05), horizon=T, x0=x0, gradient=Auto(compile=True))


def test_default_is_auto_and_one_off_calls_never_build():
    prob = Problem(LinearPlant(0.9 * np.eye(2), np.ones((2, 1))), dynopt.models.LinearFeedback(2, 1),
                   Quadratic(np.eye(2)), horizon=5, x0=np.ones((1, 2)))
    assert isinstance(prob.gradient, Auto)
    prob = prob.replace(gradient=Auto(compile=True))
    ev = prob.gradient.evaluate(prob, prob.W0)
    assert ev.stats["path"] == "numpy"
    J, g = BPTT().value_and_grad(prob, prob.W0)
    assert ev.J == J and np.array_equal(ev.grad, g)
    assert prob.gradient.describe(prob).startswith("numpy")
    assert prob.gradient._choices[prob].future is None  # one call: no compiler started


class _Square(Plant):
    """x+ = a x (NumPy only: no CasADi form)."""
    n_state, n_control, param_spec = 1, 0, (("a", (1,)),)

    def default_params(self):
        return np.array([0.5])

    def forward(self, hist, u, X, theta):
        return theta[0] * hist[0], (hist[0], theta)

    def vjp(self, ctx, xb):
        x, th = ctx
        return (th[0] * xb,), None, np.array([np.sum(x * xb)])


def test_numpy_only_component_stays_numpy_and_says_why():
    prob = Problem(_Square(), None, Quadratic(np.eye(1)), horizon=5, x0=np.ones((1, 1)), decision=("plant",),
                   gradient=Auto(compile=True, min_calls=1))
    for _ in range(4):
        prob.value_and_grad(prob.W0)
    assert "NumPy-only component(s) without a CasADi form: plant" in prob.gradient.describe(prob)


def test_disabled_by_environment(monkeypatch):
    monkeypatch.setenv("DYNOPT_COMPILE", "0")
    prob = pendulum().replace(gradient=Auto())
    prob.value_and_grad(prob.W0)
    assert "disabled" in prob.gradient.describe(prob)


@needs_gcc
def test_compiled_choice_gives_the_same_gradient(tmp_path):
    prob = pendulum(B=1, T=60).replace(gradient=Auto(compile=True, cache_dir=tmp_path))
    W = prob.W0 + 0.05
    J, g = BPTT().value_and_grad(prob, W)
    path = prob.gradient.wait(prob, W, timeout=120)
    assert path in ("numpy", "compiled")
    ev = prob.gradient.evaluate(prob, W)
    assert ev.stats["path"] == path
    # P1-like at B=1: the compiled loop is many times faster than NumPy's per-step overhead
    assert path == "compiled", prob.gradient.describe(prob)
    assert abs(ev.J - J) <= 1e-12 * abs(J)
    assert np.max(np.abs(ev.grad - g)) <= 1e-11 * np.max(np.abs(g))
    assert abs(prob.value(W) - J) <= 1e-12 * abs(J)


@needs_gcc
def test_switches_in_the_background_during_an_optimisation(tmp_path):
    prob = pendulum(B=1, T=60).replace(gradient=Auto(compile=True, cache_dir=tmp_path, min_calls=1))
    paths = []
    for i in range(200):
        ev = prob.gradient.evaluate(prob, prob.W0 + 1e-3 * i)
        paths.append(ev.stats["path"])
        if paths[-1] == "compiled":
            break
        import time
        time.sleep(0.02)
    assert paths[0] == "numpy" and paths[-1] == "compiled", prob.gradient.describe(prob)


@needs_gcc
def test_divergence_reported_identically_on_the_compiled_path(tmp_path):
    lin = Problem(LinearPlant(np.array([[1e200]]), np.zeros((1, 0))), None, Quadratic(np.eye(1)),
                  QuadraticTerminal(np.eye(1)), horizon=6, x0=np.ones((1, 1)), decision=("plant",))
    with pytest.raises(SimulationDivergedError) as ref:
        BPTT().value_and_grad(lin, lin.W0)
    auto = lin.replace(gradient=Auto(compile=True, cache_dir=tmp_path))
    assert auto.gradient.wait(auto, W=np.array([0.5]), timeout=120) == "compiled"
    with pytest.raises(SimulationDivergedError) as got:
        auto.value_and_grad(auto.W0)
    assert (got.value.step, got.value.component) == (ref.value.step, ref.value.component)


def test_optimize_result_says_which_path_answered():
    prob = Problem(LinearPlant(0.9 * np.eye(2), np.ones((2, 1))), dynopt.models.LinearFeedback(2, 1),
                   Quadratic(np.eye(2), [0.1]), horizon=20, x0=np.ones((1, 2)))
    res = dynopt.optimize(prob)
    assert res.success and res.strategy == "Auto"
    assert res.gradient_path == prob.gradient.describe(prob) and res.gradient_path.startswith("numpy")
    res = dynopt.optimize(prob.replace(gradient=BPTT()))
    assert res.gradient_path == "BPTT"
