"""CasADi paths of dynopt on P1 (pendulum-MLP) and P2 (LQR, T = 5000) of shared/benchmarks/PROBLEMS.md.

For each problem and size it prints, per path, the gradient time (J and dJ/dW together), the
forward time (J only), their ratio, the one-off build / C-generation / compile times, and the
relative deviation of J and dJ/dW from dynopt's NumPy path (and, for P1/P2, from the published
reference values, checked first).

Paths:
  numpy       dynopt BPTT, NumPy components, Python loop over t
  casadi      dynopt BPTT, the same components as CasADi components (one map(B) call per step)
  compiled    CompiledBPTT: dynopt's forward + adjoint sweeps as one CasADi loop, VM
  compiled-C  the same, C code compiled with gcc (cached on disk; compile time shown once)
  ad-vm       CasADi's own reverse AD of the whole unrolled trajectory, VM
  ad-C        the same, C code (only where the unrolled graph is small enough to compile quickly)

Timing: one process, BLAS pinned to one thread, gc off while timing, medians of interleaved
rounds (every path once per round; fewer rounds for slow sizes so the full run stays within
~10 minutes).

Run: python benchmarks/bench_casadi.py [--quick]
"""

import os

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import gc  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from problems import P1_REFERENCE, p1_problem  # noqa: E402

from dynopt import Problem  # noqa: E402
from dynopt.casadi.codegen import compile_functions  # noqa: E402
from dynopt.casadi.compiled import CompiledBPTT  # noqa: E402
from dynopt.casadi.components import as_casadi  # noqa: E402
from dynopt.casadi.reference import build_unrolled  # noqa: E402
from dynopt.models import LinearFeedback, LinearPlant, Quadratic  # noqa: E402

P2_J = 75.75535542518176
P2_GRAD = np.array([-215.9647570448592, 460.01382466104405, 397.0507654954269, 240.189038595704, 17.297754684140767,
                    -212.37117868475923, 243.55450635686972, -531.0372633469733, -66.99265134850663,
                    -405.13855454678446, -172.83314145425285, -367.78390516669094, -163.91489242915233,
                    -10.757624087836078, -220.68803526146993, 290.61083864346915])


def p2_problem(T=5000):
    """P2 lqr-long exactly as PROBLEMS.md states it."""
    rng = np.random.default_rng(2)
    M = rng.standard_normal((8, 8))
    Qo, Rq = np.linalg.qr(M)
    Qo = Qo * np.sign(np.diag(Rq))
    A = 0.98 * Qo + 0.05 * rng.standard_normal((8, 8))
    Bm = np.random.default_rng(3).standard_normal((8, 2))
    K0 = np.array([[0.0060, -0.0154, -0.0437, -0.0207, 0.0221, 0.0544, -0.0051, 0.0250],
                   [0.0169, 0.0097, -0.0111, 0.0277, 0.0144, 0.0371, -0.0012, -0.0009]])
    X0 = np.random.default_rng(5).standard_normal((32, 8))
    return Problem(LinearPlant(A, Bm), LinearFeedback(8, 2, K0=K0), Quadratic(np.eye(8), 0.1 * np.ones(2)),
                   horizon=T, x0=X0)


def interleaved(paths, budget):
    """Median seconds of each callable, timed in interleaved rounds (each round runs every
    callable once, so load on the shared machine hits all paths alike).

    ``paths`` maps name -> callable (already warmed up, with ``first`` seconds measured);
    rounds: as many as fit in ``budget`` seconds, at least 1, at most 7.
    """
    gc.collect()
    gc.disable()
    try:
        t0 = time.perf_counter()
        for fn in paths.values():
            fn()
        one_round = time.perf_counter() - t0
        rounds = int(min(7, max(1, budget // max(one_round, 1e-9))))
        times = {name: [] for name in paths}
        for _ in range(rounds):
            for name, fn in paths.items():
                t = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t)
    finally:
        gc.enable()
    return {name: statistics.median(v) for name, v in times.items()}


def rel(a, b):
    a, b = np.atleast_1d(a), np.atleast_1d(b)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def casadi_copy(problem):
    """The same problem with every component replaced by its CasADi component."""
    x0 = problem.unpack(problem.W0)["x0"]
    return Problem(as_casadi(problem.plant), as_casadi(problem.policy), as_casadi(problem.cost), horizon=problem.horizon,
                   x0=x0, params={"policy": problem.unpack(problem.W0)["policy"]})


def ad_functions(problem, codegen, cache):
    """CasADi's own whole-trajectory AD: (grad fn, value fn, build s, generate s, compile s)."""
    t0 = time.perf_counter()
    F, Fv = build_unrolled(problem), build_unrolled(problem, gradient=False)
    build = time.perf_counter() - t0
    gen = comp = 0.0
    if codegen:
        fns, info = compile_functions([F, Fv], prefix="bench_ad", flags=("-O1",), directory=cache)
        F, Fv = fns[F.name()], fns[Fv.name()]
        gen, comp = info.generate_seconds, info.compile_seconds
    return F, Fv, build, gen, comp


def z_inputs(problem, W):
    b = problem.unpack(W)
    Z = np.concatenate([np.asarray(b[k], float).ravel() for k in ("policy", "plant", "cost", "terminal", "x0")])
    return [Z, np.zeros((0, problem.horizon * problem.B))]


def run_case(label, problem, ref_check, *, budget, ad_codegen, casadi_path, cache, vm):
    W = problem.W0
    J0, g0 = problem.value_and_grad(W)
    dev = ref_check(J0, g0)
    shown = "n/a (published for T = 5000 only)" if dev is None else f"{dev:.2e}"
    print(f"\n== {label}: n_W = {problem.n_decision}; NumPy path vs published reference: {shown}")
    rows = {"numpy": dict(grad=lambda: problem.value_and_grad(W), fwd=lambda: problem.value(W), build="",
                          eJ=0.0, eg=0.0)}
    if casadi_path:
        pc = casadi_copy(problem)
        J, g = pc.value_and_grad(W)
        rows["casadi"] = dict(grad=lambda: pc.value_and_grad(W), fwd=lambda: pc.value(W), build="",
                              eJ=rel(J, J0), eg=rel(g, g0))

    for codegen in ([False] if vm else []) + [True]:
        m = CompiledBPTT(codegen=codegen, cache_dir=cache)
        m.build(problem)
        lb = m.last_build
        J, g, _ = m.evaluate(problem, W)
        build = f"graph {lb['build_seconds']:.2f}s" + (f", C {lb['generate_seconds']:.2f}s, gcc {lb['compile_seconds']:.1f}s"
                                                       if codegen else "")
        if codegen:  # a second build of the same structure loads the cached library
            t0 = time.perf_counter()
            CompiledBPTT(codegen=True, cache_dir=cache).build(problem)
            build += f", cached reload {time.perf_counter() - t0:.2f}s"
        rows["compiled-C" if codegen else "compiled"] = dict(
            grad=lambda m=m: m.evaluate(problem, W), fwd=lambda m=m: m.value(problem, W), build=build,
            eJ=rel(J, J0), eg=rel(g, g0))

    for codegen in ([False] if vm else []) + ([True] if ad_codegen else []):
        F, Fv, tb, gen, comp = ad_functions(problem, codegen, cache)
        ins = z_inputs(problem, W)
        out = F.call(ins)
        J, gZ = float(out[0]), np.asarray(out[1]).ravel()[:problem.n_decision]  # policy block first
        build = f"graph+AD {tb:.2f}s" + (f", C {gen:.2f}s, gcc {comp:.1f}s" if codegen else "")
        rows["ad-C" if codegen else "ad-vm"] = dict(grad=lambda F=F, ins=ins: F.call(ins),
                                                    fwd=lambda Fv=Fv, ins=ins: Fv.call(ins), build=build,
                                                    eJ=rel(J, J0), eg=rel(gZ, g0))

    calls = {f"{name}/{kind}": r[kind] for name, r in rows.items() for kind in ("grad", "fwd")}
    t = interleaved(calls, budget * len(rows))
    print(f"{'path':<12}{'gradient':>12}{'forward':>12}{'grad/fwd':>10}{'rel.err J':>11}{'rel.err g':>11}   build")
    for name, r in rows.items():
        tg, tf = t[f"{name}/grad"], t[f"{name}/fwd"]
        print(f"{name:<12}{tg * 1e3:>10.2f}ms{tf * 1e3:>10.2f}ms{tg / tf:>10.2f}{r['eJ']:>11.1e}{r['eg']:>11.1e}"
              f"   {r['build']}")
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="P1 at (T, B) = (50, 64), (200, 64), (200, 1) and P2 at T = 1000")
    ap.add_argument("--long-ad-codegen", action="store_true",
                    help="also compile CasADi's own AD of the unrolled P2 (T = 5000): gcc takes > 4 min here")
    args = ap.parse_args(argv)
    import casadi
    print(f"dynopt CasADi paths; casadi {casadi.__version__}, numpy {np.__version__}, 1 BLAS thread")
    cache = Path(tempfile.mkdtemp(prefix="dynopt-bench-"))  # fresh: compile times are real, not cached
    budget = 1.0 if args.quick else 2.0
    p1_sizes = [(50, 64), (200, 64), (200, 1)] if args.quick else [(50, 64), (200, 64), (800, 64), (3200, 64),
                                                                  (200, 1), (200, 1024)]
    t_start = time.perf_counter()
    for T, B in p1_sizes:
        def check(J, g, T=T, B=B):
            r = P1_REFERENCE[(T, B)]
            return max(abs(a - b) / abs(b) for a, b in zip((J, np.linalg.norm(g), g[0], g[1216]), r))
        # CasADi's own AD is compiled only where its unrolled C compiles in seconds (gcc time grows
        # with T: ~7 s at T = 200, minutes beyond)
        run_case(f"P1 pendulum-MLP T={T} B={B}", p1_problem(T, B), check, budget=budget,
                 ad_codegen=T <= 200 and B <= 64, casadi_path=True, vm=True, cache=cache)
    T2 = 1000 if args.quick else 5000

    def check2(J, g):
        return max(rel(J, P2_J), rel(g, P2_GRAD)) if T2 == 5000 else None
    run_case(f"P2 LQR n=8 B=32 T={T2}", p2_problem(T2), check2, budget=budget, ad_codegen=args.long_ad_codegen,
             casadi_path=True, vm=True, cache=cache)
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s; C libraries in {cache}")


if __name__ == "__main__":
    main()
