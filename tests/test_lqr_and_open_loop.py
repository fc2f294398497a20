"""Closed-form references: the DARE gain (LQR) and the batch least-squares open-loop optimum."""

import numpy as np
import pytest
import scipy.linalg
import scipy.optimize

import dynopt
from dynopt import Problem
from dynopt.models import LinearFeedback, LinearPlant, OpenLoop, Quadratic, QuadraticTerminal, double_integrator

METHODS = ["BFGS", "CG", "L-BFGS-B"]
# Stopping rules tight enough for the 1e-6 / 1e-4 bars below (measured margins ~5x-100x);
# tighter gtol makes BFGS/CG stop on "precision loss" as the gradient reaches rounding level.
LQR_OPTS = {"BFGS": {"gtol": 1e-6}, "CG": {"gtol": 1e-6}, "L-BFGS-B": {"gtol": 1e-11, "ftol": 1e-15}}
OPEN_LOOP_OPTS = {"BFGS": {"gtol": 1e-7}, "CG": {"gtol": 2e-7}, "L-BFGS-B": {"gtol": 1e-11, "ftol": 1e-15}}


def _lqr_problem(T=40, B=6):
    r = np.random.default_rng(3)
    A = np.array([[1.02, 0.1, 0.0], [0.0, 0.98, 0.1], [0.05, 0.0, 0.9]])
    Bm = r.standard_normal((3, 2))
    Q, R = np.diag([1.0, 2.0, 0.5]), np.diag([0.1, 0.3])
    P = scipy.linalg.solve_discrete_are(A, Bm, Q, R)
    K = np.linalg.solve(R + Bm.T @ P @ Bm, Bm.T @ P @ A)
    prob = Problem(LinearPlant(A, Bm), LinearFeedback(3, 2), Quadratic(Q, R), QuadraticTerminal(P),
                   horizon=T, x0=r.standard_normal((B, 3)))
    return prob, K


@pytest.mark.parametrize("method", METHODS)
def test_lqr_gain_matches_dare(method):
    """With terminal cost x'Px (P the DARE solution) the cost-to-go is x'Px at every step, so the
    stationary gain K = (R + B'PB)^-1 B'PA is optimal for every horizon and every initial
    state: BFGS/CG/L-BFGS-B over a static gain must find it.  1e-4 relative is the issue's bar;
    measured ~1e-6 (the start's gradient norm is ~3e5, gtol 1e-6)."""
    prob, K = _lqr_problem()
    res = dynopt.optimize(prob, method=method, options=LQR_OPTS[method])
    K_hat = res.params["policy"]["K"]
    assert np.abs(K_hat - K).max() / np.abs(K).max() < 1e-4
    assert res.success


def _open_loop_reference(A, Bm, Q, R, P, x0, T, bounds=None):
    """Batch least squares: x = Phi x0 + Gamma U, J = |Lq x|^2 + |Lr U|^2, solved by lsq_linear."""
    n, m = Bm.shape
    Phi = np.vstack([np.linalg.matrix_power(A, t) for t in range(T + 1)])
    Gam = np.zeros(((T + 1) * n, T * m))
    for t in range(1, T + 1):
        for s in range(t):
            Gam[t * n:(t + 1) * n, s * m:(s + 1) * m] = np.linalg.matrix_power(A, t - 1 - s) @ Bm
    W = scipy.linalg.block_diag(*([Q] * T + [P]))
    Lw = np.linalg.cholesky(W).T
    Lr = np.linalg.cholesky(scipy.linalg.block_diag(*([R] * T))).T
    M = np.vstack([Lw @ Gam, Lr])
    rhs = -np.concatenate([Lw @ Phi @ x0, np.zeros(T * m)])
    if bounds is None:
        # the KKT (normal) equations of the unconstrained quadratic
        return np.linalg.solve(M.T @ M, M.T @ rhs)
    return scipy.optimize.lsq_linear(M, rhs, bounds=bounds, tol=1e-14, lsmr_tol="auto", max_iter=10000).x


def _double_integrator_problem(T=30):
    plant = double_integrator(dt=0.1, mass=1.0)
    Q, R, P = np.diag([1.0, 0.1]), np.array([[0.01]]), np.diag([50.0, 10.0])
    x0 = np.array([2.0, -0.5])
    prob = Problem(plant, OpenLoop(2, 1, T), Quadratic(Q, R), QuadraticTerminal(P), horizon=T, x0=x0)
    A, Bm = plant.unflatten(plant.default_params())["A1"], plant.unflatten(plant.default_params())["B"]
    return prob, (A, Bm, Q, R, P, x0, T)


@pytest.mark.parametrize("method", METHODS)
def test_open_loop_double_integrator_matches_kkt(method):
    """The quadratic program's optimum from the normal equations; 1e-6 relative as the issue asks
    (measured 1e-7 for BFGS and L-BFGS-B, 7e-7 for CG with the options above)."""
    prob, args = _double_integrator_problem()
    U_ref = _open_loop_reference(*args)
    res = dynopt.optimize(prob, method=method, options=OPEN_LOOP_OPTS[method] | {"maxiter": 5000})
    U = res.params["policy"]["U"].ravel()
    assert np.abs(U - U_ref).max() / np.abs(U_ref).max() < 1e-6
    # the trajectory in the result belongs to the optimum
    assert res.trajectory.objective == pytest.approx(res.fun, rel=1e-14)


def test_open_loop_with_control_limits_keeps_bounds():
    """L-BFGS-B with |u| <= 1.5 N: bounds hold exactly, active ones bind, and the solution matches
    the bounded least-squares optimum of scipy.optimize.lsq_linear."""
    prob, args = _double_integrator_problem()
    U_free = _open_loop_reference(*args)
    assert np.abs(U_free).max() > 1.5  # the limit is active
    U_ref = _open_loop_reference(*args, bounds=(-1.5, 1.5))
    res = dynopt.optimize(prob, method="L-BFGS-B", bounds={"policy": (-1.5, 1.5)}, options=OPEN_LOOP_OPTS["L-BFGS-B"])
    U = res.params["policy"]["U"].ravel()
    assert U.min() >= -1.5 and U.max() <= 1.5
    assert np.sum(np.isclose(np.abs(U), 1.5)) >= 1
    assert np.abs(U - U_ref).max() < 1e-5


def test_bounds_need_lbfgsb():
    prob, _ = _double_integrator_problem()
    with pytest.raises(ValueError, match=r"bounds: only methods \[.L-BFGS-B., .trust-constr.\] take bounds"):
        dynopt.optimize(prob, method="BFGS", bounds={"policy": (-1, 1)})
