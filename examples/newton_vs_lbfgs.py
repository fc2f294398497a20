"""Newton-type methods with exact Hessian-vector products against L-BFGS-B on a pendulum swing-up.

State:      x = (theta [rad], omega [rad/s]), theta = 0 hanging, pi upright; RK4, dt = 0.05 s
Input:      u = torque [N m], open loop (one value per step), |u| <= 2.5 N m (bounds)
Parameters: the torque sequence U (T = 80 steps, 4 s)
Cost:       SwingUpCost (1 - cos theta, 0.1 omega^2, 0.01 u^2, times dt) plus a terminal
            10 (theta_T - pi)^2 + omega_T^2

Every method gets the same exact gradient (one BPTT sweep pair); the Newton-type ones also get
``hessp(W, v)``: the exact Hessian-vector product (forward mode over the adjoint sweep,
:mod:`dynopt.gradients.hessian`).  Printed: iterations, sweeps (gradients and products), time
and the cost reached.  A swing-up is non-convex, so methods may stop in different local minima;
``polish`` shows the common pattern: a loose first-order run, then a Newton-type finish.

Run: python examples/newton_vs_lbfgs.py
"""

import time

import numpy as np
import scipy.optimize

import dynopt
from dynopt.gradients.hessian import hessp
from dynopt.models import OpenLoop, Pendulum, QuadraticTerminal, SwingUpCost

T, DT, UMAX = 80, 0.05, 2.5


def swingup_problem():
    U0 = 0.5 * np.sin(np.linspace(0, 3 * np.pi, T))
    return dynopt.Problem(dynopt.Discretized(Pendulum(), dynopt.RK4(DT)), OpenLoop(2, 1, horizon=T, U0=U0),
                          SwingUpCost(DT), QuadraticTerminal([10.0, 1.0], x_ref=[np.pi, 0.0]), horizon=T,
                          x0=[0.0, 0.0], gradient=dynopt.CompiledBPTT())   # compiled sweeps: fastest at B = 1, deterministic


def solve(problem, method, W0, *, bounds, options, use_hessp):
    count = dict(gradients=0, hessp=0)

    def fun(W):
        count["gradients"] += 1
        return problem.value_and_grad(W)

    def hp(W, v):
        count["hessp"] += 1
        return hessp(problem, W, v)

    t0 = time.perf_counter()
    res = scipy.optimize.minimize(fun, W0, jac=True, hessp=hp if use_hessp else None, method=method,
                                  bounds=bounds, options=options)
    res.seconds = time.perf_counter() - t0
    res.count = count
    return res


def projected_gradient_norm(problem, W):
    g = problem.value_and_grad(W)[1]
    at = 1e-4 * UMAX          # trust-constr (interior point) stops up to ~1e-4 inside an active bound
    free = ~(((W <= -UMAX + at) & (g > 0)) | ((W >= UMAX - at) & (g < 0)))
    return float(np.abs(g[free]).max(initial=0.0))


def main(quick=False):
    problem = swingup_problem()
    bounds = scipy.optimize.Bounds(-UMAX * np.ones(T), UMAX * np.ones(T))
    hessp(problem, problem.W0, np.ones(T))          # build the product function and the compiled sweeps once
    problem.value_and_grad(problem.W0)              # (neither is timed below)
    W0 = problem.W0
    runs = {}
    runs["L-BFGS-B"] = solve(problem, "L-BFGS-B", W0, bounds=bounds, use_hessp=False,
                             options=dict(maxiter=30 if quick else 20000, gtol=1e-8, ftol=1e-15))
    runs["trust-constr"] = solve(problem, "trust-constr", W0, bounds=bounds, use_hessp=True,
                                 options=dict(maxiter=2000, gtol=1e-8, xtol=1e-12))
    if not quick:
        loose = solve(problem, "L-BFGS-B", W0, bounds=bounds, use_hessp=False, options=dict(gtol=1e-3, ftol=1e-9))
        fine = solve(problem, "trust-constr", loose.x, bounds=bounds, use_hessp=True,
                     options=dict(maxiter=2000, gtol=1e-8, xtol=1e-12))
        fine.seconds += loose.seconds
        fine.count = {k: fine.count[k] + loose.count[k] for k in fine.count}
        fine.nit += loose.nit
        runs["polish (L-BFGS-B, then trust-constr)"] = fine
    print(f"{'method':38s} {'nit':>6s} {'gradients':>9s} {'Hv':>6s} {'time [s]':>9s} {'J':>12s} {'|proj grad|':>11s}")
    for name, r in runs.items():
        print(f"{name:38s} {r.nit:6d} {r.count['gradients']:9d} {r.count['hessp']:6d} {r.seconds:9.3f} "
              f"{r.fun:12.8f} {projected_gradient_norm(problem, r.x):11.2e}")
    x = problem.simulate(runs["trust-constr"].x).x[:, 0, :]
    print(f"trust-constr: final angle {x[-1, 0]:.3f} rad (upright = {np.pi:.3f}), "
          f"{int(np.isclose(np.abs(runs['trust-constr'].x), UMAX, atol=1e-4 * UMAX).sum())} steps at the torque limit")
    return runs


if __name__ == "__main__":
    main()
