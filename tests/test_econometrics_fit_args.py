"""Regression tests for issue 16's follow-up: every econometric ``fit`` argument is checked where
the user gives it (ValueError/TypeError naming ``start_params``, ``options``, ``optimizer``, the
expected and the given); arguments a closed-form fit cannot use select the numerical fit or are
refused, never silently ignored.  Successful fits are checked against numpy's least squares,
statsmodels and arch."""

import warnings

import numpy as np
import pytest

import dynopt.models.econometrics as E


def _series(n=120, seed=3, level=2.0):
    rng = np.random.default_rng(seed)
    e = rng.standard_normal(n + 1)
    y = np.zeros(n)
    for t in range(1, n):
        y[t] = 0.5 * y[t - 1] + e[t + 1] + 0.3 * e[t]
    return level + y


def _ols_ar1(y):
    X = np.column_stack([np.ones(len(y) - 1), y[:-1]])
    return np.linalg.lstsq(X, y[1:], rcond=None)[0]


# ------------------------------------------------------------------ AR: optimizer / options were ignored
def test_ar_optimizer_and_options_refused_or_used():
    y = _series()
    m = E.AR(y, 1)
    with pytest.raises(TypeError, match=r"optimizer: expected one of .*got int 5"):
        m.fit(optimizer=5)
    with pytest.raises(TypeError, match=r"optimizer: .*NoneType None"):
        m.fit(optimizer=None)
    with pytest.raises(TypeError, match=r"options: expected a dict.*got int 5"):
        m.fit(options=5)
    with pytest.raises(ValueError, match=r"optimizer: applies to the numerical fit .*solver='ols'"):
        m.fit(solver="ols", optimizer="BFGS")
    # given, they are used: the numerical fit (a SciPy result attached) lands on least squares
    res = m.fit(optimizer="L-BFGS-B", options={"maxiter": 500})
    assert res.optimizer is not None and res.optimizer.nit > 0
    np.testing.assert_allclose(res.values[:2], _ols_ar1(y), rtol=1e-6)
    assert m.fit().optimizer is None  # nothing given: the closed form


# ------------------------------------------------------------------ AR: start_params=['a'] was ignored
def test_ar_start_params_checked_and_used():
    y = _series()
    m = E.AR(y, 1)
    with pytest.raises(TypeError, match=r"start_params: expected a numeric array, got strings \(list \['a'\]\)"):
        m.fit(start_params=["a"])
    with pytest.raises(ValueError, match=r"start_params: expected shape \(3,\).*\['const', 'ar.L1', 'sigma2'\]"):
        m.fit(start_params=[0.1])
    with pytest.raises(ValueError, match=r"start_params: expected sigma2 > 0, got -1.0"):
        m.fit(start_params=[0.0, 0.0, -1.0])
    with pytest.raises(ValueError, match=r"start_params: applies to the numerical fit"):
        m.fit(solver="ols", start_params=[0.0, 0.0, 1.0])
    res = m.fit(start_params=[1.0, 0.2, 1.0])
    assert res.optimizer is not None
    np.testing.assert_allclose(res.values[:2], _ols_ar1(y), rtol=1e-6)


# ------------------------------------------------------------------ options={'maxiter': '10'}: SciPy's TypeError
@pytest.mark.parametrize("make", [lambda y: E.ARMA(y, 1, 1), lambda y: E.ARIMA(y, (1, 0, 0)),
                                  lambda y: E.GARCH(y), lambda y: E.LocalLevel(y)],
                         ids=["ARMA", "ARIMA", "GARCH", "LocalLevel"])
def test_options_values_named(make):
    m = make(_series())
    with pytest.raises(TypeError, match=r"options\['maxiter'\]: expected an integer >= 1, got '10'"):
        m.fit(options={"maxiter": "10"})
    with pytest.raises(ValueError, match=r"options\['maxiter'\]: expected an integer >= 1, got -1"):
        m.fit(options={"maxiter": -1})
    with pytest.raises(ValueError, match=r"options\['gtol'\]: expected finite values, got nan"):
        m.fit(options={"gtol": np.nan})
    with pytest.raises(ValueError, match=r"options: 'maxfun' is not an option of optimizer 'BFGS'"):
        m.fit(options={"maxfun": 10})


def test_options_valid_keys_used():
    """A valid option takes effect: ``maxiter=1`` stops BFGS after one iteration (a warning says
    so), the default converges to statsmodels' likelihood."""
    from statsmodels.tsa.arima.model import ARIMA as SMARIMA
    y = _series()
    m = E.ARMA(y, 1, 0)
    with pytest.warns(RuntimeWarning):
        short = m.fit(options={"maxiter": 1})
    assert short.optimizer.nit <= 1
    full = m.fit(options={"maxiter": 1000})
    ref = SMARIMA(y, order=(1, 0, 0), trend="c").fit()
    assert full.llf >= ref.llf - 1e-6 * abs(ref.llf)


# ------------------------------------------------------------------ GARCH options=5: unnamed TypeError
def test_garch_options_not_a_dict():
    m = E.GARCH(_series())
    with pytest.raises(TypeError, match=r"options: expected a dict .*got int 5"):
        m.fit(options=5)
    with pytest.raises(TypeError, match=r"options: expected a dict .*got str 'maxiter'"):
        m.fit(options="maxiter")


# ------------------------------------------------------------------ ARMA/ARIMA: errors said "params"
@pytest.mark.parametrize("make", [lambda y: E.ARMA(y, 1, 0), lambda y: E.ARIMA(y, (1, 0, 0))], ids=["ARMA", "ARIMA"])
def test_arma_start_params_named(make):
    m = make(_series())
    for bad, exc in [([0.1], ValueError), (["a"], TypeError), ("abc", TypeError), ([True, False], TypeError),
                     ([np.nan] * 3, ValueError)]:
        with pytest.raises(exc, match=r"^start_params: expected"):
            m.fit(start_params=bad)
    with pytest.raises(ValueError, match=r"start_params: expected shape \(3,\).*got shape \(1,\)"):
        m.fit(start_params=[0.1])
    with pytest.raises(ValueError, match=r"start_params: expected a start inside the parameter space"):
        m.fit(start_params=[2.0, 1.5, 1.0])  # non-stationary AR start


# ------------------------------------------------------------------ GARCH start_params: float() error, wrong length
def test_garch_start_params_checked():
    from arch import arch_model
    y = _series(400, seed=5, level=0.0)
    m = E.GARCH(y)
    with pytest.raises(TypeError, match=r"start_params: expected a numeric array, got strings \(list \['a'\]\)"):
        m.fit(start_params=["a"])
    for bad in ([0.1], [0.0, 0.1, 0.1, 0.8, 0.0]):
        with pytest.raises(ValueError, match=r"start_params: expected shape \(4,\).*'omega', 'alpha\[1\]'"):
            m.fit(start_params=bad)
    with pytest.raises(ValueError, match=r"start_params: expected omega > 0, got -0.1"):
        m.fit(start_params=[0.0, -0.1, 0.1, 0.8])
    with pytest.raises(ValueError, match=r"start_params: expected a start inside the parameter space"):
        m.fit(start_params=[0.0, 0.1, 0.5, 0.6])  # alpha + beta >= 1
    res = m.fit(start_params=[0.0, 0.2, 0.1, 0.7])
    c = float(np.std(y))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = arch_model(y / c, mean="Constant", vol="GARCH", p=1, q=1, rescale=False).fit(disp="off")
    ref_llf = ref.loglikelihood - len(y) * np.log(c)
    assert res.llf >= ref_llf - 1e-4 * abs(ref_llf)


# ------------------------------------------------------------------ LocalLevel start_params: IndexError, NaNs
def test_local_level_start_params_checked():
    from statsmodels.tsa.statespace.structural import UnobservedComponents
    y = _series(100, seed=7)
    m = E.LocalLevel(y)
    with pytest.raises(ValueError, match=r"start_params: expected shape \(2,\).*sigma2.irregular"):
        m.fit(start_params=[0.1])
    with pytest.raises(ValueError, match=r"start_params: expected finite values, got nan"):
        m.fit(start_params=[np.nan] * 9)
    with pytest.raises(ValueError, match=r"start_params: expected finite values, got nan"):
        m.fit(start_params=[np.nan, np.nan])
    with pytest.raises(TypeError, match=r"start_params: expected a numeric array, got strings \(list \['a'\]\)"):
        m.fit(start_params=["a"])
    with pytest.raises(ValueError, match=r"start_params: expected sigma2.level > 0, got 0.0"):
        m.fit(start_params=[1.0, 0.0])
    res = m.fit(start_params=[0.5, 0.5])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = UnobservedComponents(y, "llevel", use_exact_diffuse=True).fit(disp=False)
    assert res.llf >= ref.llf - 1e-6 * abs(ref.llf)


# ------------------------------------------------------------------ VAR: optimizer / options were ignored
def test_var_optimizer_and_options_refused_or_used():
    from statsmodels.tsa.api import VAR as SMVAR
    Y = np.column_stack([_series(150, seed=1), _series(150, seed=8, level=-1.0)])
    m = E.VAR(Y, 1)
    with pytest.raises(TypeError, match=r"optimizer: expected one of .*got int 5"):
        m.fit(optimizer=5)
    with pytest.raises(TypeError, match=r"options: expected a dict.*got int 5"):
        m.fit(options=5)
    with pytest.raises(ValueError, match=r"start: expected shape \(6,\)"):
        m.fit(start=[0.0])
    ref = SMVAR(Y).fit(1, trend="c")
    closed = m.fit()
    assert closed.optimizer is None
    numerical = m.fit(optimizer="BFGS", options={"gtol": 1e-10})  # given: the numerical fit from zeros
    assert numerical.optimizer is not None and numerical.optimizer.nit > 0
    np.testing.assert_allclose(numerical.llf, ref.llf, rtol=1e-9)
    np.testing.assert_allclose(numerical.values, closed.values, rtol=1e-5, atol=1e-7)


# ------------------------------------------------------------------ flags and the recurrent model's fit
def test_fit_flags_named():
    """``df_correction="no"`` was truthy (silently the corrected covariance); now refused."""
    y = _series()
    for fit in (E.AR(y, 1).fit, E.ARMA(y, 1, 0).fit, E.ARIMA(y, (1, 0, 0)).fit):
        with pytest.raises(TypeError, match=r"df_correction: expected True or False, got str 'no'"):
            fit(df_correction="no")
    with pytest.raises(TypeError, match=r"transformed: expected True or False, got int 1"):
        E.ARMA(y, 1, 0).fit(transformed=1)
    Y = np.column_stack([y, _series(seed=9)])
    with pytest.raises(TypeError, match=r"df_correction: expected True or False, got int 0"):
        E.VAR(Y, 1).fit(df_correction=0)
    # valid: the AR(1) coefficient covariance with the OLS correction is statsmodels OLS's
    import statsmodels.api as sm
    ols = sm.OLS(y[1:], sm.add_constant(y[:-1])).fit()
    res = E.AR(y, 1).fit(df_correction=True)
    np.testing.assert_allclose(res.cov[:2, :2], ols.cov_params(), rtol=1e-8)


def test_recurrent_fit_arguments_named():
    rng = np.random.default_rng(0)
    y = 0.1 * np.cumsum(rng.standard_normal(60)) + rng.standard_normal(60)
    m = E.RecurrentEconometricModel(y, lags=1, hidden=1)
    with pytest.raises(TypeError, match=r"start_params: expected a numeric array, got strings"):
        m.fit(start_params=["a"])
    with pytest.raises(ValueError, match=r"start_params: expected shape \(5,\).*'W1\[0\]'"):
        m.fit(start_params=[0.1])
    with pytest.raises(TypeError, match=r"options: expected a dict .*got int 5"):
        m.fit(options=5)
    with pytest.raises(TypeError, match=r"rng: expected an integer >= 0, got 'x'"):
        m.fit(rng="x")
    with pytest.raises(TypeError, match=r"cov: expected True or False, got str 'no'"):
        m.fit(cov="no")
    # hidden = 0 units: the model is linear AR(1), the fit is least squares (start given, W1, b1, W2 unused)
    lin = E.RecurrentEconometricModel(y, lags=1, hidden=0)
    res = lin.fit(start_params=np.zeros(len(lin.fit().values)))
    np.testing.assert_allclose(res.values[-2:][::-1], _ols_ar1(y), rtol=1e-5)


def test_finite_difference_options_refused():
    """SciPy ignores ``eps`` when given the gradient (``jac=True``): refused instead of ignored."""
    m = E.ARMA(_series(), 1, 0)
    with pytest.raises(ValueError, match=r"options\['eps'\]: a finite-difference setting, unused"):
        m.fit(options={"eps": 1e-3})
