"""The CasADi front end: user functions become components; bad ones are rejected at construction."""

import casadi as ca
import numpy as np
import pytest

import dynopt
from dynopt import RK4, Discretized, Problem
from dynopt.casadi.components import (BatchedFunction, CasadiODE, CasadiPlant, CasadiPolicy, CasadiStageCost,
                                      CasadiTerminalCost)
from dynopt.models import MLPPolicy, Pendulum, Quadratic, SwingUpCost


def pendulum_rhs(x, u, p):
    ml2 = p["m"] * p["l"] ** 2
    return ca.vertcat(x[1], p["g"] / p["l"] * ca.sin(x[0]) + u[0] / ml2 - p["b"] * x[1] / ml2)


PEND = dict(g=9.81, l=1.0, m=1.0, b=0.1)


# ------------------------------------------------------------------ bad user functions
def wrong_shape(x, u, p):
    return ca.horzcat(x[1], x[0])          # a row, not a column


def too_long(x, u, p):
    return ca.vertcat(x, u)


def numpy_ufunc(x, u, p):
    return ca.vertcat(x[1], np.sin(x[0]))


def numpy_array(x, u, p):
    return np.array([x[1], x[0]])


def python_float(x, u, p):
    return ca.vertcat(x[1], float(x[0]))


def python_if(x, u, p):
    return x if x[0] > 0 else -x


def uses_floor(x, u, p):
    return ca.vertcat(x[1], ca.floor(x[0]) + u[0])


def uses_sign(x, u, p):
    return ca.vertcat(x[1], -ca.sign(x[0]))


OUTSIDE = ca.SX.sym("outside")


def free_symbol(x, u, p):
    return ca.vertcat(x[1], OUTSIDE * x[0])


def not_casadi(x, u, p):
    return "x"


def wrong_arity(x, p):
    return x


BAD = [
    (wrong_shape, ValueError, r"'wrong_shape' returned shape \(1, 2\); expected \(2, 1\) \(a column"),
    (too_long, ValueError, r"'too_long' returned shape \(3, 1\); expected \(2, 1\)"),
    (numpy_ufunc, TypeError, r"'numpy_ufunc' calls a NumPy function on a CasADi symbol"),
    (numpy_array, TypeError, r"'numpy_array' returned a NumPy array of CasADi expressions"),
    (python_float, ValueError, r"'python_float' contains a NaN constant"),
    (python_if, TypeError, r"'python_if' could not be evaluated on CasADi SX symbols"),
    (uses_floor, ValueError, r"'uses_floor' is not differentiable: it uses floor\(\)"),
    (uses_sign, ValueError, r"'uses_sign' is not differentiable: it uses sign\(\)"),
    (free_symbol, ValueError, r"'free_symbol': casadi could not build a Function"),
    (not_casadi, TypeError, r"'not_casadi' returned str"),
    (wrong_arity, TypeError, r"'wrong_arity' must accept \(x, u, p\), got the signature \(x, p\)"),
]


@pytest.mark.parametrize("fn,exc,msg", BAD, ids=[b[0].__name__ for b in BAD])
@pytest.mark.parametrize("cls", [CasadiPlant, CasadiODE])
def test_bad_functions_are_rejected_naming_the_function(cls, fn, exc, msg):
    with pytest.raises(exc, match=msg):
        cls(fn, n_state=2, n_control=1)


def test_bad_policy_and_cost_shapes():
    with pytest.raises(ValueError, match=r"policy function '\S*\bf' returned shape \(2, 1\); expected \(1, 1\)"):
        def f(x, p):
            return x
        CasadiPolicy(f, n_state=2, n_control=1)
    with pytest.raises(ValueError, match=r"stage cost function '\S*\bc' returned shape \(2, 1\); expected \(1, 1\)"):
        def c(x, u, p):
            return x * x
        CasadiStageCost(c, n_state=2, n_control=1)
    with pytest.raises(ValueError, match=r"n_state: expected an integer >= 1, got 0"):
        CasadiTerminalCost(lambda x, p: ca.sumsqr(x), n_state=0)
    with pytest.raises(ValueError, match="sym: expected 'SX' or 'MX'"):
        CasadiTerminalCost(lambda x, p: ca.sumsqr(x), n_state=2, sym="DM")
    with pytest.raises(TypeError, match="plant: expected a callable"):
        CasadiPlant(3, n_state=2)


# ------------------------------------------------------------------ working components
@pytest.mark.parametrize("sym", ["SX", "MX"])
def test_user_pendulum_equals_builtin(sym):
    """A user's pendulum (named dict parameters) reproduces the hand-written NumPy model and its dual."""
    ode = CasadiODE(pendulum_rhs, n_state=2, n_control=1, params=PEND, sym=sym)
    assert [n for n, _ in ode.param_spec] == ["g", "l", "m", "b"]
    assert isinstance(ode.function, ca.Function)
    x0 = np.random.default_rng(0).uniform(-1, 1, (4, 2))
    mk = lambda plant: Problem(plant, MLPPolicy(2, 1, (5,), u_max=2.0, angles=(0,)), SwingUpCost(0.05), horizon=30,
                               x0=x0, decision=("policy", "plant", "x0"))
    ref, mine = mk(Discretized(Pendulum(), RK4(0.05))), mk(Discretized(ode, RK4(0.05)))
    (J1, g1), (J2, g2) = ref.value_and_grad(ref.W0), mine.value_and_grad(ref.W0)
    # same arithmetic up to operation order: a few ulps per step over 30 steps
    assert abs(J2 - J1) <= 1e-12 * abs(J1)
    assert np.max(np.abs(g2 - g1)) <= 1e-10 * np.max(np.abs(g1))


def test_mixed_closed_loop_with_matrix_params_and_exog():
    """CasADi policy (matrix parameter), NumPy plant, CasADi stage and terminal costs reading X."""
    from dynopt.models import LinearPlant

    r = np.random.default_rng(2)
    plant = LinearPlant(0.9 * np.eye(2), [[0.0], [1.0]], E=[[0.1], [0.0]])
    pol = CasadiPolicy(lambda x, X, p: ca.tanh(ca.mtimes(p["K"], x) + p["k"] * X[0]), n_state=2, n_control=1,
                       n_exog=1, params=dict(K=[[-0.5, -1.0]], k=0.2))
    cost = CasadiStageCost(lambda x, u, X, p: ca.sumsqr(x - X[0]) + p["r"] * u[0] ** 2, n_state=2, n_control=1,
                           n_exog=1, params=dict(r=0.1))
    term = CasadiTerminalCost(lambda x, p: p[0] * ca.sumsqr(x), n_state=2, params=[3.0])
    p = Problem(plant, pol, cost, term, horizon=15, x0=r.standard_normal((3, 2)), X=r.standard_normal((15, 3, 1)),
                decision=("policy", "plant", "cost", "terminal", "x0"))
    np.testing.assert_array_equal(p.named(p.W0)["policy"]["K"], [[-0.5, -1.0]])
    check = dynopt.check_gradient(p)
    # BPTT vs CasADi whole-trajectory AD: exact both, ulps apart; FD: O(h^2) + O(eps/h) ~ 1e-9
    assert check.max_rel_error("casadi") < 1e-12, str(check)
    assert check.max_rel_error("fd") < 1e-6, str(check)


def test_one_casadi_call_per_step_per_component(monkeypatch):
    """Batched over B: each component is one CasADi evaluation per step (never one per scenario)."""
    calls = {"forward": 0, "vjp": 0}
    fwd, vjp = BatchedFunction.forward, BatchedFunction.vjp

    def count_fwd(self, inputs, B):
        calls["forward"] += 1
        return fwd(self, inputs, B)

    def count_vjp(self, inputs, out_bar, B):
        calls["vjp"] += 1
        return vjp(self, inputs, out_bar, B)

    monkeypatch.setattr(BatchedFunction, "forward", count_fwd)
    monkeypatch.setattr(BatchedFunction, "vjp", count_vjp)
    plant = CasadiODE(pendulum_rhs, n_state=2, n_control=1, params=PEND).discretize(RK4(0.05))
    pol = CasadiPolicy(lambda x, p: -ca.dot(p, x), n_state=2, n_control=1, params=[1.0, 0.5])
    T, B = 7, 50
    p = Problem(plant, pol, Quadratic([1.0, 1.0], [0.1]), horizon=T, x0=np.zeros((B, 2)))
    p.value_and_grad(p.W0)
    # no terminal cost: lam[T] = 0, so the engine skips the plant's dual at the last step
    assert calls == {"forward": 2 * T, "vjp": 2 * T - 1}


def test_lagged_plant_receives_history_newest_first():
    seen = {}

    def f(x, u, p):
        seen["n"] = len(x)
        return x[0] - 0.5 * x[2] + u

    plant = CasadiPlant(f, n_state=1, n_control=1, lags=3)
    assert seen["n"] == 3 and plant.lags == 3
    hist = (np.array([[1.0]]), np.array([[2.0]]), np.array([[4.0]]))
    x_next, ctx = plant.forward(hist, np.array([[0.25]]), None, np.zeros(0))
    assert x_next[0, 0] == 1.0 - 2.0 + 0.25
    hb, ub, tb = plant.vjp(ctx, np.array([[1.0]]))
    assert [h[0, 0] for h in hb] == [1.0, 0.0, -0.5] and ub[0, 0] == 1.0 and tb.shape == (0,)
