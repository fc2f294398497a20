"""Receding-horizon loop: equals LQR on unconstrained linear-quadratic problems, keeps control
bounds (first move checked against IPOPT), reports times and violations."""

import casadi as ca
import numpy as np
import pytest

from dynopt import Problem
from dynopt.control.lqr import c2d, dlqr, finite_horizon_lqr
from dynopt.control.mpc import receding_horizon
from dynopt.models import LinearPlant, OpenLoop, Quadratic, QuadraticTerminal

DT = 0.1
AD, BD = c2d([[0.0, 1.0], [0.0, 0.0]], [[0.0], [1.0]], DT)  # double integrator, ZOH
Q, R = np.diag([1.0, 0.1]), np.array([[0.05]])
X0 = np.array([2.0, -0.5])


def _model(N, terminal=True):
    K, S, _ = dlqr(AD, BD, Q, R)
    return Problem(LinearPlant(AD, BD), OpenLoop(2, 1, N), Quadratic(Q, R),
                   QuadraticTerminal(S) if terminal else None, horizon=N, x0=X0), K


def test_mpc_with_dare_terminal_cost_is_the_lqr_law():
    # with the DARE solution as terminal cost the N-step problem's first move is exactly -K x
    model, K = _model(8)
    res = receding_horizon(model, X0, 12, options={"gtol": 1e-10})
    assert res.success and res.u.shape == (12, 1) and res.x.shape == (13, 2)
    np.testing.assert_allclose(res.u[:, 0], -(res.x[:-1] @ K.T)[:, 0], atol=1e-6)
    # the plant states follow the LQR closed loop x+ = (A - B K) x
    x, ref = X0.copy(), [X0.copy()]
    for _ in range(12):
        x = (AD - BD @ K) @ x
        ref.append(x)
    np.testing.assert_allclose(res.x, np.array(ref), atol=1e-6)
    assert np.all(res.solve_times > 0) and np.all(res.iterations >= 1) and np.all(res.u_violation == 0)


def test_mpc_long_horizon_without_terminal_cost_approaches_lqr():
    # 40 steps (4 s) against closed-loop time constants of ~1 s: the first finite-horizon gain
    # (Riccati recursion) differs from K by ~1e-5 relative; the optimizer stops at gtol
    model, K = _model(40, terminal=False)
    res = receding_horizon(model, X0, 5, options={"gtol": 1e-10})
    K40 = finite_horizon_lqr(AD, BD, Q, R, horizon=40).K[0]
    np.testing.assert_allclose(res.u[:, 0], -(res.x[:-1] @ K40.T)[:, 0], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(res.u[:, 0], -(res.x[:-1] @ K.T)[:, 0], rtol=1e-3, atol=1e-5)


def _ipopt_first_move(x0, N, umax, S):
    opti = ca.Opti()
    U = opti.variable(N)
    x = ca.DM(x0)
    J = 0
    for t in range(N):
        J += ca.mtimes([x.T, ca.DM(Q), x]) + R[0, 0] * U[t] ** 2
        x = ca.mtimes(ca.DM(AD), x) + ca.DM(BD) * U[t]
    J += ca.mtimes([x.T, ca.DM(S), x])
    opti.minimize(J)
    opti.subject_to(opti.bounded(-umax, U, umax))
    opti.solver("ipopt", {"print_time": False}, {"print_level": 0, "tol": 1e-12, "sb": "yes"})
    sol = opti.solve()
    return np.atleast_1d(sol.value(U)), float(sol.value(J))


def test_mpc_respects_bounds_and_matches_ipopt():
    model, K = _model(15)
    umax = 1.0
    res = receding_horizon(model, X0, 25, u_bounds=(-umax, umax), x_bounds=(None, [np.inf, 0.6]))
    assert res.success
    assert np.all(np.abs(res.u) <= umax) and np.all(res.u_violation == 0.0)
    assert np.isclose(np.abs(res.u), umax).sum() >= 3  # the bound is active at the start
    assert res.x_violation.shape == (26,)
    np.testing.assert_allclose(res.x_violation, np.maximum(res.x[:, 1] - 0.6, 0.0), atol=0)
    # the bounded first plan against IPOPT on the same QP (objective to 1e-8 relative, plan to 1e-4)
    _, S, _ = dlqr(AD, BD, Q, R)
    U_ref, J_ref = _ipopt_first_move(X0, 15, umax, S)
    np.testing.assert_allclose(res.predicted_cost[0], J_ref, rtol=1e-8)
    np.testing.assert_allclose(res.plans[0][:, 0], U_ref, atol=1e-4)
    # the loop brings the state home
    assert np.abs(res.x[-1]).max() < 0.1


def test_mpc_against_a_different_plant():
    # the model's mass is 1 kg, the plant's 2 kg: closed loop still converges, and the applied
    # plant states follow the plant's own matrices
    model, _ = _model(10)
    Ad2, Bd2 = c2d([[0.0, 1.0], [0.0, 0.0]], [[0.0], [0.5]], DT)
    res = receding_horizon(model, X0, 40, plant=LinearPlant(Ad2, Bd2), u_bounds=(-2, 2))
    np.testing.assert_allclose(res.x[1:], res.x[:-1] @ Ad2.T + res.u @ Bd2.T, atol=1e-12)
    assert np.abs(res.x[-1]).max() < 0.1 * np.abs(X0).max()


def test_mpc_bad_input():
    model, _ = _model(5)
    with pytest.raises(ValueError, match="steps: expected an integer >= 1, got 0"):
        receding_horizon(model, X0, 0)
    with pytest.raises(ValueError, match=r"u_bounds: expected lo <= hi, got lo=1.0 > hi=-1.0"):
        receding_horizon(model, X0, 3, u_bounds=(1.0, -1.0))
    with pytest.raises(ValueError, match=r"x0: expected shape \(2,\)"):
        receding_horizon(model, [1.0, 2.0, 3.0], 3)
    two = Problem(LinearPlant(AD, BD), OpenLoop(2, 1, 5), Quadratic(Q, R), horizon=5, x0=np.ones((2, 2)))
    with pytest.raises(ValueError, match="model: expected a single scenario"):
        receding_horizon(two, X0, 3)
    with pytest.raises(ValueError, match=r"plant: expected a lag-1 plant with n=2, m=1"):
        receding_horizon(model, X0, 3, plant=LinearPlant(np.eye(3), np.ones((3, 1))))


@pytest.mark.slow
def test_mpc_pendulum_example_quick(load_example):
    ex = load_example("mpc_pendulum")
    res = ex.main(quick=True)
    assert res.success and np.all(np.abs(res.u) <= ex.U_MAX) and res.u_violation.max() == 0.0
    # balanced upright despite the model mismatch (wrapped to (-pi, pi])
    assert np.abs((res.x[-10:, 0] + np.pi) % (2 * np.pi) - np.pi).max() < 0.1
    # the applied trajectory is the *plant's* (m = 1.2 kg, b = 0.15): an independent RK4 loop
    m, b, h = ex.PLANT["m"], ex.PLANT["b"], ex.DT

    def f(x, u):
        return np.array([x[1], 9.81 * np.sin(x[0]) + (u - b * x[1]) / m])

    x = res.x[0].copy()
    for k, u in enumerate(res.u[:, 0]):
        k1 = f(x, u)
        k2 = f(x + h / 2 * k1, u)
        k3 = f(x + h / 2 * k2, u)
        k4 = f(x + h * k3, u)
        x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        np.testing.assert_allclose(x, res.x[k + 1], rtol=1e-12, atol=1e-12)


def test_mpc_tracks_a_previewed_reference():
    # TrackingCost reads r from the model's X; model_X(k) hands each solve its reference window.
    from dynopt.models import TrackingCost

    N, steps = 15, 30
    r_full = np.where(np.arange(steps + N) >= 5, 1.0, 0.0)
    model = Problem(LinearPlant(AD, BD), OpenLoop(2, 1, N), TrackingCost([1.0, 0.0], DT, w_e=1.0, w_u=0.01),
                    horizon=N, x0=np.zeros(2), X=r_full[:N, None])
    res = receding_horizon(model, np.zeros(2), steps, model_X=lambda k: r_full[k:k + N, None],
                           options={"gtol": 1e-10})
    assert abs(res.x[-1, 0] - 1.0) < 0.02
    # first solve at k = 3 against the stacked least-squares solution (independent of dynopt):
    # J = dt sum_t (r_t - p_t)^2 + 0.01 u_t^2 over t = 0..N-1, p = Phi x + Gam U
    k = 3
    x0 = res.x[k]
    Phi = np.stack([np.linalg.matrix_power(AD, t)[0] for t in range(N)])
    Gam = np.zeros((N, N))
    for t in range(1, N):
        for j in range(t):
            Gam[t, j] = (np.linalg.matrix_power(AD, t - 1 - j) @ BD)[0, 0]
    M = np.vstack([Gam, np.sqrt(0.01) * np.eye(N)])
    rhs = np.concatenate([r_full[k:k + N] - Phi @ x0, np.zeros(N)])
    U = np.linalg.lstsq(M, rhs, rcond=None)[0]
    np.testing.assert_allclose(res.plans[k][:, 0], U, atol=1e-5)
