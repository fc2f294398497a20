"""Truncated BPTT: exact for h >= T, and for h < T equal to an independent 'frozen-start'
reference: for a lag-1 plant, g_h = sum_s d/dW l_s(x~[s]) with x~ re-simulated h steps from
the nominal x[s-h] held fixed, differentiated by central differences.

Tolerances: h >= T takes the same partial products as BPTT in another order (sums by path
length), so agreement is to rounding, 1e-12 relative.  The frozen-start reference uses central
differences with step 1e-6 on a smooth map (truncation error ~1e-12 * |f'''|, rounding
~1e-16 |J| / 1e-6 ~ 1e-10): rtol 1e-6 of the gradient scale.
"""

import numpy as np
import pytest

from dynopt import BPTT, Discretized, Problem, RK4
from dynopt.models import LinearFeedback, LinearPlant, Pendulum, Quadratic, QuadraticTerminal
from dynopt.gradients.truncated import TruncatedBPTT, truncation_error


def _pendulum(T, B=2):
    plant = Discretized(Pendulum(), RK4(0.1))
    policy = LinearFeedback(2, 1, bias=True, K0=np.array([[3.0, 1.0]]))
    x0 = np.random.default_rng(0).uniform(-0.5, 0.5, (B, 2))
    return Problem(plant, policy, Quadratic(np.eye(2), 0.1 * np.eye(1)), QuadraticTerminal(np.eye(2)),
                   horizon=T, x0=x0, decision=("policy", "plant", "x0"))


def _lag2(T):
    r = np.random.default_rng(2)
    As = [0.5 * np.linalg.qr(r.standard_normal((3, 3)))[0] for _ in range(2)]
    return Problem(LinearPlant(As, r.standard_normal((3, 1))), LinearFeedback(3, 1, K0=0.1 * np.ones((1, 3))),
                   Quadratic(np.eye(3), np.eye(1)), QuadraticTerminal(np.eye(3)), horizon=T,
                   x0=r.standard_normal((2, 2, 3)), decision=("policy", "plant", "x0"))


@pytest.mark.parametrize("make", [_pendulum, _lag2])
@pytest.mark.parametrize("h_over", [0, 5])
def test_h_at_least_T_is_exact(make, h_over):
    T = 25
    prob = make(T)
    W = prob.W0
    J, g = BPTT().value_and_grad(prob, W)
    Jt, gt = TruncatedBPTT(T + h_over).value_and_grad(prob, W)
    assert Jt == J
    np.testing.assert_allclose(gt, g, rtol=0, atol=1e-12 * np.abs(g).max())


def _frozen_reference(prob, W, h):
    """sum_s grad of l_s with x[s-h] frozen, by central differences (lag 1, x0 not perturbed)."""
    traj = prob.simulate(W)
    T, B = prob.horizon, prob.B
    sl = prob.block_slices()

    def G(Wp):
        b = prob.unpack(Wp)
        phi, theta = b["policy"], b["plant"]
        total = 0.0
        for s in range(T + 1):
            start = max(0, s - h)
            # x[start] frozen at the nominal value, except x[0], which is itself a decision (x0 block)
            x = b["x0"] if start == 0 else traj.x[start]
            for t in range(start, s):
                u, _ = prob.policy.forward(t, x, None, phi)
                x, _ = prob.plant.forward((x,), u, None, theta)
            if s < T:
                u, _ = prob.policy.forward(s, x, None, phi)
                c, _ = prob.cost.forward(s, x, u, None, np.zeros(0))
            else:
                c, _ = prob.terminal_cost.forward(x, np.zeros(0))
            total += c.sum() / B
        return total

    g = np.empty_like(W)
    for i in range(W.size):
        e = np.zeros_like(W)
        e[i] = 1e-6
        g[i] = (G(W + e) - G(W - e)) / 2e-6
    return g


@pytest.mark.parametrize("h", [0, 1, 3])
def test_matches_frozen_start_reference(h):
    prob = _pendulum(10)
    W = prob.W0
    _, gt = TruncatedBPTT(h).value_and_grad(prob, W)
    ref = _frozen_reference(prob, W, h)
    np.testing.assert_allclose(gt, ref, rtol=0, atol=1e-6 * np.abs(ref).max())
    # and it is an approximation: different from the exact gradient for h < T
    _, g = BPTT().value_and_grad(prob, W)
    assert np.abs(gt - g).max() > 1e-4 * np.abs(g).max()


def test_truncation_error_report():
    prob = _pendulum(40)
    rep = truncation_error(prob, horizons=[0, 2, 8, 40])
    assert rep.rel_error[-1] < 1e-12
    assert rep.rel_error[0] > rep.rel_error[-1]
    assert "rel. error" in rep.summary()
    with pytest.raises(ValueError, match="h"):
        TruncatedBPTT(-1)
    with pytest.raises(ValueError, match="horizons"):
        truncation_error(prob, horizons=[])
