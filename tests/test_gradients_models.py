"""Every model, policy and cost, and closed loops of them, against central finite differences.

Tolerance: central differences with step h = eps^(1/3) max(1, |w|) have truncation error
O(h^2 |f'''|) ~ 1e-11 and rounding error O(eps |f| / h) ~ 1e-10 relative to the block's scale;
over long horizons the rounding term grows with |J|.  A wrong dual is off by O(1), so a bound
of 1e-6 on the block-relative error separates the two by four orders of magnitude.
"""

import numpy as np
import pytest

import dynopt
from dynopt import RK4, Discretized, Euler, Plant, Problem
from dynopt.models import (CartPole, DoubleIntegrator, FunctionCost, LinearFeedback, LinearPlant, MLPPolicy,
                           OpenLoop, Pendulum, Quadratic, QuadraticTerminal, SwingUpCost)

FD_RTOL = 1e-6


class Lag3Toy(Plant):
    """A nonlinear three-lag plant written against the public contract (a user's own plant):
    x[t+1] = tanh(A1 x[t]) + a2 * x[t] * x[t-1] + a3 * x[t-2] + B u[t] (elementwise products)."""

    lags = 3

    def __init__(self, n, m):
        self.n_state, self.n_control = n, m
        self.param_spec = (("A1", (n, n)), ("a2", (n,)), ("a3", (n,)), ("B", (n, m)))

    def default_params(self):
        r = np.random.default_rng(7)
        n, m = self.n_state, self.n_control
        return np.concatenate([0.5 * r.standard_normal(n * n), 0.3 * r.standard_normal(n),
                               0.2 * r.standard_normal(n), r.standard_normal(n * m)])

    def forward(self, hist, u, X, theta):
        p = self.unflatten(theta)
        x0, x1, x2 = hist
        h = np.tanh(x0 @ p["A1"].T)
        return h + p["a2"] * x0 * x1 + p["a3"] * x2 + u @ p["B"].T, (hist, u, h, p)

    def vjp(self, ctx, xb):
        (x0, x1, x2), u, h, p = ctx
        gz = xb * (1 - h * h)
        hist_bar = (gz @ p["A1"] + xb * p["a2"] * x1, xb * p["a2"] * x0, xb * p["a3"])
        g = np.concatenate([(gz.T @ x0).ravel(), (xb * x0 * x1).sum(0), (xb * x2).sum(0), (xb.T @ u).ravel()])
        return hist_bar, xb @ p["B"], g


def _x0(rng, B, n, k=1):
    x = 0.5 * rng.standard_normal((k, B, n))
    return x[0] if k == 1 else x


def _linear(k, n=3, m=2):
    r = np.random.default_rng(k)
    As = [0.9 / k * np.linalg.qr(r.standard_normal((n, n)))[0] for _ in range(k)]
    return LinearPlant(As if k > 1 else As[0], r.standard_normal((n, m)))


def _swingup_cost(t, x, u, X):
    return (1 - np.cos(x[:, 0])) + 0.1 * x[:, 1] ** 2 + 0.01 * u[:, 0] ** 2


def _swingup_grad(t, x, u, X):
    return np.stack([np.sin(x[:, 0]), 0.2 * x[:, 1]], 1), 0.02 * u


CASES = {
    "pendulum-rk4-mlp": lambda r: Problem(
        Discretized(Pendulum(), RK4(0.05)), MLPPolicy(2, 1, (8, 6), u_max=2.0, angles=(0,)), SwingUpCost(0.05),
        horizon=20, x0=_x0(r, 3, 2), decision=("policy", "plant", "x0")),
    "pendulum-euler-linear-terminal": lambda r: Problem(
        Discretized(Pendulum(b=0.3), Euler(0.02)), LinearFeedback(2, 1, bias=True, K0=[[3.0, 1.0]]),
        Quadratic([1.0, 0.1], [0.01]), QuadraticTerminal(np.diag([5.0, 1.0])),
        horizon=25, x0=_x0(r, 4, 2), params={"policy": [3.0, 1.0, 0.2]}, decision=("policy", "plant", "x0")),
    "cartpole-rk4-mlp": lambda r: Problem(
        Discretized(CartPole(), RK4(0.02)), MLPPolicy(4, 1, (8,), u_max=10.0, angles=(1,)),
        Quadratic([1.0, 5.0, 0.1, 0.1], [0.001]), QuadraticTerminal(np.eye(4)),
        horizon=15, x0=_x0(r, 2, 4), decision=("policy", "plant", "x0")),
    "double-integrator-ode-openloop": lambda r: Problem(
        Discretized(DoubleIntegrator(m=2.0), RK4(0.1)), OpenLoop(2, 1, 12, U0=r.standard_normal(12)),
        Quadratic(np.eye(2), [0.1], x_ref=[1.0, 0.0]), QuadraticTerminal(10 * np.eye(2), x_ref=[1.0, 0.0]),
        horizon=12, x0=_x0(r, 3, 2), decision=("policy", "plant", "x0")),
    "linear-exog-feedback-refs": lambda r: Problem(
        LinearPlant(0.95 * np.eye(2) + 0.05, [[0.0], [1.0]], E=[[0.1, 0.0, 0.2], [0.0, 0.3, 0.1]]),
        LinearFeedback(2, 1, bias=True), Quadratic([[2.0, 0.5], [0.5, 1.0]], [[0.2]], x_ref=[0.3, -0.1], u_ref=[0.05]),
        horizon=10, x0=_x0(r, 3, 2), X=r.standard_normal((10, 3, 3)),
        params={"policy": [0.4, 0.3, 0.1]}, decision=("policy", "plant", "x0")),
    "linear-lag2-openloop": lambda r: Problem(
        _linear(2), OpenLoop(3, 2, 9, U0=r.standard_normal(18)), Quadratic(np.eye(3), np.eye(2)),
        QuadraticTerminal(np.eye(3)), horizon=9, x0=_x0(r, 2, 3, k=2), decision=("plant", "x0", "policy")),
    "linear-lag3-feedback": lambda r: Problem(
        _linear(3), LinearFeedback(3, 2), Quadratic(np.eye(3), np.eye(2)), horizon=8, x0=_x0(r, 2, 3, k=3),
        params={"policy": 0.1 * r.standard_normal(6)}, decision=("policy", "plant", "x0")),
    "nonlinear-lag3-user-plant": lambda r: Problem(
        Lag3Toy(2, 1), OpenLoop(2, 1, 7, U0=0.3 * r.standard_normal(7)), Quadratic(np.eye(2), [0.5]),
        QuadraticTerminal(np.eye(2)), horizon=7, x0=_x0(r, 3, 2, k=3), decision=("plant", "policy", "x0")),
    "function-cost": lambda r: Problem(
        Discretized(Pendulum(), RK4(0.05)), LinearFeedback(2, 1, bias=True), FunctionCost(_swingup_cost, _swingup_grad),
        horizon=15, x0=_x0(r, 2, 2), params={"policy": [2.0, 0.5, 0.1]}, decision=("policy", "x0")),
    "T=1-pendulum-terminal": lambda r: Problem(
        Discretized(Pendulum(), RK4(0.05)), MLPPolicy(2, 1, (4,), angles=(0,)), SwingUpCost(0.05),
        QuadraticTerminal(np.eye(2)), horizon=1, x0=_x0(r, 2, 2), decision=("policy", "plant", "x0")),
    "T=1-lag2-terminal-only": lambda r: Problem(
        _linear(2), LinearFeedback(3, 2), terminal_cost=QuadraticTerminal(np.eye(3)), horizon=1,
        x0=_x0(r, 2, 3, k=2), params={"policy": 0.1 * r.standard_normal(6)}, decision=("policy", "plant", "x0")),
    "T=1000-pendulum-feedback": lambda r: Problem(
        Discretized(Pendulum(), RK4(0.01)), LinearFeedback(2, 1, bias=True), SwingUpCost(0.01),
        horizon=1000, x0=_x0(r, 2, 2), params={"policy": [15.0, 4.0, 0.0]}, decision=("policy", "x0")),
    "T=1000-lag2-feedback": lambda r: Problem(
        _linear(2, n=2, m=1), LinearFeedback(2, 1), Quadratic(np.eye(2), [0.1]), horizon=1000,
        x0=_x0(r, 3, 2, k=2), params={"policy": [0.05, 0.02]}, decision=("policy", "x0")),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bptt_matches_finite_differences(name, rng):
    prob = CASES[name](rng)
    W = prob.W0
    report = dynopt.check_gradient(prob, W, casadi=False)
    assert report.max_rel_error("fd") < FD_RTOL, str(report)
    # the gradient is not trivially zero anywhere it should not be
    assert np.linalg.norm(report.gradients["checked"]) > 0


def test_maximising_a_utility_flips_nothing_but_the_direction(rng):
    """objective="max" reports U and dU/dW as stated; optimize maximises it."""
    make = CASES["pendulum-euler-linear-terminal"]
    p_min = make(np.random.default_rng(1))
    J, g = p_min.value_and_grad(p_min.W0)
    p_max = Problem(p_min.plant, p_min.policy, p_min.cost, p_min.terminal_cost, horizon=p_min.horizon,
                    x0=p_min.unpack(p_min.W0)["x0"], params={"policy": p_min.W0[:3]}, objective="max")
    U, gU = p_max.value_and_grad(p_max.W0)
    assert U == J and np.array_equal(gU, g[:3])


def test_rk4_dual_is_exact_for_the_discrete_map(rng):
    """Werbos's point: BPTT differentiates the simulated discrete map, not the ODE. A coarse
    dt (large integration error) must not degrade the agreement with FD of the same map."""
    prob = Problem(Discretized(Pendulum(), RK4(0.4)), LinearFeedback(2, 1, K0=[[4.0, 1.0]]), SwingUpCost(0.4),
                   horizon=30, x0=_x0(rng, 3, 2), params={"policy": [4.0, 1.0]}, decision=("policy", "plant"))
    assert dynopt.check_gradient(prob, casadi=False).max_rel_error("fd") < FD_RTOL


def test_feedback_reading_a_reference_channel_reaches_deadbeat_tracking():
    """u = -K x + G r with r a named X channel (issue 12 item 5): for x+ = a x + b u and the
    tracking cost sum_t (r - x_t)^2 with r constant per scenario and x0 != r, the unique
    optimum is deadbeat, K* = a / b and G* = 1 / b (x_1 = r, then x_t = r), with
    J* = mean_b (r_b - x0_b)^2 (the t = 0 term).  Closed form vs BFGS on dynopt's gradient."""
    from dynopt.models import TrackingCost
    a, b, T = 0.9, 0.5, 20
    r = np.array([1.0, -0.5, 2.0])
    x0 = np.array([[0.0], [0.3], [1.0]])
    prob = Problem(LinearPlant([[a]], [[b]]), LinearFeedback(1, 1, channels=("ref",)),
                   TrackingCost([1.0], 1.0, channels=("ref",)), horizon=T, x0=x0,
                   X={"ref": np.broadcast_to(r[None, :, None], (T, 3, 1))}, gradient=dynopt.BPTT())
    assert prob.policy.param_spec == (("K", (1, 1)), ("G", (1, 1)))
    res = dynopt.optimize(prob, method="BFGS", options={"gtol": 1e-9, "maxiter": 500})
    K, G = res.x
    assert K == pytest.approx(a / b, rel=1e-6) and G == pytest.approx(1 / b, rel=1e-6)
    assert res.fun == pytest.approx(np.mean((r - x0[:, 0]) ** 2), rel=1e-9)
