"""Shooting on unstable plants: open-loop single shooting fails, feedback + open-loop corrections
and multiple shooting reach the LQ optimum (reference: the finite-horizon Riccati recursion,
closed form of the optimum of an unconstrained LQ problem)."""

import warnings

import numpy as np
import pytest
import scipy.linalg

import dynopt
from dynopt.control.constraints import solve
from dynopt.control.shooting import FeedbackPlusOpenLoop, MultipleShooting
from dynopt.models import LinearFeedback, LinearPlant, OpenLoop, Quadratic, QuadraticTerminal

DT = 0.05
A = np.array([[1.0, DT], [9.81 * DT, 1.0]])     # inverted pendulum linearised upright, Euler: |eig| = 1.157
B = np.array([[0.0], [DT]])
Q, R, QF = np.diag([1.0, 0.1]), np.array([[0.01]]), np.diag([10.0, 1.0])
X0 = np.array([0.2, 0.0])


def riccati_optimum(T):
    """min sum_t x'Qx + u'Ru + x_T' QF x_T from X0: x0' P_0 x0 (backward Riccati recursion)."""
    P = QF.copy()
    for _ in range(T):
        K = np.linalg.solve(R + B.T @ P @ B, B.T @ P @ A)
        P = Q + A.T @ P @ (A - B @ K)
    return float(X0 @ P @ X0)


def test_unstable_plant_open_loop_fails_feedback_corrections_converge():
    T = 1000
    J_star = riccati_optimum(T)
    plant, cost, term = LinearPlant(A, B), Quadratic(Q, R), QuadraticTerminal(QF)
    open_loop = dynopt.Problem(plant, OpenLoop(2, 1, T), cost, term, horizon=T, x0=X0, gradient=dynopt.BPTT())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # L-BFGS-B's line search fails, as it should here
        bad = dynopt.optimize(open_loop, method="L-BFGS-B", options={"maxiter": 200})
    assert bad.fun > 1e6 * J_star                          # A^1000 ~ 1e63: gradients useless
    # K from scipy's DARE with other weights than the cost's (Q_K = I, R_K = 1): stabilising, not
    # optimal for this cost, so the corrections v have work to do
    S = scipy.linalg.solve_discrete_are(A, B, np.eye(2), np.eye(1))
    K = np.linalg.solve(np.eye(1) + B.T @ S @ B, B.T @ S @ A)
    assert np.abs(np.linalg.eigvals(A - B @ K)).max() < 1
    fb = dynopt.Problem(plant, FeedbackPlusOpenLoop(K, T), cost, term, horizon=T, x0=X0, gradient=dynopt.BPTT())
    assert fb.value(fb.W0) > 1.02 * J_star
    good = dynopt.optimize(fb, method="L-BFGS-B", options={"gtol": 1e-10, "ftol": 1e-15})
    assert abs(good.fun - J_star) <= 1e-6 * J_star
    assert good.nit < 50
    assert good.success


def test_feedback_plus_open_loop_gradient():
    """Gain-matrix and Policy feedback (trainable gain first in the block), hold and control
    horizon: BPTT vs central differences, and u = -K x + v reproduced from the trajectory."""
    T = 12
    plant, cost = LinearPlant(A, B), Quadratic(Q, R)
    K = np.array([[15.0, 4.0]])
    pol = FeedbackPlusOpenLoop(K, T, hold=2, control_horizon=4)
    prob = dynopt.Problem(plant, pol, cost, horizon=T, x0=[[0.2, 0.0], [-0.1, 0.3]], decision=("policy", "x0"))
    W = np.random.default_rng(0).normal(size=prob.n_decision)
    assert dynopt.check_gradient(prob, W, casadi=False).max_rel_error() < 1e-6
    traj = prob.simulate(W)
    v = W[:4][[min(t // 2, 3) for t in range(T)]]
    np.testing.assert_allclose(traj.u[:, :, 0], -(traj.x[:-1] @ K.T)[:, :, 0] + v[:, None], atol=1e-13)
    pol2 = FeedbackPlusOpenLoop(LinearFeedback(2, 1), T, hold=3)
    assert [n for n, _ in pol2.param_spec] == ["K", "V"]
    prob2 = dynopt.Problem(plant, pol2, cost, horizon=T, x0=[0.2, 0.0])
    W2 = np.random.default_rng(1).normal(size=prob2.n_decision)
    assert dynopt.check_gradient(prob2, W2, casadi=False).max_rel_error() < 1e-6
    with pytest.raises(ValueError, match=r"feedback: expected a gain matrix K of shape \(m, n\)"):
        FeedbackPlusOpenLoop(np.ones(3), T)
    with pytest.raises(ValueError, match="feedback: expected n=3 states"):
        FeedbackPlusOpenLoop(K, T, n_state=3)


@pytest.mark.parametrize("method", ["SLSQP", "auglag"])
def test_multiple_shooting_reaches_lq_optimum(method):
    T, S = 60, 6
    J_star = riccati_optimum(T)
    ms = MultipleShooting(LinearPlant(A, B), Quadratic(Q, R), QuadraticTerminal(QF), horizon=T, x0=X0, segments=S)
    assert ms.constrained.n_eq == S * 2
    res = solve(ms.constrained, method=method)
    assert res.max_violation <= 1e-8
    assert abs(res.fun - J_star) <= 1e-6 * J_star
    # the stitched segments are one trajectory of the plant under the optimal controls
    x = ms.states(res.x)
    U = ms.controls(res.x)
    np.testing.assert_allclose(x[1:], x[:-1] @ A.T + U @ B.T, atol=1e-7)
    np.testing.assert_allclose(ms.nodes(res.x)[[0, -1]], x[[0, -1]], atol=1e-7)


def test_multiple_shooting_bad_input():
    with pytest.raises(ValueError, match="segments: expected a divisor of the horizon T=10, got 3"):
        MultipleShooting(LinearPlant(A, B), Quadratic(Q, R), horizon=10, x0=X0, segments=3)
    with pytest.raises(ValueError, match=r"x0: expected shape \(2,\)"):
        MultipleShooting(LinearPlant(A, B), Quadratic(Q, R), horizon=10, x0=[1.0], segments=2)
    with pytest.raises(ValueError, match="one lag"):
        MultipleShooting(LinearPlant([A, A], B), Quadratic(Q, R), horizon=10, x0=X0, segments=2)


def test_multiple_shooting_van_der_pol_with_state_bound_matches_ipopt():
    """CasADi's Van der Pol with x1 >= -0.25 as multiple shooting (a node per interval, like
    CasADi's direct_multiple_shooting.py): the optimum of the single-shooting NLP solved by IPOPT."""
    from test_constraints import Running, VanDerPol, vdp_ipopt
    from dynopt.control.constraints import StateConstraint
    from dynopt.core.integrators import IntegralCost
    N, M = 20, 1
    plant = dynopt.Discretized(VanDerPol(), dynopt.RK4(10 / N, substeps=M))
    ms = MultipleShooting(plant, IntegralCost(Running(), plant), horizon=N, x0=[0.0, 1.0], segments=N,
                          constraints=[StateConstraint(lambda x: x[0], lower=-0.25, n_state=2, name="x1_min")],
                          gradient=dynopt.BPTT())
    U_ref, J_ref, _ = vdp_ipopt(N, M)
    res = solve(ms.constrained, bounds=ms.control_bounds(-1.0, 1.0))
    assert res.max_violation <= 1e-8
    assert abs(res.fun - J_ref) <= 1e-6 * J_ref
    np.testing.assert_allclose(ms.controls(res.x)[:, 0], U_ref, atol=1e-4)
    assert ms.states(res.x)[1:, 0].min() >= -0.25 - 1e-8
    with pytest.raises(ValueError, match="every step"):
        MultipleShooting(plant, IntegralCost(Running(), plant), horizon=N, x0=[0.0, 1.0], segments=N,
                         constraints=[StateConstraint(lambda x: x[0], lower=-0.25, n_state=2, steps=[3])])
