"""Scale-out: is sharding the batch over workers worth it on this machine?

Run:  python benchmarks/bench_scaleout.py [--rounds 5] [--B 4096]

P1 pendulum-MLP (../shared/benchmarks/PROBLEMS.md, T = 200) with a large batch: (J, dJ/dW)
in this process vs sharded over 2 Dask workers (LocalCluster on 127.0.0.1, 2 worker
processes x 1 thread) and over a 2-process ProcessPoolExecutor.  Then the overhead of one
evaluation through Dask for a small batch, the round trip of an empty task, and the batch
size from which 2 workers beat 1 process.  One BLAS thread everywhere, gc off while timing,
medians of interleaved rounds.
"""

from __future__ import annotations

import os

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import multiprocessing  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import median_times  # noqa: E402
from problems import p1_check, p1_problem  # noqa: E402

from dynopt.parallel.distributed import sharded_value_and_grad  # noqa: E402


def rel(a, b):
    return float(np.abs(np.asarray(a) - b).max() / np.abs(b).max())


def _noop(x):
    return x


def _spin(n):
    """A fixed CPU-bound workload (~0.2 s): small matrix products, one thread."""
    a = np.full((64, 64), 1e-3)
    for _ in range(n):
        a = a @ a + 1e-3
    return float(a[0, 0])


def cores_available(pool, n=4000):
    """How many cores two worker processes actually get now: 2 x (time of one spin) /
    (time of two spins run at once); ~2 on an idle 2-core machine, ~1 if another job holds a core."""
    pool.submit(_spin, 10).result()
    t1 = median_times({"one": lambda: pool.submit(_spin, n).result()}, 3)["one"]
    t2 = median_times({"two": lambda: [f.result() for f in [pool.submit(_spin, n), pool.submit(_spin, n)]]}, 3)["two"]
    return 2 * t1 / t2


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--B", type=int, default=4096)
    ap.add_argument("--small-B", type=int, default=16)
    args = ap.parse_args()
    import distributed

    big = p1_problem(T=200, B=args.B)
    small = p1_problem(T=200, B=args.small_B)
    W = big.W0
    print(f"P1 pendulum-MLP, T=200, W: {big.n_decision} parameters; {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.2f} at start")

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None, memory_limit="2GiB") as cluster, \
            distributed.Client(cluster) as client, \
            ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        dask = client.get_executor()
        print(f"cores two worker processes get right now: {cores_available(pool):.2f} of 2")
        J, g = big.value_and_grad(W)
        checks = {}
        for name, ex in (("dask", dask), ("pool", pool)):  # first call ships the shards (one-off)
            t0 = time.perf_counter()
            Js, gs = sharded_value_and_grad(big, W, ex, n_shards=2)
            checks[name] = (time.perf_counter() - t0, rel(Js, J), rel(gs, g))
        t = median_times({
            "local": lambda: big.value_and_grad(W),
            "dask": lambda: sharded_value_and_grad(big, W, dask, n_shards=2),
            "pool": lambda: sharded_value_and_grad(big, W, pool, n_shards=2),
        }, args.rounds)
        c0, w0 = time.process_time(), time.perf_counter()
        big.value_and_grad(W)
        share = (time.process_time() - c0) / (time.perf_counter() - w0)
        if args.B == 1024:
            print(f"  P1 reference check (B=1024): max rel dev {p1_check(J, g, 200, 1024):.1e}")
        print(f"\nlarge batch B={args.B}: (J, dJ/dW), median of {args.rounds}")
        print(f"  1 process (BPTT)                    {t['local'] * 1e3:9.1f} ms   (CPU time / wall time "
              f"{share:.2f}: below 1, other processes take this core)")
        for name, label in (("dask", "2 Dask workers (2 shards)"), ("pool", "ProcessPoolExecutor(2), 2 shards")):
            first, eJ, eg = checks[name]
            print(f"  {label:<36}{t[name] * 1e3:9.1f} ms   speed-up {t['local'] / t[name]:4.2f}x   "
                  f"first call {first * 1e3:.0f} ms   rel.err J {eJ:.1e}, grad {eg:.1e}")

        Jsm, gsm = small.value_and_grad(small.W0)
        for ex in (dask, pool):
            sharded_value_and_grad(small, small.W0, ex, n_shards=1)
            sharded_value_and_grad(small, small.W0, ex, n_shards=2)
        ts = median_times({
            "local": lambda: small.value_and_grad(small.W0),
            "dask1": lambda: sharded_value_and_grad(small, small.W0, dask, n_shards=1),
            "dask2": lambda: sharded_value_and_grad(small, small.W0, dask, n_shards=2),
            "pool1": lambda: sharded_value_and_grad(small, small.W0, pool, n_shards=1),
            "noop": lambda: dask.submit(_noop, 1).result(),
            "noop_pool": lambda: pool.submit(_noop, 1).result(),
        }, max(args.rounds, 9))
        print(f"\nsmall batch B={args.small_B}: per-evaluation overhead, median of {max(args.rounds, 9)}")
        print(f"  1 process                           {ts['local'] * 1e3:9.1f} ms")
        print(f"  Dask, 1 shard                       {ts['dask1'] * 1e3:9.1f} ms   overhead {(ts['dask1'] - ts['local']) * 1e3:6.1f} ms")
        print(f"  Dask, 2 shards                      {ts['dask2'] * 1e3:9.1f} ms")
        print(f"  process pool, 1 shard               {ts['pool1'] * 1e3:9.1f} ms   overhead {(ts['pool1'] - ts['local']) * 1e3:6.1f} ms")
        print(f"  empty task round trip: Dask {ts['noop'] * 1e3:.1f} ms, process pool {ts['noop_pool'] * 1e3:.2f} ms")

        # Break-even: local time ~ c B (+ small), sharded over 2 ~ c B / 2 + overhead.
        c = (t["local"] - ts["local"]) / (args.B - args.small_B)
        for name, over in (("Dask", ts["dask1"] - ts["local"]), ("process pool", ts["pool1"] - ts["local"])):
            if over <= 0:
                print(f"  {name}: overhead below the timing noise; 2 workers pay once a shard's sweep "
                      f"outweighs the noise (per-scenario cost {c * 1e6:.0f} us at T=200)")
            else:
                print(f"  2 {name} workers pay from B ~ {2 * over / c:.0f} (T=200) on 2 idle cores: "
                      f"per-scenario cost {c * 1e6:.0f} us, overhead {over * 1e3:.1f} ms")
        print(f"\ncores two worker processes get at the end: {cores_available(pool):.2f} of 2; load average "
              f"{os.getloadavg()[0]:.2f} (other processes share these cores)")


if __name__ == "__main__":
    main()
