"""Scale-out: sharded (J, dJ/dW) over executors, a real Dask LocalCluster, multi-start, map_fit,
worker faults.

References: the single-process BPTT result (sharding only reorders the sums over scenarios),
the P1 reference values of shared/benchmarks/PROBLEMS.md, and the DARE gain for the LQR run.
"""

import multiprocessing
import os
import sys
import threading
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor

import pickle

import numpy as np
import pytest
import scipy.linalg
import scipy.signal

import dynopt
from dynopt import RK4, Discretized, Plant, Problem, SimulationDivergedError
from dynopt.parallel.distributed import ExecutorFailure, Sharded, dumps, loads, map_fit, shard_bounds, sharded_value_and_grad
from dynopt.models import LinearFeedback, LinearPlant, MLPPolicy, Pendulum, Quadratic, QuadraticTerminal, SwingUpCost
from dynopt.parallel.multistart import multistart

try:
    import distributed
except ImportError:  # the Dask tests skip; the rest still runs
    distributed = None
try:
    import cloudpickle
except ImportError:  # comes with dask; without it only in-process executors are tested
    cloudpickle = None

needs_dask = pytest.mark.skipif(distributed is None, reason="dask.distributed is not installed (test extra)")
needs_cloudpickle = pytest.mark.skipif(cloudpickle is None, reason="cloudpickle is not installed (comes with dask)")

if cloudpickle is not None:
    # Classes defined here travel to worker processes by value (workers cannot import this file).
    cloudpickle.register_pickle_by_value(sys.modules[__name__])

# Sharding changes only the order in which per-scenario terms are added: measured <= 1e-15
# relative (max-norm); 1e-12 is the bar.
RTOL = 1e-12


def rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


def p1(T=200, B=64):
    """P1 pendulum-MLP exactly as PROBLEMS.md states it."""
    rng = np.random.default_rng(1)
    theta0, omega0 = rng.uniform(-np.pi, np.pi, size=B), rng.uniform(-1, 1, size=B)
    return Problem(Discretized(Pendulum(g=9.81, l=1.0, m=1.0, b=0.1), RK4(0.05)),
                   MLPPolicy(2, 1, hidden=(32, 32), u_max=2.0, angles=(0,), seed=0),
                   SwingUpCost(dt=0.05), horizon=T, x0=np.stack([theta0, omega0], axis=1))


# PROBLEMS.md, P1, T=200, B=64: J, ||grad||_2, grad[0], grad[1216]
P1_REF = (20.657640981153797, 4.895200905363769, 0.0035667394777607595, 0.2288366468475451)


def lagged_problem(B=9, T=12, objective="min"):
    """Two lags, per-scenario exogenous inputs, a terminal cost, and x0 in the decision: every
    block kind the sharder places or adds."""
    r = np.random.default_rng(7)
    A1 = np.array([[0.5, 0.1], [0.0, 0.4]])
    A2 = np.array([[0.1, 0.0], [0.05, 0.2]])
    plant = LinearPlant([A1, A2], r.standard_normal((2, 1)), E=r.standard_normal((2, 3)))
    return Problem(plant, LinearFeedback(2, 1, bias=True, K0=[[0.3, -0.2]]), Quadratic([1.0, 2.0], [0.1]),
                   QuadraticTerminal(np.eye(2)), horizon=T, x0=r.standard_normal((2, B, 2)),
                   X=r.standard_normal((T, B, 3)), decision=("policy", "plant", "x0"), objective=objective)


def lqr_problem(T=40, B=6):
    """A static-gain LQR whose optimum is the DARE gain for every horizon (terminal cost x'Px)."""
    r = np.random.default_rng(3)
    A = np.array([[1.02, 0.1, 0.0], [0.0, 0.98, 0.1], [0.05, 0.0, 0.9]])
    Bm = r.standard_normal((3, 2))
    Q, R = np.diag([1.0, 2.0, 0.5]), np.diag([0.1, 0.3])
    P = scipy.linalg.solve_discrete_are(A, Bm, Q, R)
    K = np.linalg.solve(R + Bm.T @ P @ Bm, Bm.T @ P @ A)
    prob = Problem(LinearPlant(A, Bm), LinearFeedback(3, 2), Quadratic(Q, R), QuadraticTerminal(P),
                   horizon=T, x0=r.standard_normal((B, 3)))
    return prob, K


class Squaring(Plant):
    """x[t+1] = x[t]^2: scenarios with |x0| > 1 overflow to inf after ~10 steps."""

    n_state, n_control = 1, 0

    def forward(self, hist, u, X, theta):
        return hist[0] ** 2, hist[0]

    def vjp(self, x, bar):
        return (2 * x * bar,), None, np.zeros(0)


class KillOnce(Plant):
    """Wraps a plant; the first step run after ``trigger`` exists kills its worker process
    (os._exit, as a crash would) and leaves ``done`` behind so that it happens once.  Never in
    the process that built it (the test runner)."""

    def __init__(self, plant, trigger, done):
        self.plant, self.trigger, self.done, self.home = plant, trigger, done, os.getpid()
        self.n_state, self.n_control, self.n_exog, self.lags = plant.n_state, plant.n_control, plant.n_exog, plant.lags
        self.param_spec = plant.param_spec

    def default_params(self):
        return self.plant.default_params()

    def forward(self, hist, u, X, theta):
        if os.getpid() != self.home and os.path.exists(self.trigger) and not os.path.exists(self.done):
            open(self.done, "w").close()
            os._exit(13)
        return self.plant.forward(hist, u, X, theta)

    def vjp(self, ctx, bar):
        return self.plant.vjp(ctx, bar)


def swing(x, u, p):
    """A damped pendulum step written with CasADi operations (dt = 0.05 s, explicit Euler)."""
    import casadi
    return x + 0.05 * casadi.vertcat(x[1], -p["a"] * casadi.sin(x[0]) - 0.1 * x[1] + u[0])


def casadi_problem(B=6, T=15):
    """A CasADi-built plant (dynopt.casadi.components, dual by CasADi's reverse mode over a
    map(B)) with its parameter in the decision, so the shards' plant adjoints are added."""
    from dynopt.casadi.components import CasadiPlant
    r = np.random.default_rng(11)
    plant = CasadiPlant(swing, n_state=2, n_control=1, params={"a": 9.81})
    return Problem(plant, MLPPolicy(2, 1, hidden=(4,), seed=1), Quadratic([1.0, 0.1], [0.01]),
                   horizon=T, x0=r.standard_normal((B, 2)), decision=("policy", "plant"))


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def threads():
    with ThreadPoolExecutor(2) as ex:
        yield ex


@pytest.fixture(scope="module")
def dask_client():
    if distributed is None:
        pytest.skip("dask.distributed is not installed (test extra)")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=None, memory_limit="1GiB")
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


@pytest.fixture(scope="module")
def dask_executor(dask_client):
    return dask_client.get_executor()


# ----------------------------------------------------------------------------- sharding, in process
@pytest.mark.parametrize("kw", [{"n_shards": 2}, {"shard_size": 4}, {"shard_size": 1}, {"n_shards": 100}])
@pytest.mark.parametrize("objective", ["min", "max"])
def test_sharded_equals_local_every_block_kind(threads, kw, objective):
    """Policy and plant blocks are added over shards, x0 rows are placed; shards of size 1, of
    unequal sizes and more shards than scenarios (capped at B) all give the local result."""
    prob = lagged_problem(objective=objective)
    W = prob.W0 + 0.1 * np.random.default_rng(0).standard_normal(prob.n_decision)
    J, g = prob.value_and_grad(W)
    Js, gs = sharded_value_and_grad(prob, W, threads, **kw)
    assert rel(Js, J) < RTOL and rel(gs, g) < RTOL
    x0 = prob.block_slices()["x0"]
    assert rel(gs[x0], g[x0]) < RTOL  # the per-scenario block on its own scale


def test_sharded_strategy_reproduces_p1_reference(threads):
    """Problem(..., gradient=Sharded(ex)) against PROBLEMS.md's P1 values (numpy BPTT and JAX
    agree to 1e-14 there; 1e-12 leaves room for the different summation order)."""
    prob = p1().replace(gradient=Sharded(threads, n_shards=3))
    J, g = prob.value_and_grad(prob.W0)
    got = (J, np.linalg.norm(g), g[0], g[1216])
    assert max(abs(a - b) / abs(b) for a, b in zip(got, P1_REF)) < RTOL
    assert prob.counts == {"forward": 1, "backward": 1}  # one sweep pair over the whole batch


def test_divergence_on_a_shard_names_the_global_scenario(threads):
    x0 = np.array([[0.5], [0.9], [-0.3], [0.1], [0.2], [10.0], [0.7]])
    prob = Problem(Squaring(), None, Quadratic([1.0]), horizon=20, x0=x0, decision=("x0",))
    with pytest.raises(SimulationDivergedError) as local:
        prob.value_and_grad(prob.W0)
    with pytest.raises(SimulationDivergedError) as sharded:
        sharded_value_and_grad(prob, prob.W0, threads, shard_size=2)
    assert sharded.value.scenario == local.value.scenario == 5
    assert sharded.value.step == local.value.step and str(sharded.value) == str(local.value)


# ----------------------------------------------------------------------------- faults, bad input
class Flaky(Executor):
    """Runs tasks in a thread pool but fails the first ``n_fail`` futures as a lost worker would."""

    def __init__(self, n_fail, tamper=None):
        self.pool, self.n_fail, self.tamper, self.submitted = ThreadPoolExecutor(2), n_fail, tamper, 0
        self.lock = threading.Lock()

    def submit(self, fn, *args, **kwargs):
        with self.lock:
            self.submitted += 1
            fail = self.n_fail > 0
            self.n_fail -= fail
        if fail:
            f = Future()
            f.set_exception(ConnectionResetError("worker lost"))
            return f
        fut = self.pool.submit(fn, *args, **kwargs)
        if self.tamper is None:
            return fut
        out = Future()
        fut.add_done_callback(lambda f: out.set_result(self.tamper(f.result())))
        return out

    def shutdown(self, wait=True, **kw):
        self.pool.shutdown(wait)


def test_lost_tasks_are_retried_then_fail_clearly():
    prob = lagged_problem()
    J, g = prob.value_and_grad(prob.W0)
    ex = Flaky(n_fail=3)  # 3 losses over 3 shards with 2 retries each: must recover
    Js, gs = sharded_value_and_grad(prob, prob.W0, ex, n_shards=3, retries=2)
    assert rel(Js, J) < RTOL and rel(gs, g) < RTOL and ex.submitted == 6
    with pytest.raises(ExecutorFailure, match=r"failed 2 times .*retries=1"):
        sharded_value_and_grad(prob, prob.W0, Flaky(n_fail=100), n_shards=3, retries=1)


def test_a_short_count_is_never_summed():
    """A worker that returns fewer scenarios than its shard holds (a stale or buggy worker)."""
    def drop_one(out):
        count, J, g = out
        return (count - 1, J, g)

    prob = lagged_problem()
    with pytest.raises(ExecutorFailure, match="partial sum"):
        sharded_value_and_grad(prob, prob.W0, Flaky(0, tamper=drop_one), n_shards=2)


def test_bad_input_raises_clearly(threads):
    prob = lagged_problem()
    with pytest.raises(TypeError, match="executor: expected a concurrent.futures.Executor.*got int"):
        Sharded(4)
    with pytest.raises(TypeError, match="executor: expected a concurrent.futures.Executor"):
        sharded_value_and_grad(prob, prob.W0, "localhost:8786")
    with pytest.raises(ValueError, match="shard_size: expected an integer >= 1, got 0"):
        Sharded(threads, shard_size=0)
    with pytest.raises(ValueError, match="shard_size: expected an integer >= 1, got -3"):
        sharded_value_and_grad(prob, prob.W0, threads, shard_size=-3)
    with pytest.raises(TypeError, match="shard_size: expected an integer >= 1, got 2.5"):
        sharded_value_and_grad(prob, prob.W0, threads, shard_size=2.5)
    with pytest.raises(ValueError, match="give one of them"):
        Sharded(threads, shard_size=2, n_shards=2)
    with pytest.raises(TypeError, match="inner"):
        Sharded(threads, inner=Sharded(threads))
    with pytest.raises(ValueError, match=r"W: expected shape \(55,\)"):
        sharded_value_and_grad(prob, np.zeros(3), threads)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(Sharded(threads))
    with pytest.raises(ValueError, match="starts: expected a number of starts >= 1"):
        multistart(prob, 0)
    with pytest.raises(TypeError, match=r"unknown keyword arguments \['maxiter'\]"):
        multistart(prob, 2, maxiter=3)
    with pytest.raises(TypeError, match="executor: expected"):
        map_fit(len, ["a"], executor=object())
    assert shard_bounds(10, shard_size=4) == [(0, 4), (4, 8), (8, 10)]
    assert shard_bounds(10, n_shards=3) == [(0, 3), (3, 6), (6, 10)]


# ----------------------------------------------------------------------------- local process pool
@needs_cloudpickle
def test_process_pool_equal_then_dead_worker_fails_clearly(tmp_path):
    """A spawned process pool gives the local result, CasADi components included; a worker that
    dies breaks a ProcessPoolExecutor for good, and the evaluation says so."""
    ctx = multiprocessing.get_context("spawn")  # no fork of a process that runs Dask threads
    cprob = casadi_problem()
    J, g = cprob.value_and_grad(cprob.W0)
    prob = lagged_problem()
    trigger, done = tmp_path / "trigger", tmp_path / "done"
    killer = Problem(KillOnce(prob.plant, str(trigger), str(done)), prob.policy, prob.cost, prob.terminal_cost,
                     horizon=prob.horizon, x0=prob.unpack(prob.W0)["x0"], X=prob.X, decision=prob.decision)
    with ProcessPoolExecutor(2, mp_context=ctx) as ex:
        Js, gs = sharded_value_and_grad(cprob, cprob.W0, ex)
        assert rel(Js, J) < RTOL and rel(gs, g) < RTOL
        trigger.touch()
        with pytest.raises(ExecutorFailure, match="executor refused.*create a new pool"):
            sharded_value_and_grad(killer, killer.W0, ex)
    assert done.exists()


# ----------------------------------------------------------------------------- Dask
@needs_dask
def test_dask_sharded_equals_local_and_reference(dask_executor, dask_client):
    prob = p1()
    J, g = prob.value_and_grad(prob.W0)
    Js, gs = sharded_value_and_grad(prob, prob.W0, dask_client)  # a Client is converted; 2 shards
    assert rel(Js, J) < RTOL and rel(gs, g) < RTOL
    got = (Js, np.linalg.norm(gs), gs[0], gs[1216])
    assert max(abs(a - b) / abs(b) for a, b in zip(got, P1_REF)) < RTOL
    cprob = casadi_problem()
    J, g = cprob.value_and_grad(cprob.W0)
    Js, gs = sharded_value_and_grad(cprob, cprob.W0, dask_executor, shard_size=4)
    assert rel(Js, J) < RTOL and rel(gs, g) < RTOL


@needs_dask
def test_dask_optimize_matches_local_run_and_dare(dask_executor):
    """The same BFGS run locally and through the cluster: the gradients differ only by summation
    order (~1e-16), so both take the same steps; both find the DARE gain (1e-4, measured ~1e-6)."""
    local, K = lqr_problem()
    res_local = dynopt.optimize(local, options={"gtol": 1e-6})
    remote, _ = lqr_problem()
    remote = remote.replace(gradient=Sharded(dask_executor, shard_size=3))
    res = dynopt.optimize(remote, options={"gtol": 1e-6})
    assert res.success and res.nit == res_local.nit
    assert rel(res.x, res_local.x) < 1e-8 and abs(res.fun - res_local.fun) / res_local.fun < 1e-12
    assert rel(res.params["policy"]["K"], K) < 1e-4


@needs_dask
def test_worker_killed_mid_optimization_does_not_corrupt_the_result(dask_executor, tmp_path):
    """After iteration 2 a task kills its Dask worker; the scheduler resubmits the lost shard
    (the nanny restarts the worker) and the run ends where an undisturbed run ends."""
    base, K = lqr_problem()
    trigger, done = tmp_path / "trigger", tmp_path / "done"
    killer = Problem(KillOnce(base.plant, str(trigger), str(done)), base.policy, base.cost, base.terminal_cost,
                     horizon=base.horizon, x0=base.unpack(base.W0)["x0"],
                     gradient=Sharded(dask_executor, n_shards=2))

    def arm(info):
        if info.nit == 2:
            trigger.touch()

    res = dynopt.optimize(killer, options={"gtol": 1e-6}, callback=arm)
    assert done.exists()  # a worker really died
    ref = dynopt.optimize(base, options={"gtol": 1e-6})
    assert res.success and res.nit == ref.nit and rel(res.x, ref.x) < 1e-8
    assert rel(res.params["policy"]["K"], K) < 1e-4


@needs_dask
def test_dask_multistart_returns_every_run_best_first(dask_executor):
    prob, K = lqr_problem()
    starts = [prob.W0, prob.W0 + 0.05, K.ravel(), prob.W0 - 0.05]
    res = multistart(prob, starts, dask_executor, options={"gtol": 1e-6})
    assert sorted(r.start for r in res) == [0, 1, 2, 3]
    funs = [r.fun for r in res]
    assert funs == sorted(funs) and all(r.success for r in res)
    local = {r.start: r for r in multistart(prob, starts, options={"gtol": 1e-6})}
    for r in res:  # the same run wherever it runs (one process evaluates each run; measured
        # bitwise equal, 1e-12 allows a BLAS that blocks differently in another process)
        assert rel(r.x, local[r.start].x) < 1e-12
        assert rel(r.params["policy"]["K"], K) < 1e-4


def test_casadi_symbols_travel():
    """CasADi symbols pickle only inside CasADi's pickle context, which dumps/loads supply."""
    import casadi
    x = casadi.SX.sym("x", 2)
    back = loads(dumps({"x": x, "f": casadi.Function("f", [x], [casadi.sin(x) * x])}))
    assert np.allclose(np.array(back["f"]([0.5, 2.0])).ravel(), np.sin([0.5, 2.0]) * [0.5, 2.0], rtol=1e-15, atol=0)
    assert str(back["x"]) == "[x_0, x_1]"
    scratch = threading.local()  # per-thread scratch (CasADi buffers) travels empty
    scratch.buffers = {1: "in use"}
    assert not hasattr(loads(dumps({"s": scratch}))["s"], "buffers")


def test_multistart_random_starts_and_a_failed_run():
    """Seeded random starts are reproducible; a run that raises is returned last, not lost."""
    prob, K = lqr_problem(T=15, B=3)
    a = multistart(prob, 3, seed=5, spread=0.1, options={"gtol": 1e-6})
    b = multistart(prob, 3, seed=5, spread=0.1, options={"gtol": 1e-6})
    assert [r.start for r in a] == [r.start for r in b]
    for ra, rb in zip(a, b):
        np.testing.assert_array_equal(ra.W0, rb.W0)
    bad = np.full(prob.n_decision, 1e30)  # x grows ~1e30 per step: x'Qx overflows by t = 6
    with pytest.warns(RuntimeWarning, match="1 of 2 runs did not succeed"):
        out = multistart(prob, [prob.W0, bad], options={"gtol": 1e-6})
    # a diverging start is a failed result (dynopt.optimize no longer raises), sorted last, naming the step
    assert [r.start for r in out] == [0, 1] and out[1].success is False
    assert out[1].status == -1 and "diverged" in out[1].message and "t=" in out[1].message
    assert np.isnan(out[1].fun) and out[0].success
    # a run that raises (here: a bad option reaching a worker) is a failed result too, with `error`
    with pytest.warns(RuntimeWarning, match="1 of 1 runs did not succeed"):
        (only,) = multistart(prob, [prob.W0], options={"gtol": 1e-6, "maxcor": 3})
    assert only.success is False and "maxcor" in only.error and "not options of BFGS" in only.error


def test_multistart_best_first_when_maximising():
    """objective="max": best means the highest utility.  Runs cut off after 2 iterations end at
    different values; the run started at the DARE gain is already optimal and comes first."""
    prob, K = lqr_problem(T=15, B=3)
    P = prob.terminal_cost.P
    umax = Problem(prob.plant, prob.policy, Quadratic(-prob.cost.Q, -prob.cost.R), QuadraticTerminal(-P),
                   horizon=15, x0=prob.unpack(prob.W0)["x0"], objective="max")
    with pytest.warns(RuntimeWarning, match="runs did not succeed"):
        out = multistart(umax, [umax.W0, K.ravel(), umax.W0 + 0.3], options={"maxiter": 2})
    funs = [r.fun for r in out]
    assert out[0].start == 1 and funs == sorted(funs, reverse=True) and funs[0] < 0


@needs_dask
def test_map_fit_is_ordered_and_complete(dask_executor):
    """Many independent least-squares fits (AR(1) slope per series) against numpy's lstsq."""
    r = np.random.default_rng(2)
    series = [np.cumsum(r.standard_normal(50)) * 0.1 + r.standard_normal(50) for _ in range(9)]

    def fit(y):
        return float(np.linalg.lstsq(y[:-1, None], y[1:], rcond=None)[0][0])

    expect = [fit(y) for y in series]
    assert map_fit(fit, series, dask_executor) == expect
    out = map_fit(lambda v: 1.0 / v if v else {}[v], [2, 0, 4], dask_executor, errors="return")
    assert out[0] == 0.5 and isinstance(out[1], KeyError) and out[2] == 0.25
    with pytest.raises(KeyError):
        map_fit(lambda v: {}[v], [1], dask_executor)


@needs_dask
def test_map_fit_econometric_series(dask_executor):
    """AR(2) fits of many series (dynopt.models.econometrics) on the cluster: the same numbers
    as the same fits run here, and the least-squares solution of the same regression (OLS is
    the conditional-likelihood estimate; AR.fit gets there by BFGS, so 1e-7 relative: its
    stopping tolerance, measured 3e-10)."""
    econ = pytest.importorskip("dynopt.models.econometrics")
    r = np.random.default_rng(4)
    series = [scipy.signal.lfilter([1.0], [1.0, -0.5, 0.2], r.standard_normal(300)) + 0.3 for _ in range(6)]
    fits = map_fit(lambda y: econ.AR(y, 2).fit(), series, dask_executor)
    assert len(fits) == len(series)
    for y, fit in zip(series, fits):
        assert rel(fit.values, econ.AR(y, 2).fit().values) < 1e-12
        Z = np.column_stack([np.ones(len(y) - 2), y[1:-1], y[:-2]])
        beta = np.linalg.lstsq(Z, y[2:], rcond=None)[0]
        assert rel(fit.values[:3], beta) < 1e-7


@needs_dask
def test_example_runs_on_an_existing_cluster(dask_client, load_example):
    """examples/scaleout_dask.py pointed at a running scheduler, with short settings."""
    mod = load_example("scaleout_dask")
    res, K_lqr, runs, fits = mod.main(dask_client.scheduler.address, B=400, horizon=60, n_starts=2, series_length=300,
                                        n_series=4)
    K = res.params["policy"]["K"]
    # 400 noisy scenarios move the sample optimum off the noise-free LQR gain by ~1e-2 (4000: 1.5e-3)
    assert res.success and rel(K, K_lqr) < 0.05
    assert len(runs) == 2 and len(fits) == 4
