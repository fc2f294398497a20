"""Gradient-flow diagnostics against quantities computed directly.

Lag norms: on x[t+1] = A x[t] every step Jacobian is A, so ||J ... J|| over L steps is
||A^L||_2, computed here with numpy.linalg (dense SVD, independent of dynopt).  The diagnostic
uses central differences of a *linear* map (exact up to rounding, ~1e-13 per step) and a power
iteration stopped at 1e-10 in the log norm; with the singular-value gap of the chosen A the
Rayleigh value is then within ~1e-10 relative, so rtol = 1e-7 has margin yet catches a wrong
transpose or a missed step (O(1) errors).
"""

import numpy as np
import pytest

from dynopt import BPTT, Discretized, Problem, RK4
from dynopt.analysis.diagnostics import DiagnosticReport, diagnose
from dynopt.cli import main_diagnose
from dynopt.models.demos import diagnose_problem as demo_problem
from dynopt.models import LinearFeedback, LinearPlant, MLPPolicy, Pendulum, Quadratic, QuadraticTerminal


def _A(rho):
    # non-normal, spectral radius rho: ||A^L|| differs from rho^L at short lags
    return np.array([[rho, 0.5], [0.0, 0.5 * rho]])


@pytest.mark.parametrize("rho,verdict", [(0.9, "vanishing"), (1.1, "exploding")])
def test_lag_norms_match_powers_of_A(rho, verdict):
    T = 300
    A = _A(rho)
    prob = Problem(LinearPlant(A, np.zeros((2, 0))), None, Quadratic(np.eye(2)), horizon=T,
                   x0=np.random.default_rng(0).standard_normal((3, 2)), decision=("plant",))
    rep = diagnose(prob)
    direct = np.array([np.linalg.norm(np.linalg.matrix_power(A, int(L)), 2) for L in rep.lags])
    assert rep.lags[0] == 1 and rep.lags[-1] == T
    np.testing.assert_allclose(rep.lag_norms, direct, rtol=1e-7)
    np.testing.assert_allclose(rep.lag_norms_max, direct, rtol=1e-7)
    assert rep.verdict == verdict
    assert rep.rate == pytest.approx(rho, rel=1e-6)  # asymptotic rate = spectral radius
    if rho < 1:
        # effective memory: lag where ||A^L|| falls below 1e-3, from the dense powers
        first = next(L for L in range(1, T) if np.linalg.norm(np.linalg.matrix_power(A, L), 2) < 1e-3)
        assert first - 1 <= rep.memory <= first + 1 or abs(rep.memory - first) / first < 0.1
    else:
        assert rep.memory == np.inf
    text = rep.summary()
    assert verdict in text and "effective memory" in text


def test_adjoints_and_contributions_lag2():
    # lag-2 linear plant, feedback policy: the recorded sweep reproduces BPTT's gradient, the
    # adjoint norms equal ||dJ/dx[t]|| obtained by BPTT with x0 as decision on shifted problems,
    # and the step contributions add up (as vectors) to the gradient (checked via their norms).
    r = np.random.default_rng(3)
    n, m, B, T = 3, 1, 2, 40
    As = [0.5 * np.linalg.qr(r.standard_normal((n, n)))[0] for _ in range(2)]
    prob = Problem(LinearPlant(As, r.standard_normal((n, m))), LinearFeedback(n, m, K0=0.1 * np.ones((m, n))),
                   Quadratic(np.eye(n), np.eye(m)), QuadraticTerminal(np.eye(n)), horizon=T,
                   x0=r.standard_normal((2, B, n)), decision=("policy", "x0"))
    rep = diagnose(prob)
    _, g = BPTT().value_and_grad(prob, prob.W0)
    np.testing.assert_allclose(rep.gradient, g, rtol=1e-13, atol=1e-13 * np.abs(g).max())
    # lambda[0] is the x[0] part of the x0 block of the gradient
    lam0 = g[prob.block_slices()["x0"]].reshape(2, B, n)[0]
    assert rep.adjoint_norms[0] == pytest.approx(np.linalg.norm(lam0), rel=1e-13)
    # triangle inequality: ||sum of contributions|| <= sum of their norms (policy block only)
    assert np.linalg.norm(g[prob.block_slices()["policy"]]) <= rep.step_contributions.sum() * (1 + 1e-12)
    assert rep.step_contributions.shape == (T,) and rep.adjoint_norms.shape == (T + 1,)
    # companion-map lag norms for k = 2: compare with powers of the 2n x 2n closed-loop companion matrix
    K = 0.1 * np.ones((m, n))
    Bm = prob.plant.unflatten(prob.plant.default_params())["B"]
    C = np.zeros((2 * n, 2 * n))
    C[:n, :n] = As[0] - Bm @ K
    C[:n, n:] = As[1]
    C[n:, :n] = np.eye(n)
    direct = np.array([np.linalg.norm(np.linalg.matrix_power(C, int(L)), 2) for L in rep.lags])
    np.testing.assert_allclose(rep.lag_norms, direct, rtol=1e-7)


def test_pendulum_healthy_at_short_horizon_and_plot(tmp_path):
    # RK4 pendulum with a tanh-MLP policy, T = 20 (1 s): the product of 20 step Jacobians
    # stays within [1e-3, 1e3] (the open-loop instability e^{sqrt(g/l) t} ~ 23 at 1 s).
    plant = Discretized(Pendulum(), RK4(0.05))
    policy = MLPPolicy(2, 1, hidden=(8,), u_max=2.0, angles=(0,), seed=0)
    x0 = np.random.default_rng(1).uniform(-1, 1, (3, 2))
    prob = Problem(plant, policy, Quadratic(np.eye(2), np.eye(1)), horizon=20, x0=x0)
    rep = diagnose(prob, starts=2)
    assert rep.verdict == "healthy"
    assert np.all(rep.lag_norms_max >= rep.lag_norms * (1 - 1e-12))
    # one-step norm against a dense central-difference Jacobian of the closed-loop step at t = 0
    setup = prob.setup(prob.W0)
    def step(x):
        u, _ = policy.forward(0, x[None], None, setup.phi)
        return plant.forward((x[None],), u, None, setup.theta)[0][0]
    norms = []
    for b in range(3):
        J = np.column_stack([(step(x0[b] + 1e-6 * e) - step(x0[b] - 1e-6 * e)) / 2e-6 for e in np.eye(2)])
        norms.append(np.linalg.norm(J, 2))
    # L = 1, starts at t0 = 0 and t0 = 19; the max over both is at least the t0 = 0 max
    assert rep.lag_norms_max[0] >= max(norms) * (1 - 1e-6)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig = rep.plot(tmp_path / "d.png")
    plt.close(fig)
    assert (tmp_path / "d.png").stat().st_size > 1000


def test_main_diagnose_prints_verdicts():
    out = []
    assert main_diagnose(["linear-0.9", "--horizon", "150", "--batch", "2"], echo=out.append) == 0
    assert "verdict: vanishing" in out[0]
    out = []
    assert main_diagnose(["linear-1.1", "--horizon", "150", "--max-lag", "64"], echo=out.append) == 0
    assert "verdict: exploding" in out[0] and "extrapolated" in out[0]
    with pytest.raises(SystemExit):
        main_diagnose(["linear-0.9", "--horizon", "0"], echo=out.append)


def test_bad_arguments():
    prob = demo_problem("linear-0.9", 10)
    with pytest.raises(ValueError, match="vanish_tol"):
        diagnose(prob, vanish_tol=2.0)
    with pytest.raises(ValueError, match="max_lag"):
        diagnose(prob, max_lag=0)
    with pytest.raises(ValueError, match="name"):
        demo_problem("lorenz")


def test_long_horizon_example_runs(capsys, load_example):
    mod = load_example("long_horizon")
    (J, J1, stats), reports = mod.main(["--horizon", "2000"])
    assert J1 < J  # a gradient step on the feedback gain lowers the cost
    assert stats["states_peak"] <= 2 * np.sqrt(2000) + 2
    assert reports["linear-0.9"].verdict == "vanishing" and reports["linear-1.1"].verdict == "exploding"
    assert "truncated BPTT vs exact" in capsys.readouterr().out
