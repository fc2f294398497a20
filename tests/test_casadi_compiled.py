"""Compiled sweeps (CasADi loops over time, optionally C code) against the Python-loop BPTT.

Both run the same adjoint recursion with the same component derivatives in float64; only the
order of a few additions differs (CasADi sums parameter adjoints over the batch inside its
map, NumPy with its own pairwise sums), so they agree to a few ulps: 1e-12 relative to the
largest gradient entry is the issue's bar and leaves ~100x margin over the observed 1e-14.
"""

import os
import shutil

import numpy as np
import pytest

from dynopt import RK4, Discretized, Euler, Problem
from dynopt.casadi.codegen import CompilerNotFoundWarning
from dynopt.casadi.compiled import CompiledBPTT
from dynopt.casadi.components import CasadiPlant, CasadiStageCost
from dynopt.models import (DoubleIntegrator, LinearFeedback, LinearPlant, MLPPolicy, OpenLoop, Pendulum, Quadratic,
                           QuadraticTerminal, SwingUpCost)
from dynopt.models.reactor import CSTR, steady_state

RTOL = 1e-12


def _rel(a, b):
    if np.size(b) == 0:
        return 0.0 if np.size(a) == 0 else float("inf")
    return float(np.max(np.abs(np.asarray(a) - b)) / max(np.max(np.abs(b)), 1e-300))


def pendulum_mlp(T=40):
    r = np.random.default_rng(0)
    return Problem(Discretized(Pendulum(), RK4(0.05)), MLPPolicy(2, 1, (5, 4), u_max=2.0, angles=(0,)),
                   SwingUpCost(0.05), QuadraticTerminal(np.eye(2)), horizon=T, x0=r.uniform(-1, 1, (5, 2)),
                   decision=("policy", "plant", "x0"))


def lag2_exog(T=30):
    r = np.random.default_rng(1)
    A = [0.5 * np.eye(3) + 0.1 * r.standard_normal((3, 3)), 0.2 * r.standard_normal((3, 3))]
    plant = LinearPlant(A, r.standard_normal((3, 2)), E=r.standard_normal((3, 2)))
    return Problem(plant, LinearFeedback(3, 2, bias=True, K0=0.1 * np.ones((2, 3))), Quadratic(np.eye(3), [0.1, 0.1]),
                   QuadraticTerminal(2 * np.eye(3)), horizon=T, x0=r.standard_normal((2, 4, 3)),
                   X=r.standard_normal((T, 4, 2)), decision=("policy", "plant", "x0"))


def open_loop(T=25):
    return Problem(Discretized(DoubleIntegrator(), Euler(0.1)), OpenLoop(2, 1, horizon=T, U0=np.sin(np.arange(T))),
                   Quadratic([1.0, 0.1], [0.01]), QuadraticTerminal(np.eye(2)), horizon=T,
                   x0=[[1.0, 0.0], [0.0, 1.0]], decision=("policy", "x0"))


def reactor(T=60):
    xs = steady_state(300.0)
    return Problem(CSTR().discretize(RK4(0.05)), LinearFeedback(2, 1, bias=True), Quadratic([100.0, 0.01], [1e-4],
                   x_ref=xs, u_ref=[300.0], scale=0.05), horizon=T, x0=xs + np.array([[0.05, 2.0], [-0.03, -1.0]]),
                   params={"policy": [0.0, 5.0, 300.0 + 5.0 * xs[1]]}, decision=("policy", "plant", "x0"))


def user_lag2_no_terminal(T=20):
    import casadi as ca

    def f(x, u, p):
        return ca.sin(x[0]) * p[0] + x[1] * p[1] + u

    plant = CasadiPlant(f, n_state=1, n_control=1, lags=2, params=[0.5, 0.3])
    return Problem(plant, LinearFeedback(1, 1, K0=[[0.2]]), Quadratic([1.0], [0.1]), horizon=T,
                   x0=np.array([[[0.4], [0.1]], [[0.2], [-0.3]]]), decision=("policy", "plant", "x0"))


def no_control_ar2(T=20):
    """A plant without controls (an AR(2) recursion driven by data X): the empty policy."""
    import casadi as ca

    def f(x, u, X, p):
        return p[0] * x[0] + p[1] * x[1] + X[0]

    plant = CasadiPlant(f, n_state=1, n_control=0, n_exog=1, lags=2, params=[0.5, -0.2])
    X = np.random.default_rng(4).standard_normal((T, 3, 1))
    return Problem(plant, None, Quadratic([1.0]), horizon=T, x0=np.zeros((2, 3, 1)), X=X, decision=("plant", "x0"))


CASES = {"no-control-ar2": no_control_ar2, "pendulum-mlp": pendulum_mlp, "lag2-exog": lag2_exog, "open-loop": open_loop, "reactor": reactor,
         "user-lag2": user_lag2_no_terminal}


def _equals_python_loop(problem, method):
    """``method``'s value, gradient, trajectory and value-only path equal the NumPy sweeps' at a W away
    from symmetric defaults; returns the evaluation and W."""
    W = problem.W0 * (1 + 0.01 * np.cos(np.arange(problem.n_decision)))
    J, g = problem.value_and_grad(W)
    ev = method.evaluate(problem, W)
    Jc, gc, traj = ev
    assert abs(Jc - J) <= RTOL * abs(J)
    assert _rel(gc, g) < RTOL
    ref = problem.simulate(W)
    assert _rel(traj.x, ref.x) < RTOL and _rel(traj.u, ref.u) < RTOL
    assert _rel(traj.stage_cost, ref.stage_cost) < RTOL
    assert abs(method.value(problem, W) - J) <= RTOL * abs(J)
    return ev, W


@pytest.mark.parametrize("name", sorted(CASES))
def test_compiled_vm_equals_python_loop(name):
    _equals_python_loop(CASES[name](), CompiledBPTT())


def post_step_cost(T=15):
    """A post-step stage cost (timing="post": the cost reads x[t+1]) on a nonlinear plant."""
    import casadi as ca

    def f(x, u, p):
        return ca.vertcat(x[0] + 0.1 * x[1], x[1] + 0.1 * (p[0] * ca.sin(x[0]) + u[0]))

    def c(x, u, p):
        return p[0] * x[0] ** 2 + x[1] ** 2 + 0.1 * u[0] ** 2

    class PostStepCost(CasadiStageCost):
        timing = "post"

    plant = CasadiPlant(f, n_state=2, n_control=1, params=[-0.8])
    cost = PostStepCost(c, n_state=2, n_control=1, params=[1.5])
    return Problem(plant, LinearFeedback(2, 1, K0=[[0.5, 0.2]]), cost, horizon=T,
                   x0=np.array([[0.3, 0.0], [-0.2, 0.1]]), decision=("policy", "plant", "cost"))


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc on PATH")
@pytest.mark.parametrize("name", sorted(CASES) + ["post-step-cost"])
def test_compiled_scans_equal_python_loop(name, tmp_path):
    """loop="scan": the forward and adjoint sweeps as two compiled C loops (dynopt.casadi.scan_sweeps)."""
    problem = post_step_cost() if name == "post-step-cost" else CASES[name]()
    ev, W = _equals_python_loop(problem, CompiledBPTT(codegen=True, cache_dir=tmp_path, loop="scan"))
    assert ev.stats["build"]["loop"] == "scan" and ev.stats["build"]["compiled"]
    if name == "lag2-exog":  # a second run loads the libraries from the cache
        again = CompiledBPTT(codegen=True, cache_dir=tmp_path, loop="scan").evaluate(problem, W)
        assert again.stats["build"]["cached"] and again.stats["build"]["compile_seconds"] == 0.0
        np.testing.assert_array_equal(again[1], ev[1])
        assert len(list(tmp_path.glob("*.so"))) == 3  # forward, backward, terminal


def test_compiled_loop_argument_is_checked():
    with pytest.raises(ValueError, match="loop: expected 'auto', 'scan' or 'tower', got 'fast'"):
        CompiledBPTT(codegen=True, loop="fast")
    with pytest.raises(ValueError, match="loop: 'scan' needs codegen=True and compiler='gcc'"):
        CompiledBPTT(loop="scan")


def test_compiled_as_the_problems_gradient_strategy():
    problem = lag2_exog()
    J, g = problem.value_and_grad(problem.W0)
    p2 = Problem(problem.plant, problem.policy, problem.cost, problem.terminal_cost, horizon=problem.horizon,
                 x0=problem.unpack(problem.W0)["x0"], X=problem.X, decision=problem.decision, gradient=CompiledBPTT())
    J2, g2 = p2.value_and_grad(p2.W0)
    assert abs(J2 - J) <= RTOL * abs(J) and _rel(g2, g) < RTOL
    assert p2.counts == {"forward": 1, "backward": 1}


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc on PATH (the fallback has its own test)")
def test_codegen_equals_python_loop_and_is_cached(tmp_path):
    """The tower (loop="tower"): one library per structure, loaded by key without building a graph."""
    problem = open_loop(T=12)
    J, g = problem.value_and_grad(problem.W0)
    first = CompiledBPTT(codegen=True, cache_dir=tmp_path, loop="tower")
    ev = first.evaluate(problem, problem.W0)
    Jc, gc, _ = ev
    assert ev.stats["build"]["compiled"] and not ev.stats["build"]["cached"]
    assert abs(Jc - J) <= RTOL * abs(J) and _rel(gc, g) < RTOL
    libs = list(tmp_path.glob("*.so"))
    assert len(libs) == 1
    mtime = libs[0].stat().st_mtime_ns
    second = CompiledBPTT(codegen=True, cache_dir=tmp_path, loop="tower")  # a new run: no recompiling
    ev = second.evaluate(open_loop(T=12), problem.W0)
    Jd, gd, _ = ev
    assert ev.stats["build"]["cached"] and ev.stats["build"]["compile_seconds"] == 0.0
    assert ev.stats["build"]["build_seconds"] == 0.0  # loaded by structure key: no graph built
    assert libs[0].stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(gd, gc)
    other = CompiledBPTT(codegen=True, cache_dir=tmp_path, loop="tower")  # another horizon: another structure
    ev = other.evaluate(open_loop(T=13), open_loop(T=13).W0)
    assert not ev.stats["build"]["cached"] and len(list(tmp_path.glob("*.so"))) == 2


def test_no_compiler_falls_back_with_one_warning(tmp_path, monkeypatch):
    problem = open_loop(T=10)
    J, g = problem.value_and_grad(problem.W0)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    method = CompiledBPTT(codegen=True, cache_dir=tmp_path / "cache")
    with pytest.warns(CompilerNotFoundWarning, match="not found on PATH") as rec:
        ev = method.evaluate(problem, problem.W0)
        Jc, gc, _ = ev
        method.evaluate(problem, problem.W0)
        method.evaluate(open_loop(T=10), problem.W0)  # another problem, same method: still one warning
    assert len(rec) == 1
    assert not ev.stats["build"]["compiled"]
    assert abs(Jc - J) <= RTOL * abs(J) and _rel(gc, g) < RTOL
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").glob("*.so"))


def test_cache_dir_from_environment(tmp_path, monkeypatch):
    from dynopt.casadi.codegen import ENV_CACHE_DIR, cache_dir
    monkeypatch.setenv(ENV_CACHE_DIR, str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    assert cache_dir(tmp_path / "d") == tmp_path / "d"
    monkeypatch.delenv(ENV_CACHE_DIR)
    assert cache_dir() == __import__("pathlib").Path(os.path.expanduser("~")) / ".cache" / "dynopt"


def test_compiled_rejects_numpy_only_components():
    from dynopt.models import FunctionCost
    p = Problem(Discretized(Pendulum(), RK4(0.05)), LinearFeedback(2, 1),
                FunctionCost(lambda t, x, u, X: (x ** 2).sum(1), lambda t, x, u, X: (2 * x, 0 * u)),
                horizon=3, x0=[0.1, 0.0])
    with pytest.raises(TypeError, match="CasADi form"):
        CompiledBPTT().evaluate(p, p.W0)
    with pytest.raises(TypeError, match="CasADi form"):
        CompiledBPTT(codegen=True).evaluate(p, p.W0)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc on PATH")
def test_scans_the_compiler_refuses_fall_back_to_the_tower(tmp_path, monkeypatch):
    """loop="auto": when gcc refuses the scans (flags or code), the tower is built instead; an explicit
    loop="scan" reports the compiler's error."""
    from dynopt.casadi import scan_sweeps

    def refuse(*args, **kwargs):
        raise RuntimeError("gcc failed on the generated code (1): unrecognized command-line option")

    monkeypatch.setattr(scan_sweeps, "ScanSweeps", refuse)
    problem = open_loop(T=10)
    ev, _ = _equals_python_loop(problem, CompiledBPTT(codegen=True, cache_dir=tmp_path))
    assert ev.stats["build"]["loop"] == "tower" and ev.stats["build"]["compiled"]
    with pytest.raises(RuntimeError, match="unrecognized command-line option"):
        CompiledBPTT(codegen=True, cache_dir=tmp_path, loop="scan").evaluate(problem, problem.W0)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc on PATH")
@pytest.mark.parametrize("loop", ["scan", "tower"])
def test_an_evaluated_compiled_problem_pickles(loop, tmp_path):
    """The strategy's settings travel (to a process pool, a file); its libraries are loaded again there."""
    import pickle
    problem = open_loop(T=10).replace(gradient=CompiledBPTT(codegen=True, cache_dir=tmp_path, loop=loop))
    J, g = problem.value_and_grad(problem.W0)
    again = pickle.loads(pickle.dumps(problem))
    assert repr(again.gradient) == repr(problem.gradient) and again.gradient.cache_dir == tmp_path
    J2, g2 = again.value_and_grad(again.W0)
    assert J2 == J and np.array_equal(g2, g)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc on PATH")
def test_cache_key_separates_pre_and_post_step_costs_and_takes_named_channels(tmp_path):
    """The same cost function as a pre-step and as a post-step cost builds two libraries (the key once
    ignored the timing: the second loaded the first's and returned a wrong gradient); problems whose
    X is a dict of named channels compile too."""
    pre = post_step_cost()
    pre = pre.replace(cost=CasadiStageCost(lambda x, u, p: p[0] * x[0] ** 2 + x[1] ** 2 + 0.1 * u[0] ** 2,
                                           n_state=2, n_control=1, params=[1.5]))
    for problem in (pre, post_step_cost()):
        _equals_python_loop(problem, CompiledBPTT(codegen=True, cache_dir=tmp_path, loop="tower"))
    r = np.random.default_rng(5)
    named = Problem(LinearPlant(0.9 * np.eye(2), np.ones((2, 1)), E=np.ones((2, 1)), channels=("d",)),
                    LinearFeedback(2, 1, K0=[[0.3, 0.1]]), Quadratic(np.eye(2), [0.1]), horizon=10,
                    x0=r.standard_normal((2, 2)), X={"d": r.standard_normal((10, 2, 1))})
    for loop in ("tower", "scan"):
        _equals_python_loop(named, CompiledBPTT(codegen=True, cache_dir=tmp_path, loop=loop))
