"""Econometrics benchmark: dynopt against statsmodels / arch on the same data, fitted to the same
tolerance, at the series' real lengths (100-309 observations) and at N = 20000.  One run prints
everything.

    python benchmarks/bench_econometrics.py [--quick]

Rows: AR(9) (sunspots), ARMA(2,1) exact MLE (sunspots), ARIMA(1,1,1) with drift (log CPI),
VAR(2) (3 macro growth series), GARCH(1,1) (S&P 500 returns, arch's data), local level and local
linear trend (Nile, exact diffuse).  N = 20000 rows simulate the fitted model.  Both sides compute the same covariance
(opg for ARIMA-type and local level, as statsmodels' default; robust for GARCH, as arch's; OLS
nonrobust for AR and VAR).  "tight" reference = statsmodels' L-BFGS-B at factr=10, pgtol=1e-8
(arch: tol=1e-10), so both stop at the optimum to ~1e-8; "default" = the reference library's own
defaults (it often stops earlier; see the llf column).  Timings are medians of interleaved repeats
with the garbage collector off and BLAS on one thread (2-core machine shared with other jobs: the
ratios are more stable than the absolute times).  The exact ARMA/ARIMA likelihood runs as one
compiled Kalman scan (models/econometrics/kalman_compiled.py, dynopt.casadi.scan), built in the
background by the first fit of each model shape and cached on disk; the benchmark waits for it
before timing (reported on its own line).  GARCH runs
its default fit: Newton's method on the exact Hessian of the constant-mean GARCH(1, 1) likelihood,
whose Hessian and score outer product at the estimate also give the robust covariance; its
derivatives come from one compiled pass over the data (models/econometrics/garch_compiled.py:
CasADi-derived forward sensitivities in a C loop, dynopt.casadi.scan), built in the background by
the first fit and cached on disk (the build or cached load is reported on its own line and waited
for before timing; the lfilter form, garch_newton.py, answers until then).
"""

import os

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import gc  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402

from dynopt.models.econometrics import AR, ARIMA, ARMA, GARCH, VAR, LocalLevel  # noqa: E402

QUICK = "--quick" in sys.argv
TIGHT = {"maxiter": 5000, "pgtol": 1e-8, "factr": 10.0}


def timed(fn):
    gc.disable()
    try:
        t = time.perf_counter()
        out = fn()
        return time.perf_counter() - t, out
    finally:
        gc.enable()


def interleaved(fns, repeats, budget=1.0):
    """Median time of each function, run in turn; returns (times, last outputs).  After one warm-up
    round the number of rounds is raised from ``repeats`` until a round's cost fills ``budget``
    seconds (at most 50 rounds): fast rows get enough samples for a stable median."""
    warm = [timed(fn)[0] for fn in fns]
    repeats = int(min(50, max(repeats, budget / max(sum(warm), 1e-6))))
    times = [[] for _ in fns]
    outs = [None] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t, outs[i] = timed(fn)
            times[i].append(t)
    return [float(np.median(t)) for t in times], outs


def quiet(fn):
    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn()
    return run


def data():
    import statsmodels.api as sm
    from arch.data import sp500
    sun = sm.datasets.sunspots.load_pandas().data["SUNACTIVITY"].to_numpy(dtype=float)
    d = sm.datasets.macrodata.load_pandas().data
    cpi = np.log(d["cpi"].to_numpy(dtype=float)) * 100
    growth = np.diff(np.log(d[["realgdp", "realcons", "realinv"]].to_numpy(dtype=float)), axis=0) * 100
    px = sp500.load()["Adj Close"].to_numpy(dtype=float)
    ret = 100 * np.diff(np.log(px))[-300:]
    nile = sm.datasets.nile.load_pandas().data["volume"].to_numpy(dtype=float)
    return sun, cpi, growth, ret, nile


def rows(N):
    """(name, dynopt fit, reference tight, reference default, series length)."""
    import arch
    import statsmodels.api as sm
    sun, cpi, growth, ret, nile = data()
    if N:
        rng = np.random.default_rng(0)
        sun = ARMA(sun, 2, 1).simulate([49.7, 1.47, -0.77, -0.19, 240.0], N, rng=rng)
        ar9 = AR(sun, 9)
        cpi = np.cumsum(0.94 + ARMA(np.diff(cpi), 1, 1).simulate([0.0, 0.93, -0.57, 0.33], N, rng=rng))
        growth = VAR(growth, 2).simulate(VAR(growth, 2).fit().values, N, rng=rng, sigma=np.diag([0.8, 0.6, 12.0]))
        ret = GARCH(ret).simulate([0.07, 0.04, 0.18, 0.77], N, rng=rng)
        nile_ll = LocalLevel(nile).simulate([15099.0, 1469.1], N, rng=rng, level0=1100.0)
        nile_llt = LocalLevel(nile, trend=True).simulate([1.0, 0.1, 0.001], N, rng=rng)
        nile = nile_ll
    else:
        nile_llt = nile
        ar9 = AR(sun, 9)
    out = [
        ("AR(9)", lambda: ar9.fit(), quiet(lambda: sm.tsa.AutoReg(sun, 9, trend="c").fit()), None, len(sun),
         lambda r: r.llf, lambda r: r.llf),
        ("ARMA(2,1) mle", lambda: ARMA(sun, 2, 1).fit("mle", cov_type="opg"),
         quiet(lambda: sm.tsa.arima.ARIMA(sun, order=(2, 0, 1), trend="c").fit(method_kwargs=dict(TIGHT))),
         quiet(lambda: sm.tsa.arima.ARIMA(sun, order=(2, 0, 1), trend="c").fit()), len(sun),
         lambda r: r.llf, lambda r: r.llf),
        ("ARIMA(1,1,1)+drift", lambda: ARIMA(cpi, (1, 1, 1), trend="t").fit(cov_type="opg"),
         quiet(lambda: sm.tsa.SARIMAX(cpi, order=(1, 1, 1), trend="c", simple_differencing=True).fit(
             disp=0, method_kwargs=dict(TIGHT))),
         quiet(lambda: sm.tsa.SARIMAX(cpi, order=(1, 1, 1), trend="c", simple_differencing=True).fit(disp=0)),
         len(cpi), lambda r: r.llf, lambda r: r.llf),
        ("VAR(2), 3 series", lambda: VAR(growth, 2).fit(), quiet(lambda: sm.tsa.VAR(growth).fit(2)), None,
         len(growth), lambda r: r.llf, lambda r: r.llf),
        ("GARCH(1,1)", lambda: GARCH(ret).fit(),
         quiet(lambda: arch.arch_model(ret, rescale=False).fit(disp="off", tol=1e-10, options={"maxiter": 1000})),
         quiet(lambda: arch.arch_model(ret, rescale=False).fit(disp="off")), len(ret),
         lambda r: r.llf, lambda r: r.loglikelihood),
        ("local level", lambda: LocalLevel(nile).fit(cov_type="opg"),
         quiet(lambda: sm.tsa.UnobservedComponents(nile, "llevel", use_exact_diffuse=True).fit(
             disp=0, method_kwargs=dict(TIGHT))),
         quiet(lambda: sm.tsa.UnobservedComponents(nile, "llevel", use_exact_diffuse=True).fit(disp=0)),
         len(nile), lambda r: r.llf, lambda r: r.llf),
        ("local linear trend", lambda: LocalLevel(nile_llt, trend=True).fit(cov_type="opg"),
         quiet(lambda: sm.tsa.UnobservedComponents(nile_llt, "lltrend", use_exact_diffuse=True).fit(
             disp=0, method_kwargs=dict(TIGHT))),
         quiet(lambda: sm.tsa.UnobservedComponents(nile_llt, "lltrend", use_exact_diffuse=True).fit(disp=0)),
         len(nile_llt), lambda r: r.llf, lambda r: r.llf),
    ]
    return out


def main():
    import statsmodels.api as sm
    sun = data()[0]
    t_cold, _ = timed(lambda: ARMA(sun, 2, 1).fit("mle", cov_type="opg"))
    print(f"first ARMA(2,1) fit in this process: {t_cold * 1e3:.0f} ms (builds the CasADi functions; starts the "
          f"compiled Kalman scan's build in the background)")
    from dynopt.casadi import scan
    from dynopt.models.econometrics import garch_compiled, kalman_compiled, unobserved_compiled
    _, cpi, _, ret, _ = data()
    t_first, _ = timed(lambda: GARCH(ret).fit())
    t0 = time.perf_counter()
    for key in (garch_compiled.KEY, garch_compiled.GRID_KEY):
        scan.wait_scan(key)
    print(f"compiled GARCH pass: first fit {t_first * 1e3:.1f} ms (lfilter pass, build started in the background), "
          f"build or cached load finished {time.perf_counter() - t0:.2f} s later; status: {garch_compiled.status()}")
    t0 = time.perf_counter()
    for layout in (ARMA(sun, 2, 1).layout, ARIMA(cpi, (1, 1, 1), trend="t").inner.layout):
        kalman_compiled.kalman_scan(layout, block=True)
    scan.cached_scan(unobserved_compiled.KEY, unobserved_compiled.build_step, prefix=unobserved_compiled.PREFIX)
    print(f"compiled Kalman scans (ARMA(2,1), ARIMA(1,1,1), local linear trend): built or loaded in "
          f"{time.perf_counter() - t0:.2f} s, before timing\n")
    header = (f"{'model':<20}{'N':>7}{'dynopt ms':>11}{'ref tight ms':>14}{'ref default ms':>16}"
              f"{'x tight':>9}{'x default':>11}{'llf dyn - tight':>17}{'llf dyn - default':>19}")
    for N in (0, 20000):
        print(f"== {'real lengths' if not N else f'N = {N}'} ==")
        print(header)
        reps = (3 if QUICK else 7) if not N else (1 if QUICK else 3)
        for name, fd, ft, fdef, n, lld, llr in rows(N):
            fns = [fd, ft] + ([fdef] if fdef is not None else [])
            (td, tt, *tdef), (rd, rt, *rdef) = interleaved(fns, reps)
            tdef = tdef[0] if tdef else tt
            rdef = rdef[0] if rdef else rt
            print(f"{name:<20}{n:>7}{td * 1e3:>11.2f}{tt * 1e3:>14.2f}{tdef * 1e3:>16.2f}{tt / td:>9.1f}"
                  f"{tdef / td:>11.1f}{lld(rd) - llr(rt):>17.2e}{lld(rd) - llr(rdef):>19.2e}")
        print()
    del sm


if __name__ == "__main__":
    main()
