"""Second-order benchmark: exact Hessian-vector products and the identification front door.

Prints, in one run (OPENBLAS_NUM_THREADS=1, garbage collector off while timing):

1. Lotka-Volterra identification (4 rates + initial state, 201 noisy samples of both species):
   ``dynopt.sysid.identify`` (least_squares with CasADi's exact Jacobian, graph build included)
   against ``scipy.optimize.least_squares`` with a 2-point finite-difference Jacobian on the same
   simulation-error objective written in NumPy.  Target: >= 5x faster, same estimates.
2. An ill-conditioned tracking problem (double integrator, T = 200, open-loop force, control
   weight 1e-5): L-BFGS-B against Newton-CG / trust-ncg / trust-krylov with exact ``hessp``;
   iterations, sweeps (gradients + Hessian-vector products) and time.  Target: >= 3x less time.
3. A torque-limited pendulum swing-up (open loop, |u| <= 2.5 N m, T = 80, RK4): L-BFGS-B against
   trust-constr with bounds and exact ``hessp``.

Every method gets the same gradient strategy: whichever of ``BPTT`` (NumPy sweeps) and
``CompiledBPTT`` (one CasADi loop) is faster on the problem, timed first and then fixed, so that
no background compilation (``Auto``) lands inside a timed run; it is built before timing, as is
the Hessian-vector-product Function.

Usage: ``python benchmarks/bench_second_order.py [--quick]``
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import gc  # noqa: E402
import time  # noqa: E402

import casadi as ca  # noqa: E402
import numpy as np  # noqa: E402
import scipy.optimize  # noqa: E402

import dynopt  # noqa: E402
from dynopt.gradients.hessian import hessp  # noqa: E402
from dynopt.models import OpenLoop, Pendulum, Quadratic, QuadraticTerminal, SwingUpCost, double_integrator  # noqa: E402
from dynopt.sysid import Experiment, identify  # noqa: E402

DT = 0.1


def _lv_np(th, x0, N):
    a, b, c, d = th

    def f(x):
        return np.array([a * x[0] - b * x[0] * x[1], d * x[0] * x[1] - c * x[1]])

    xs = [np.asarray(x0, float)]
    for _ in range(N):
        x = xs[-1]
        k1 = f(x)
        k2 = f(x + DT / 2 * k1)
        k3 = f(x + DT / 2 * k2)
        k4 = f(x + DT * k3)
        xs.append(x + DT / 6 * (k1 + 2 * k2 + 2 * k3 + k4))
    return np.array(xs)


def bench_identify(repeats):
    N = 200
    r = np.random.default_rng(0)
    Y = _lv_np([1.0, 0.4, 0.8, 0.2], [10.0, 5.0], N) + 0.3 * r.standard_normal((N + 1, 2))
    w0 = np.r_[0.8, 0.3, 1.0, 0.25, 9.0, 4.0]

    def resid(w):
        return (Y - _lv_np(w[:4], w[4:], N)).ravel()

    def ours():
        ode = dynopt.CasadiODE(lambda x, u, p: ca.vertcat(p["a"] * x[0] - p["b"] * x[0] * x[1],
                                                          p["d"] * x[0] * x[1] - p["c"] * x[1]),
                               n_state=2, params=dict(a=[0.8], b=[0.3], c=[1.0], d=[0.25]))
        return identify(ode.discretize(dynopt.RK4(DT)), Experiment(Y, x0=w0[4:]), fit=("plant", "x0"),
                        options=dict(xtol=1e-8, ftol=1e-8, gtol=1e-8))

    def theirs():
        return scipy.optimize.least_squares(resid, w0, jac="2-point", xtol=1e-8, ftol=1e-8, gtol=1e-8)

    t_ours, t_theirs = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a = ours()
        t_ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        b = theirs()
        t_theirs.append(time.perf_counter() - t0)
    to, tt = np.median(t_ours), np.median(t_theirs)
    print("1. Lotka-Volterra identification (6 unknowns, 402 residuals)")
    print(f"   dynopt.sysid.identify   {to * 1e3:8.1f} ms  (build {a.seconds['build'] * 1e3:.1f} ms, "
          f"solve {a.seconds['solve'] * 1e3:.1f} ms, nfev {a.solver.nfev}, njev {a.solver.njev})")
    print(f"   least_squares 2-point   {tt * 1e3:8.1f} ms  (nfev {b.nfev} + {b.njev} Jacobians x 6 simulations)")
    print(f"   speed-up {tt / to:.1f}x (target >= 5x); max |estimate difference| / |estimate| "
          f"{np.max(np.abs(a.estimates - b.x) / np.abs(b.x)):.1e}")


class Counted:
    """fun/jac and hessp wrappers that count sweeps."""

    def __init__(self, problem):
        self.problem, self.grads, self.hvps = problem, 0, 0

    def fg(self, W):
        self.grads += 1
        return self.problem.value_and_grad(W)

    def hp(self, W, v):
        self.hvps += 1
        return hessp(self.problem, W, v)


def fastest_gradient(problem):
    """The problem with the faster of BPTT and CompiledBPTT (median of 15 gradients near W0)."""
    best = None
    for strategy in (dynopt.BPTT(), dynopt.CompiledBPTT()):
        p = problem.replace(gradient=strategy)
        p.value_and_grad(p.W0)
        ts = []
        for i in range(15):
            W = p.W0 + 1e-6 * (i + 1)          # distinct points: no memoised result
            t0 = time.perf_counter()
            p.value_and_grad(W)
            ts.append(time.perf_counter() - t0)
        t = float(np.median(ts))
        if best is None or t < best[0]:
            other = best[0] if best is not None else np.inf
            best = (t, p, strategy)
        else:
            other = t
    print(f"   gradient: {best[2]!r}, {best[0] * 1e3:.2f} ms (the other: {other * 1e3:.2f} ms)")
    return best[1]


def projected_gradient(problem, x, bounds):
    """Largest gradient entry not pushing against an active bound (first-order optimality)."""
    g = problem.value_and_grad(x)[1]
    if bounds is None:
        return float(np.abs(g).max())
    tol = 1e-4 * np.maximum(1.0, np.abs(bounds.ub))     # trust-constr stops ~1e-4 inside active bounds
    free = ~(((x <= bounds.lb + tol) & (g > 0)) | ((x >= bounds.ub - tol) & (g < 0)))
    return float(np.abs(g[free]).max(initial=0.0))


def run(problem, method, **kw):
    c = Counted(problem)
    hessp(problem, problem.W0, np.ones(problem.n_decision))   # build the product Function outside the timing
    problem.value_and_grad(problem.W0)
    gc.collect()
    gc.disable()
    t0 = time.perf_counter()
    try:
        res = scipy.optimize.minimize(c.fg, problem.W0, jac=True, hessp=None if method == "L-BFGS-B" else c.hp,
                                      method=method, **kw)
        msg, nit, fun, ok, x = res.message, res.nit, res.fun, res.success, res.x
    except ValueError as exc:      # scipy's trlib can hand a NaN direction on very ill-conditioned problems
        msg, nit, fun, ok, x = f"failed: {exc}", -1, np.nan, False, None
    el = time.perf_counter() - t0
    gc.enable()
    pg = np.nan if x is None else projected_gradient(problem, x, kw.get("bounds"))
    print(f"   {method:13s} nit {nit:6d}  gradients {c.grads:6d}  Hv {c.hvps:5d}  time {el:8.3f} s  "
          f"J {fun:.10g}  |proj grad| {pg:.1e}  {'scipy: success' if ok else 'NOT converged: ' + str(msg)[:60]}")
    return el, fun


def bench_tracking(quick):
    T = 200
    problem = dynopt.Problem(double_integrator(0.05), OpenLoop(2, 1, horizon=T),
                             Quadratic([1.0, 0.01], [1e-5], x_ref=[1.0, 0.0]),
                             QuadraticTerminal([100.0, 10.0], x_ref=[1.0, 0.0]), horizon=T, x0=[0.0, 0.0])
    print(f"2. Ill-conditioned tracking (double integrator, T={T}, {problem.n_decision} controls, R = 1e-5)")
    problem = fastest_gradient(problem)
    t_l, f_l = run(problem, "L-BFGS-B", options=dict(maxiter=3000 if quick else 30000, maxfun=60000, gtol=1e-8,
                                                     ftol=1e-15))
    best = np.inf
    for method, opts in (("Newton-CG", dict(xtol=1e-10)), ("trust-ncg", dict(gtol=1e-8)),
                         ("trust-krylov", dict(gtol=1e-8, inexact=False))):
        t, f = run(problem, method, options=opts)
        if np.isfinite(f) and abs(f - f_l) <= 1e-6 * abs(f_l):
            best = min(best, t)
    print(f"   fastest Newton-type reaching L-BFGS-B's optimum: {t_l / best:.1f}x less time (target >= 3x)")


def bench_swingup(quick):
    T, dt, umax = 80, 0.05, 2.5
    U0 = 0.5 * np.sin(np.linspace(0, 3 * np.pi, T))
    problem = dynopt.Problem(dynopt.Discretized(Pendulum(), dynopt.RK4(dt)), OpenLoop(2, 1, horizon=T, U0=U0),
                             SwingUpCost(dt), QuadraticTerminal([10.0, 1.0], x_ref=[np.pi, 0.0]), horizon=T,
                             x0=[0.0, 0.0])
    bounds = scipy.optimize.Bounds(-umax * np.ones(T), umax * np.ones(T))
    print(f"3. Bounded pendulum swing-up (open loop, T={T}, |u| <= {umax})")
    problem = fastest_gradient(problem)
    run(problem, "L-BFGS-B", bounds=bounds, options=dict(maxiter=2000 if quick else 20000, gtol=1e-8, ftol=1e-15))
    run(problem, "trust-constr", bounds=bounds, options=dict(maxiter=300 if quick else 2000, gtol=1e-8, xtol=1e-12))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats and iterations")
    args = ap.parse_args()
    bench_identify(1 if args.quick else 3)
    bench_tracking(args.quick)
    bench_swingup(args.quick)


if __name__ == "__main__":
    main()
