"""Econometrics benchmark: P3 gradient, ARMA(2,1) exact-likelihood fit and VAR(2) fit, dynopt vs
statsmodels, and exact gradients vs finite differences.  One run prints everything.

    python benchmarks/bench_econometrics.py [--quick]

Timings are medians of interleaved repeats with the garbage collector off and BLAS on one
thread (2-core machine shared with other jobs: ratios are more stable than absolute times).
"""

import os

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import gc  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
from scipy.signal import lfilter  # noqa: E402

from dynopt.models.econometrics import ARMA, VAR  # noqa: E402

QUICK = "--quick" in sys.argv


def median_time(fn, repeats):
    times = []
    gc.disable()
    try:
        for _ in range(repeats):
            t = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t)
    finally:
        gc.enable()
    return float(np.median(times)), out


def p3_series():
    eps = np.random.default_rng(4).standard_normal(20500) * 1.0
    return lfilter([1, 0.4], [1, -0.6, 0.3], eps)[500:]


def main():
    import statsmodels.api as sm

    y = p3_series()
    N = len(y)
    m = ARMA(y, 2, 1, trend="n")
    R = 5 if QUICK else 21

    # ------------------------------------------------------------------ P3
    print("== P3 arma-css (N = 20000), gradient of S(phi1, phi2, theta) ==")
    w = np.array([0.5, -0.2, 0.3])
    t_grad, (S, g) = median_time(lambda: m.css_objective(w), R)
    ref_S, ref_g = 1.0440618543221125, np.array([-0.3428082734256864, 0.1805178951633688, -0.42627714712912673])
    print(f"S = {S!r} (reference {ref_S!r}, rel.err {abs(S - ref_S) / ref_S:.1e})")
    print(f"grad = {g.tolist()} (max rel.err {np.max(np.abs(g - ref_g)) / np.max(np.abs(ref_g)):.1e})")
    from dynopt.models.econometrics.arma import css_sse_and_grad
    t_fwd, _ = median_time(lambda: css_sse_and_grad(m.layout, m.y, m.exog, np.append(w, 1.0), grad=False), R)

    def fd_grad():
        h = 1e-6
        return np.array([(m.css_objective(w + e)[0] - m.css_objective(w - e)[0]) / (2 * h) for e in np.eye(3) * h])
    t_fd, _ = median_time(fd_grad, R)
    print(f"value+gradient {t_grad * 1e3:.3f} ms | value only {t_fwd * 1e3:.3f} ms | ratio {t_grad / t_fwd:.2f} | "
          f"central FD gradient (6 values) {t_fd * 1e3:.3f} ms")

    # ------------------------------------------------------------------ ARMA(2,1) exact likelihood
    print("\n== ARMA(2,1) exact Gaussian likelihood (Kalman filter), same N = 20000 observations ==")
    theta = np.array([0.5, -0.2, 0.3, 1.1])
    t_lg, (llf, gl) = median_time(lambda: m.loglike_and_grad(theta), R)
    t_l, _ = median_time(lambda: m.loglike(theta), R)

    def fd_l():
        h = 1e-5
        return np.array([(m.loglike(theta + e) - m.loglike(theta - e)) / (2 * h) for e in np.eye(4) * h])
    t_fdl, gfd = median_time(fd_l, R)
    mod = sm.tsa.arima.ARIMA(y, order=(2, 0, 1), trend="n")
    t_sml, sm_llf = median_time(lambda: float(mod.loglike(theta)), R)
    print(f"llf dynopt {llf!r} statsmodels {sm_llf!r} (rel.diff {abs(llf - sm_llf) / abs(sm_llf):.1e})")
    print(f"gradient vs central FD: max rel.diff {np.max(np.abs(gl - gfd)) / np.max(np.abs(gfd)):.1e}")
    print(f"dynopt value+gradient {t_lg * 1e3:.2f} ms | value {t_l * 1e3:.2f} ms | central FD gradient "
          f"{t_fdl * 1e3:.2f} ms ({t_fdl / t_lg:.1f}x slower) | statsmodels loglike (one value) {t_sml * 1e3:.2f} ms")

    def fit_dynopt():
        return ARMA(y, 2, 1, trend="n").fit("mle")

    def fit_sm():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return sm.tsa.arima.ARIMA(y, order=(2, 0, 1), trend="n").fit()

    Rf = 1 if QUICK else 3
    td, ts = [], []
    for _ in range(Rf):  # interleaved
        t, rd = median_time(fit_dynopt, 1)
        td.append(t)
        t, rs = median_time(fit_sm, 1)
        ts.append(t)
    td, ts = float(np.median(td)), float(np.median(ts))
    print(f"{'':<12}{'ar.L1':>12}{'ar.L2':>12}{'ma.L1':>12}{'sigma2':>12}{'llf':>20}{'fit s':>9}")
    print(f"{'dynopt':<12}" + "".join(f"{v:>12.6f}" for v in rd.values) + f"{rd.llf:>20.6f}{td:>9.3f}")
    print(f"{'statsmodels':<12}" + "".join(f"{v:>12.6f}" for v in rs.params) + f"{rs.llf:>20.6f}{ts:>9.3f}")
    rel = np.max(np.abs(rd.values - rs.params) / rd.bse)
    print(f"max |difference| / std err = {rel:.1e}; llf dynopt - statsmodels = {rd.llf - rs.llf:.2e}; "
          f"dynopt max|grad llf| = {np.max(np.abs(rd.grad)):.1e}, at statsmodels' estimate "
          f"{np.max(np.abs(m.loglike_and_grad(np.asarray(rs.params))[1])):.1e}")
    print(f"fit time (both include standard errors): dynopt {td:.3f} s, statsmodels {ts:.3f} s -> "
          f"{ts / td:.1f}x faster")

    # ------------------------------------------------------------------ VAR(2), 3 series
    print("\n== VAR(2), k = 3 series, N = 20000 (simulated) ==")
    A1 = np.array([[0.5, 0.1, 0.0], [0.0, 0.3, 0.2], [0.1, 0.0, 0.4]])
    A2 = np.array([[-0.2, 0.0, 0.1], [0.05, -0.1, 0.0], [0.0, 0.1, -0.15]])
    c = np.array([0.1, -0.2, 0.05])
    vals = np.concatenate([np.r_[c[j], A1[j], A2[j]] for j in range(3)])
    Y = VAR(np.zeros((10, 3)), 2).simulate(vals, 20000, rng=5)
    for start in ("ols", "zeros"):
        tdv, rv = median_time(lambda: VAR(Y, 2).fit(start=start), 1 if start == "zeros" else (3 if QUICK else 7))
        print(f"dynopt start={start!r}: fit {tdv * 1e3:.1f} ms, BFGS iterations {rv.optimizer.nit}, "
              f"max|grad| {np.max(np.abs(rv.grad)):.1e}, llf {rv.llf:.6f}")
    tsv, rsv = median_time(lambda: sm.tsa.VAR(Y).fit(2), 3 if QUICK else 7)
    t_vg, _ = median_time(lambda: VAR(Y, 2).loglike_and_grad(rv.values), R)
    print(f"statsmodels VAR.fit(2): {tsv * 1e3:.1f} ms, llf {rsv.llf:.6f}; max |coef difference| "
          f"{np.max(np.abs(rv.values - rsv.params.T.ravel())):.1e}")
    print(f"dynopt VAR value+gradient {t_vg * 1e3:.2f} ms (21 coefficients)")


if __name__ == "__main__":
    main()
