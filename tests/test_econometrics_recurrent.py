"""Werbos-style recurrent econometric model: BPTT gradients vs FD, linear limit = ARX, fits."""

import warnings

import numpy as np
import pytest

import dynopt
from dynopt.models.econometrics import ARX, RecurrentEconometricModel


def nonlinear_series(N=300, noise=0.1, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(N)
    y = np.zeros(N)
    for t in range(2, N):
        y[t] = 0.5 * y[t - 1] - 0.2 * y[t - 2] + 0.8 * np.tanh(1.5 * y[t - 1] + x[t]) + noise * rng.standard_normal()
    return y, x


@pytest.mark.parametrize("objective", ["one-step", "simulation"])
def test_bptt_gradient_vs_central_differences(objective):
    y, x = nonlinear_series(150)
    m = RecurrentEconometricModel(y, 2, 3, exog=x)
    prob = m.problem(objective, m.plant.init_params(1))
    chk = dynopt.check_gradient(prob, casadi=False)
    # central FD with step eps^(1/3): error ~1e-10 relative on these smooth costs
    assert chk.max_rel_error("fd") < 1e-7, str(chk)


def test_linear_limit_equals_arx_least_squares():
    y, x = nonlinear_series(300)
    res = RecurrentEconometricModel(y, 2, 0, exog=x).fit("one-step")
    ref = ARX(y, 2, exog=x).fit()  # itself checked against statsmodels AutoReg
    # plant block (H = 0): a = (lag1, lag2, x), c; ARX: const, ar.L1, ar.L2, x1, sigma2
    np.testing.assert_allclose(res.values, np.r_[ref.values[1:4], ref.values[0]], rtol=1e-6,
                               atol=1e-7)  # c ~ 2e-4: absolute
    assert res.llf == pytest.approx(ref.llf, rel=1e-9)


def test_one_step_then_simulation_fit():
    y, x = nonlinear_series(200, noise=0.1)
    m = RecurrentEconometricModel(y, 2, 3, exog=x)
    one = m.fit("one-step", options={"maxiter": 400, "gtol": 1e-6})
    linear = ARX(y, 2, exog=x).fit()
    # the nonlinear model explains what the linear one cannot; noise variance is 0.01
    assert one.extra["mse"] < 0.6 * linear.values[-1]
    assert one.extra["mse"] < 1.3 * 0.01
    sim_start = m.problem("simulation", one.values).value(one.values)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a capped run may stop at maxiter
        sim = m.fit("simulation", start_params=one, options={"maxiter": 30})
    assert sim.extra["mse"] < sim_start  # BPTT through the free-running model lowers its error
    assert np.isfinite(m.forecast(sim, 3, exog=np.zeros((3, 1)))["mean"]).all()


def test_bad_inputs():
    with pytest.raises(ValueError, match="objective: expected 'one-step' or 'simulation'"):
        RecurrentEconometricModel(np.arange(20.0), 2, 1).problem("free")
    with pytest.raises(ValueError, match=r"exog: expected shape \(20, nX\)"):
        RecurrentEconometricModel(np.arange(20.0), 2, 1, exog=np.ones((19, 1)))
    with pytest.raises(ValueError, match="y: expected at least 5 observations"):
        RecurrentEconometricModel(np.arange(4.0), 3, 1)
