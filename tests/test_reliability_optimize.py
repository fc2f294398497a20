"""Issue 11 (optimizer part) and issue 16 (options/tol): nothing silent, nothing lost.

References: the scalar discrete Riccati equation (optimal static gain of x+ = a x + b u with
cost sum q x^2 + r u^2), central finite differences of J (projected gradient), and the
bound-clipped optimum of a convex scalar problem.
"""

import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import scipy.optimize

import dynopt
from dynopt import Policy, Problem
from dynopt.models import LinearFeedback, LinearPlant, MLPPolicy, Pendulum, Quadratic, SwingUpCost

Status = sys.modules["dynopt.optimize"].Status
METHODS = ["BFGS", "CG", "L-BFGS-B"]


def riccati_gain(a=0.5, b=5.0, q=1.0, r=0.01):
    """Optimal static gain k (u = -k x) of the infinite-horizon scalar LQR, from the DARE."""
    P = scipy.linalg.solve_discrete_are(np.array([[a]]), np.array([[b]]), np.array([[q]]), np.array([[r]]))[0, 0]
    return a * b * P / (r + b * b * P)


import scipy.linalg  # noqa: E402  (used by riccati_gain)

K_OPT = riccati_gain()


def scalar(T=1000, k0=-0.09, q=1.0, r=0.01):
    """x+ = 0.5 x + 5 u, u = -k x: the closed loop is stable only for k in (-0.1, 0.3)."""
    return Problem(LinearPlant([[0.5]], [[5.0]]), LinearFeedback(1, 1), Quadratic([q], [r]), horizon=T,
                   x0=np.ones((2, 1)), params={"policy": [k0]})


def pendulum(T=30, B=3, gradient=None):
    r = np.random.default_rng(2)
    x0 = np.stack([r.uniform(-np.pi, np.pi, B), r.uniform(-1, 1, B)], 1)
    return Problem(dynopt.Discretized(Pendulum(), dynopt.RK4(0.05)), MLPPolicy(2, 1, (4,), u_max=2.0, angles=(0,)),
                   SwingUpCost(0.05), horizon=T, x0=x0, gradient=gradient)


# ----------------------------------------------------------------------------- options and tol
@pytest.mark.parametrize("options, exc, words", [
    ({"gtol": float("inf")}, ValueError, ["options['gtol']", "finite", "inf"]),
    ({"gtol": float("nan")}, ValueError, ["options['gtol']", "finite", "nan"]),
    ({"gtol": -1e-3}, ValueError, ["options['gtol']", ">= 0", "-0.001"]),
    ({"maxiter": 2.5}, TypeError, ["options['maxiter']", "integer", "2.5"]),
    ({"maxiter": True}, TypeError, ["options['maxiter']", "integer", "True"]),
    ({"maxcor": 0}, ValueError, ["options['maxcor']", ">= 1", "0"]),
    ({"gtoll": 1e-6}, ValueError, ["gtoll", "not options of L-BFGS-B", "maxcor"]),
    ({"eps": 1e-8}, ValueError, ["options['eps']", "not used", "exact gradients", "1e-08"]),
    ([("maxiter", 3)], TypeError, ["options", "dict", "list"]),
    ("maxiter=3", TypeError, ["options", "dict", "str"]),
])
def test_options_are_checked_before_scipy(options, exc, words):
    with pytest.raises(exc) as info:
        dynopt.optimize(scalar(T=20), method="L-BFGS-B", options=options)
    for w in words:
        assert w in str(info.value)


@pytest.mark.parametrize("tol, exc, words", [
    (float("nan"), ValueError, ["tol", "finite", "nan"]),
    (-1, ValueError, ["tol", ">= 0", "-1"]),
    ("1e-6", TypeError, ["tol", "real number", "str"]),
])
def test_tol_is_checked(tol, exc, words):
    with pytest.raises(exc) as info:
        dynopt.optimize(scalar(T=20), method="L-BFGS-B", tol=tol)
    for w in words:
        assert w in str(info.value)


def test_valid_tol_reaches_the_riccati_gain():
    res = dynopt.optimize(scalar(T=200), method="L-BFGS-B", tol=1e-10)
    assert res.success and res.x[0] == pytest.approx(K_OPT, rel=1e-6)
    assert res.projected_gradient <= 1e-6


# ----------------------------------------------------------------------------- bounds
def test_bounds_in_every_form_give_the_clipped_optimum():
    # J(k) is convex on the stable interval with its minimum at K_OPT ~ 0.09996 > 0.05, so with
    # k <= 0.05 the optimum is the upper bound.
    prob = scalar(T=200, k0=0.0)
    forms = [{"policy": (-0.05, 0.05)}, [(-0.05, 0.05)], [(None, 0.05)], scipy.optimize.Bounds(-0.05, 0.05),
             scipy.optimize.Bounds([-0.05], [0.05])]
    for b in forms:
        res = dynopt.optimize(prob, method="L-BFGS-B", bounds=b)
        assert res.success and res.x[0] == 0.05, b
        assert res.projected_gradient == 0.0  # the gradient pushes outward at the bound
        g = scipy.optimize.approx_fprime(res.x, prob.value, 1e-7)
        assert g[0] < 0


@pytest.mark.parametrize("bounds, exc, words", [
    ([(0, 1), (0, 1)], ValueError, ["bounds", "expected 1 (lo, hi) pairs", "got 2"]),
    ([(1.0, 0.0)], ValueError, ["lower bound 1.0 exceeds upper bound 0.0", "W[0]"]),
    ({"policy": (0.5, -0.5)}, ValueError, ["lower bound 0.5 exceeds upper bound -0.5", "W[0]"]),
    ([(float("nan"), 1.0)], ValueError, ["bounds[0] lower", "NaN at W[0]", "refused"]),
    ({"policy": (None, float("nan"))}, ValueError, ["bounds['policy'] upper", "NaN at W[0]"]),
    (scipy.optimize.Bounds([np.nan], [1.0]), ValueError, ["bounds.lb", "NaN at W[0]"]),
    (scipy.optimize.Bounds([0.0, 0.0], [1.0, 1.0]), ValueError, ["bounds.lb", "scalar or 1 values", "got 2"]),
    ({"policy": ([0, 0], [1, 1])}, ValueError, ["bounds['policy'] lower", "scalar or 1 values", "got 2"]),
    ([(0.0, 1.0, 2.0)], TypeError, ["bounds[0]", "pair (lo, hi)"]),
    ([("a", 1.0)], TypeError, ["bounds[0] lower", "numbers or None"]),
    ([(float("inf"), float("inf"))], ValueError, ["admits no number", "W[0]"]),
    ("(-1, 1)", TypeError, ["bounds", "dict", "str"]),
])
def test_bad_bounds_are_refused_with_index(bounds, exc, words):
    with pytest.raises(exc) as info:
        dynopt.optimize(scalar(T=20), method="L-BFGS-B", bounds=bounds)
    for w in words:
        assert w in str(info.value)


# ----------------------------------------------------------------------------- divergence
def test_diverging_start_returns_a_failed_result_naming_the_step():
    with pytest.warns(RuntimeWarning, match="diverged"):
        res = dynopt.optimize(scalar(), W0=[0.92])
    assert not res.success and res.status == Status.DIVERGED_START
    # |0.5 - 4.6|^t overflows a squared cost near t = log(1.8e308) / (2 log 4.1) ~ 252
    assert "t=252" in res.message and "stage cost" in res.message
    assert res.divergence.step == 252 and res.x[0] == 0.92 and res.nit == 0


@pytest.mark.parametrize("method", METHODS)
def test_penalty_cannot_overflow_for_huge_objectives(method):
    # q/r as in the reference problem, scaled by 1e304: J ~ 1e305 at the start; the old penalty
    # f0 + 1e4 |f0| overflowed to inf.  filterwarnings=error turns any overflow warning into a failure.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = dynopt.optimize(scalar(T=150, q=1e304, r=1e302), method=method)
    # at J ~ 1e304 the gradient is resolved to ~1e288 only: SciPy's absolute gtol=1e-5 cannot be met,
    # so a run may end in "precision loss", but then at a point dynopt's relative test calls stationary
    assert res.success or ("at a stationary point" in res.message and len(caught) == 1)
    assert not any("overflow" in str(w.message) for w in caught)
    assert res.diverged_evaluations >= 1
    assert res.x[0] == pytest.approx(K_OPT, rel=1e-4)
    assert np.isfinite(res.fun) and res.fun == pytest.approx(scalar(T=150, q=1e304, r=1e302).value(res.x), rel=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_gradients_near_1e229_are_rescaled_not_sent_as_nan(method):
    # T = 186 at k = 0.92: J ~ 5.8e226 finite, dJ/dk ~ 2.6e229; g.g overflows, which made
    # L-BFGS-B produce NaN points and BFGS/CG stop with "precision loss" at the start.
    prob = scalar(T=186, k0=0.92)
    J, g = prob.value_and_grad(prob.W0)
    assert 1e229 < abs(g[0]) < 1e230
    res = dynopt.optimize(prob, method=method)
    assert res.success and res.x[0] == pytest.approx(K_OPT, rel=1e-4)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("k0", [-0.099, 0.299])
def test_recovers_next_to_a_diverging_region(method, k0):
    res = dynopt.optimize(scalar(T=300, k0=k0), method=method)
    assert res.diverged_evaluations >= 1
    assert res.success and res.x[0] == pytest.approx(K_OPT, rel=1e-4)


def test_cg_that_cannot_recover_says_where_it_diverged():
    # Without a restart, scipy's CG stops in its first line search (Polak-Ribiere descent
    # test) after stepping into the unstable region: the message must name the divergence.
    with pytest.warns(RuntimeWarning, match="t=868"):
        res = dynopt.optimize(scalar(k0=0.299), method="CG", restarts=0)
    assert not res.success
    assert "trial point(s) diverged" in res.message and "stage cost" in res.message
    assert res.divergence.step == 868
    # the best point evaluated is returned, not the start
    assert res.fun < res.cost_history[0] and res.fun == pytest.approx(scalar().value(res.x), rel=1e-12)


# ----------------------------------------------------------------------------- false success
def test_ftol_stop_far_from_stationary_is_not_a_success():
    prob = pendulum()
    with pytest.warns(RuntimeWarning, match="not stationary"):
        res = dynopt.optimize(prob, method="L-BFGS-B", options={"ftol": 0.05}, restarts=0)
    assert not res.success and res.status == Status.NOT_STATIONARY
    fd = scipy.optimize.approx_fprime(res.x, prob.value, 1e-7)
    assert res.projected_gradient == pytest.approx(np.abs(fd).max(), rel=1e-4)
    assert res.projected_gradient > 1e-3 * abs(res.fun)


def test_restarts_continue_from_where_the_method_stalled():
    prob = pendulum()
    with pytest.warns(RuntimeWarning):
        once = dynopt.optimize(prob, method="L-BFGS-B", options={"ftol": 0.05}, restarts=0)
    with pytest.warns(RuntimeWarning):
        more = dynopt.optimize(prob, method="L-BFGS-B", options={"ftol": 0.05}, restarts=4)
    assert more.restarts == 4 and more.nit > once.nit
    assert more.fun < once.fun
    assert len(more.cost_history) == more.nit + 1 and np.all(np.diff(more.cost_history) <= 0)


class SaturatedGain(Policy):
    """u = clip(-k x, -1, 1) (a saturating P controller); d/dk = 0 wherever it saturates."""

    n_state, n_control = 1, 1
    param_spec = (("k", (1,)),)

    def forward(self, t, x, X, phi):
        v = -phi[0] * x
        return np.clip(v, -1.0, 1.0), (x, np.abs(v) < 1.0, phi[0])

    def vjp(self, ctx, u_bar):
        x, free, k = ctx
        return np.where(free, -k * u_bar, 0.0), np.array([np.sum(np.where(free, -x * u_bar, 0.0))])


def test_zero_gradient_at_the_start_is_flagged():
    # x0 = 100 and k = 5 keep |k x| >= 1 over the whole 3-step horizon (x: 100 -> 49 -> 23.5 -> ...)
    prob = Problem(LinearPlant([[0.5]], [[1.0]]), SaturatedGain(), Quadratic([1.0], [0.01]), horizon=3,
                   x0=np.array([[100.0]]), params={"policy": [5.0]})
    J, g = prob.value_and_grad(prob.W0)
    fd = scipy.optimize.approx_fprime(prob.W0, prob.value, 1e-6)
    assert g[0] == 0.0 and fd[0] == 0.0  # flat: the saturation is active at every step
    with pytest.warns(RuntimeWarning, match="zero gradient at the start"):
        res = dynopt.optimize(prob)
    assert not res.success and res.status == Status.ZERO_GRADIENT_START
    assert "saturated" in res.message and res.nit == 0 and res.fun == J


# ----------------------------------------------------------------------------- progress
def test_progress_without_a_terminal_prints_plain_lines(capsys):
    with pytest.warns(RuntimeWarning):
        res = dynopt.optimize(pendulum(gradient=dynopt.BPTT()), options={"maxiter": 4}, progress=1e-9)
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("dynopt BFGS [BPTT]")]
    assert "\r" not in err
    # one line for the start, one per iteration (interval ~0), one final line
    assert len(lines) == res.nit + 2
    assert "it 0" in lines[0] and f"it {res.nit}" in lines[-1] and "done" in lines[-1]


def test_progress_default_interval_prints_start_and_end(capsys):
    with pytest.warns(RuntimeWarning):
        dynopt.optimize(pendulum(), method="CG", options={"maxiter": 3}, progress=True)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("dynopt CG [Auto]")]
    assert len(lines) == 2 and "path=numpy" in lines[0]


def test_progress_argument_is_checked():
    with pytest.raises(ValueError, match="progress: expected a number > 0.0, got -1.0"):
        dynopt.optimize(scalar(T=20), progress=-1.0)


# ----------------------------------------------------------------------------- Ctrl-C
CHILD = textwrap.dedent("""
    import json, sys, numpy as np, dynopt
    from dynopt.models import MLPPolicy, Pendulum, SwingUpCost
    r = np.random.default_rng(2)
    x0 = np.stack([r.uniform(-np.pi, np.pi, 8), r.uniform(-1, 1, 8)], 1)
    prob = dynopt.Problem(dynopt.Discretized(Pendulum(), dynopt.RK4(0.05)), MLPPolicy(2, 1, (16,), u_max=2.0,
                          angles=(0,)), SwingUpCost(0.05), horizon=100, x0=x0)
    def tell(info):
        if info.nit == 3:
            print("READY", flush=True)
    mode = sys.argv[1]
    try:
        res = dynopt.optimize(prob, options={"maxiter": 100000, "gtol": 0.0}, callback=tell, on_interrupt=mode)
        raised = False
    except KeyboardInterrupt as exc:
        res, raised = exc.result, True
    print(json.dumps({"status": int(res.status), "status_name": str(res.status), "message": res.message,
                      "success": bool(res.success), "nit": res.nit, "fun": res.fun, "J_at_x": prob.value(res.x),
                      "J0": prob.value(prob.W0), "hist": len(res.cost_history), "first": res.cost_history[0],
                      "traj": float(res.trajectory.objective), "interrupted": res.interrupted,
                      "raised": raised}), flush=True)
""")


@pytest.mark.parametrize("mode", ["return", "raise"])
def test_ctrl_c_returns_the_best_point_so_far(tmp_path, mode):
    import json
    import signal
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, str(script), mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        line = proc.stdout.readline()  # blocks until 3 iterations are done
        assert line.strip() == "READY", proc.stderr.read()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    data = json.loads(out.strip().splitlines()[-1])
    assert data["status"] == int(Status.INTERRUPTED) and data["status_name"] == "interrupted"
    assert "interrupted" in data["message"] and data["interrupted"] and not data["success"]
    assert data["nit"] >= 3 and data["hist"] == data["nit"] + 1
    assert data["fun"] == pytest.approx(data["J_at_x"], rel=1e-12) == pytest.approx(data["traj"], rel=1e-12)
    assert data["first"] == pytest.approx(data["J0"], rel=1e-12) and data["fun"] < data["J0"]
    assert data["raised"] == (mode == "raise")  # "raise": KeyboardInterrupt carrying the result as .result


def test_progress_on_a_terminal_is_a_tqdm_bar(capsys, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    with pytest.warns(RuntimeWarning):
        dynopt.optimize(pendulum(gradient=dynopt.BPTT()), method="L-BFGS-B", options={"maxiter": 3}, progress=True)
    err = capsys.readouterr().err
    assert "dynopt L-BFGS-B [BPTT]" in err and "\r" in err and "3/3" in err


# ----------------------------------------------------------------------------- property test (issue 16)
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

_values = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=True, allow_infinity=True),
                    st.text(max_size=3), st.lists(st.floats(-1, 1), max_size=2))
_keys = st.sampled_from(["maxiter", "gtol", "ftol", "maxcor", "maxls", "maxfun", "norm", "c1", "c2", "xrtol",
                         "eps", "bogus"])


@settings(max_examples=80, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(method=st.sampled_from(METHODS), options=st.one_of(st.none(), st.dictionaries(_keys, _values, max_size=2),
                                                          st.lists(st.integers(), max_size=1)),
       tol=_values, bounds=st.one_of(st.none(), st.tuples(_values, _values), st.lists(st.tuples(_values, _values),
                                                                                      max_size=2)))
def test_optimize_arguments_property(method, options, tol, bounds):
    """Every call either runs (finite result that agrees with value() at x, and never success=True
    with a projected gradient above the stationarity test) or raises ValueError/TypeError naming
    the argument at fault."""
    prob = scalar(T=5, k0=0.05)
    if isinstance(bounds, tuple):
        bounds = {"policy": bounds}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            res = dynopt.optimize(prob, method=method, options=options, tol=tol, bounds=bounds)
    except (ValueError, TypeError) as exc:
        msg = str(exc)
        assert any(name in msg for name in ("options", "tol", "bounds")), msg
        return
    assert np.isfinite(res.fun) and res.fun == pytest.approx(prob.value(res.x), rel=1e-12)
    if res.success:
        gtol = (options or {}).get("gtol", tol if tol is not None else 1e-5)
        assert res.projected_gradient <= max(gtol, 1e-3 * abs(res.fun))


@pytest.mark.slow
def test_default_ftol_false_success_is_caught_then_restarted():
    """A natural case (default options): L-BFGS-B stops on its relative-reduction test with a
    projected gradient ~6e-3 at J ~ 3.13 (twice the 1e-3 |J| test); one restart finishes it."""
    r = np.random.default_rng(2)
    x0 = np.stack([r.uniform(-np.pi, np.pi, 3), r.uniform(-1, 1, 3)], 1)
    prob = Problem(dynopt.Discretized(Pendulum(), dynopt.RK4(0.05)), MLPPolicy(2, 1, (4,), u_max=2.0, angles=(0,),
                   seed=2), SwingUpCost(0.05), horizon=30, x0=x0, gradient=dynopt.BPTT())
    with pytest.warns(RuntimeWarning, match="RELATIVE REDUCTION OF F.*not stationary"):
        stalled = dynopt.optimize(prob, method="L-BFGS-B", restarts=0)
    assert stalled.status == Status.NOT_STATIONARY and stalled.projected_gradient > 1e-3 * stalled.fun
    # central differences (h = 1e-5) agree with the exact gradient to ~1e-4 absolute on this problem
    fd = _central(prob.value, stalled.x, 1e-5)
    assert stalled.projected_gradient == pytest.approx(np.abs(fd).max(), abs=3e-4)
    done = dynopt.optimize(prob, method="L-BFGS-B")  # restarts=1 by default; no warning
    assert done.success and done.restarts == 1 and done.projected_gradient <= 1e-3 * done.fun
    assert done.fun <= stalled.fun
    assert np.abs(_central(prob.value, done.x, 1e-5)).max() <= 1e-3 * done.fun + 3e-4


def _central(f, x, h):
    return np.array([(f(x + h * e) - f(x - h * e)) / (2 * h) for e in np.eye(len(x))])
