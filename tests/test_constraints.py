"""Constraints (dynopt.control.constraints) against IPOPT through casadi.Opti, closed forms and
finite differences."""

import warnings

import casadi as ca
import numpy as np
import pytest

import dynopt
import dynopt.models
from dynopt.control.constraints import (ConstrainedProblem, ConstraintFunction, PathConstraint, StateConstraint,
                                        TerminalConstraint, solve)
from dynopt.core.integrators import IntegralCost
from dynopt.models import LinearPlant, OpenLoop, Quadratic

from conftest import _load_example


# --------------------------------------------------------------------------- Van der Pol (CasADi's example)
# the example's plant and running cost (NumPy, with their duals)
_VDP = _load_example("vanderpol_constrained")
VanDerPol, Running = _VDP.VanDerPol, _VDP.Running


def vdp_problem(N, M, Tf=10.0):
    plant = dynopt.Discretized(VanDerPol(), dynopt.RK4(Tf / N, substeps=M))
    prob = dynopt.Problem(plant, OpenLoop(2, 1, N), IntegralCost(Running(), plant), horizon=N, x0=[0.0, 1.0])
    return ConstrainedProblem(prob, [StateConstraint(lambda x: x[0], lower=-0.25, n_state=2, name="x1_min")])


vdp_ipopt = _VDP.ipopt_reference  # CasADi's direct_single_shooting.py with Opti and IPOPT


@pytest.mark.slow
@pytest.mark.parametrize("method", ["trust-constr"])  # auglag: test_example_vanderpol_constrained
def test_van_der_pol_matches_ipopt(method):
    N, M = 10, 2  # CasADi's example: N = 20, M = 4 (examples/vanderpol_constrained.py); smaller here for speed
    cp = vdp_problem(N, M)
    U_ref, J_ref, lam_ref = vdp_ipopt(N, M)
    res = solve(cp, method=method, bounds={"policy": (-1, 1)})
    # criterion of issue 12: optimum within 1e-6 relative, violation <= 1e-8
    assert res.max_violation <= 1e-8
    assert abs(res.fun - J_ref) <= 1e-6 * J_ref
    assert np.abs(res.x - U_ref).max() < 1e-4
    # IPOPT's lam_g has the same sign convention (grad J + lam grad g = 0): active lower bound -> lam <= 0
    np.testing.assert_allclose(res.multipliers["x1_min"][1:, 0, 0], lam_ref, atol=1e-4)
    assert res.success


def test_van_der_pol_jacobian_vs_finite_differences():
    cp = vdp_problem(10, 1)
    w = np.random.default_rng(1).uniform(-1, 1, 10)
    Je, Ji = cp.jacobians(w)
    assert Je.shape == (0, 10) and Ji.shape == (10, 10)
    h = 1e-6
    J_fd = np.column_stack([(cp.values(w + h * e)[1] - cp.values(w - h * e)[1]) / (2 * h) for e in np.eye(10)])
    np.testing.assert_allclose(Ji, J_fd, atol=1e-7)
    # row i (x1[i+1] >= -0.25) depends on the controls u[0..i] only (causality)
    assert np.all(np.triu(Ji, 1) == 0) and np.all(np.abs(np.diag(Ji)) > 0)


# --------------------------------------------------------------------------- terminal equality
def di_problem(T=30, dt=0.1):
    A = np.array([[1.0, dt], [0.0, 1.0]])
    B = np.array([[0.5 * dt ** 2], [dt]])
    prob = dynopt.Problem(LinearPlant(A, B), OpenLoop(2, 1, T), Quadratic(np.zeros(2), np.ones(1)), horizon=T,
                          x0=[0.0, 0.0])
    return prob, A, B


def test_terminal_equality_matches_closed_form_and_ipopt():
    T, target = 30, np.array([1.0, 0.0])
    prob, A, B = di_problem(T)
    cp = ConstrainedProblem(prob, [TerminalConstraint(lambda x: x, equal=target, n_state=2, name="xT")])
    # closed form: min |u|^2 s.t. G u = target (x0 = 0), G = [A^(T-1) B, ..., B]
    G = np.column_stack([np.linalg.matrix_power(A, T - 1 - t) @ B for t in range(T)])
    u_star = G.T @ np.linalg.solve(G @ G.T, target)
    nu = -2 * np.linalg.solve(G @ G.T, target)       # grad |u|^2 + G^T nu = 0
    # IPOPT on the same discretised problem
    opti = ca.Opti()
    U = opti.variable(T)
    x = ca.MX.zeros(2)
    for t in range(T):
        x = ca.mtimes(ca.DM(A), x) + ca.DM(B) * U[t]
    opti.subject_to(x == ca.DM(target))
    opti.minimize(ca.sumsqr(U))
    opti.solver("ipopt", {"print_time": False}, {"print_level": 0, "sb": "yes", "tol": 1e-12})
    sol = opti.solve()
    J_ipopt = float(sol.value(ca.sumsqr(U)))
    for method in ("auglag", "SLSQP", "trust-constr"):
        res = solve(cp, method=method)
        assert res.max_violation <= 1e-8, method
        assert abs(res.fun - J_ipopt) <= 1e-6 * J_ipopt, method
        np.testing.assert_allclose(res.x, u_star, atol=1e-6)
        np.testing.assert_allclose(res.multipliers["xT"][0], nu, rtol=1e-4, err_msg=method)


def test_path_constraint_with_controls_and_numpy_function():
    """|u| <= 0.05 written as a path constraint (NumPy function with its dual) equals the same
    problem with simple bounds solved by L-BFGS-B."""

    class Abs(ConstraintFunction):
        n_state, n_control, n_out = 2, 1, 1

        def forward(self, t, x, u):
            return u.copy(), None

        def vjp(self, ctx, g_bar):
            return None, g_bar.copy()

    T, target = 30, np.array([0.5, 0.0])
    prob, A, B = di_problem(T)
    cons = [TerminalConstraint(lambda x: x, equal=target, n_state=2, name="xT"),
            PathConstraint(Abs(), lower=-0.5, upper=0.5, n_state=2, n_control=1, name="u_lim")]
    res = solve(ConstrainedProblem(prob, cons))
    ref = solve(ConstrainedProblem(prob, cons[:1]), method="SLSQP", bounds={"policy": (-0.5, 0.5)})
    assert res.max_violation <= 1e-8
    assert abs(res.fun - ref.fun) <= 1e-6 * ref.fun
    assert np.abs(res.x).max() <= 0.5 + 1e-8


# --------------------------------------------------------------------------- bad input
def test_bad_constraints_raise_clear_errors():
    prob, _, _ = di_problem(5)
    with pytest.raises(ValueError, match=r"returned shape \(2, 2\); expected a column"):
        StateConstraint(lambda x: ca.repmat(x, 1, 2), upper=1.0, n_state=2)
    with pytest.raises(ValueError, match="lower has 3 entries but the function returns r=2"):
        StateConstraint(lambda x: x, lower=[0, 0, 0], n_state=2)
    with pytest.raises(ValueError, match=r"infeasible bounds, lower\[1\] = 2.0 exceeds upper\[1\] = 1.0"):
        StateConstraint(lambda x: x, lower=[0, 2], upper=[1, 1], n_state=2)
    with pytest.raises(ValueError, match="expected lower and/or upper"):
        TerminalConstraint(lambda x: x, n_state=2)
    with pytest.raises(TypeError, match="casadi operations"):
        StateConstraint(lambda x: np.sin(x.full()), upper=1.0, n_state=2)
    with pytest.raises(ValueError, match="n_state=3, but the plant has n=2"):
        ConstrainedProblem(prob, [StateConstraint(lambda x: x[0], upper=1.0, n_state=3)])
    with pytest.raises(ValueError, match=r"steps must lie in 0 .. 5"):
        ConstrainedProblem(prob, [StateConstraint(lambda x: x[0], upper=1.0, n_state=2, steps=[6])])
    with pytest.raises(ValueError, match="fixed initial state x0 violates it by 1"):
        ConstrainedProblem(prob, [StateConstraint(lambda x: x[0], lower=1.0, n_state=2, steps=[0, 1])])

    class Wrong(ConstraintFunction):
        n_state, n_control, n_out = 2, 0, 2

        def forward(self, t, x, u):
            return x[:, :1], None

        def vjp(self, ctx, g_bar):
            return None, None

    cp = ConstrainedProblem(prob, [TerminalConstraint(Wrong(), equal=0.0, n_state=2, name="wrong")])
    with pytest.raises(ValueError, match=r"wrong: the constraint function returned \(1, 1\); expected \(B, r\) = \(1, 2\)"):
        cp.values(prob.W0)
    cp_ok = ConstrainedProblem(prob, [TerminalConstraint(lambda x: x, equal=0.0, n_state=2)])
    with pytest.raises(ValueError, match=r"bounds: infeasible, lower bound 1.0 exceeds upper bound -1.0 at W\[0\]"):
        solve(cp_ok, bounds={"policy": (1.0, -1.0)})
    with pytest.raises(ValueError, match=r"bounds: block 'plant' is not in the decision"):
        solve(cp_ok, bounds={"plant": (0.0, 1.0)})
    with pytest.raises(ValueError, match="method: expected 'auglag', 'SLSQP' or 'trust-constr'"):
        solve(ConstrainedProblem(prob, [TerminalConstraint(lambda x: x, equal=0.0, n_state=2)]), method="IPOPT")


def test_unreachable_terminal_state_warns():
    """A terminal state no control can reach (velocity and position far beyond |u| <= 0.01):
    solve warns with the violation instead of returning a silent failure."""
    prob, _, _ = di_problem(5)
    cp = ConstrainedProblem(prob, [TerminalConstraint(lambda x: x, equal=[10.0, 0.0], n_state=2)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = solve(cp, bounds={"policy": (-0.01, 0.01)}, max_outer=4)
    assert res.max_violation > 1
    assert any("max violation" in str(w.message) for w in caught)


# --------------------------------------------------------------------------- examples, headless
@pytest.mark.slow
def test_example_vanderpol_constrained(capsys, load_example):
    # the example runs CasADi's M = 4 sub-steps; M = 1 here keeps the run short
    res, res_ms, J_ref = load_example("vanderpol_constrained").main(M=1)
    for r in (res, res_ms):
        assert r.max_violation <= 1e-8 and abs(r.fun - J_ref) <= 1e-6 * J_ref
    assert "IPOPT (CasADi)" in capsys.readouterr().out


@pytest.mark.slow
def test_example_cartpole_terminal_matches_ipopt(capsys, load_example):
    T, dt = 16, 0.2
    mod = load_example("cartpole_terminal")
    res = mod.main(horizon=T, dt=dt)
    assert res.max_violation <= 1e-8
    np.testing.assert_allclose(res.trajectory.x[-1, 0], 0.0, atol=1e-8)
    # IPOPT on the same discrete map (CartPole's CasADi form, the same fused RK4 step), from the same start
    step = mod.build(T, dt).problem.plant.function
    opti = ca.Opti()
    U = opti.variable(T)
    x = ca.DM([0.0, np.pi, 0.0, 0.0])
    p = ca.DM(dynopt.models.CartPole().default_params())
    for t in range(T):
        x = step(x, U[t], ca.DM.zeros(0, 1), p)
    opti.subject_to(x == 0)
    opti.subject_to(opti.bounded(-20, U, 20))
    opti.minimize(dt * ca.sumsqr(U))
    opti.solver("ipopt", {"print_time": False}, {"print_level": 0, "sb": "yes", "tol": 1e-12})
    sol = opti.solve()
    J_ipopt = float(sol.value(dt * ca.sumsqr(U)))
    assert abs(res.fun - J_ipopt) <= 1e-6 * J_ipopt
    assert "max violation" in capsys.readouterr().out
