"""System identification front door against independent references.

* Lotka-Volterra (4 rates + both initial states of each of two experiments of different
  lengths, with missing samples): the same simulation-error objective written here in plain
  NumPy (its own RK4) and solved by ``scipy.optimize.least_squares`` with a finite-difference
  Jacobian.  Both converge to the same minimiser to ~1e-9; 1e-6 relative is the issue's bar.
  Standard errors: ``sqrt(diag(s^2 (J'J)^-1))`` from the reference's 3-point Jacobian, whose
  error (~1e-8 relative) is far below the 1e-3 bar.
* One-step-ahead prediction error of a linear first-order plant is ordinary least squares:
  statsmodels OLS gives the estimates and standard errors (s^2 = RSS / (n - p)) to rounding.
"""

import matplotlib
import numpy as np
import pytest
import scipy.optimize

import casadi as ca
import dynopt
from dynopt.sysid import Experiment, identify

matplotlib.use("Agg")

DT = 0.1
TRUE = np.array([1.0, 0.4, 0.8, 0.2])


def lv_rhs(x, u, p):
    return ca.vertcat(p["a"] * x[0] - p["b"] * x[0] * x[1], p["d"] * x[0] * x[1] - p["c"] * x[1])


def lv_plant():
    ode = dynopt.CasadiODE(lv_rhs, n_state=2, params=dict(a=[1.0], b=[0.4], c=[0.8], d=[0.2]))
    return ode.discretize(dynopt.RK4(DT))


def np_step(x, th):
    a, b, c, d = th

    def f(x):
        return np.array([a * x[0] - b * x[0] * x[1], d * x[0] * x[1] - c * x[1]])

    k1 = f(x)
    k2 = f(x + DT / 2 * k1)
    k3 = f(x + DT / 2 * k2)
    k4 = f(x + DT * k3)
    return x + DT / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


def np_sim(th, x0, N):
    xs = [np.asarray(x0, float)]
    for _ in range(N):
        xs.append(np_step(xs[-1], th))
    return np.array(xs)


def lv_data(seed=0):
    r = np.random.default_rng(seed)
    Y1 = np_sim(TRUE, [10.0, 5.0], 150) + 0.3 * r.standard_normal((151, 2))
    Y2 = np_sim(TRUE, [4.0, 8.0], 90) + 0.3 * r.standard_normal((91, 2))
    Y1[[5, 40, 41], 0] = np.nan            # missing samples
    Y2[17, 1] = np.nan
    return Y1, Y2


START = dict(a=[0.8], b=[0.3], c=[1.0], d=[0.25])


def reference_fit(Y1, Y2):
    """The same objective in NumPy, solved by least_squares with a 3-point FD Jacobian."""
    def resid(w):
        th = w[:4]
        out = []
        for Y, x0 in ((Y1, w[4:6]), (Y2, w[6:8])):
            R = Y - np_sim(th, x0, Y.shape[0] - 1)
            out.append(R[~np.isnan(R)])      # sample-major, as identify orders them
        return np.concatenate(out)

    w0 = np.r_[0.8, 0.3, 1.0, 0.25, 9.0, 4.0, 5.0, 7.0]
    sol = scipy.optimize.least_squares(resid, w0, jac="3-point", xtol=1e-14, ftol=1e-14, gtol=1e-14)
    J = sol.jac
    r = sol.fun
    s2 = r @ r / (r.size - w0.size)
    se = np.sqrt(np.diag(s2 * np.linalg.inv(J.T @ J)))
    return sol.x, se


@pytest.fixture(scope="module")
def lv_fit():
    Y1, Y2 = lv_data()
    res = identify(lv_plant(), [Experiment(Y1, x0=[9.0, 4.0], name="run1"), Experiment(Y2, x0=[5.0, 7.0])],
                   fit=("plant", "x0"), params=START, positive=["a", "b", "c", "d"],
                   options=dict(xtol=1e-14, ftol=1e-14, gtol=1e-14))
    return res, reference_fit(Y1, Y2)


def test_lotka_volterra_matches_least_squares(lv_fit):
    res, (w_ref, se_ref) = lv_fit
    assert res.success
    np.testing.assert_allclose(res.estimates, w_ref, rtol=1e-6)
    np.testing.assert_allclose(res.covariance.se, se_ref, rtol=1e-3)
    assert res.covariance.names[:4] == ("plant.a[0]", "plant.b[0]", "plant.c[0]", "plant.d[0]")
    assert res.covariance.names[4:6] == ("x0[run1][0]", "x0[run1][1]")
    np.testing.assert_allclose(res.params["a"], w_ref[:1], rtol=1e-6)
    np.testing.assert_allclose(res.x0[1], w_ref[6:8], rtol=1e-6)
    # the true rates lie within 4 standard errors (noise 0.3 on ~240 samples per output)
    assert np.all(np.abs(res.estimates[:4] - TRUE) < 4 * res.covariance.se[:4])


def test_lotka_volterra_statistics(lv_fit):
    res, _ = lv_fit
    Y1, Y2 = lv_data()
    yhat1 = np_sim(res.theta, res.x0[0], 150)
    np.testing.assert_allclose(res.outputs[0], yhat1, rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(np.isnan(res.residuals[0]), np.isnan(Y1))
    allr = np.concatenate([r[~np.isnan(r)] for r in res.residuals])
    assert res.nobs == allr.size == np.isfinite(Y1).sum() + np.isfinite(Y2).sum()
    np.testing.assert_allclose(res.rss, allr @ allr, rtol=1e-12)
    # R2 per output, pooled over both experiments (closed form)
    for j in range(2):
        y = np.concatenate([Y1[:, j], Y2[:, j]])
        e = np.concatenate([res.residuals[0][:, j], res.residuals[1][:, j]])
        ok = ~np.isnan(y)
        r2 = 1 - np.sum(e[ok] ** 2) / np.sum((y[ok] - y[ok].mean()) ** 2)
        assert abs(res.r2[j] - r2) < 1e-12
    # Gaussian concentrated log-likelihood; AIC/BIC count p + 1 (the variance)
    n, p = res.nobs, res.estimates.size
    ll = -0.5 * n * (np.log(2 * np.pi * res.rss / n) + 1)
    assert abs(res.loglik - ll) < 1e-9 * abs(ll)
    assert abs(res.aic - (2 * (p + 1) - 2 * ll)) < 1e-8 * abs(ll)
    assert abs(res.bic - ((p + 1) * np.log(n) - 2 * ll)) < 1e-8 * abs(ll)
    ci = res.covariance.ci(0.05)
    import scipy.stats
    q = scipy.stats.t.ppf(0.975, n - p)
    np.testing.assert_allclose(ci[:, 1] - ci[:, 0], 2 * q * res.covariance.se, rtol=1e-12)
    corr = res.covariance.corr
    np.testing.assert_allclose(np.diag(corr), 1.0)
    assert np.all(np.abs(corr) <= 1 + 1e-12)
    fig = res.plot(time=DT)
    assert len(fig.axes) == 2
    assert "R2" in res.summary() and "AIC" in res.summary()


def test_hessian_covariance_close_to_gauss_newton(lv_fit):
    """Exact Hessian of 0.5|r|^2 = J'J + sum r_i H_i: small residuals, so close to Gauss-Newton."""
    Y1, Y2 = lv_data()
    res_h = identify(lv_plant(), [Experiment(Y1, x0=[9.0, 4.0]), Experiment(Y2, x0=[5.0, 7.0])],
                     fit=("plant", "x0"), params=START, cov="hessian")
    gn, _ = lv_fit
    np.testing.assert_allclose(res_h.estimates, gn.estimates, rtol=1e-6)
    np.testing.assert_allclose(res_h.covariance.se, gn.covariance.se, rtol=0.05)


def test_partial_measurement_and_shooting():
    """Only the prey is measured (h picks state 0).  Then (b, predator scale) is not identified:
    x2 -> k x2, b -> b / k leaves the prey unchanged, and identify says so; with b fixed the fit is
    unique, matches least_squares, and multiple shooting reaches the single-shooting fit."""
    Y1, _ = lv_data(seed=3)
    y = Y1[:, :1]
    with pytest.raises(ValueError, match=r"along .*x0\[0\]\[1\].*not identified by the data"):
        identify(lv_plant(), Experiment(y, x0=[9.5, 4.5]), measure=[0], fit=("plant", "x0"), params=START)
    start = dict(START, b=[0.4])
    free = ["a", "c", "d"]
    single = identify(lv_plant(), Experiment(y, x0=[9.5, 4.5]), measure=[0], fit=("plant", "x0"), params=start,
                      free=free)
    ms = identify(lv_plant(), Experiment(y, x0=[9.5, 4.5]), measure=lambda x: x[0], fit=("plant", "x0"),
                  params=start, free=free, shooting=50, continuity_weight=1e4)
    assert single.success and ms.success
    assert ms.covariance.names[-1].startswith("node[")
    # the continuity penalty leaves an O(1 / w^2) difference
    np.testing.assert_allclose(ms.estimates[:5], single.estimates, rtol=1e-4)

    def resid(w):
        R = y[:, 0] - np_sim([w[0], 0.4, w[1], w[2]], w[3:5], 150)[:, 0]
        return R[~np.isnan(R)]

    ref = scipy.optimize.least_squares(resid, np.r_[0.8, 1.0, 0.25, 9.5, 4.5], jac="3-point",
                                       xtol=1e-12, ftol=1e-12, gtol=1e-12)
    np.testing.assert_allclose(single.estimates, ref.x, rtol=1e-5)


def test_one_step_prediction_is_ols():
    import statsmodels.api as sm
    r = np.random.default_rng(4)
    N = 120
    u = r.standard_normal(N)
    x = np.zeros(N + 1)
    for i in range(N):
        x[i + 1] = 0.8 * x[i] + 0.5 * u[i] + 0.1 * r.standard_normal()
    y = x.copy()
    plant = dynopt.CasadiPlant(lambda x, u, p: p["a"] * x + p["b"] * u, n_state=1, n_control=1,
                               params=dict(a=[0.0], b=[0.0]))
    res = identify(plant, Experiment(y, u=u[:, None]), error="prediction")
    ols = sm.OLS(y[1:], np.column_stack([y[:-1], u])).fit()
    np.testing.assert_allclose(res.estimates, ols.params, rtol=1e-9)
    np.testing.assert_allclose(res.covariance.se, ols.bse, rtol=1e-7)
    assert abs(res.r2[0] - (1 - ols.ssr / np.sum((y[1:] - y[1:].mean()) ** 2))) < 1e-10


def test_bad_input():
    plant = lv_plant()
    Y1, _ = lv_data()
    with pytest.raises(ValueError, match=r"y: expected 1 columns \(the outputs of the measurement map h\), got 2"):
        identify(plant, Experiment(Y1, x0=[9.0, 4.0]), measure=[0])
    uplant = dynopt.CasadiPlant(lambda x, u, p: p["a"] * x + u, n_state=1, n_control=1, params=dict(a=[0.5]))
    with pytest.raises(ValueError, match=r"u: expected 10 rows .* got shape \(11, 1\)"):
        Experiment(np.zeros(11), u=np.zeros((11, 1)))
    with pytest.raises(ValueError, match=r"u: the plant has 1 controls"):
        identify(uplant, Experiment(np.zeros(11), x0=[0.0]))
    mask = np.ones_like(Y1, dtype=bool)
    with pytest.raises(ValueError, match=r"y: NaN at sample 5, output 0 where the declared mask says"):
        Experiment(Y1, x0=[9.0, 4.0], mask=mask)
    with pytest.raises(ValueError, match=r"transform\['a'\]: 'log' is not invertible at the start value \[-1.0\]"):
        identify(plant, Experiment(Y1, x0=[9.0, 4.0]), params=dict(a=[-1.0]), positive=["a"])
    with pytest.raises(ValueError, match=r"transform\['b'\]: not invertible"):
        identify(plant, Experiment(Y1, x0=[9.0, 4.0]), transform=dict(b=(lambda p: p ** 2, lambda z: z ** 2)))
    with pytest.raises(ValueError, match="unknown parameter names"):
        identify(plant, Experiment(Y1, x0=[9.0, 4.0]), free=["alpha"])
    with pytest.raises(ValueError, match="error: 'prediction' starts each step from the measured state"):
        identify(plant, Experiment(Y1[:, :1], x0=[9.0, 4.0]), measure=[0], error="prediction")
    with pytest.raises(ValueError, match=r"experiments\[0\].x0: expected an initial state"):
        identify(plant, Experiment(Y1[:, :1]), measure=[0])


def test_example_identify_lotka_volterra(load_example):
    mod = load_example("identify_lotka_volterra")
    res = mod.main()
    assert res.success and res.covariance.dof is None          # noise_std given: absolute covariance
    lo, hi = res.covariance.ci(0.001)[:4].T                      # 99.9% intervals hold the truth
    truth = np.array(list(mod.TRUE.values()))
    assert np.all((lo <= truth) & (truth <= hi))
    assert res.covariance.kind == "gauss-newton (delta method)"


@pytest.mark.parametrize("case", ["shooting-partial", "prediction"])
def test_sensitivity_jacobian_equals_casadi_jacobian(case, monkeypatch):
    """The forward-sensitivity Jacobian against CasADi's own AD of the same residual graph."""
    import dynopt.sysid.fit as fit_mod
    from dynopt.sysid.residuals import build_residuals
    seen = {}

    def spy(*args, **kw):
        model = build_residuals(*args, **kw)
        seen["sens"], seen["ad"] = model, build_residuals(*args, **dict(kw, jacobian="casadi"))
        return model

    monkeypatch.setattr(fit_mod, "build_residuals", spy)
    Y1, Y2 = lv_data()
    if case == "prediction":
        Yf = np.where(np.isnan(Y1), 5.0, Y1)
        Yf[7] = np.nan
        identify(lv_plant(), Experiment(Yf), error="prediction", params=START, positive=["a", "c"],
                 options=dict(max_nfev=2))
    else:
        identify(lv_plant(), [Experiment(Y1[:, :1], x0=[9.0, 4.0]), Experiment(Y2[:, :1], x0=[5.0, 7.0])],
                 measure=lambda x: x[0] + 0.1 * x[1] ** 2, fit=("plant", "x0"), params=START, positive=["b"],
                 shooting=40, options=dict(max_nfev=2))
    z = np.random.default_rng(0).uniform(-0.5, 0.5, seen["sens"].z.size1()) + 1.0
    r1, J1 = seen["sens"].rj(z)
    r2, J2 = seen["ad"].rj(z)
    np.testing.assert_array_equal(np.asarray(r1), np.asarray(r2))
    J1, J2 = np.asarray(J1), np.asarray(J2)
    np.testing.assert_allclose(J1, J2, rtol=0, atol=1e-12 * np.abs(J2).max())


def test_example_identify_two_tanks(load_example):
    """Partial measurement (lower level) with inputs: the truth inside 99.9% intervals, and the
    weighted residual sum near its expectation nobs - p (chi-square, sd sqrt(2 nobs) ~ 23)."""
    mod = load_example("identify_two_tanks")
    res = mod.main()
    lo, hi = res.covariance.ci(0.001).T
    truth = np.array(list(mod.TRUE.values()))
    assert np.all((lo <= truth) & (truth <= hi))
    assert abs(res.rss - (res.nobs - 3)) < 4 * np.sqrt(2 * res.nobs)


def test_bounds_active_match_least_squares():
    """An upper bound below the truth (a <= 0.95) is active; natural-unit bounds and bounds mapped
    through the log-parametrisation reach the bounded least_squares solution."""
    Y1, _ = lv_data()
    ex = Experiment(Y1, x0=[10.0, 5.0])
    plain = identify(lv_plant(), ex, params=START, bounds=dict(a=(0.1, 0.95)),
                     options=dict(xtol=1e-12, ftol=1e-12, gtol=1e-12))
    logp = identify(lv_plant(), ex, params=START, positive=["a", "b", "c", "d"], bounds=dict(a=(None, 0.95)),
                    options=dict(xtol=1e-12, ftol=1e-12, gtol=1e-12))

    def resid(th):
        R = Y1 - np_sim(th, [10.0, 5.0], 150)
        return R[~np.isnan(R)]

    ref = scipy.optimize.least_squares(resid, [0.8, 0.3, 0.9, 0.25], jac="3-point",
                                       bounds=([0.1, -np.inf, -np.inf, -np.inf], [0.95, np.inf, np.inf, np.inf]),
                                       xtol=1e-12, ftol=1e-12, gtol=1e-12)
    assert abs(ref.x[0] - 0.95) < 1e-9
    np.testing.assert_allclose(plain.estimates, ref.x, rtol=1e-5)
    np.testing.assert_allclose(logp.estimates, ref.x, rtol=1e-5)
    with pytest.raises(ValueError, match=r"params\['a'\]: start value \[0.8\] outside its bounds"):
        identify(lv_plant(), ex, params=START, bounds=dict(a=(0.9, 1.0)))
    with pytest.raises(ValueError, match=r"bounds\['a'\]: expected lo < hi"):
        identify(lv_plant(), ex, params=START, bounds=dict(a=(1.0, 0.5)))
