"""LQR toolkit: gains against scipy.linalg's Riccati solvers, closed forms and python-control."""

import numpy as np
import pytest
import scipy.linalg
from scipy.signal import cont2discrete

from dynopt.control.lqr import c2d, dlqr, finite_horizon_lqr, is_stabilizable, lqr

RNG = np.random.default_rng(3)
A4 = RNG.standard_normal((4, 4))
B4 = RNG.standard_normal((4, 2))
Q4 = np.diag([1.0, 2.0, 0.5, 3.0])
R4 = np.array([[1.0, 0.2], [0.2, 0.5]])


def test_dlqr_matches_solve_discrete_are():
    K, S, E = dlqr(A4, B4, Q4, R4)
    S_ref = scipy.linalg.solve_discrete_are(A4, B4, Q4, R4)
    K_ref = np.linalg.solve(R4 + B4.T @ S_ref @ B4, B4.T @ S_ref @ A4)
    np.testing.assert_allclose(S, S_ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(K, K_ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(np.sort_complex(E), np.sort_complex(np.linalg.eigvals(A4 - B4 @ K_ref)), rtol=1e-9)
    assert np.all(np.abs(E) < 1)


def test_lqr_matches_solve_continuous_are_with_cross_term():
    N = 0.1 * RNG.standard_normal((4, 2))
    K, S, E = lqr(A4, B4, Q4, R4, N)
    S_ref = scipy.linalg.solve_continuous_are(A4, B4, Q4, R4, s=N)
    np.testing.assert_allclose(S, S_ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(K, np.linalg.solve(R4, B4.T @ S_ref + N.T), rtol=1e-9, atol=1e-12)
    assert np.all(E.real < 0)


def test_scalar_closed_forms():
    # continuous: xdot = a x + b u, q x^2 + r u^2 -> s = r (a + sqrt(a^2 + b^2 q / r)) / b^2, k = b s / r
    a, b, q, r = 0.7, 2.0, 3.0, 0.5
    K, S, E = lqr([[a]], [[b]], [[q]], [[r]])
    s = r * (a + np.sqrt(a * a + b * b * q / r)) / (b * b)
    np.testing.assert_allclose(S[0, 0], s, rtol=1e-12)
    np.testing.assert_allclose(K[0, 0], b * s / r, rtol=1e-12)
    np.testing.assert_allclose(E[0], -np.sqrt(a * a + b * b * q / r), rtol=1e-12)
    # discrete, a=b=q=r=1: s^2 - s - 1 = 0 -> s = golden ratio, k = s / (1 + s)
    K, S, E = dlqr([[1.0]], [[1.0]], [[1.0]], [[1.0]])
    phi = (1 + np.sqrt(5)) / 2
    np.testing.assert_allclose(S[0, 0], phi, rtol=1e-12)
    np.testing.assert_allclose(K[0, 0], phi / (1 + phi), rtol=1e-12)


def test_finite_horizon_converges_to_dare_and_gives_the_optimal_cost():
    Ad, Bd = c2d(A4 * 0.3, B4, 0.1)
    K_inf, S_inf, _ = dlqr(Ad, Bd, Q4, R4)
    # Qf = S is the recursion's fixed point; from Qf = Q it converges to the DARE solution
    res = finite_horizon_lqr(Ad, Bd, Q4, R4, horizon=3, Qf=S_inf)
    np.testing.assert_allclose(res.P, np.broadcast_to(S_inf, (4, 4, 4)), rtol=1e-9, atol=1e-12)
    res = finite_horizon_lqr(Ad, Bd, Q4, R4, horizon=3000)
    np.testing.assert_allclose(res.K[0], K_inf, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(res.P[0], S_inf, rtol=1e-9, atol=1e-12)
    # short horizon: x0' P0 x0 equals the cost of the closed loop it defines (simulated), and the
    # optimal open-loop cost from the batch least-squares problem (independent reference)
    T, Qf = 6, 2.0 * np.eye(4)
    fh = finite_horizon_lqr(Ad, Bd, Q4, R4, horizon=T, Qf=Qf)
    x0 = RNG.standard_normal(4)
    x, J = x0.copy(), 0.0
    for t in range(T):
        u = -fh.K[t] @ x
        J += x @ Q4 @ x + u @ R4 @ u
        x = Ad @ x + Bd @ u
    J += x @ Qf @ x
    np.testing.assert_allclose(J, x0 @ fh.P[0] @ x0, rtol=1e-10)
    # stacked form: x = Phi x0 + Gam U, J = x'Qbar x + U'Rbar U, optimum x0'(...)x0
    n, m = Bd.shape
    Phi = np.vstack([np.linalg.matrix_power(Ad, t) for t in range(T + 1)])
    Gam = np.zeros(((T + 1) * n, T * m))
    for t in range(1, T + 1):
        for j in range(t):
            Gam[t * n:(t + 1) * n, j * m:(j + 1) * m] = np.linalg.matrix_power(Ad, t - 1 - j) @ Bd
    Qbar = scipy.linalg.block_diag(*([Q4] * T + [Qf]))
    Rbar = scipy.linalg.block_diag(*([R4] * T))
    H = Gam.T @ Qbar @ Gam + Rbar
    U = -np.linalg.solve(H, Gam.T @ Qbar @ Phi @ x0)
    xs = Phi @ x0 + Gam @ U
    np.testing.assert_allclose(xs @ Qbar @ xs + U @ Rbar @ U, J, rtol=1e-9)


def test_finite_horizon_time_varying():
    T = 5
    As = np.stack([np.eye(2) + 0.1 * t * np.array([[0.0, 1.0], [0.0, 0.0]]) for t in range(T)])
    Bs = np.stack([np.array([[0.0], [1.0 + 0.1 * t]]) for t in range(T)])
    fh = finite_horizon_lqr(As, Bs, np.eye(2), [[1.0]], horizon=T)
    # brute force: the same recursion written out for t = T-1 only
    P = np.eye(2)
    K_last = np.linalg.solve(1.0 + Bs[-1].T @ P @ Bs[-1], Bs[-1].T @ P @ As[-1])
    np.testing.assert_allclose(fh.K[-1], K_last, rtol=1e-12)
    assert fh.K.shape == (T, 1, 2) and fh.P.shape == (T + 1, 2, 2)


def test_c2d_matches_scipy_signal():
    Ac = np.array([[0.0, 1.0], [-2.0, -0.3]])
    Bc = np.array([[0.0], [1.0]])
    Ad, Bd = c2d(Ac, Bc, 0.05)
    Ad_ref, Bd_ref, *_ = cont2discrete((Ac, Bc, np.eye(2), np.zeros((2, 1))), 0.05, method="zoh")
    np.testing.assert_allclose(Ad, Ad_ref, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(Bd, Bd_ref, rtol=1e-12, atol=1e-15)
    # closed form for the double integrator
    Ad, Bd = c2d([[0.0, 1.0], [0.0, 0.0]], [[0.0], [1.0]], 0.2)
    np.testing.assert_allclose(Ad, [[1.0, 0.2], [0.0, 1.0]], atol=1e-15)
    np.testing.assert_allclose(Bd, [[0.02], [0.2]], rtol=1e-13)


def test_against_python_control():
    control = pytest.importorskip("control")
    K, S, E = dlqr(A4, B4, Q4, R4)
    K2, S2, E2 = control.dlqr(A4, B4, Q4, R4)
    np.testing.assert_allclose(K, K2, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(S, S2, rtol=1e-9, atol=1e-12)
    K, S, E = lqr(A4, B4, Q4, R4)
    K2, S2, E2 = control.lqr(A4, B4, Q4, R4)
    np.testing.assert_allclose(K, K2, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(np.sort_complex(E), np.sort_complex(E2), rtol=1e-9)
    sys_d = control.c2d(control.ss(A4, B4, np.eye(4), np.zeros((4, 2))), 0.1, method="zoh")
    Ad, Bd = c2d(A4, B4, 0.1)
    np.testing.assert_allclose(Ad, sys_d.A, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(Bd, sys_d.B, rtol=1e-10, atol=1e-13)


def test_clear_errors():
    A = np.diag([1.5, 0.5])
    B_bad = np.array([[0.0], [1.0]])  # the unstable mode 1.5 is not reachable
    assert not is_stabilizable(A, B_bad, discrete=True)
    assert is_stabilizable(np.diag([0.5, 0.2]), B_bad, discrete=True)
    with pytest.raises(ValueError, match=r"\(A, B\): expected a stabilisable pair.*1\.5"):
        dlqr(A, B_bad, np.eye(2), [[1.0]])
    with pytest.raises(ValueError, match=r"\(A, B\): expected a stabilisable pair"):
        lqr(np.diag([0.3, -1.0]), B_bad, np.eye(2), [[1.0]])
    with pytest.raises(ValueError, match=r"Q: expected a positive semidefinite weight, got smallest eigenvalue -1"):
        dlqr(np.eye(2), np.eye(2), np.diag([1.0, -1.0]), np.eye(2))
    with pytest.raises(ValueError, match=r"R: expected a positive definite weight"):
        dlqr(np.eye(2), np.eye(2), np.eye(2), np.diag([1.0, 0.0]))
    with pytest.raises(ValueError, match=r"Q: expected a symmetric matrix"):
        lqr(np.eye(2), np.eye(2), [[1.0, 0.5], [0.0, 1.0]], np.eye(2))
    with pytest.raises(ValueError, match=r"B: expected shape \(n, m\) with n=2"):
        dlqr(np.eye(2), np.ones((3, 1)), np.eye(2), [[1.0]])
    with pytest.raises(ValueError, match=r"dt: expected a positive scalar"):
        c2d(np.eye(2), np.ones((2, 1)), -0.1)
    with pytest.raises(ValueError, match=r"horizon: expected an integer >= 1, got 0"):
        finite_horizon_lqr(np.eye(2), np.ones((2, 1)), np.eye(2), [[1.0]], horizon=0)
    # stabilisable but an unobservable mode on the unit circle: no stabilising Riccati solution
    with pytest.raises(ValueError, match=r"Q: the discrete Riccati equation has no stabilising solution"):
        dlqr(np.diag([1.0, 0.5]), np.eye(2), np.diag([0.0, 1.0]), np.eye(2))
