"""dynopt's DEFAULT gradient path (a Problem built without ``gradient=``) against JAX and the
hand-written NumPy BPTT of ``../shared/peers``, interleaved in one process, one thread.

Rows (issue 10): P1 B=64, P1 B=1, P1 T=3200 (B=64), P2 (LQR n=8, B=32, T=5000) and P3 written as a
user's CasADi scalar plant.  Each row first lets the default strategy (:class:`dynopt.Auto`) settle
(its background build is waited for and reported apart as "build"), then times per-call medians
over interleaved rounds with the harness's ``measure``.  Memory: tracemalloc peak of one dynopt
gradient beside the harness's JAX buffer estimate (orders of magnitude only).

Needs JAX (a benchmark-only dependency): ``python -m venv v && v/bin/pip install numpy scipy
casadi==3.8.2 "jax[cpu]==0.10.2" statsmodels && v/bin/pip install -e .`` then
``v/bin/python benchmarks/bench_default.py [--peers ../shared/peers] [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peers", default=os.path.join(HERE, "..", "..", "shared", "peers"),
                    help="folder of the peer harness (default: ../shared/peers beside the repository)")
    ap.add_argument("--quick", action="store_true", help="fewer timing rounds, skip T=3200")
    args = ap.parse_args(argv)
    sys.path.insert(0, os.path.abspath(args.peers))
    import common  # noqa: F401  (pins threads before numpy loads)
    import jax
    import numpy as np

    jax.config.update("jax_enable_x64", True)
    import p1_pendulum as p1
    import p2_lqr as p2
    import p3_arma as p3
    import problems as P
    from common import Peer, measure

    import dynopt
    from dynopt import RK4, Discretized, Problem
    from dynopt.models import (LinearFeedback, LinearPlant, MLPPolicy, Pendulum, Quadratic, QuadraticTerminal,
                               SwingUpCost)

    def p1_problem(p, th0, om0, T):
        plant = Discretized(Pendulum(g=P.P1_G, l=P.P1_L, m=P.P1_M, b=P.P1_B), RK4(P.P1_DT))
        policy = MLPPolicy(2, 1, hidden=(P.P1_HIDDEN, P.P1_HIDDEN), u_max=P.P1_UMAX, angles=(0,))
        cost = SwingUpCost(dt=P.P1_DT, w_theta=P.P1_W_THETA, w_omega=P.P1_W_OMEGA, w_u=P.P1_W_U)
        return Problem(plant, policy, cost, horizon=T, x0=np.stack([th0, om0], axis=1), params={"policy": p})

    def p3_problem(q, y):
        N = y.shape[0]
        X = np.stack([y[2:], y[1:-1], y[:-2]], axis=1)

        def rhs(x, u, Xt, p):  # the CSS recursion e[t] = y[t] - phi1 y[t-1] - phi2 y[t-2] - theta e[t-1]
            return Xt[0] - p["phi1"] * Xt[1] - p["phi2"] * Xt[2] - p["theta"] * x[0]

        plant = dynopt.CasadiPlant(rhs, n_state=1, n_exog=3,
                                   params=dict(phi1=float(q[0]), phi2=float(q[1]), theta=float(q[2])))
        return Problem(plant, None, Quadratic(np.eye(1), scale=1.0 / N), QuadraticTerminal(np.eye(1) / N),
                       horizon=N - 2, x0=np.zeros((1, 1)), X=X, decision=("plant",))

    def settle(prob, W):
        t0 = time.perf_counter()
        prob.value_and_grad(W)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        path = prob.gradient.wait(prob, W, timeout=600)
        build = time.perf_counter() - t0
        tracemalloc.start()
        prob.value_and_grad(W)
        mem = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return first, build, path, mem

    rows = []

    def row(label, prob, W, peers, target, limit, ref_grad):
        first, build, path, mem = settle(prob, W)
        J, g = prob.value_and_grad(W)
        err = float(np.max(np.abs(np.asarray(g) - ref_grad)) / np.max(np.abs(ref_grad)))
        dyn = Peer("dynopt default", None, lambda: prob.value_and_grad(W))
        allp = peers + [dyn]
        for x in allp:
            x.fwd = None
        measure(allp, budget=0.6 if args.quick else 1.5, rmin=3 if args.quick else 5, rmax=15)
        t = {x.name.split(" ")[0] if x.name.startswith(("JAX", "numpy")) else x.name: x.t_grad for x in allp}
        ratio = t["dynopt default"] / t[target]
        jmem = next((x.mem for x in peers if x.name.startswith("JAX") and x.mem), None)
        jm = f"{jmem[0] / 1e6:.3g} MB" if jmem else "n/a"
        line = (f"{'PASS' if ratio <= limit else 'MISS'}  {label}: default/{target} = {ratio:.2f} (target <= {limit}); "
                + "  ".join(f"{k} {v * 1e3:.3g} ms" for k, v in t.items())
                + f"; path {path}; first call {first:.2f} s, build {build:.2f} s; rel.err grad {err:.1e}; "
                  f"memory dynopt {mem / 1e6:.3g} MB (tracemalloc) vs JAX {jm}")
        print(line, flush=True)
        rows.append(ratio <= limit)

    p = P.p1_params()
    th0, om0 = P.p1_x0(64)
    jx = p1.make_jax(p, th0, om0, P.P1_T, with_fwd=False)
    row("P1 B=64 T=200", p1_problem(p, th0, om0, P.P1_T), np.asarray(p),
        [jx, p1.make_numpy(p, th0, om0, P.P1_T, mem=False)], "numpy", 1.0, np.asarray(jx.grad()[1]))
    th0, om0 = P.p1_x0(1)
    jx = p1.make_jax(p, th0, om0, P.P1_T, with_fwd=False)
    row("P1 B=1 T=200", p1_problem(p, th0, om0, P.P1_T), np.asarray(p), [jx], "JAX", 2.0, np.asarray(jx.grad()[1]))
    if not args.quick:
        th0, om0 = P.p1_x0(64)
        jx = p1.make_jax(p, th0, om0, 3200, with_fwd=False)
        row("P1 B=64 T=3200", p1_problem(p, th0, om0, 3200), np.asarray(p), [jx], "JAX", 2.0,
            np.asarray(jx.grad()[1]))
    A, Bm, Q, R = P.p2_system()
    X0 = P.p2_x0()
    K = np.asarray(P.P2_K0, dtype=float)
    jx = p2.make_jax(K, A, Bm, X0, P.P2_T)
    n, m = A.shape[0], Bm.shape[1]
    prob = Problem(LinearPlant(A, Bm), LinearFeedback(n, m, K0=K), Quadratic(np.eye(n), P.P2_R_WEIGHT * np.ones(m)),
                   horizon=P.P2_T, x0=X0)
    row("P2 LQR", prob, K.ravel(), [jx], "JAX", 1.0, np.asarray(jx.grad()[1]).ravel())
    y = P.p3_data()
    q = np.asarray(P.P3_EVAL, dtype=float)
    jx = p3.make_jax(q, y)
    row("P3 user CasADi plant", p3_problem(q, y), q, [jx], "JAX", 5.0, np.asarray(jx.grad()[1]))
    print(f"default path: {sum(rows)}/{len(rows)} targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
