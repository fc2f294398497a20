"""Issue 11 item 4: a hung or lost worker ends in a retry or a clear error after ``timeout``
seconds, for Sharded, multistart and map_fit.

Hung tasks are real: a thread blocked on an Event (released at teardown, so no test can hang
CI) or, in a subprocess with its own time limit, a worker process sleeping for minutes.
References: the single-process results (list comprehension, local BPTT), the DARE gain.
"""

import json
import os
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import scipy.linalg

import dynopt
from dynopt import BPTT, Problem
from dynopt.models import LinearFeedback, LinearPlant, Quadratic, QuadraticTerminal
from dynopt.parallel.distributed import ExecutorFailure, Sharded, map_fit, run_tasks
from dynopt.parallel.multistart import multistart

RELEASE = threading.Event()
"""Set at teardown: every hung task returns (or raises) within a second of it."""
_LOCK = threading.Lock()
_STATE = {"hang_once": False}


@pytest.fixture(autouse=True)
def release_hung_tasks():
    RELEASE.clear()
    yield
    RELEASE.set()


def _hang():
    """Block the calling worker thread until the test ends (at most 30 s)."""
    RELEASE.wait(30)


def square_but_2_hangs(item):
    if item == 2:
        _hang()
        raise RuntimeError("released at teardown")
    return item * item


def square_but_2_hangs_once(item):
    if item == 2:
        with _LOCK:
            first = _STATE["hang_once"]
            _STATE["hang_once"] = False
        if first:
            _hang()
            raise RuntimeError("released at teardown")
    return item * item


def test_map_fit_hung_task_fails_clearly_after_timeout():
    with ThreadPoolExecutor(2) as ex:
        try:
            with pytest.raises(ExecutorFailure) as info:
                map_fit(square_but_2_hangs, range(4), ex, timeout=0.3, retries=1)
        finally:
            RELEASE.set()
    msg = str(info.value)
    for words in ("map_fit(square_but_2_hangs)", "task 2 of 4", "did not finish within timeout=0.3 s",
                  "2 attempt(s)", "retries=1", "hung"):
        assert words in msg


def test_map_fit_hung_task_is_retried_and_the_result_is_complete():
    _STATE["hang_once"] = True
    with ThreadPoolExecutor(2) as ex:
        try:
            out = map_fit(square_but_2_hangs_once, range(5), ex, timeout=0.3, retries=1)
        finally:
            RELEASE.set()
    assert out == [i * i for i in range(5)]


def test_map_fit_errors_return_keeps_the_other_items():
    with ThreadPoolExecutor(2) as ex:
        try:
            out = map_fit(square_but_2_hangs, range(4), ex, timeout=0.3, retries=0, errors="return")
        finally:
            RELEASE.set()
    assert [out[i] for i in (0, 1, 3)] == [0, 1, 9]
    assert isinstance(out[2], ExecutorFailure) and "timeout=0.3 s" in str(out[2])


@pytest.mark.parametrize("timeout, exc, words", [
    (0, ValueError, ["timeout", "> 0 or None", "0"]),
    (-1.0, ValueError, ["timeout", "> 0 or None", "-1.0"]),
    (float("nan"), ValueError, ["timeout", "nan"]),
    ("10", TypeError, ["timeout", "str"]),
    (True, TypeError, ["timeout", "bool"]),
])
def test_timeout_argument_is_checked(timeout, exc, words):
    with pytest.raises(exc) as info:
        run_tasks(None, abs, [(1,)], timeout=timeout)
    for w in words:
        assert w in str(info.value)
    with pytest.raises(exc):
        Sharded(ThreadPoolExecutor(1), timeout=timeout)


# ----------------------------------------------------------------------------- Sharded
class HangOncePlant(LinearPlant):
    """A linear plant whose first step run in a worker thread while armed blocks (a hung worker)."""

    def forward(self, hist, u, X, theta):
        if threading.current_thread() is not threading.main_thread():
            with _LOCK:
                first = _STATE["hang_once"]
                _STATE["hang_once"] = False
            if first:
                _hang()
                raise RuntimeError("released at teardown")
        return super().forward(hist, u, X, theta)


def lqr(T=20, B=6, plant_cls=LinearPlant, policy=None):
    r = np.random.default_rng(3)
    A = np.array([[1.02, 0.1], [0.0, 0.98]])
    Bm = np.array([[0.0], [0.1]])
    Q, R = np.diag([1.0, 2.0]), np.array([[0.1]])
    P = scipy.linalg.solve_discrete_are(A, Bm, Q, R)
    K = np.linalg.solve(R + Bm.T @ P @ Bm, Bm.T @ P @ A)
    return Problem(plant_cls(A, Bm), policy or LinearFeedback(2, 1), Quadratic(Q, R), QuadraticTerminal(P), horizon=T,
                   x0=r.standard_normal((B, 2)), gradient=BPTT()), K


def test_sharded_hung_shard_is_retried_and_the_sum_is_exact():
    local, _ = lqr(plant_cls=HangOncePlant)
    W = np.array([0.3, -0.2])
    J_ref, g_ref = local.value_and_grad(W)
    with ThreadPoolExecutor(2) as ex:
        prob = local.replace(gradient=Sharded(ex, n_shards=2, timeout=1.0, retries=1))
        _STATE["hang_once"] = True
        try:
            J, g = prob.value_and_grad(W)
        finally:
            RELEASE.set()
    assert J == pytest.approx(J_ref, rel=1e-13) and g == pytest.approx(g_ref, rel=1e-12)


def test_sharded_hung_shard_without_retries_fails_clearly():
    local, _ = lqr(plant_cls=HangOncePlant)
    with ThreadPoolExecutor(2) as ex:
        prob = local.replace(gradient=Sharded(ex, n_shards=2, timeout=1.0, retries=0))
        _STATE["hang_once"] = True
        try:
            with pytest.raises(ExecutorFailure, match=r"sharded gradient: task \d of 2 did not finish within "
                                                      r"timeout=1 s \(1 attempt\(s\)\); gave up after retries=0"):
                prob.value_and_grad(np.array([0.3, -0.2]))
        finally:
            RELEASE.set()


# ----------------------------------------------------------------------------- multistart
class HangAtPolicy(LinearFeedback):
    """Blocks when asked for the gain 7.0 (the start the test marks as hung)."""

    def bind(self, params, *, grad):
        if params[0] == 7.0 and threading.current_thread() is not threading.main_thread():
            _hang()
            raise RuntimeError("released at teardown")
        return super().bind(params, grad=grad)


def test_multistart_keeps_the_other_runs_when_one_hangs():
    prob, K = lqr(policy=HangAtPolicy(2, 1))
    starts = [np.zeros(2), np.array([7.0, 0.0]), np.array([0.5, 0.5])]
    with ThreadPoolExecutor(2) as ex:
        try:
            # timeout: no run finished for that long -> the started runs count as hung.  The two good
            # runs take ~0.1 s each; 5 s keeps them from being counted as hung on a loaded machine
            # (with 2 s this test failed once: a good run starved of CPU was given up with the hung one)
            with pytest.warns(RuntimeWarning, match="1 of 3 runs did not succeed"):
                out = multistart(prob, starts, ex, timeout=5.0, retries=0, options={"gtol": 1e-7})
        finally:
            RELEASE.set()
    assert [r.start for r in out][-1] == 1
    lost = out[-1]
    assert not lost.success and np.isnan(lost.fun) and "did not finish within timeout=5 s" in lost.error
    for r in out[:2]:
        assert r.success and r.x == pytest.approx(K.ravel(), rel=1e-4)


# ----------------------------------------------------------------------------- a hung worker process
CHILD = textwrap.dedent("""
    import json, os, sys, time
    from concurrent.futures import ProcessPoolExecutor
    from dynopt import map_fit

    def fit(item):
        if item == 1:
            time.sleep(600)  # a hung worker process
        return item + 0.5

    ex = ProcessPoolExecutor(2)
    t0 = time.monotonic()
    out = map_fit(fit, range(4), ex, timeout=2.0, retries=0, errors="return")
    took = time.monotonic() - t0
    print(json.dumps({"values": [v if isinstance(v, float) else None for v in out],
                      "failure": [type(v).__name__ + ": " + str(v) for v in out if not isinstance(v, float)],
                      "took": took}), flush=True)
    for p in list(ex._processes.values()):  # the hung worker keeps its slot: end it
        p.kill()
    ex.shutdown(wait=False, cancel_futures=True)
    os._exit(0)
""")


def test_hung_worker_process_ends_in_a_clear_failure(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    try:
        done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env)
    except subprocess.TimeoutExpired as exc:  # pragma: no cover - the property under test failed
        pytest.fail(f"map_fit with timeout=2 did not return within 120 s: {exc}")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout.strip().splitlines()[-1])
    assert data["values"] == [0.5, None, 2.5, 3.5]
    (failure,) = data["failure"]
    assert failure.startswith("ExecutorFailure: map_fit(fit): task 1 of 4 did not finish within timeout=2 s")
    assert 2.0 <= data["took"] < 60


# ----------------------------------------------------------------------------- Ctrl-C in a multi-start
MULTI_CHILD = textwrap.dedent("""
    import json, sys, numpy as np, dynopt
    from concurrent.futures import ThreadPoolExecutor
    from dynopt.models import MLPPolicy, Pendulum, SwingUpCost
    r = np.random.default_rng(2)
    x0 = np.stack([r.uniform(-np.pi, np.pi, 4), r.uniform(-1, 1, 4)], 1)
    prob = dynopt.Problem(dynopt.Discretized(Pendulum(), dynopt.RK4(0.05)), MLPPolicy(2, 1, (8,), u_max=2.0,
                          angles=(0,)), SwingUpCost(0.05), horizon=60, x0=x0, gradient=dynopt.BPTT())
    starts = [prob.W0, prob.W0 + 0.1, prob.W0 - 0.1]
    seen = {"runs": 0}
    def tell(info):
        if info.nit == 1:
            seen["runs"] += 1
        if seen["runs"] == 2 and info.nit == 3:
            print("READY", flush=True)
    # run 0 stops after 5 iterations (its callback); run 1 is interrupted after its 3rd; run 2 never starts
    def stop_first(info):
        tell(info)
        return seen["runs"] == 1 and info.nit >= 5
    out = dynopt.multistart(prob, starts, callback=stop_first, options={"maxiter": 100000, "gtol": 0.0})
    print(json.dumps([{"start": int(r.start), "status": int(r.status), "fun": float(r.fun), "nit": int(r.nit),
                       "J_at_x": float(prob.value(r.x)) if np.isfinite(r.fun) else None,
                       "J0": float(prob.value(r.W0))} for r in out]), flush=True)
""")


def test_ctrl_c_during_a_local_multistart_keeps_the_finished_runs(tmp_path):
    import signal
    script = tmp_path / "child.py"
    script.write_text(MULTI_CHILD)
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-W", "ignore::RuntimeWarning", str(script)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "READY", proc.stderr.read()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    runs = {r["start"]: r for r in json.loads(out.strip().splitlines()[-1])}
    interrupted = int(dynopt.optimize.Status.INTERRUPTED)
    assert runs[0]["status"] == 99 and runs[0]["nit"] == 5        # stopped by its callback, kept
    assert runs[1]["status"] == interrupted and runs[1]["nit"] >= 3  # its best point so far, kept
    assert runs[1]["fun"] == pytest.approx(runs[1]["J_at_x"], rel=1e-12) and runs[1]["fun"] < runs[1]["J0"]
    assert runs[2]["status"] == interrupted and np.isnan(runs[2]["fun"])  # never started
    assert runs[0]["fun"] == pytest.approx(runs[0]["J_at_x"], rel=1e-12)
