"""Engine v2 (issue 9): one strategy template, immutable problems, contract checks, named
channels, shared parameter blocks, post-step costs, and an import graph without cycles."""

import ast
import pathlib
import pickle
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import dynopt
from dynopt import (BPTT, CheckpointedBPTT, CompiledBPTT, FiniteDifferences, Plant, Problem, Sharded,
                    SimulationDivergedError, StageCost, TruncatedBPTT)
from dynopt.models import LinearFeedback, LinearPlant, Quadratic, QuadraticTerminal

ROOT = pathlib.Path(__file__).resolve().parents[1]


def rel(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / max(np.max(np.abs(b)), 1e-300))


# ----------------------------------------------------------------------------- divergence, every strategy
def _forward_diverging():
    # x[t+1] = a x[t] with a = 1e200: scenario 0 overflows at step 1 (x[2] = 1e400), scenario 1 stays 0
    return Problem(LinearPlant(np.array([[1e200]]), np.zeros((1, 0))), None, Quadratic(np.eye(1)),
                   QuadraticTerminal(np.eye(1)), horizon=6, x0=np.array([[1.0], [0.0]]), decision=("plant",))


class _LinearCost(StageCost):
    """l = sum(x) (its gradient is 1 whatever x is, so adjoints grow even where x = 0)."""

    def forward(self, t, x, u, X, p):
        return x.sum(axis=1), None

    def vjp(self, ctx, c_bar):
        return np.repeat(c_bar[:, None], 1, axis=1), None, None


def _backward_diverging():
    # x stays 0 (J finite) but lam[t] = 1 + a lam[t+1] overflows going back: a backward divergence
    return Problem(LinearPlant(np.array([[1e100]]), np.zeros((1, 0))), None, _LinearCost(), horizon=8,
                   x0=np.zeros((2, 1)), decision=("x0",))


STRATEGIES = {
    "bptt": lambda: BPTT(),
    "compiled": lambda: CompiledBPTT(),
    "checkpointed": lambda: CheckpointedBPTT(budget=2),
    "truncated": lambda: TruncatedBPTT(100),
    "sharded": lambda: Sharded(ThreadPoolExecutor(2), n_shards=2),
    "auto": lambda: dynopt.Auto(),
}


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_strategy_raises_the_same_forward_divergence(name):
    prob = _forward_diverging()
    with pytest.raises(SimulationDivergedError) as ref:
        BPTT().value_and_grad(prob, prob.W0)
    # x[1] = 1e200 is finite; its stage cost x^2 = 1e400 is the first non-finite value
    assert (ref.value.step, ref.value.component, ref.value.scenario) == (1, "stage cost", 0)
    other = prob.replace(gradient=STRATEGIES[name]())
    with pytest.raises(SimulationDivergedError) as got:
        other.value_and_grad(other.W0)
    assert (got.value.step, got.value.component, got.value.scenario) == (1, "stage cost", 0)
    assert "step t=1" in str(got.value) and "scenario b=0" in str(got.value)


def _custom_only(name):
    return name not in ("compiled",)  # a NumPy-only cost has no CasADi form


@pytest.mark.parametrize("name", [n for n in sorted(STRATEGIES) if _custom_only(n)])
def test_every_strategy_names_a_backward_divergence(name):
    prob = _backward_diverging().replace(gradient=STRATEGIES[name]())
    J = prob.value(prob.W0)
    assert J == 0.0  # the simulation itself is finite
    with pytest.raises(SimulationDivergedError) as got:
        prob.value_and_grad(prob.W0)
    e = got.value
    assert e.component == "plant dual" and e.step is not None and 0 <= e.step < 8
    assert "backward sweep (plant dual)" in str(e) and f"step t={e.step}" in str(e)


def test_summed_objective_overflow_is_named():
    # every per-step cost is 1e308 (finite) but their sum is inf
    prob = Problem(LinearPlant(np.eye(1), np.zeros((1, 0))), None, Quadratic(np.eye(1)), horizon=4,
                   x0=np.array([[1e154]]), decision=("x0",))
    with pytest.raises(SimulationDivergedError, match="sum overflowed") as got:
        prob.value(prob.W0)
    assert got.value.component == "objective sum" and got.value.step == 1


def test_divergence_error_pickles():
    e = SimulationDivergedError(3, "plant dual", 1, 2, float("inf"))
    back = pickle.loads(pickle.dumps(e))
    assert (back.step, back.component, back.scenario, back.index) == (3, "plant dual", 1, 2) and str(back) == str(e)


# ----------------------------------------------------------------------------- immutability and caches
def _lqr(B=6, T=30, seed=0):
    rng = np.random.default_rng(seed)
    A = np.array([[1.0, 0.1], [0.0, 1.0]])
    Bm = np.array([[0.0], [0.1]])
    plant = LinearPlant(A, Bm, E=np.array([[0.0], [0.05]]))
    return Problem(plant, LinearFeedback(2, 1, K0=[[1.0, 1.5]]), Quadratic(np.eye(2), [0.1]), horizon=T,
                   x0=rng.standard_normal((B, 2)), X=rng.standard_normal((T, B, 1)))


def test_problem_is_immutable_and_replace_builds_a_new_one():
    prob = _lqr()
    with pytest.raises(AttributeError, match=r"Problem is immutable: cannot set 'X'; use problem.replace\(X=...\)"):
        prob.X = np.zeros((30, 6, 1))
    with pytest.raises(ValueError, match="read-only"):
        prob.X[0, 0, 0] = 1.0
    new = prob.replace(X=np.zeros((30, 6, 1)))
    assert new is not prob and np.all(new.X == 0) and not np.all(prob.X == 0)
    with pytest.raises(TypeError, match="replace: unknown arguments"):
        prob.replace(horizn=3)
    # the problem owns a copy: editing the caller's array later changes nothing
    x0 = np.ones((2, 2))
    p = Problem(LinearPlant(np.eye(2), np.ones((2, 1))), LinearFeedback(2, 1), Quadratic(np.eye(2)), horizon=3, x0=x0)
    J = p.value(p.W0)
    x0[:] = 5.0
    assert p.value(p.W0) == J


def test_sharded_after_replace_uses_the_new_data():
    prob = _lqr()
    new = prob.replace(X=2.0 * prob.X)
    with ThreadPoolExecutor(2) as ex:
        s = Sharded(ex, n_shards=3)
        J1, g1 = s.value_and_grad(prob, prob.W0)
        J2, g2 = s.value_and_grad(new, new.W0)
    Jr1, gr1 = BPTT().value_and_grad(prob, prob.W0)
    Jr2, gr2 = BPTT().value_and_grad(new, new.W0)
    assert abs(J1 - Jr1) <= 1e-13 * Jr1 and abs(J2 - Jr2) <= 1e-13 * Jr2 and abs(J2 - J1) > 1e-3
    assert rel(g1, gr1) < 1e-12 and rel(g2, gr2) < 1e-12


def test_problem_pickles_and_counts_pass_through_the_template():
    prob = _lqr()
    back = pickle.loads(pickle.dumps(prob))
    assert back.value(back.W0) == prob.value(prob.W0)
    p = prob.replace(gradient=BPTT())
    p.value_and_grad(p.W0)
    p.value(p.W0)
    assert p.counts == {"forward": 2, "backward": 1}
    q = prob.replace(gradient=CheckpointedBPTT(budget=3))
    ev = q.gradient.evaluate(q, q.W0)
    assert q.counts["recomputed_steps"] == ev.stats["recomputed_steps"] > 0
    assert not hasattr(q.gradient, "stats")


# ----------------------------------------------------------------------------- contract checks
class _BadCost(StageCost):
    def __init__(self, mode):
        self.mode = mode

    def forward(self, t, x, u, X, p):
        c = (x * x).sum(axis=1)
        if self.mode == "summed":
            return c.sum(), None          # summed over the batch by mistake
        if self.mode == "none":
            return None, None
        if self.mode == "string":
            return "cost", None
        return c.astype(np.int64), None

    def vjp(self, ctx, c_bar):
        return None, None, None


@pytest.mark.parametrize("mode,exc,words", [
    ("summed", ValueError, r"_BadCost.forward \(stage cost\): expected shape \(3,\), got \(\)"),
    ("none", TypeError, r"_BadCost.forward \(stage cost\): expected a float array of shape \(3,\), got None"),
    ("string", TypeError, r"expected a float array of shape \(3,\), got str"),
    ("int", TypeError, r"got dtype int64"),
])
def test_component_outputs_are_checked_against_the_contract(mode, exc, words):
    prob = Problem(LinearPlant(np.eye(2), np.zeros((2, 0))), None, _BadCost(mode), horizon=4,
                   x0=np.ones((3, 2)), decision=("x0",))
    with pytest.raises(exc, match=words):
        prob.value(prob.W0)


class _WrongDual(Plant):
    n_state, n_control = 2, 0

    def forward(self, hist, u, X, theta):
        return 0.5 * hist[0], None

    def vjp(self, ctx, xb):
        return (0.5 * xb[:, :1],), None, None   # wrong width


def test_dual_outputs_are_checked_against_the_contract():
    prob = Problem(_WrongDual(), None, Quadratic(np.eye(2)), horizon=3, x0=np.ones((2, 2)), decision=("x0",),
                   gradient=BPTT())
    with pytest.raises(ValueError, match=r"_WrongDual.vjp \(state adjoint of lag 0\): expected shape \(2, 2\), got \(2, 1\)"):
        prob.value_and_grad(prob.W0)


# ----------------------------------------------------------------------------- diagnose with a None adjoint
class _ControlEffort(StageCost):
    """l = u^2: its state adjoint is None (the contract allows it)."""

    def forward(self, t, x, u, X, p):
        return (u * u).sum(axis=1), u

    def vjp(self, u, c_bar):
        return None, 2.0 * c_bar[:, None] * u, None


def test_diagnose_on_a_cost_whose_state_adjoint_is_none():
    prob = Problem(LinearPlant([[0.9, 0.1], [0.0, 0.8]], [[0.0], [1.0]]), LinearFeedback(2, 1, K0=[[0.3, 0.2]]),
                   _ControlEffort(), QuadraticTerminal(np.eye(2)), horizon=25, x0=np.ones((2, 2)))
    rep = dynopt.diagnose(prob, max_lag=8)
    J, g = BPTT().value_and_grad(prob, prob.W0)
    assert abs(rep.objective - J) <= 1e-14 * J and rel(rep.gradient, g) < 1e-13
    assert rep.step_contributions.shape == (25,) and rep.step_contributions.sum() > 0


# ----------------------------------------------------------------------------- channels, sharing, timing
def test_named_channels_time_channel_and_no_first_columns():
    import casadi  # noqa: F401  (the CasADi front end)

    plant = dynopt.CasadiPlant(lambda x, u, X, p: 0.9 * x + 0.01 * X[0] + X[1], n_state=1, n_exog=2,
                               channels=("t", "d"))
    cost = dynopt.CasadiStageCost(lambda x, u, X, p: (x[0] - X[0]) ** 2, n_state=1, n_exog=1, channels=("ref",))
    T = 5
    prob = Problem(plant, None, cost, horizon=T, x0=np.ones((2, 1)),
                   X={"d": np.ones(T), "ref": np.linspace(0, 1, T)}, decision=("x0",))
    x = prob.simulate().x[:, 0, 0]
    expect = [1.0]
    for t in range(T):
        expect.append(0.9 * expect[-1] + 0.01 * t + 1.0)
    np.testing.assert_allclose(x, expect, rtol=1e-15)
    chk = dynopt.check_gradient(prob, casadi=True)
    assert chk.max_rel_error("casadi") < 1e-12 and chk.max_rel_error("fd") < 1e-7
    Jc, gc = CompiledBPTT().value_and_grad(prob, prob.W0)
    J, g = BPTT().value_and_grad(prob, prob.W0)
    assert abs(Jc - J) <= 1e-13 * J and rel(gc, g) < 1e-13
    # components reading different widths of one plain array: refused, never "the first columns"
    wide = dynopt.CasadiPlant(lambda x, u, X, p: 0.9 * x + X[0] + X[1], n_state=1, n_exog=2)
    narrow = dynopt.CasadiStageCost(lambda x, u, X, p: (x[0] - X[0]) ** 2, n_state=1, n_exog=1)
    with pytest.raises(ValueError, match="read different numbers of exogenous columns"):
        Problem(wide, None, narrow, horizon=T, x0=np.ones((1, 1)), X=np.ones((T, 2)), decision=("x0",))
    with pytest.raises(ValueError, match=r"missing \['ref'\]"):
        Problem(plant, None, cost, horizon=T, x0=np.ones((1, 1)), X={"d": np.ones(T)}, decision=("x0",))


class _Readout(StageCost):
    """l = (w . x - 1)^2 at the post-step state, w shared with the terminal cost."""

    timing = "post"
    param_spec = (("w", (2,)),)

    def default_params(self):
        return np.array([0.5, -0.25])

    def forward(self, t, x, u, X, w):
        r = x @ w - 1.0
        return r * r, (x, r, w)

    def vjp(self, ctx, c_bar):
        x, r, w = ctx
        s = 2.0 * c_bar * r
        return s[:, None] * w[None, :], None, x.T @ s


class _ReadoutT(dynopt.TerminalCost):
    param_spec = (("w", (2,)),)

    def forward(self, x, w):
        r = x @ w
        return 3.0 * r * r, (x, r, w)

    def vjp(self, ctx, c_bar):
        x, r, w = ctx
        s = 6.0 * c_bar * r
        return s[:, None] * w[None, :], x.T @ s


def test_shared_block_and_post_step_cost_against_finite_differences():
    prob = Problem(LinearPlant([[0.9, 0.2], [-0.1, 0.7]], np.zeros((2, 0))), None, _Readout(), _ReadoutT(),
                   horizon=7, x0=np.array([[1.0, -0.5], [0.3, 0.2]]), decision=("cost", "x0"),
                   shared={"terminal": "cost"}, gradient=BPTT())
    # the post-step cost reads x[1..T]: check J by hand
    tr = prob.simulate()
    w = np.array([0.5, -0.25])
    by_hand = (((tr.x[1:] @ w - 1.0) ** 2).sum(axis=0) + 3.0 * (tr.x[-1] @ w) ** 2).mean()
    assert abs(tr.objective - by_hand) <= 1e-14 * by_hand
    J, g = prob.value_and_grad(prob.W0)
    Jf, gf = FiniteDifferences().value_and_grad(prob, prob.W0)
    assert rel(g, gf) < 1e-8
    for strategy in (CheckpointedBPTT(budget=2), TruncatedBPTT(50)):
        Jc, gc = strategy.value_and_grad(prob, prob.W0)
        assert rel(gc, g) < 1e-13
    with pytest.raises(ValueError, match="cannot be in the decision"):
        prob.replace(decision=("terminal",))


# ----------------------------------------------------------------------------- import graph
def _imports(path: pathlib.Path, package: str):
    """Absolute names of the dynopt modules ``path`` imports (module level and inside functions)."""
    tree = ast.parse(path.read_text())
    mod_parts = package.split(".")
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("dynopt")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = mod_parts[:len(mod_parts) - node.level + 1] if path.name == "__init__.py" else \
                    mod_parts[:len(mod_parts) - node.level]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name.startswith("dynopt"):
                out.add(name)
    return out


def _module_graph():
    graph = {}
    for path in sorted((ROOT / "dynopt").rglob("*.py")):
        relp = path.relative_to(ROOT).with_suffix("")
        parts = list(relp.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        name = ".".join(parts)
        pkg = name if path.name == "__init__.py" else name
        graph[name] = (_imports(path, pkg), path)
    return graph


def test_import_graph_has_no_cycles_and_dynopt_never_imports_models():
    graph = _module_graph()
    for name, (deps, path) in graph.items():
        if name != "dynopt.cli":
            bad = [d for d in deps if d.startswith("dynopt.models")]
            assert not bad, f"{name} imports the model library {bad} (only dynopt.cli may)"
    # subpackage layering: nothing imports upwards (core <- gradients <- casadi/analysis/parallel <- front end)
    # gradients.auto and gradients.hessian combine the NumPy strategies with the CasADi layer, so they
    # sit above it; package __init__ files only gather names and are exempt (cycles are still checked)
    level = {"dynopt.core": 0, "dynopt.errors": 0, "dynopt.gradients": 1, "dynopt.casadi": 2,
             "dynopt.gradients.auto": 3, "dynopt.gradients.hessian": 3, "dynopt.analysis": 3,
             "dynopt.optimize": 3, "dynopt.optim": 3, "dynopt.parallel": 4, "dynopt.control": 4, "dynopt.sysid": 4}

    def lvl(mod):
        for pre, v in sorted(level.items(), key=lambda kv: -len(kv[0])):
            if mod == pre or mod.startswith(pre + "."):
                return v
        return None

    for name, (deps, path) in graph.items():
        a = lvl(name)
        if a is None or path.name == "__init__.py":
            continue
        for d in deps:
            b = lvl(d)
            if b is not None and b > a:
                pytest.fail(f"{name} (layer {a}) imports {d} (layer {b}): imports must point down")
    # module-level cycles between dynopt modules
    nodes = {n: {d for d in deps if d in graph and d != n} for n, (deps, _) in graph.items()}
    state = {}

    def visit(n, stack):
        state[n] = 1
        for d in nodes[n]:
            if state.get(d) == 1 and not (n.startswith(d + ".") or d == "dynopt"):
                pytest.fail(f"import cycle: {' -> '.join(stack + [n, d])}")
            if d not in state:
                visit(d, stack + [n])
        state[n] = 2

    for n in nodes:
        if n not in state and n != "dynopt":
            visit(n, [])


def test_problem_hessp_is_the_exact_product():
    # open-loop LQ: J is quadratic in the controls, so H v equals a difference of exact gradients
    from dynopt.models import OpenLoop

    prob = Problem(LinearPlant([[1.0, 0.1], [0.0, 1.0]], [[0.0], [0.1]]), OpenLoop(2, 1, 6), Quadratic(np.eye(2), [0.1]),
                   QuadraticTerminal(np.eye(2)), horizon=6, x0=np.ones((2, 2)), gradient=BPTT())
    v = np.random.default_rng(3).standard_normal(prob.n_decision)
    Hv = prob.hessp(prob.W0, v)
    g1 = prob.value_and_grad(prob.W0 + v)[1]
    g0 = prob.value_and_grad(prob.W0)[1]
    assert rel(Hv, g1 - g0) < 1e-12
    assert rel(Hv, dynopt.hessp(prob, prob.W0, v)) == 0.0
