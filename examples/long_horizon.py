"""Long horizons: a 50000-step gradient in O(sqrt(T)) memory, and where gradients vanish or explode.

Part 1, checkpointed BPTT:
    State:      x = (p [m], v [m/s]), a mass-spring-damper (m = 1 kg, k = 4 N/m, c = 0.4 N s/m)
                sampled at dt = 0.02 s (exact zero-order-hold discretisation), 1000 s of it
    Input:      u [N], force, from a state feedback u = -K x
    Parameters: K (1 x 2) [N/m, N s/m]
    Cost:       sum_t dt (p^2 + 0.1 v^2 + 0.01 u^2) over T = 50000 steps (default), 4 initial states
    dJ/dK is computed with CheckpointedBPTT() (about 2 sqrt(T) states stored instead of T steps)
    and one plain gradient step is taken.

Part 2, gradient-flow diagnostics of x[t+1] = A x[t] (n = 2, A non-normal) with spectral
radius 0.9 (vanishing) and 1.1 (exploding), T = 300, W = the entries of A; plus the error of
truncated BPTT for the vanishing case.

Run: python examples/long_horizon.py [--quick] [--horizon T] [--plot DIR]
(--horizon 100000 with dt 0.02 s is 2000 s of simulated time and takes about twice as long.)
"""

import argparse
import time
from pathlib import Path

import numpy as np
from scipy.signal import cont2discrete

import dynopt
from dynopt import CheckpointedBPTT, Problem, diagnose, truncation_error
from dynopt.models.demos import diagnose_problem as demo_problem
from dynopt.models import LinearFeedback, LinearPlant, Quadratic


def long_horizon_gradient(horizon: int = 50_000):
    dt, mass, k, c = 0.02, 1.0, 4.0, 0.4
    Ac = np.array([[0.0, 1.0], [-k / mass, -c / mass]])
    Bc = np.array([[0.0], [1.0 / mass]])
    A, B, *_ = cont2discrete((Ac, Bc, np.eye(2), np.zeros((2, 1))), dt)
    x0 = np.random.default_rng(0).standard_normal((4, 2))
    ck = CheckpointedBPTT()
    prob = Problem(LinearPlant(A, B), LinearFeedback(2, 1, K0=[[1.0, 0.5]]),
                   Quadratic(np.diag([1.0, 0.1]), [0.01], scale=dt), horizon=horizon, x0=x0, gradient=ck)
    W = prob.W0
    t0 = time.perf_counter()
    J, g, _ = ev = prob.gradient.evaluate(prob, W)   # the Evaluation carries the run statistics
    elapsed = time.perf_counter() - t0
    s = ev.stats
    print(f"T = {horizon} steps ({horizon * dt:.0f} s), K = {W}: J = {J:.6f}, dJ/dK = {g}")
    print(f"checkpointed BPTT in {elapsed:.1f} s: at most {s['states_peak']} states stored at once "
          f"({s['checkpoints_peak']} checkpoints + a {s['tape_peak']}-step segment) instead of {horizon} steps; "
          f"{s['step_evaluations']} step evaluations = {s['recompute_factor']:.2f} x T")
    step = 0.5 / np.linalg.norm(g)
    J1 = prob.value(W - step * g)
    print(f"one gradient step of length 0.5 on K: J {J:.6f} -> {J1:.6f}")
    return J, J1, s


def diagnostics(plot_dir=None):
    reports = {}
    for name in ("linear-0.9", "linear-1.1"):
        prob = demo_problem(name, horizon=300, batch=4)
        rep = diagnose(prob)
        reports[name] = rep
        print(f"\n--- {name}: x[t+1] = A x[t], spectral radius {name[-3:]} ---")
        print(rep.summary())
        if plot_dir is not None:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
            path = Path(plot_dir) / f"diagnose-{name}.png"
            plt.close(rep.plot(path))
            print(f"saved {path}")
    prob = demo_problem("linear-0.9", horizon=300, batch=4)
    print("\n--- truncated BPTT on the vanishing case (effective memory "
          f"{reports['linear-0.9'].memory:.0f} steps) ---")
    print(truncation_error(prob, horizons=[1, 10, 30, 70, 150]).summary())
    return reports


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="T = 5000 instead of 50000")
    ap.add_argument("--horizon", type=int, default=None, help="steps of part 1 (default 50000)")
    ap.add_argument("--plot", default=None, metavar="DIR", help="save diagnostic plots (PNG) into DIR")
    args = ap.parse_args(argv)
    T = args.horizon or (5_000 if args.quick else 50_000)
    print(f"dynopt {dynopt.__version__}: long horizons")
    out = long_horizon_gradient(T)
    reports = diagnostics(args.plot)
    return out, reports


if __name__ == "__main__":
    main()
