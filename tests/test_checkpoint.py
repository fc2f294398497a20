"""Checkpointed BPTT: the same gradient as full-storage BPTT, in O(sqrt(T)) memory.

Tolerance: checkpointing recomputes the same floating-point operations in the same order, so
the gradient is bit-identical; only J is summed in a different order (segment by segment),
which changes it by a few ulp.  The required 1e-12 relative therefore has three orders of
margin, and a wrong schedule (a missed step, a stale history) is off by O(1).
"""

import tracemalloc
from math import ceil, comb, sqrt

import numpy as np
import pytest

from dynopt import BPTT, Plant, Problem, StageCost
from dynopt.gradients.checkpointed import CheckpointedBPTT, _advances, make_plan
from dynopt.models import LinearFeedback, LinearPlant, Quadratic, QuadraticTerminal

RTOL = 1e-12


def _problem(T, k, gradient, B=3, n=3, m=2, seed=0):
    r = np.random.default_rng(seed)
    As = [0.9 / k * np.linalg.qr(r.standard_normal((n, n)))[0] for _ in range(k)]
    plant = LinearPlant(As if k > 1 else As[0], r.standard_normal((n, m)))
    x0 = r.standard_normal((k, B, n)) if k > 1 else r.standard_normal((B, n))
    policy = LinearFeedback(n, m, bias=True, K0=0.02 * r.standard_normal((m, n)))
    return Problem(plant, policy, Quadratic(np.eye(n), 0.1 * np.eye(m)), QuadraticTerminal(2 * np.eye(n)),
                   horizon=T, x0=x0, decision=("policy", "plant", "x0"), gradient=gradient)


def _compare(T, k, budget, **sizes):
    prob = _problem(T, k, BPTT(), **sizes)
    W = prob.W0 + 0.01 * np.random.default_rng(1).standard_normal(prob.n_decision)
    J, g = prob.value_and_grad(W)
    ck = CheckpointedBPTT(budget)
    ev = prob.replace(gradient=ck).gradient.evaluate(prob, W)
    Jc, gc, _ = ev
    assert abs(Jc - J) <= RTOL * abs(J)
    assert np.max(np.abs(gc - g)) <= RTOL * np.max(np.abs(g))
    return ev.stats


@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("T,budget", [(T, b) for T in (1, 2, 7) for b in (None, 1, 2, 3, 4, 5, 7, 100)]
                         + [(1000, b) for b in (None, 7, 12, 40, 64, 999, 1000, 5000)])
def test_equals_full_bptt(T, k, budget):
    stats = _compare(T, k, budget)
    # Memory never exceeds the budget, and every step is evaluated at least once.
    if budget is not None:
        assert stats["states_peak"] <= budget
    assert stats["step_evaluations"] >= T


@pytest.mark.parametrize("k,budget", [(1, None), (2, None), (1, 30)])
def test_equals_full_bptt_T10007(k, budget):
    stats = _compare(10007, k, budget, B=1, n=2, m=1)
    if budget is None:
        # default: about 2 sqrt(kT) stored states, one extra forward sweep at most
        assert stats["states_peak"] <= 2 * sqrt(k * 10007) + 2 * k
        assert stats["recompute_factor"] <= 2.0
    else:
        assert stats["states_peak"] <= budget


def test_schedule_is_binomial_optimum():
    # The recursion's evaluation count equals Griewank & Walther's closed form
    # t(l, s) = r l - C(s + r + 1, s + 1) (here checked against an exhaustive DP, independent).
    from functools import lru_cache

    @lru_cache(None)
    def dp(l, s):
        if l <= 1:
            return 0
        if s == 1:
            return l * (l - 1) // 2
        return min(m + dp(l - m, s - 1) + dp(m, s) for m in range(1, l))

    for s in range(1, 5):
        for l in range(1, 60):
            assert _advances(l, s) == dp(l, s), (l, s)
    # and the executed schedule matches the prediction: budget 3, lag 1 -> L = 1, 2 checkpoints
    T = 300
    stats = _compare(T, 1, 3)
    plan = make_plan(T, 1, 3)
    assert (plan.segment, plan.checkpoints) == (1, 2)
    r = 11  # smallest r with C(3 + r, 3) >= 300: C(14, 3) = 364, C(13, 3) = 286
    assert comb(3 + r, 3) >= T > comb(2 + r, 3)
    assert stats["step_evaluations"] == T + r * T - comb(4 + r - 1, 4)


def test_default_plan_and_counts():
    plan = make_plan(10**5, 1)
    assert plan.segment == 316 and plan.checkpoints == ceil(10**5 / 316) - 1
    prob = _problem(50, 1, CheckpointedBPTT())
    ev = prob.gradient.evaluate(prob, prob.W0)
    assert prob.counts["forward"] == 1 and prob.counts["backward"] == 1
    assert prob.counts["recomputed_steps"] == ev.stats["recomputed_steps"] > 0


def test_bad_budget():
    with pytest.raises(ValueError, match="budget"):
        CheckpointedBPTT(0)
    with pytest.raises(TypeError, match="budget"):
        CheckpointedBPTT(2.5)


class _Decay(Plant):
    """x[t+1] = a * x[t] elementwise: the cheapest plant, so that T = 1e5 runs in seconds."""

    def __init__(self, n):
        self.n_state = n
        self.param_spec = (("a", (n,)),)

    def default_params(self):
        return np.full(self.n_state, 0.999)

    def forward(self, hist, u, X, theta):
        return hist[0] * theta, (hist[0], theta)

    def vjp(self, ctx, xb):
        x, a = ctx
        return (xb * a,), None, (xb * x).sum(axis=0)


class _SumSquares(StageCost):
    def forward(self, t, x, u, X, p):
        return (x * x).sum(axis=1), x

    def vjp(self, x, c_bar):
        return 2.0 * c_bar[:, None] * x, None, np.zeros(0)


def _peak_bytes(T, gradient):
    prob = Problem(_Decay(2), None, _SumSquares(), horizon=T, x0=np.ones((1, 2)), decision=("plant",),
                   gradient=gradient)
    W = prob.W0
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    ev = prob.gradient.evaluate(prob, W)
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return peak, ev.grad, ev.stats


def test_memory_sqrt_T():
    # Full storage grows linearly in T ...
    full_small, _, _ = _peak_bytes(2000, BPTT())
    full_big, g_full, _ = _peak_bytes(8000, BPTT())
    assert 3.0 < full_big / full_small < 5.0
    per_step = full_big / 8000  # bytes one taped step costs (contexts + list slots)
    # ... while checkpointing at T = 1e5 stays within a small multiple of sqrt(T) steps' worth
    # (the default plan holds ~2 sqrt(T) = 632 states at once; bound 4 sqrt(T) taped steps).
    T = 10**5
    ck = CheckpointedBPTT()
    peak, g, stats = _peak_bytes(T, ck)
    assert stats["states_peak"] <= 2 * sqrt(T) + 2
    assert peak <= 4 * sqrt(T) * per_step, (peak, per_step)
    assert peak < full_big / 4  # 12.5x the horizon of the 8000-step run in a quarter of its memory
    # and the gradient is still right: d/da_i of sum_t x_i[t]^2 = sum_t 2 t a^(2t-1) x0^2
    a = 0.999
    t = np.arange(T)
    exact = np.sum(2 * t * a ** (2 * t - 1.0))
    np.testing.assert_allclose(g, [exact, exact], rtol=1e-10)  # 1e5-term sum, ~1e-13 rounding


@pytest.mark.parametrize("budget", [2, 7, None])
def test_nonlinear_open_loop_and_exogenous(budget):
    # RK4 pendulum with a tanh-MLP policy (nonlinear contexts), and a linear plant driven by an
    # open-loop sequence (SliceGrad duals) and exogenous inputs X: both through the same schedule.
    from dynopt import RK4, Discretized
    from dynopt.models import MLPPolicy, OpenLoop, Pendulum, SwingUpCost

    r = np.random.default_rng(4)
    T = 61
    pend = Problem(Discretized(Pendulum(), RK4(0.05)), MLPPolicy(2, 1, hidden=(8,), u_max=2.0, angles=(0,)),
                   SwingUpCost(0.05), horizon=T, x0=r.uniform(-1, 1, (3, 2)), decision=("policy", "x0"))
    lin = Problem(LinearPlant(0.9 * np.eye(2), [[0.0], [1.0]], E=[[1.0], [0.5]]), OpenLoop(2, 1, T),
                  Quadratic(np.eye(2), [0.1]), horizon=T, x0=r.standard_normal((2, 2)),
                  X=r.standard_normal((T, 2, 1)), decision=("policy", "plant"))
    for prob in (pend, lin):
        W = prob.W0 + 0.1 * r.standard_normal(prob.n_decision)
        J, g = BPTT().value_and_grad(prob, W)
        ck = CheckpointedBPTT(budget)
        ev = ck.evaluate(prob, W)
        Jc, gc, _ = ev
        assert abs(Jc - J) <= RTOL * abs(J)
        assert np.max(np.abs(gc - g)) <= RTOL * np.max(np.abs(g))
        assert ev.stats["recomputed_steps"] > 0
