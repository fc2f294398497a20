"""SARIMA / ARIMA against statsmodels on macrodata (CPI, real GDP): the exact likelihood of the
differenced series (statsmodels SARIMAX(simple_differencing=True)) and forecasts in levels
(statsmodels ARIMA)."""

import warnings

import numpy as np
import pandas as pd
import pytest

from dynopt.models.econometrics import ARIMA, SARIMA

sm = pytest.importorskip("statsmodels.api")
TIGHT = {"maxiter": 2000, "pgtol": 1e-12, "factr": 10.0}


def macro(col):
    d = sm.datasets.macrodata.load_pandas().data
    return np.log(d[col].to_numpy(dtype=float)) * 100


def sm_fit(mod, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mod.fit(method_kwargs=TIGHT, cov_type="approx", **kw)


@pytest.mark.parametrize("compiled", ["0", "1"])
def test_arima_111_with_drift_matches_statsmodels_on_cpi(compiled, monkeypatch):
    """compiled="1": the fit through the compiled Kalman scan (kalman_compiled.exact_loglike_scan)."""
    from dynopt.models.econometrics.kalman_compiled import kalman_scan
    monkeypatch.setenv("DYNOPT_COMPILE", compiled)
    y = macro("cpi")
    model = ARIMA(y, (1, 1, 1), trend="t")
    assert (kalman_scan(model.inner.layout, block=True) is not None) == (compiled == "1")
    res = model.fit()
    # SARIMAX's intercept c is the drift in intercept form: c = drift (1 - phi); statsmodels starts
    # from dynopt's estimate (its optimiser must not find a higher likelihood)
    drift, phi = res.values[0], res.values[1]
    ref = sm_fit(sm.tsa.SARIMAX(y, order=(1, 1, 1), trend="c", simple_differencing=True), disp=0,
                 start_params=np.r_[drift * (1 - phi), res.values[1:]])
    assert SARIMA(y, (1, 1, 1), trend="t").loglike(res.values) == pytest.approx(
        ref.model.loglike(np.r_[drift * (1 - phi), res.values[1:]]), rel=1e-11)
    assert res.llf == pytest.approx(ref.llf, rel=1e-8) and res.llf >= ref.llf - 1e-9
    np.testing.assert_allclose(res.values[1:], ref.params[1:], rtol=1e-4)
    # same observed information at the same point (the ARMA block is invariant to the trend's form)
    at = ref.model.smooth(np.r_[drift * (1 - phi), res.values[1:]], cov_type="approx")
    np.testing.assert_allclose(res.bse[1:], at.bse[1:], rtol=1e-5)
    assert list(res.params.index) == ["drift", "ar.L1", "ma.L1", "sigma2"]
    # statsmodels ARIMA keeps the integrated state with an approximate diffuse prior: ~1e-6 relative
    ar = sm.tsa.arima.ARIMA(y, order=(1, 1, 1), trend="t")
    assert res.llf == pytest.approx(ar.loglike(res.values), rel=2e-6)
    fc = res.forecast(6)
    sf = ar.smooth(res.values).get_forecast(6)
    np.testing.assert_allclose(fc["mean"], sf.predicted_mean, rtol=1e-6)
    np.testing.assert_allclose(fc["se"], sf.se_mean, rtol=1e-4)
    # outer product of the scores (the benchmark's convention) at the same point
    opg = model.fit(cov_type="opg")
    np.testing.assert_allclose(opg.values, res.values, rtol=1e-6)
    at = ref.model.smooth(np.r_[opg.values[0] * (1 - opg.values[1]), opg.values[1:]], cov_type="opg")
    np.testing.assert_allclose(opg.bse[1:], at.bse[1:], rtol=1e-6)


def test_seasonal_airline_type_model_matches_statsmodels_on_real_gdp():
    y = macro("realgdp")
    res = SARIMA(y, (1, 1, 0), (0, 1, 1, 4)).fit()
    ref = sm_fit(sm.tsa.SARIMAX(y, order=(1, 1, 0), seasonal_order=(0, 1, 1, 4), simple_differencing=True), disp=0)
    assert list(res.params.index) == list(ref.model.param_names) == ["ar.L1", "ma.S.L4", "sigma2"]
    assert res.llf == pytest.approx(ref.llf, rel=1e-10)
    np.testing.assert_allclose(res.values, ref.params, rtol=1e-4)
    np.testing.assert_allclose(res.bse, ref.bse, rtol=1e-4)
    ar = sm.tsa.arima.ARIMA(y, order=(1, 1, 0), seasonal_order=(0, 1, 1, 4))
    sf = ar.smooth(res.values).get_forecast(8)
    fc = res.forecast(8)
    np.testing.assert_allclose(fc["mean"], sf.predicted_mean, rtol=1e-6)
    np.testing.assert_allclose(fc["se"], sf.se_mean, rtol=1e-4)
    assert np.all(fc["lower"] < fc["mean"]) and np.all(np.diff(fc["se"]) > 0)


def test_gauss_newton_start_through_the_seasonal_expansion():
    """SARIMA's exact fit starts from the CSS estimate by Gauss-Newton with the residual Jacobian
    chained through the multiplicative expansion: the same point as BFGS's CSS fit."""
    from dynopt.models.econometrics.arma import css_start_gauss_newton
    y = macro("realinv")
    m = SARIMA(y / np.std(np.diff(y)), (1, 1, 1), (1, 0, 1, 4), trend="t")
    css = m.fit("css", cov_type="none")
    values, _, _ = css_start_gauss_newton(m, m.start_params(), m.expand, rtol=1e-13)
    np.testing.assert_allclose(values, css.values, rtol=1e-5, atol=1e-7)
    assert m.loglike(values, "css") >= css.llf - 1e-12 * abs(css.llf)


def test_multiplicative_seasonal_arma_gradient_and_statsmodels_likelihood(rng):
    y = macro("realinv")
    m = SARIMA(y, (1, 0, 1), (1, 0, 1, 4), trend="c")
    theta = np.array([1.2, 0.5, 0.2, 0.3, -0.2, 1.5])
    ref = sm.tsa.SARIMAX(y, order=(1, 0, 1), seasonal_order=(1, 0, 1, 4), trend="c")
    # SARIMAX's intercept form: c = mu (1 - phi)(1 - Phi)
    mu = theta[0]
    assert m.loglike(theta) == pytest.approx(ref.loglike(np.r_[mu * (1 - 0.5) * (1 - 0.3), theta[1:]]), rel=1e-9)
    llf, g = m.loglike_and_grad(theta)
    fd = np.array([(m.loglike(theta + e) - m.loglike(theta - e)) / 2e-6 for e in np.eye(6) * 1e-6])
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-6 * np.abs(fd).max())


def test_pandas_quarterly_dates_extend_through_forecasts():
    d = sm.datasets.macrodata.load_pandas().data
    y = pd.Series(macro("cpi"), index=pd.period_range("1959Q1", periods=len(d), freq="Q"), name="cpi")
    res = ARIMA(y, (1, 1, 1), trend="t").fit()
    assert res.resid.index[0] == pd.Period("1959Q2", freq="Q")
    assert list(res.forecast(2).index) == list(pd.period_range("2009Q4", periods=2, freq="Q"))
    assert "Dep. Variable:" in res.summary() and "cpi" in res.summary()


def test_bad_orders_are_refused():
    y = macro("cpi")
    with pytest.raises(ValueError, match=r"seasonal_order: expected a seasonal period s >= 2"):
        SARIMA(y, (1, 0, 0), (1, 0, 0, 1))
    with pytest.raises(ValueError, match=r"trend: terms of lower order than d \+ D = 1"):
        ARIMA(y, (1, 1, 1), trend="c")
    with pytest.raises(ValueError, match=r"order\[1\] \(d\): expected an integer <= 1000000"):
        ARIMA(y, (1, 2 ** 63, 1))
    with pytest.raises(ValueError,
                       match=r"y: expected at least 18 observations for an SARIMA\(1, 1, 1\)\(0, 1, 0, 12\)"):
        SARIMA(y[:17], (1, 1, 1), (0, 1, 0, 12))
    with pytest.raises(TypeError, match=r"order: expected a tuple of 3 integers"):
        ARIMA(y, (1, 1))
    with pytest.raises(TypeError, match=r"seasonal_order\[3\] \(s\): expected an integer"):
        SARIMA(y, (1, 0, 0), (1, 0, 0, 4.0))


def test_multistart_keeps_the_best_optimum():
    """starts=3 on CPI: the default start already finds the optimum here, so the random starts change
    nothing and no warning is raised (filterwarnings=error would turn it into a failure)."""
    y = macro("cpi")
    one = ARIMA(y, (1, 1, 1), trend="t").fit(cov_type="none")
    many = ARIMA(y, (1, 1, 1), trend="t").fit(cov_type="none", starts=3, seed=1)
    assert many.llf >= one.llf - 1e-9 * abs(one.llf)
    np.testing.assert_allclose(many.values, one.values, rtol=1e-5)
    with pytest.raises(ValueError, match=r"starts: expected an integer >= 1"):
        ARIMA(y, (1, 1, 1), trend="t").fit(starts=0)


@pytest.mark.parametrize("cov_type, sm_name, rtol", [("opg", "opg", 1e-6), ("robust", "robust_approx", 1e-3)])
def test_seasonal_ar_score_covariances_on_the_numpy_path(cov_type, sm_name, rtol, monkeypatch):
    """A seasonal AR term with opg/robust on the NumPy path (compiled code off): the batched
    complex-step scores once failed (a real work array for complex AR coefficients); standard errors
    equal statsmodels' at the same estimate."""
    monkeypatch.setenv("DYNOPT_COMPILE", "0")
    y = macro("realgdp")
    res = SARIMA(y, (2, 1, 0), (1, 0, 0, 4)).fit(cov_type=cov_type)
    mod = sm.tsa.SARIMAX(y, order=(2, 1, 0), seasonal_order=(1, 0, 0, 4), trend="n", simple_differencing=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = mod.smooth(np.asarray(res.values), cov_type=sm_name)
    assert res.llf == pytest.approx(ref.llf, rel=1e-10)
    np.testing.assert_allclose(np.asarray(res.bse), np.asarray(ref.bse), rtol=rtol)
