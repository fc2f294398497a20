"""VAR against statsmodels and GARCH(1,1) against arch on real series; exact gradients vs FD."""


import numpy as np
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
@pytest.mark.parametrize("start", ["ols", "zeros"])
def test_var_matches_statsmodels_on_macrodata(start):
    Y = macro_growth()
    res = VAR(Y, 2).fit(start=start)
    ref = sm.tsa.VAR(Y).fit(2)
    # statsmodels params: (1 + k p, k), one column per equation = dynopt's equation-major order
    np.testing.assert_allclose(res.values, ref.params.T.ravel(), rtol=1e-4, atol=1e-6)
    assert res.llf == pytest.approx(ref.llf, rel=1e-10 if start == "ols" else 1e-9)
    assert np.max(np.abs(res.grad)) / res.nobs < 1e-6
    # standard errors: dynopt uses the MLE Sigma, statsmodels Sigma * n / (n - k p - 1)
    n, kp1 = res.nobs, 1 + 3 * 2
    np.testing.assert_allclose(res.bse, ref.stderr.T.ravel() * np.sqrt((n - kp1) / n), rtol=1e-4)
    fc = res.forecast(4)
    np.testing.assert_allclose(fc["mean"], ref.forecast(Y[-2:], 4), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(fc["mse"], ref.mse(4) * (n - kp1) / n, rtol=1e-6)
    np.testing.assert_allclose(res.extra["sigma_u"], ref.sigma_u_mle, rtol=1e-8)
    # AIC/BIC count the 3 * 7 coefficients and the 6 free entries of Sigma; statsmodels reports
    # per-observation criteria log det(Sigma) + 2 K / n with K the 21 coefficients only
    assert res.aic == pytest.approx(-2 * ref.llf + 2 * (21 + 6), rel=1e-10)
    # the analytic profile Hessian equals central differences of the exact gradient
    diff = VAR(Y, 2).fit(start=start, hessian="differences")
    np.testing.assert_allclose(diff.cov, res.cov, rtol=1e-5, atol=1e-7 * np.abs(res.cov).max())


def test_var_gradient_vs_central_differences(rng):
    Y = VAR(np.zeros((10, 2)), 1).simulate(np.array([0.1, 0.5, 0.1, -0.2, -0.1, 0.3]), 300, rng=3)
    m = VAR(Y, 3)
    v = rng.normal(scale=0.1, size=len(m.param_names))
    llf, g = m.loglike_and_grad(v)
    fd = central_fd(lambda x: m.loglike_and_grad(x, grad=False)[0], v, 1e-6)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-6 * np.abs(fd).max())  # central FD error O(h^2)


def test_var_bad_data():
    with pytest.raises(ValueError, match=r"y: expected a 2-d array \(N, k\)"):
        VAR(np.arange(30.0), 1)
    with pytest.raises(ValueError, match=r"y: expected more than"):
        VAR(np.ones((6, 3)), 2)
    Y = np.ones((40, 2))
    Y[5, 1] = np.nan
    with pytest.raises(ValueError, match=r"y: expected finite values .* at index \(5, 1\)"):
        VAR(Y, 1)
    with pytest.raises(ValueError, match="p: expected an integer >= 1"):
        VAR(np.ones((40, 2)), 0)


# ---------------------------------------------------------------------------- GARCH
def test_garch_constant_mean_matches_arch_on_sp500():
    y = sp500_returns()
    res = GARCH(y).fit()
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
    y = GARCH(np.zeros(10)).simulate([0.05, 0.05, 0.1, 0.85], 5000, rng=11)
    res = GARCH(y).fit()
    assert np.all(np.abs(res.values - [0.05, 0.05, 0.1, 0.85]) < 4 * res.bse)


def test_garch_bad_data():
    with pytest.raises(ValueError, match="mean: expected 'constant' or 'arma'"):
        GARCH(np.ones(50), mean="ar")
    with pytest.raises(ValueError, match=r"y: expected finite values"):
        GARCH(np.r_[np.ones(50), np.inf])
    with pytest.raises(ValueError, match=r"y: expected at least 8 observations"):
        GARCH(np.ones(7), mean="arma", p=2, q=1)
