"""Standard errors of any Problem against statsmodels.

A regression written as a dynopt Problem: one scenario per observation (B = n, T = 1), a
static plant, and a CasADi stage cost reading the observation from X.  The objective is the
mean loss, so B J is the sum of squares (OLS) or the negative log-likelihood (logit), and
``covariance`` must give statsmodels' nonrobust and HC0 (sandwich) standard errors.  Both
sides are exact formulas evaluated in float64 from the same estimates (statsmodels' own
Newton solution, polished here): 1e-7 relative covers the optimizer's last digits.
"""

import numpy as np
import pytest

import casadi as ca
import dynopt
from dynopt.analysis.covariance import Covariance, covariance, covariance_matrix

sm = pytest.importorskip("statsmodels.api")


def _regression_problem(y, Z, loss):
    n, k = Z.shape
    X = np.concatenate([y[:, None], Z], axis=1)[None]          # (T = 1, B = n, 1 + k)

    def sse(x, u, X, p):
        return (X[0] - ca.dot(X[1:], p["beta"])) ** 2

    def logit_nll(x, u, X, p):
        eta = ca.dot(X[1:], p["beta"])
        return ca.log(1 + ca.exp(eta)) - X[0] * eta

    cost = dynopt.CasadiStageCost(sse if loss == "sse" else logit_nll, n_state=1, n_exog=1 + k,
                                  params=dict(beta=np.zeros(k)))
    plant = dynopt.CasadiPlant(lambda x, u, p: x, n_state=1)
    return dynopt.Problem(plant, None, cost, horizon=1, x0=np.zeros((n, 1)), X=X, decision=("cost",))


def _data(seed=0, n=80):
    r = np.random.default_rng(seed)
    Z = np.column_stack([np.ones(n), r.standard_normal(n), r.uniform(-1, 1, n)])
    return r, Z


def test_ols_nonrobust_and_hc0():
    r, Z = _data()
    y = Z @ [0.5, -1.0, 2.0] + (0.3 + 0.5 * np.abs(Z[:, 2])) * r.standard_normal(Z.shape[0])
    ols = sm.OLS(y, Z).fit()
    problem = _regression_problem(y, Z, "sse")
    c = covariance(problem, ols.params, loss="sse", nobs=Z.shape[0])
    np.testing.assert_allclose(c.se, ols.bse, rtol=1e-9)
    assert c.names == ("cost.beta[0]", "cost.beta[1]", "cost.beta[2]")
    np.testing.assert_allclose(c.ci(0.05), ols.conf_int(0.05), rtol=1e-9)   # Student-t, n - p dof
    hc0 = sm.OLS(y, Z).fit(cov_type="HC0")
    s = covariance(problem, ols.params, kind="sandwich", loss="sse", nobs=Z.shape[0])
    np.testing.assert_allclose(s.se, hc0.bse, rtol=1e-9)
    np.testing.assert_allclose(s.corr, hc0.cov_params() / np.outer(hc0.bse, hc0.bse), rtol=1e-9, atol=1e-12)


def test_logit_hessian_and_sandwich():
    r, Z = _data(1, 300)
    p = 1 / (1 + np.exp(-(Z @ [0.2, 1.0, -1.5])))
    y = (r.uniform(size=Z.shape[0]) < p).astype(float)
    res = sm.Logit(y, Z).fit(disp=0, method="newton", tol=1e-12)
    problem = _regression_problem(y, Z, "nll")
    c = covariance(problem, res.params)
    np.testing.assert_allclose(c.se, res.bse, rtol=1e-7)
    assert c.kind == "hessian" and c.dof is None
    np.testing.assert_allclose(c.ci(0.1), res.conf_int(0.1), rtol=1e-7)     # normal quantiles
    rob = sm.Logit(y, Z).fit(disp=0, method="newton", tol=1e-12, cov_type="HC0")
    s = covariance(problem, res.params, kind="sandwich")
    np.testing.assert_allclose(s.se, rob.bse, rtol=1e-7)
    assert "cost.beta[2]" in s.summary()


def test_blocks_and_errors():
    r, Z = _data(2, 30)
    y = Z @ [1.0, 0.0, 0.0] + 0.1 * r.standard_normal(30)
    problem = _regression_problem(y, Z, "sse")
    W = np.linalg.lstsq(Z, y, rcond=None)[0]
    c = covariance(problem, W, loss="sse", nobs=30)
    assert isinstance(c, Covariance)
    sub = c.block("cost.beta")
    np.testing.assert_array_equal(sub.se, c.se)
    with pytest.raises(KeyError, match="expected one of"):
        c.block("plant")
    with pytest.raises(TypeError, match="nobs: loss='sse' needs"):
        covariance(problem, W, loss="sse")
    with pytest.raises(ValueError, match="kind: expected one of"):
        covariance(problem, W, kind="opg")
    # Gauss-Newton of a linear least-squares problem: the cost is quadratic in the data map, so
    # the generalized Gauss-Newton matrix is 2 Z'Z, the same covariance as the Hessian
    gn = covariance(problem, W, kind="gauss-newton", loss="sse", nobs=30)
    np.testing.assert_allclose(gn.se, c.se, rtol=1e-10)
    with pytest.raises(ValueError, match=r"jacobian: expected shape \(nobs, 3\)"):
        covariance(problem, W, kind="gauss-newton", jacobian=np.ones((30, 2)))
    # a collinear design: the error names the unidentified direction
    Zc = np.column_stack([Z[:, :2], Z[:, 1]])
    pc = _regression_problem(y, Zc, "sse")
    with pytest.raises(ValueError, match=r"not identified.*cost\.beta\[(1|2)\]|cost\.beta\[(1|2)\].*not identified"):
        covariance(pc, np.zeros(3), loss="nll")
    with pytest.raises(ValueError, match="alpha: expected a number in"):
        c.ci(1.5)
    Jr = Z
    np.testing.assert_allclose(covariance_matrix("gauss-newton", jacobian=Jr, scale=2.0), 2 * np.linalg.inv(Z.T @ Z))


def test_x0_block_hessian_and_sandwich_closed_form():
    """Initial states in the decision: B J = sum_b [(y_b - z_b beta)^2 + (x0_b - 1)^2], so the x0
    block of the Hessian is 2 I (se = 1/sqrt 2) and the sandwich se of x0_b is |x0_b - 1|."""
    r = np.random.default_rng(0)
    n = 6
    Z = np.column_stack([np.ones(n), r.standard_normal(n)])
    y = Z @ [1.0, 2.0] + 0.1 * r.standard_normal(n)
    X = np.concatenate([y[:, None], Z], axis=1)[None]
    cost = dynopt.CasadiStageCost(lambda x, u, X, p: (X[0] - ca.dot(X[1:], p["beta"])) ** 2 + (x[0] - 1) ** 2,
                                  n_state=1, n_exog=3, params=dict(beta=np.zeros(2)))
    x0 = 1 + 0.1 * np.arange(n)[:, None]
    problem = dynopt.Problem(dynopt.CasadiPlant(lambda x, u, p: x, n_state=1), None, cost, horizon=1, x0=x0, X=X,
                             decision=("cost", "x0"))
    W = problem.pack(cost=np.linalg.lstsq(Z, y, rcond=None)[0], x0=x0)
    c = covariance(problem, W)
    assert c.names[2:4] == ("x0[0,0]", "x0[1,0]")
    np.testing.assert_allclose(c.block("x0").se, np.full(n, np.sqrt(0.5)), rtol=1e-12)
    np.testing.assert_allclose(c.block("cost").se, np.sqrt(np.diag(np.linalg.inv(2 * Z.T @ Z))), rtol=1e-10)
    s = covariance(problem, W, kind="sandwich")
    np.testing.assert_allclose(s.block("x0").se, np.abs(x0.ravel() - 1), rtol=1e-10, atol=1e-14)
