"""Long horizons: time and peak memory of full-storage vs checkpointed BPTT, T = 1e3 .. 1e5.

Problem: a 2-state linear plant (damped oscillator, dt = 0.02 s) under a 1 x 2 state feedback,
quadratic cost, B = 4 scenarios, W = the gain.  Times are medians (gc disabled, one BLAS
thread); peak memory is tracemalloc's peak over one gradient evaluation (a separate run, since
tracing slows Python).  recompute factor = checkpointed time / full-storage time (target <= 2);
evaluations / T = step evaluations of the checkpointed schedule per step.

Run: python benchmarks/bench_long_horizon.py [--max-T 100000]
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import gc  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402

import numpy as np  # noqa: E402

from dynopt import BPTT, CheckpointedBPTT, Problem  # noqa: E402
from dynopt.models import LinearFeedback, LinearPlant, Quadratic  # noqa: E402


def problem(T, gradient):
    A = np.array([[0.9992, 0.0199], [-0.0797, 0.9912]])  # ZOH of p'' = -4p - 0.4p', dt = 0.02 s
    B = np.array([[0.0002], [0.0199]])
    x0 = np.random.default_rng(0).standard_normal((4, 2))
    return Problem(LinearPlant(A, B), LinearFeedback(2, 1, K0=[[1.0, 0.5]]),
                   Quadratic(np.diag([1.0, 0.1]), [0.01], scale=0.02), horizon=T, x0=x0, gradient=gradient)


def timed(prob, W, reps):
    ts = []
    gc.disable()
    try:
        for _ in range(reps):
            t0 = time.perf_counter()
            out = prob.value_and_grad(W)
            ts.append(time.perf_counter() - t0)
    finally:
        gc.enable()
    return float(np.median(ts)), out


def peak(prob, W):
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    prob.value_and_grad(W)
    p = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return p


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-T", type=int, default=100_000)
    args = ap.parse_args(argv)
    Ts = [T for T in (1_000, 3_000, 10_000, 30_000, 100_000) if T <= args.max_T]
    print(f"{'T':>7} | {'full s':>8} {'full MB':>8} | {'ckpt s':>8} {'ckpt MB':>8} {'states':>7} "
          f"{'evals/T':>7} | {'recompute':>9} {'mem ratio':>9} {'fwd s':>7}  rel.diff g")
    for T in Ts:
        reps = 5 if T <= 3_000 else (3 if T <= 10_000 else 1)
        full, ck = problem(T, BPTT()), problem(T, CheckpointedBPTT())
        W = full.W0
        gc.disable()
        t0 = time.perf_counter()
        full.value(W)
        tf = time.perf_counter() - t0
        gc.enable()
        t_full, (_, g_full) = timed(full, W, reps)
        t_ck, (_, g_ck) = timed(ck, W, reps)
        m_full, m_ck = peak(full, W), peak(ck, W)
        s = ck.gradient.stats
        diff = np.abs(g_ck - g_full).max() / np.abs(g_full).max()
        print(f"{T:>7} | {t_full:8.3f} {m_full / 1e6:8.2f} | {t_ck:8.3f} {m_ck / 1e6:8.3f} {s['states_peak']:>7} "
              f"{s['recompute_factor']:7.3f} | {t_ck / t_full:9.2f} {m_full / m_ck:9.1f} {tf:7.3f}  {diff:.1e}",
              flush=True)


if __name__ == "__main__":
    main()
