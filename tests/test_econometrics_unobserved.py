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


# ------------------------------------------------------------------ the closed-form local level filter
def _simulated_with_gaps(seed=11, n=400, q=0.05):
    """A simulated local level series (sigma2.irregular = 2, sigma2.level = 2 q) with missing values:
    leading, isolated, a short run between gaps (filtered step by step) and a long gap."""
    y = LocalLevel(np.arange(5.0)).simulate([2.0, 2.0 * q], n, rng=np.random.default_rng(seed), level0=50.0)
    y[[0, 1, 57, 90, 95, 96, 100, 399]] = np.nan
    y[200:260] = np.nan
    return y


@pytest.mark.parametrize("ratio", [1e-9, 1e-4, 0.0973, 3.0, 1e5])
@pytest.mark.parametrize("data", ["nile", "gaps"])
def test_closed_form_level_filter_matches_statsmodels_and_the_recursion(data, ratio):
    y = nile() if data == "nile" else _simulated_with_gaps()
    m = LocalLevel(y)
    theta = np.array([15099.0, 15099.0 * ratio]) if data == "nile" else np.array([2.0, 2.0 * ratio])
    ref = uc(y, "llevel")
    # 1e-10: statsmodels differs from all three of ours (closed form, scalar recursion, NumPy matrix
    # filter, which agree to 1e-15) by up to 1.1e-11 relative on the series with gaps
    assert m.loglike(theta) == pytest.approx(ref.loglike(theta), rel=1e-10)
    assert m.loglike(theta) == pytest.approx(m.filter_reference(theta)["llf_obs"].sum(), rel=1e-13)
    fast, slow = m.filter(theta), m.filter(theta, steady=False)  # closed form / step by step
    np.testing.assert_allclose(fast["llf_obs"], slow["llf_obs"], rtol=1e-11, atol=1e-11)
    np.testing.assert_array_equal(np.isnan(fast["v"]), np.isnan(y))
    np.testing.assert_allclose(fast["a"], slow["a"], rtol=1e-11)
    np.testing.assert_allclose(fast["P"], slow["P"], rtol=1e-11)
    # predictions and their variances as statsmodels' filter has them
    fr = ref.filter(theta)
    obs = ~np.isnan(y)
    obs[np.argmax(obs)] = False  # statsmodels' F at the diffuse step is F_inf + F*; ours is F_inf
    # (statsmodels freezes F once its change is below its steady-state tolerance: 2e-10 apart)
    np.testing.assert_allclose(fast["F"][obs], fr.forecasts_error_cov[0, 0][obs], rtol=1e-9)
    np.testing.assert_allclose(fast["v"][obs], fr.forecasts_error[0][obs], rtol=1e-9, atol=1e-9 * np.nanstd(y))
    # the complex-step gradient of the closed form against the step-by-step recursion's and (where
    # the step 1e-5 theta is not lost in rounding) against central differences
    _, grad = m.loglike_and_grad(theta)
    for j in range(2):
        z = theta.astype(complex)
        z[j] += 1e-30j * theta[j]
        ref_j = m.filter(z, steady=False)["llf_obs"].sum().imag / (1e-30 * theta[j])
        assert grad[j] == pytest.approx(ref_j, rel=1e-8)
    if 1e-3 < ratio < 10:
        fd = np.array([(m.loglike(theta + e) - m.loglike(theta - e)) / (2 * e.max())
                       for e in np.diag(theta * 1e-5)])
        roundoff = 1e-14 * abs(m.loglike(theta)) / (1e-5 * theta)
        np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=roundoff.max())


def _sm_fit(y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mod = uc(y, "llevel")
        return mod, mod.fit(disp=0, method_kwargs=TIGHT)


@pytest.mark.parametrize("data", ["nile", "gaps"])
def test_scalar_fit_matches_statsmodels_in_every_cov_type(data):
    y = nile() if data == "nile" else _simulated_with_gaps()
    mod, ref = _sm_fit(y)
    for cov_type, sm_cov in [("nonrobust", "approx"), ("opg", "opg"), ("robust", "robust_approx")]:
        res = LocalLevel(y).fit(cov_type=cov_type)
        assert res.llf >= ref.llf - 1e-9 * abs(ref.llf) and res.llf == pytest.approx(ref.llf, rel=1e-6)
        assert res.llf == pytest.approx(mod.loglike(res.values), rel=1e-10)  # (1e-11 apart on the gaps, above)
        np.testing.assert_allclose(res.values, ref.params, rtol=3e-2)  # statsmodels stops short (1% on Nile)
        at = mod.smooth(res.values, cov_type=sm_cov)
        np.testing.assert_allclose(res.bse, at.bse, rtol=1e-6)  # measured 1e-9 .. 1e-13
        # the exact gradient at the estimate against central differences of statsmodels' loglike
        fd = np.array([(mod.loglike(res.values + e) - mod.loglike(res.values - e)) / (2 * e.max())
                       for e in np.diag(res.values * 1e-5)])
        assert np.all(np.abs(res.grad - fd) * res.values < 1e-7 * abs(ref.llf))  # fd: rounding ~1e-9 llf
        assert np.all(np.abs(res.grad * res.values) < 1e-6)
        # residuals and standardised residuals as statsmodels' filter at the same parameters
        # (1e-7: statsmodels' frozen steady-state F, above, moves its innovations by up to 5e-9)
        np.testing.assert_allclose(res.resid, at.filter_results.forecasts_error[0], rtol=1e-7,
                                   atol=1e-9 * np.nanstd(y))
        obs = ~np.isnan(y)
        std = at.standardized_forecasts_error[0][obs][1:]
        np.testing.assert_allclose(res.std_resid, std, rtol=1e-7, atol=1e-9)
    cov_none = LocalLevel(y).fit(cov_type="none")
    assert np.isnan(cov_none.cov).all() and cov_none.llf == pytest.approx(res.llf, rel=1e-14)


def test_scalar_fit_keeps_the_optimizer_options_and_start_params_semantics():
    y = nile()
    base = LocalLevel(y).fit()
    assert base.optimizer.nfev <= 8  # secant evaluations on Nile (7 when written): keep them from growing
    # a SciPy method given, or options given: SciPy runs (its result carries nit and its own fields)
    for kw in [dict(optimizer="BFGS"), dict(optimizer="L-BFGS-B"), dict(options={"gtol": 1e-10})]:
        res = LocalLevel(y).fit(**kw)
        assert "hess_inv" in res.optimizer and res.converged
        np.testing.assert_allclose(res.values, base.values, rtol=1e-5)
        assert res.llf == pytest.approx(base.llf, rel=1e-11)
        np.testing.assert_allclose(res.bse, base.bse, rtol=1e-4)
    # start_params are the secant's start: at the optimum one evaluation suffices
    again = LocalLevel(y).fit(start_params=base.values)
    assert again.optimizer.nfev == 1 and again.llf == pytest.approx(base.llf, rel=1e-14)
    far = LocalLevel(y).fit(start_params=[1.0, 1e6])
    assert far.optimizer.nfev > base.optimizer.nfev and far.llf == pytest.approx(base.llf, rel=1e-12)


@pytest.mark.parametrize("boundary", ["level fixed", "no irregular"])
def test_scalar_fit_on_the_boundary_reaches_statsmodels(boundary):
    # sigma2.level -> 0 (a constant level plus noise) or sigma2.irregular -> 0 (a random walk):
    # the optimum is at a ratio of 0 or infinity; the fit approaches it without a warning
    rng = np.random.default_rng(0)
    y = 10.0 + rng.standard_normal(120) if boundary == "level fixed" else np.cumsum(rng.standard_normal(120))
    _, ref = _sm_fit(y)
    res = LocalLevel(y).fit()
    assert res.converged and res.llf >= ref.llf - 1e-9 * abs(ref.llf)
    ratio = res.values[1] / res.values[0]
    assert (ratio < 1e-6) if boundary == "level fixed" else (ratio > 1e4)


# ------------------------------------------------------------------ the local linear trend's compiled pass
def _simulated_trend(seed=1, n=300):
    """A simulated local linear trend (variances 1, 0.1, 0.01) with an interior optimum."""
    return LocalLinearTrend(np.arange(8.0) ** 2).simulate([1.0, 0.1, 0.01], n, rng=np.random.default_rng(seed),
                                                          level0=10.0)


@pytest.fixture
def compiled_llt(monkeypatch, tmp_path):
    from dynopt.models.econometrics import unobserved_compiled
    monkeypatch.setenv("DYNOPT_COMPILE", "1")
    monkeypatch.setenv("DYNOPT_CACHE_DIR", str(tmp_path))  # (unless this process built it already)
    assert unobserved_compiled.pass_for(nile(), block=True) is not None, unobserved_compiled.status()
    return unobserved_compiled


@pytest.mark.parametrize("missing", [[], [0, 20, 21, 60, 99], [1, 2, 3]])
def test_compiled_llt_pass_matches_the_numpy_filter(compiled_llt, missing):
    y = nile() / np.std(nile())
    y[missing] = np.nan
    m, P = LocalLinearTrend(y), compiled_llt.pass_for(y)
    for q in ([0.1, 0.01], [3.0, 1e-6], [1e-4, 0.5]):
        u = np.log(q)
        value, grad, hess, _ = P.profile(u)
        ref, g_ref = m._profile(np.array(q))  # NumPy filter, complex-step gradient in q
        assert value == pytest.approx(ref, rel=1e-13)
        np.testing.assert_allclose(grad, g_ref * np.array(q), rtol=1e-9, atol=1e-12 * abs(ref))
        # the exact Hessian against central differences of the NumPy filter's exact gradient in u
        e = 1e-5
        g_u = lambda w: m._profile(np.exp(w))[1] * np.exp(w)  # noqa: E731
        fd = np.array([(g_u(u + e * d) - g_u(u - e * d)) / (2 * e) for d in np.eye(2)])
        np.testing.assert_allclose(hess, fd, rtol=1e-6, atol=1e-8 * np.abs(fd).max())


@pytest.mark.parametrize("data", ["nile", "simulated with gaps"])
def test_compiled_llt_fit_matches_statsmodels_and_the_numpy_path(compiled_llt, monkeypatch, data):
    y = nile() if data == "nile" else _simulated_trend()
    if data != "nile":
        y[[1, 2, 50, 51, 299]] = np.nan  # inside the diffuse period, in the middle and at the end
    mod = uc(y, "lltrend")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = mod.fit(disp=0, method_kwargs=TIGHT)
    fits = {}
    for cov_type, sm_cov in [("nonrobust", "approx"), ("opg", "opg"), ("robust", "robust_approx")]:
        res = fits[cov_type] = LocalLinearTrend(y).fit(cov_type=cov_type)
        assert res.extra["path"] == "Newton, compiled pass" and res.converged
        # Newton evaluations (no jumps to the boundary: a ratio with its optimum at 0 or infinity is
        # approached 5 units of log q per step, as BFGS approaches it)
        assert res.optimizer.nfev <= 25
        assert res.llf >= ref.llf - 1e-9 * abs(ref.llf)
        # statsmodels' own filter differs from ours by up to 2e-11 relative on the gaps (frozen steady F)
        assert res.llf == pytest.approx(mod.loglike(res.values), rel=1e-10)
        at = mod.smooth(res.values, cov_type=sm_cov)
        finite = np.isfinite(at.bse)  # Nile's slope variance is on its boundary (0): no 'approx' SE there
        np.testing.assert_array_equal(np.isfinite(res.bse), finite)
        np.testing.assert_allclose(res.bse[finite], at.bse[finite], rtol=2e-6)  # numerical Hessian in statsmodels
        np.testing.assert_allclose(res.resid, at.filter_results.forecasts_error[0], rtol=1e-7,
                                   atol=1e-9 * np.nanstd(y))
        obs = ~np.isnan(y)
        np.testing.assert_allclose(res.std_resid, at.standardized_forecasts_error[0][obs][2:], rtol=1e-7, atol=1e-9)
        # the exact gradient at the estimate against central differences of statsmodels' loglike
        e = np.maximum(res.values * 1e-5, 1e-3 * res.values[0] * 1e-5)
        fd = np.array([(mod.loglike(res.values + d) - mod.loglike(res.values - d)) / (2 * d.max()) for d in np.diag(e)])
        np.testing.assert_allclose(res.grad, fd, rtol=1e-4, atol=1e-9 * abs(ref.llf) / e.min())
    # the NumPy path (no compiled code): BFGS, the same optimum to its tolerance
    monkeypatch.setenv("DYNOPT_COMPILE", "0")
    slow = LocalLinearTrend(y).fit(cov_type="opg")
    assert slow.extra["path"] == "BFGS, NumPy filter"
    # (Nile's slope variance has its optimum at 0: both approach it, to ~1e-12 of the llf)
    assert slow.llf == pytest.approx(res.llf, rel=1e-10) and slow.llf <= res.llf + 1e-11 * abs(res.llf)
    np.testing.assert_allclose(slow.values[:2], res.values[:2], rtol=1e-3)
    np.testing.assert_allclose(slow.bse[:2], fits["opg"].bse[:2], rtol=1e-3)


@pytest.mark.parametrize("boundary", ["no irregular", "fixed level and slope", "no level noise", "white noise"])
def test_compiled_llt_fit_on_the_boundary_reaches_statsmodels(compiled_llt, monkeypatch, boundary):
    # variances at 0 (a ratio at 0 or, for sigma2.irregular -> 0, at infinity): Newton jumps along a
    # ratio whose profile is linear in it (or in its inverse) and stops with no warning at or above
    # statsmodels' tight optimum and the NumPy path's BFGS optimum
    rng = np.random.default_rng(0)
    n = 150
    y = {"no irregular": np.cumsum(0.5 + rng.standard_normal(n)),
         "fixed level and slope": 0.3 * np.arange(n) + rng.standard_normal(n),
         "no level noise": np.cumsum(np.cumsum(rng.standard_normal(n))),
         "white noise": rng.standard_normal(n)}[boundary]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = uc(y, "lltrend").fit(disp=0, method_kwargs=TIGHT)
    res = LocalLinearTrend(y).fit(cov_type="opg")
    assert res.extra["path"] == "Newton, compiled pass" and res.converged and res.optimizer.nfev <= 30
    assert res.llf >= ref.llf - 1e-9 * abs(ref.llf)
    monkeypatch.setenv("DYNOPT_COMPILE", "0")
    slow = LocalLinearTrend(y).fit(cov_type="opg")
    assert slow.extra["path"] == "BFGS, NumPy filter" and res.llf >= slow.llf - 1e-12 * abs(slow.llf)


@pytest.mark.parametrize("params", [[1.0, 1e160], [1e-170, 1e-171], [1.0, 1e-12]])
def test_local_level_closed_form_survives_extreme_variances(params):
    """Extreme variances or ratios (once NaN or a math domain error in the closed form): the same
    log-likelihood as the step-by-step filter, with and without a gap."""
    y = np.cumsum(np.random.default_rng(0).standard_normal(200))
    gap = y.copy()
    gap[50:55] = np.nan
    for series in (y, gap):
        m = LocalLevel(series)
        ref = m._filter_level_loop(np.array(params), True)["llf_obs"].sum()
        assert m.loglike(np.array(params)) == pytest.approx(ref, rel=1e-12)


def test_local_level_fit_on_nearly_constant_data_converges_without_warnings():
    """Noise of 1e-9 around a constant: the secant's bracket collapses to rounding around the maximum
    (it once divided 0 by 0 and ran to maxiter); the fit converges and warns nothing (the suite turns
    warnings into errors)."""
    y = 5.0 + 1e-9 * np.random.default_rng(5).standard_normal(300)
    res = LocalLevel(y).fit()
    assert res.converged and res.optimizer.nfev < 100
    assert res.llf >= LocalLevel(y).fit(optimizer="BFGS").llf - 1e-9 * abs(res.llf)


def test_local_linear_trend_refuses_a_straight_line_and_survives_extreme_starts(monkeypatch, tmp_path):
    """Exactly linear data (a math domain error on the compiled path, zero variances on the NumPy path)
    are refused; start ratios at 1e-305 .. 1e305 (once an endless line search, or success claimed at
    the start) reach the optimum of the default start."""
    with pytest.raises(ValueError, match="y: the observed values lie on a straight line"):
        LocalLinearTrend(np.arange(20.0) * 0.5 + 3.0)
    monkeypatch.setenv("DYNOPT_COMPILE", "1")
    monkeypatch.setenv("DYNOPT_CACHE_DIR", str(tmp_path))
    from dynopt.models.econometrics import unobserved_compiled
    y = LocalLinearTrend(nile()).simulate([1.0, 0.1, 0.01], 150, rng=np.random.default_rng(3))
    assert unobserved_compiled.pass_for(y, block=True) is not None
    ref = LocalLinearTrend(y).fit()
    for start in ([1.0, 1e-305, 1.0], [1.0, 1e305, 0.01], [1.0, 1e-30, 1e-30], [1e-30, 1.0, 1.0]):
        res = LocalLinearTrend(y).fit(start_params=start)
        assert res.extra["path"] == "Newton, compiled pass" and res.converged
        assert res.llf == pytest.approx(ref.llf, rel=1e-10)
