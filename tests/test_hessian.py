"""Hessian-vector products against CasADi's exact Hessian of the whole unrolled trajectory.

The reference is ``ca.hessian`` of ``dynopt.casadi.reference.build_unrolled`` (CasADi's own AD of
the unrolled graph; nothing of dynopt's adjoint sweep), mapped from CasADi's parameter vector Z
to the decision W (shared blocks add up).  dynopt's products are forward mode over its own
adjoint sweep: both exact, they differ by rounding only, observed <= 1e-14 relative to the
largest Hessian entry; 1e-10 is the issue's bar.  The central-difference fallback carries
O(h^2) truncation (h ~ 6e-6 (1 + |W|)): 1e-6 relative leaves a wrong product (O(1)) far out.
"""

import numpy as np
import pytest
import scipy.optimize

import casadi as ca
from dynopt import RK4, Discretized, Problem, StageCost
from dynopt.casadi.sweep_steps import inputs as _inputs
from dynopt.casadi.components import CasadiPlant, CasadiPolicy, CasadiStageCost
from dynopt.casadi.reference import build_unrolled
from dynopt.gradients.hessian import (HessianFallbackWarning, hessian, hessp, hessp_function, value_grad_hessp)
from dynopt.models import (LinearFeedback, LinearPlant, MLPPolicy, OpenLoop, Pendulum, Quadratic, QuadraticTerminal,
                           SwingUpCost)

RTOL = 1e-10


def reference_hessian(problem, W):
    """CasADi's exact Hessian of J over the unrolled trajectory, as an (n_decision, n_decision) array."""
    F = build_unrolled(problem, gradient=False)
    Z = ca.MX.sym("Z", F.size1_in(0))
    X = ca.MX.sym("X", F.size1_in(1), F.size2_in(1))
    HF = ca.Function("H", [Z, X], [ca.hessian(F(Z, X), Z)[0]])
    b = problem.unpack(W)
    names = ("policy", "plant", "cost", "terminal", "x0")
    Zv = np.concatenate([np.asarray(b[k], float).ravel() for k in names])
    HZ = HF(Zv, _inputs(problem, W)[1].T).full()
    zoff, off = {}, 0
    for k in names:
        zoff[k] = np.arange(off, off + np.asarray(b[k]).size)
        off += np.asarray(b[k]).size
    M = np.zeros((len(Zv), problem.n_decision))     # dZ/dW
    for name, sl in problem.block_slices().items():
        cols = np.arange(sl.start, sl.stop)
        M[zoff[name], cols] = 1.0
        for blk, src in problem.shared.items():
            if src == name:
                M[zoff[blk], cols] = 1.0
    return M.T @ HZ @ M


def pendulum_mlp():
    r = np.random.default_rng(0)
    return Problem(Discretized(Pendulum(), RK4(0.05)), MLPPolicy(2, 1, (5, 4), u_max=2.0, angles=(0,), seed=1),
                   SwingUpCost(0.05), QuadraticTerminal(np.eye(2)), horizon=20, x0=r.uniform(-1, 1, (3, 2)),
                   decision=("policy", "plant", "x0"))


def lag2_casadi():
    r = np.random.default_rng(5)

    def f(x, u, X, p):
        x1, x2 = x
        return ca.tanh(ca.mtimes(p["A1"], x1)) + p["a2"] * x1 * x2 + ca.mtimes(p["B"], u) + p["e"] * X[0]

    plant = CasadiPlant(f, n_state=2, n_control=1, n_exog=1, lags=2,
                        params=dict(A1=[[0.5, 0.2], [-0.3, 0.4]], a2=[0.1, -0.2], B=[[0.0], [0.5]], e=[0.3, 0.1]))
    policy = CasadiPolicy(lambda x, p: -ca.mtimes(p["K"], ca.sin(x)), n_state=2, n_control=1,
                          params=dict(K=[[0.2, 0.4]]))
    T = 15
    return Problem(plant, policy, Quadratic([1.0, 1.0], [0.1]), QuadraticTerminal(np.eye(2)), horizon=T,
                   x0=0.3 * r.standard_normal((2, 3, 2)), X=0.1 * r.standard_normal((T, 3, 1)),
                   decision=("policy", "plant", "x0"))


def lag2_linear():
    r = np.random.default_rng(1)
    A = [0.5 * np.eye(3) + 0.1 * r.standard_normal((3, 3)), 0.2 * r.standard_normal((3, 3))]
    T = 12
    return Problem(LinearPlant(A, r.standard_normal((3, 2)), E=r.standard_normal((3, 2))),
                   LinearFeedback(3, 2, bias=True, K0=0.1 * np.ones((2, 3))), Quadratic(np.eye(3), [0.1, 0.1]),
                   QuadraticTerminal(2 * np.eye(3)), horizon=T, x0=r.standard_normal((2, 4, 3)),
                   X=r.standard_normal((T, 4, 2)), decision=("policy", "plant", "x0"))


def shared_cost():
    """A cost that reads the plant's parameters (shared={"cost": "plant"}), open-loop controls."""
    T = 10

    def f(x, u, p):
        return ca.vertcat(x[0] + 0.1 * x[1], x[1] + 0.1 * (-p[0] * ca.sin(x[0]) - p[1] * x[1] + u[0]))

    plant = CasadiPlant(f, n_state=2, n_control=1, params=[2.0, 0.3])
    cost = CasadiStageCost(lambda x, u, p: (x[0] - p[0]) ** 2 + p[1] * x[1] ** 2 + 0.1 * u[0] ** 2, n_state=2,
                           n_control=1, params=[0.0, 0.0])
    U0 = 0.3 * np.cos(np.arange(T))
    return Problem(plant, OpenLoop(2, 1, horizon=T, U0=U0), cost, horizon=T, x0=[[0.5, 0.0], [-0.2, 0.3]],
                   shared={"cost": "plant"}, decision=("policy", "plant", "x0"))


CASES = {"pendulum-mlp-rk4": pendulum_mlp, "lag2-casadi-exog": lag2_casadi, "lag2-linear": lag2_linear,
         "shared-open-loop": shared_cost}


@pytest.mark.parametrize("name", sorted(CASES))
def test_hessian_matches_casadi_unrolled(name):
    problem = CASES[name]()
    r = np.random.default_rng(7)
    W = problem.W0 + 0.05 * r.standard_normal(problem.n_decision)
    Href = reference_hessian(problem, W)
    H = hessian(problem, W, method="casadi")
    scale = np.abs(Href).max()
    assert np.abs(H - Href).max() <= RTOL * scale
    v = r.standard_normal(problem.n_decision)
    out = value_grad_hessp(problem, W, v)
    np.testing.assert_allclose(out.Hv, Href @ v, rtol=0, atol=RTOL * scale * np.abs(v).sum())
    J, g = problem.value_and_grad(W)          # the gradient that comes with the product is dynopt's
    assert abs(out.J - J) <= 1e-12 * abs(J)
    np.testing.assert_allclose(out.grad, g, rtol=0, atol=1e-11 * np.abs(g).max())


class NumpyOnly(StageCost):
    """A NumPy stage cost without a CasADi form (delegates to a built-in one)."""

    def __init__(self, inner):
        self.inner = inner

    def forward(self, t, x, u, X, p):
        return self.inner.forward(t, x, u, X, p)

    def vjp(self, ctx, c_bar):
        return self.inner.vjp(ctx, c_bar)


def test_fallback_is_central_difference_and_warns_once():
    exact = pendulum_mlp()
    cost = NumpyOnly(SwingUpCost(0.05))
    problem = Problem(exact.plant, exact.policy, cost, exact.terminal_cost, horizon=exact.horizon,
                      x0=exact.unpack(exact.W0)["x0"], decision=exact.decision)
    r = np.random.default_rng(3)
    W = problem.W0 + 0.05 * r.standard_normal(problem.n_decision)
    v = r.standard_normal(problem.n_decision)
    ref = hessp(exact, W, v, method="casadi")
    with pytest.warns(HessianFallbackWarning, match="central differences"):
        got = hessp(problem, W, v)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6 * np.abs(ref).max())
    hessp(problem, W, v)        # no second warning (filterwarnings=error would raise)
    with pytest.raises(TypeError, match="CasADi form"):
        hessp(problem, W, v, method="casadi")


def test_bad_input():
    problem = lag2_linear()
    W = problem.W0
    with pytest.raises(ValueError, match=r"v: expected shape \(%d,\)" % problem.n_decision):
        hessp(problem, W, np.ones(3))
    with pytest.raises(ValueError, match="v: expected finite"):
        hessp(problem, W, np.full(problem.n_decision, np.nan))
    with pytest.raises(ValueError, match="method: expected one of"):
        hessp(problem, W, W, method="newton")
    with pytest.raises(ValueError, match="W: expected shape"):
        hessp(problem, W[:-1], W)


def _lq(T=30):
    """Open-loop LQ: x+ = A x + B u, J = sum_t x'Qx + u'Ru (t = 0..T-1) + x_T' P x_T, two scenarios."""
    A = np.array([[1.0, 0.1], [-0.05, 0.98]])
    Bm = np.array([[0.005], [0.1]])
    Q, R, P = np.diag([1.0, 0.1]), np.array([[0.01]]), 10 * np.eye(2)
    x0 = np.array([[1.0, 0.0], [-0.5, 0.8]])
    problem = Problem(LinearPlant(A, Bm), OpenLoop(2, 1, horizon=T), Quadratic(Q, R), QuadraticTerminal(P),
                      horizon=T, x0=x0, decision=("policy",))
    # closed form: x_t = A^t x0 + sum_{s<t} A^{t-1-s} B u_s; J = mean_b (U'HU + 2 U'G x0_b + const)
    n = 2
    Gam = np.zeros(((T + 1) * n, T))
    Phi = np.zeros(((T + 1) * n, n))
    for t in range(T + 1):
        Phi[t * n:(t + 1) * n] = np.linalg.matrix_power(A, t)
        for s in range(t):
            Gam[t * n:(t + 1) * n, s] = (np.linalg.matrix_power(A, t - 1 - s) @ Bm)[:, 0]
    Qbar = np.kron(np.diag(np.r_[np.ones(T), 0.0]), Q)
    Qbar[T * n:, T * n:] = P
    H = Gam.T @ Qbar @ Gam + R[0, 0] * np.eye(T)
    U = -np.linalg.solve(H, Gam.T @ Qbar @ Phi @ x0.mean(axis=0))
    return problem, U, np.linalg.cond(H)


# (method, options, max iterations): Newton-CG and trust-ncg solve each Newton system inexactly
# (CG stopped by a forcing term), trust-krylov with inexact=False solves its subproblem exactly
# (one step from inside the trust region); L-BFGS-B needs 33 iterations on this problem.
NEWTON = [("Newton-CG", {"xtol": 1e-10}, 10), ("trust-ncg", {"gtol": 1e-7}, 10),
          ("trust-krylov", {"gtol": 1e-7, "inexact": False}, 3)]


@pytest.mark.parametrize("method, options, max_nit", NEWTON, ids=[m[0] for m in NEWTON])
def test_open_loop_lq_newton_converges_in_a_few_iterations(method, options, max_nit):
    problem, U_ref, _ = _lq()
    hp = hessp_function(problem)
    res = scipy.optimize.minimize(problem.value_and_grad, problem.W0, jac=True, hessp=hp, method=method,
                                  options=options)
    assert res.success, res.message
    assert res.nit <= max_nit
    np.testing.assert_allclose(res.x, U_ref, rtol=0, atol=1e-6 * np.abs(U_ref).max())


def test_one_exact_newton_step_solves_the_lq_problem():
    problem, U_ref, cond = _lq()
    W = problem.W0
    J, g = problem.value_and_grad(W)
    step = -np.linalg.solve(hessian(problem, W), g)
    # the closed form's rounding: cond(H) ~ 5e2 times eps times |U|
    np.testing.assert_allclose(W + step, U_ref, rtol=0, atol=1e-10 * np.abs(U_ref).max())


@pytest.mark.slow
def test_example_newton_vs_lbfgs_reaches_a_kkt_point(load_example):
    mod = load_example("newton_vs_lbfgs")
    runs = mod.main(quick=True)
    r = runs["trust-constr"]
    assert r.success and r.count["hessp"] > 0
    assert np.all(np.abs(r.x) <= mod.UMAX)
    problem = mod.swingup_problem()
    # first-order optimality with bounds, from dynopt's gradient (independent of the products)
    assert mod.projected_gradient_norm(problem, r.x) < 1e-5


def test_gauss_newton_products():
    """G = Jphi' (d2 Jc) Jphi against the trajectory Jacobian by central differences of simulate()
    (quadratic costs: d2 Jc = 2 Q, 2 R, 2 P per step; FD error ~1e-9 relative, bar 1e-6); on an
    open-loop LQ problem G is the exact Hessian (no curvature in the dynamics)."""
    from dynopt.gradients.hessian import gauss_newton_hessp
    r = np.random.default_rng(2)
    Q, R, P = np.diag([1.0, 0.3]), np.array([[0.05]]), np.diag([2.0, 1.0])
    problem = Problem(Discretized(Pendulum(), RK4(0.05)), MLPPolicy(2, 1, (3,), u_max=2.0, seed=4),
                      Quadratic(Q, R, x_ref=[0.5, 0.0]), QuadraticTerminal(P), horizon=12,
                      x0=r.uniform(-1, 1, (2, 2)), decision=("policy", "plant", "x0"))
    W = problem.W0 + 0.05 * r.standard_normal(problem.n_decision)
    n = problem.n_decision
    G = np.column_stack([gauss_newton_hessp(problem, W, e) for e in np.eye(n)])
    h = 1e-6
    Jx, Ju = [], []
    for i in range(n):
        e = np.zeros(n)
        e[i] = h
        tp, tm = problem.simulate(W + e), problem.simulate(W - e)
        Jx.append((tp.x - tm.x) / (2 * h))
        Ju.append((tp.u - tm.u) / (2 * h))
    Jx, Ju = np.stack(Jx, -1), np.stack(Ju, -1)          # (T+1, B, n, nW), (T, B, m, nW)
    B, T = problem.B, problem.horizon
    Gref = (2 * np.einsum("tbiw,ij,tbjv->wv", Jx[:T], Q, Jx[:T]) + 2 * np.einsum("tbiw,ij,tbjv->wv", Ju, R, Ju)
            + 2 * np.einsum("biw,ij,bjv->wv", Jx[T], P, Jx[T])) / B
    np.testing.assert_allclose(G, Gref, rtol=0, atol=1e-6 * np.abs(Gref).max())
    assert np.linalg.eigvalsh(0.5 * (G + G.T)).min() > -1e-12 * np.abs(G).max()
    lq, _, _ = _lq()
    v = r.standard_normal(lq.n_decision)
    np.testing.assert_allclose(gauss_newton_hessp(lq, lq.W0, v), hessp(lq, lq.W0, v), rtol=0,
                               atol=1e-12 * np.abs(hessp(lq, lq.W0, v)).max())
