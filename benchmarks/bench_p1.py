"""P1 (pendulum-MLP) and P2 (LQR, T = 5000) of ../shared/benchmarks/PROBLEMS.md: dynopt's NumPy
BPTT (``gradient=BPTT()``, the NumPy path of the default) against hand-written NumPy forward +
adjoint loops (the yardsticks, ``p1_yardstick.py``) and central finite differences.

Run:  python benchmarks/bench_p1.py [--rounds 15] [--full-fd] [--no-p2] [--default]

Prints forward time, gradient time, gradient/forward, dynopt/yardstick (issue 10 target:
<= 1.0 for the gradient), the central-FD gradient time of P1 (extrapolated from 40 forward
sweeps unless --full-fd), and with --default the default strategy's time and the path it
picked.  One compute thread, garbage collector off while timing, medians of interleaved rounds.
"""

from __future__ import annotations

import os

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import gc  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import p1_yardstick as yard  # noqa: E402
from timing import median_times  # noqa: E402
from problems import p1_check, p1_initial_states, p1_problem  # noqa: E402
from dynopt import BPTT  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--T", type=int, default=200)
    ap.add_argument("--B", type=int, default=64)
    ap.add_argument("--full-fd", action="store_true", help="time all 2*1217 FD sweeps (about a minute)")
    ap.add_argument("--no-p2", action="store_true", help="skip P2 (LQR, n=8, B=32, T=5000)")
    ap.add_argument("--default", action="store_true",
                    help="also time the default strategy (may build compiled sweeps in the background)")
    args = ap.parse_args(argv)
    T, B = args.T, args.B
    default_prob = p1_problem(T, B)
    prob = default_prob.replace(gradient=BPTT())
    W = prob.W0
    th0, om0 = p1_initial_states(B)

    J, g = prob.value_and_grad(W)
    Jy, gy = yard.p1_value_and_grad(W, th0, om0, T)
    print(f"P1 pendulum-MLP, T={T}, B={B}, {W.size} parameters")
    if (T, B) in {(200, 64), (50, 64), (800, 64), (3200, 64), (200, 1), (200, 1024)}:
        print(f"  reference check: max rel. deviation from PROBLEMS.md = {p1_check(J, g, T, B):.2e}")
    print(f"  dynopt vs yardstick: |dJ| = {abs(J - Jy):.2e}, max|dg| / max|g| = "
          f"{np.abs(g - gy).max() / np.abs(gy).max():.2e}")

    t = median_times({
        "dynopt forward": lambda: prob.value(W),
        "dynopt gradient": lambda: prob.value_and_grad(W),
        "yardstick forward": lambda: yard.p1_value(W, th0, om0, T),
        "yardstick gradient": lambda: yard.p1_value_and_grad(W, th0, om0, T),
    }, args.rounds)
    for k, v in t.items():
        print(f"  {k:<22}{v * 1e3:10.2f} ms")
    print(f"  dynopt gradient / forward      {t['dynopt gradient'] / t['dynopt forward']:.2f}   (target <= 3)")
    print(f"  yardstick gradient / forward   {t['yardstick gradient'] / t['yardstick forward']:.2f}")
    print(f"  dynopt / yardstick (forward)   {t['dynopt forward'] / t['yardstick forward']:.2f}")
    print(f"  dynopt / yardstick (gradient)  {t['dynopt gradient'] / t['yardstick gradient']:.2f}   (target <= 1.0)")

    n_fd = 2 * W.size if args.full_fd else 40
    Wc = W.copy()
    gc.disable()
    t0 = time.perf_counter()
    for i in range(n_fd // 2):
        w = Wc[i]
        Wc[i] = w + 1e-6
        prob.value(Wc)
        Wc[i] = w - 1e-6
        prob.value(Wc)
        Wc[i] = w
    elapsed = time.perf_counter() - t0
    gc.enable()
    fd = elapsed * (2 * W.size) / n_fd
    how = "measured" if args.full_fd else f"extrapolated from {n_fd} sweeps"
    print(f"  central FD gradient ({2 * W.size} sweeps, {how}) {fd:8.2f} s = "
          f"{fd / t['dynopt gradient']:.0f}x dynopt's BPTT gradient")
    if args.default:
        _time_default(default_prob, W, args.rounds, lambda: yard.p1_value_and_grad(W, th0, om0, T))
    if not args.no_p2:
        _p2(args.rounds)


def _time_default(prob, W, rounds, yard_fn):
    """The default strategy (no ``gradient=``), after any background build it starts has settled
    (``wait``, build time reported apart): times it against the yardstick (interleaved) and
    reports the path it picked and why."""
    strategy = prob.gradient
    t0 = time.perf_counter()
    if hasattr(strategy, "wait"):
        strategy.wait(prob, W)
    settle = time.perf_counter() - t0
    prob.value_and_grad(W)
    times = median_times({"default": lambda: prob.value_and_grad(W), "yardstick": yard_fn}, rounds)
    t, yard = times["default"], times["yardstick"]
    how = strategy.describe(prob) if hasattr(strategy, "describe") else type(strategy).__name__
    print(f"  default strategy {strategy!r}: {t * 1e3:.2f} ms = {t / yard:.2f}x the yardstick; "
          f"path {how}; settling (build) {settle:.1f} s")


def _p2(rounds):
    """P2 (lqr-long): dynopt's NumPy BPTT against the hand-written LQR forward/adjoint loop."""
    from bench_casadi import P2_GRAD, P2_J, p2_problem
    prob = p2_problem(5000).replace(gradient=BPTT())
    W = prob.W0
    theta = prob.plant.default_params()
    n, m = prob.plant.n_state, prob.plant.n_control
    A, Bm = theta[:n * n].reshape(n, n), theta[n * n:].reshape(n, m)
    K, X0 = W.reshape(m, n), prob.unpack(W)["x0"].reshape(prob.B, n)
    J, g = prob.value_and_grad(W)
    Jy, gy = yard.p2_value_and_grad(K, A, Bm, X0, 5000)
    rel = max(abs(J - P2_J) / abs(P2_J), np.abs(g - P2_GRAD).max() / np.abs(P2_GRAD).max())
    print(f"P2 LQR, n={n}, m={m}, B={prob.B}, T=5000, {W.size} parameters (plant fixed)")
    print(f"  reference check: max rel. deviation from PROBLEMS.md = {rel:.2e}; "
          f"yardstick max|dg|/max|g| = {np.abs(g - gy).max() / np.abs(gy).max():.2e}")
    t = median_times({
        "dynopt forward": lambda: prob.value(W),
        "dynopt gradient": lambda: prob.value_and_grad(W),
        "yardstick gradient": lambda: yard.p2_value_and_grad(K, A, Bm, X0, 5000),
    }, max(3, rounds // 3))
    for k, v in t.items():
        print(f"  {k:<22}{v * 1e3:10.2f} ms")
    print(f"  dynopt gradient / forward      {t['dynopt gradient'] / t['dynopt forward']:.2f}")
    print(f"  dynopt / yardstick (gradient)  {t['dynopt gradient'] / t['yardstick gradient']:.2f}")


if __name__ == "__main__":
    main()
