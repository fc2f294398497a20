"""VAR against statsmodels and GARCH(1,1) against arch on real series; exact gradients vs FD."""


import numpy as np
import pandas as pd
import pytest

from dynopt.models.econometrics import GARCH, VAR

sm = pytest.importorskip("statsmodels.api")
arch = pytest.importorskip("arch")


def macro_growth():
    d = sm.datasets.macrodata.load_pandas().data
    return np.diff(np.log(d[["realgdp", "realcons", "realinv"]].to_numpy(dtype=float)), axis=0) * 100


def sp500_returns(n=2000):
    from arch.data import sp500
    px = sp500.load()["Adj Close"].to_numpy(dtype=float)  # ships inside arch, no network
    return 100 * np.diff(np.log(px))[-n:]


def central_fd(f, x, h):
    return np.array([(f(x + e) - f(x - e)) / (2 * h) for e in np.eye(len(x)) * h])


# ---------------------------------------------------------------------------- VAR
@pytest.mark.parametrize("start", [None, "ols", "zeros"])
def test_var_matches_statsmodels_on_macrodata(start):
    """start=None: closed-form least squares; "ols"/"zeros": BFGS on the exact (BPTT) gradient
    from there, the cross-check that both reach the same maximiser."""
    Y = macro_growth()
    res = VAR(Y, 2).fit(start=start)
    ref = sm.tsa.VAR(Y).fit(2)
    # statsmodels params: (1 + k p, k), one column per equation = dynopt's equation-major order
    np.testing.assert_allclose(res.values, ref.params.T.ravel(), rtol=1e-4 if start == "zeros" else 1e-9,
                               atol=1e-6 if start == "zeros" else 1e-12)
    assert res.llf == pytest.approx(ref.llf, rel=1e-9 if start == "zeros" else 1e-10)
    assert np.max(np.abs(res.grad)) / res.nobs < 1e-6
    # standard errors: statsmodels' df-corrected Sigma * n / (n - k p - 1) by default
    n, kp1 = res.nobs, 1 + 3 * 2
    np.testing.assert_allclose(res.bse, ref.stderr.T.ravel(), rtol=1e-4)
    assert res.cov_type == "nonrobust" and res.df_correction
    mle = VAR(Y, 2).fit(start=start, df_correction=False)
    np.testing.assert_allclose(mle.bse, ref.stderr.T.ravel() * np.sqrt((n - kp1) / n), rtol=1e-4)
    fc = res.forecast(4)
    np.testing.assert_allclose(fc["mean"], ref.forecast(Y[-2:], 4), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(fc["mse"], ref.mse(4), rtol=1e-6)
    np.testing.assert_allclose(mle.forecast(4)["mse"], ref.mse(4) * (n - kp1) / n, rtol=1e-6)
    np.testing.assert_allclose(res.extra["sigma_u_mle"], ref.sigma_u_mle, rtol=1e-8)
    # named attributes as statsmodels' VARResults
    np.testing.assert_allclose(res.sigma_u, ref.sigma_u, rtol=1e-8)
    np.testing.assert_allclose(res.sigma_u_mle, ref.sigma_u_mle, rtol=1e-8)
    np.testing.assert_allclose(res.coefs, ref.coefs, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(res.intercept, ref.intercept, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(res.params_table.to_numpy(), ref.params, rtol=1e-4, atol=1e-6)
    # AIC/BIC count the 3 * 7 coefficients and the 6 free entries of Sigma; statsmodels reports
    # per-observation criteria log det(Sigma) + 2 K / n with K the 21 coefficients only
    assert res.aic == pytest.approx(-2 * ref.llf + 2 * (21 + 6), rel=1e-10)
    # the analytic profile Hessian equals central differences of the exact gradient
    diff = VAR(Y, 2).fit(start=start, hessian="differences")
    np.testing.assert_allclose(diff.cov, res.cov, rtol=1e-5, atol=1e-7 * np.abs(res.cov).max())


def test_var_pandas_in_pandas_out():
    d = sm.datasets.macrodata.load_pandas().data
    idx = pd.period_range("1959Q1", periods=len(d), freq="Q")
    Y = (np.log(d[["realgdp", "realcons", "realinv"]]).diff().dropna() * 100).set_index(idx[1:])
    res = VAR(Y, 2).fit()
    ref = sm.tsa.VAR(Y).fit(2)
    assert list(res.params.index[:3]) == ["realgdp.const", "realgdp.L1.realgdp", "realgdp.L1.realcons"]
    np.testing.assert_allclose(res.params_table.to_numpy(), ref.params.to_numpy(), rtol=1e-9, atol=1e-12)
    assert list(res.params_table.index) == list(ref.params.index)
    assert list(res.params_table.columns) == list(ref.params.columns)
    assert res.resid.index[0] == idx[3] and list(res.resid.columns) == ["realgdp", "realcons", "realinv"]
    np.testing.assert_allclose(res.resid.to_numpy(), ref.resid.to_numpy(), rtol=1e-9, atol=1e-12)
    fc = res.forecast(3)
    assert list(fc["mean"].index) == list(pd.period_range("2009Q4", periods=3, freq="Q"))


def test_var_gradient_vs_central_differences(rng):
    Y = VAR(np.random.default_rng(0).standard_normal((10, 2)), 1).simulate(
        np.array([0.1, 0.5, 0.1, -0.2, -0.1, 0.3]), 300, rng=3)
    m = VAR(Y, 3)
    v = rng.normal(scale=0.1, size=len(m.param_names))
    llf, g = m.loglike_and_grad(v)
    fd = central_fd(lambda x: m.loglike_and_grad(x, grad=False)[0], v, 1e-6)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-6 * np.abs(fd).max())  # central FD error O(h^2)


def test_var_bad_data():
    with pytest.raises(ValueError, match=r"y: expected a 2-d array \(N, k\)"):
        VAR(np.arange(30.0), 1)
    with pytest.raises(ValueError, match=r"y: expected at least 10 observations for a VAR\(2\) of 3 series"):
        VAR(np.ones((9, 3)), 2)
    Y = np.ones((40, 2))
    Y[5, 1] = np.nan
    with pytest.raises(ValueError, match=r"y: expected finite values .* at index \(5, 1\)"):
        VAR(Y, 1)
    with pytest.raises(ValueError, match="p: expected an integer >= 1"):
        VAR(np.ones((40, 2)), 0)


# ---------------------------------------------------------------------------- GARCH
def test_garch_constant_mean_matches_arch_on_sp500():
    y = sp500_returns()
    res = GARCH(y).fit(cov_type="classic")
    am = arch.arch_model(y, mean="Constant", vol="GARCH", p=1, q=1, rescale=False)
    ref = am.fit(disp="off", tol=1e-12, cov_type="classic", options={"maxiter": 1000})
    assert res.extra["backcast"] == pytest.approx(arch.univariate.GARCH().backcast(y - y.mean()), rel=1e-14)
    # same likelihood at the same point (both filters and the same backcast)
    assert GARCH(y).loglike_and_grad(ref.params.values)[0] == pytest.approx(ref.loglikelihood, rel=1e-12)
    assert res.llf >= ref.loglikelihood - 1e-9 * abs(ref.loglikelihood)
    assert res.llf == pytest.approx(ref.loglikelihood, rel=1e-8)
    # arch's SLSQP stops at its own tolerance: estimates agree to ~1e-4 relative
    np.testing.assert_allclose(res.values, ref.params.values, rtol=5e-4)
    # arch "classic" = inverse Hessian (numerical): agreement to its differencing error
    np.testing.assert_allclose(res.bse, ref.std_err.values, rtol=5e-3)
    fc = res.forecast(5)
    np.testing.assert_allclose(fc["variance"], ref.forecast(horizon=5, params=res.values).variance.values[-1],
                               rtol=1e-4)  # arch's forecast uses its own last sigma2 (same recursion)


@pytest.mark.parametrize("cov_type, robust", [("robust", True), ("nonrobust", False), ("classic", False)])
def test_garch_covariance_types_match_arch_at_the_same_estimate(cov_type, robust):
    """arch's own covariance (compute_param_cov: numerical Hessian, analytic-free scores) at dynopt's
    estimate; arch's default fit uses robust=True, the QMLE sandwich."""
    y = sp500_returns()
    res = GARCH(y).fit(cov_type=cov_type)
    assert res.cov_type == ("robust" if robust else "nonrobust")
    am = arch.arch_model(y, mean="Constant", vol="GARCH", p=1, q=1, rescale=False)
    am.fit(disp="off")  # arch computes the covariance only after a fit
    C = am.compute_param_cov(res.values, backcast=res.extra["backcast"], robust=robust)
    # arch differentiates numerically (step ~1e-5 relative): agreement to ~1e-5 relative
    np.testing.assert_allclose(res.bse, np.sqrt(np.diag(C)), rtol=1e-4)
    np.testing.assert_allclose(res.cov, C, rtol=1e-3, atol=1e-4 * np.abs(C).max())
    assert ("Covariance Type:" in res.summary()) and (res.cov_type in res.summary())


def test_garch_opg_matches_its_definition():
    y = sp500_returns(1000)
    g = GARCH(y)
    res = g.fit(cov_type="opg")
    bc = res.extra["backcast"]
    G = np.stack([(g.loglikeobs(res.values + e, backcast=bc) - g.loglikeobs(res.values - e, backcast=bc)) / 2e-6
                  for e in np.eye(4) * 1e-6], axis=1)  # central differences of llf_t
    np.testing.assert_allclose(res.cov, np.linalg.inv(G.T @ G), rtol=1e-5)


def test_garch_pandas_and_scale_free():
    from arch.data import sp500
    px = sp500.load()["Adj Close"]
    y = (100 * np.log(px).diff().dropna())[-1500:]
    res = GARCH(y).fit()
    assert list(res.params.index) == ["mu", "omega", "alpha[1]", "beta[1]"]
    assert res.resid.index.equals(y.index) and res.conditional_volatility.index.equals(y.index)
    tiny = GARCH(y * 1e-6).fit()  # returns in units of 1e-6: estimates scale exactly
    np.testing.assert_allclose(tiny.values, res.values * [1e-6, 1e-12, 1, 1], rtol=1e-6)
    assert tiny.llf == pytest.approx(res.llf - len(y) * np.log(1e-6), rel=1e-9)
    np.testing.assert_allclose(tiny.bse, res.bse * [1e-6, 1e-12, 1, 1], rtol=1e-4)


def test_garch_ar_mean_matches_arch_arx():
    y = sp500_returns(1500)
    g = GARCH(y, mean="arma", p=1)
    res = g.fit()
    am = arch.arch_model(y, mean="ARX", lags=1, vol="GARCH", p=1, q=1, rescale=False)
    # give arch dynopt's backcast so that both maximise the same likelihood
    ref = am.fit(disp="off", tol=1e-12, backcast=res.extra["backcast"], options={"maxiter": 1000})
    c, phi = ref.params.values[:2]
    ref_ours = np.array([c / (1 - phi), phi, *ref.params.values[2:]])  # intercept -> mean form
    assert g.loglike_and_grad(ref_ours)[0] == pytest.approx(ref.loglikelihood, rel=1e-12)
    assert res.llf >= ref.loglikelihood - 1e-9 * abs(ref.loglikelihood)
    np.testing.assert_allclose(res.values, ref_ours, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("mean, p, q", [("constant", 0, 0), ("arma", 1, 1), ("arma", 2, 0)])
def test_garch_gradient_vs_central_differences(mean, p, q):
    y = sp500_returns(800)
    g = GARCH(y, mean=mean, p=p, q=q)
    v = g.start_params()
    v[1:1 + p + q] = [0.1, -0.05][:p + q]
    llf, grad = g.loglike_and_grad(v)
    fd = central_fd(lambda x: g.loglike_and_grad(x, grad=False)[0], v, 1e-6)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-6 * np.abs(fd).max())


def test_garch_simulate_refit():
    y = GARCH(np.arange(10.0)).simulate([0.05, 0.05, 0.1, 0.85], 5000, rng=11)
    res = GARCH(y).fit()
    assert np.all(np.abs(res.values - [0.05, 0.05, 0.1, 0.85]) < 4 * res.bse)


def test_garch_bad_data():
    with pytest.raises(ValueError, match="mean: expected 'constant' or 'arma'"):
        GARCH(np.ones(50), mean="ar")
    with pytest.raises(ValueError, match=r"y: expected finite values"):
        GARCH(np.r_[np.ones(50), np.inf])
    with pytest.raises(ValueError, match=r"y: expected at least 12 observations for a GARCH\(1, 1\) model with 7"):
        GARCH(np.arange(11.0), mean="arma", p=2, q=1)


# ---------------------------------------------------------------------------- issue 16 regressions
def test_garch_constant_mean_refuses_arma_orders():
    with pytest.raises(ValueError, match=r"p, q: the ARMA orders of the mean need mean='arma'; got p=1, q=1"):
        GARCH(sp500_returns(200), p=1, q=1)


def test_garch_constant_series_is_refused():
    with pytest.raises(ValueError, match=r"y: the series is constant \(every value 2.0\)"):
        GARCH(np.full(100, 2.0))


def test_var_constant_or_collinear_series_is_refused():
    Y = macro_growth()
    with pytest.raises(ValueError, match=r"y: the regressors are collinear .*'L1.y3'"):
        VAR(np.column_stack([Y[:, :2], np.full(len(Y), 1.5)]), 1)
    with pytest.raises(ValueError, match=r"y: the regressors are collinear .*'L1.y3'"):
        VAR(np.column_stack([Y[:, :2], Y[:, 0] - 2 * Y[:, 1]]), 1)


def test_var_dataframe_with_non_numeric_column_is_refused():
    d = sm.datasets.macrodata.load_pandas().data[["realgdp", "realcons"]].copy()
    d["quarter"] = "Q" + d.index.astype(str)
    with pytest.raises(TypeError, match=r"y: expected numeric columns, got column 'quarter'"):
        VAR(d, 1)
    res = VAR(np.log(d[["realgdp", "realcons"]]).diff().dropna(), 1).fit()
    text = res.summary()
    assert "realgdp, realcons" in text and "Covariance Type: nonrobust (df-corrected)" in text


def test_garch_exact_hessian_and_scores_match_differences():
    """garch_newton.derivatives: llf and gradient equal loglike_and_grad's, the Hessian central
    differences of that exact gradient, the scores complex-step derivatives of loglikeobs."""
    from dynopt.models.econometrics import garch_newton
    from dynopt.models.econometrics.covariance import complex_step_scores
    from dynopt.models.econometrics.results import hessian_from_gradient
    y = sp500_returns(500)
    g = GARCH(y)
    bc = g._backcast(None)
    v = np.array([0.05, 0.1, 0.12, 0.8])
    llf, grad = g.loglike_and_grad(v, backcast=bc)
    llf2, grad2, H, G = garch_newton.derivatives(v, g.y, bc, scores=True)
    assert llf2 == pytest.approx(llf, rel=1e-13)
    np.testing.assert_allclose(grad2, grad, rtol=1e-10, atol=1e-10 * np.abs(grad).max())
    Hfd = hessian_from_gradient(lambda x: g.loglike_and_grad(x, backcast=bc)[1], v, floor=1e-2)
    np.testing.assert_allclose(H, Hfd, rtol=1e-7, atol=1e-8 * np.abs(Hfd).max())
    np.testing.assert_allclose(G, complex_step_scores(lambda x: g.loglikeobs(x, backcast=bc), v), rtol=1e-10,
                               atol=1e-12)


@pytest.mark.parametrize("n", [300, 3000])
def test_garch_newton_default_matches_bfgs_fit(n):
    """The default (Newton, exact Hessian) fit and the BFGS fit reach the same optimum, covariance
    and convergence flag (300 returns: alpha + beta on the boundary 1)."""
    y = sp500_returns(n)
    res = GARCH(y).fit()
    ref = GARCH(y).fit(optimizer="BFGS")
    assert res.optimizer.message != ref.optimizer.message and res.converged and ref.converged
    assert res.llf == pytest.approx(ref.llf, rel=1e-9)
    np.testing.assert_allclose(res.values, ref.values, rtol=1e-4)
    np.testing.assert_allclose(res.bse, ref.bse, rtol=1e-3)


def test_garch_newton_failure_falls_back_to_bfgs(monkeypatch):
    """When the Newton iteration reports failure the fit reruns by BFGS from the same start and
    returns BFGS's optimum and covariance (the same as optimizer='BFGS')."""
    from dynopt.models.econometrics import garch_newton
    y = sp500_returns(500)
    ref = GARCH(y).fit(optimizer="BFGS")
    real = garch_newton.newton_fit

    def failing(*args, **kwargs):
        out = real(*args, **kwargs)
        out[-1].success = False
        return out

    monkeypatch.setattr(garch_newton, "newton_fit", failing)
    res = GARCH(y).fit()
    assert res.optimizer.message == ref.optimizer.message and res.converged
    np.testing.assert_allclose(res.values, ref.values, rtol=1e-12)
    np.testing.assert_allclose(res.cov, ref.cov, rtol=1e-10)
