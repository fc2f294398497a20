"""Local level and local linear trend with exact diffuse initialisation against statsmodels'
UnobservedComponents(use_exact_diffuse=True) on the Nile data (ships with statsmodels) and the
published Durbin & Koopman (2012, section 2.10) estimates."""

import warnings

import numpy as np
import pandas as pd
import pytest

from dynopt.models.econometrics import LocalLevel, LocalLinearTrend

sm = pytest.importorskip("statsmodels.api")
TIGHT = {"maxiter": 2000, "pgtol": 1e-12, "factr": 10.0}


def nile():
    return sm.datasets.nile.load_pandas().data["volume"].to_numpy(dtype=float).copy()


def uc(y, level):
    return sm.tsa.UnobservedComponents(y, level, use_exact_diffuse=True)


@pytest.mark.parametrize("missing", [[], [0, 20, 21, 60, 99]])
@pytest.mark.parametrize("trend", [False, True])
def test_exact_diffuse_loglike_matches_statsmodels(trend, missing):
    y = nile()
    y[missing] = np.nan
    theta = np.array([15099.0, 1469.1, 10.0][:2 + trend])
    m = LocalLevel(y, trend=trend)
    ref = uc(y, "lltrend" if trend else "llevel")
    assert m.loglike(theta) == pytest.approx(ref.loglike(theta), rel=1e-12)
    # the scalar filter, the NumPy reference filter and the filter without the steady-state switch agree
    f, g, h = m.filter(theta), m.filter_reference(theta), m.filter(theta, steady=False)
    np.testing.assert_allclose(f["llf_obs"], g["llf_obs"], rtol=1e-12)
    np.testing.assert_allclose(f["llf_obs"], h["llf_obs"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(f["a"], h["a"], rtol=1e-9)
    # complex-step gradient vs central differences
    llf, grad = m.loglike_and_grad(theta)
    fd = np.array([(m.loglike(theta + e) - m.loglike(theta - e)) / (2 * e.max()) for e in np.diag(theta * 1e-5)])
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-9)


def test_nile_local_level_fit_matches_statsmodels_and_durbin_koopman():
    y = pd.Series(nile(), index=pd.period_range("1871", periods=100, freq="Y"), name="volume")
    res = LocalLevel(y).fit()
    # Durbin & Koopman (2012), section 2.10: sigma2_eps = 15099, sigma2_eta = 1469.1
    np.testing.assert_allclose(res.values, [15099, 1469.1], rtol=2e-4)
    mod = uc(y, "llevel")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = mod.fit(disp=0, method_kwargs=TIGHT)
    assert res.llf >= ref.llf - 1e-9 * abs(ref.llf) and res.llf == pytest.approx(ref.llf, rel=1e-6)
    assert res.aic == pytest.approx(ref.aic, rel=1e-6) and res.bic == pytest.approx(ref.bic, rel=1e-6)
    assert list(res.params.index) == list(ref.params.index)
    at = mod.smooth(res.values, cov_type="approx")
    np.testing.assert_allclose(res.bse, at.bse, rtol=1e-4)
    opg = LocalLevel(y).fit(cov_type="opg")
    np.testing.assert_allclose(opg.bse, mod.smooth(res.values, cov_type="opg").bse, rtol=1e-4)
    fc = res.forecast(5)
    sf = mod.smooth(res.values).get_forecast(5)
    np.testing.assert_allclose(fc["mean"], sf.predicted_mean, rtol=1e-9)
    np.testing.assert_allclose(fc["se"], sf.se_mean, rtol=1e-9)
    assert list(fc.index) == list(pd.period_range("1971", periods=5, freq="Y"))
    assert res.resid.index.equals(y.index) and "Covariance Type:" in res.summary()


def test_local_linear_trend_fit_with_missing_values():
    y = nile()
    y[[30, 31, 32]] = np.nan
    res = LocalLinearTrend(y).fit()
    mod = uc(y, "lltrend")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = mod.fit(disp=0, method_kwargs=TIGHT)
    assert res.llf >= ref.llf - 1e-8 * abs(ref.llf)
    assert res.llf == pytest.approx(ref.llf, rel=1e-7)
    fc = res.forecast(3)
    np.testing.assert_allclose(fc["mean"], mod.smooth(res.values).get_forecast(3).predicted_mean, rtol=1e-9)


def test_bad_input():
    with pytest.raises(ValueError, match=r"y: expected at least 4 observed values for a local level"):
        LocalLevel([1.0, np.nan, 2.0, np.nan, np.nan])
    with pytest.raises(ValueError, match=r"y: expected finite values"):
        LocalLevel(np.r_[nile(), np.inf])
    with pytest.raises(ValueError, match=r"y: the series is constant"):
        LocalLevel(np.full(30, 2.0))
    with pytest.raises(TypeError, match=r"trend: expected True or False"):
        LocalLevel(nile(), trend="yes")


def test_example_fit_local_level_nile_runs(capsys, load_example):
    level, arima = load_example("fit_local_level_nile").main()
    out = capsys.readouterr().out
    assert "1971" in out and "2009Q4" in out and "sigma2.level" in out and "Covariance Type:" in out
    y = nile()
    y[[40, 41]] = np.nan
    assert level.llf == pytest.approx(uc(y, "llevel").loglike(level.values), rel=1e-12)
    assert level.nobs == 98 and arima.converged and level.converged
