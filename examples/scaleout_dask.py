"""Tune a feedback gain over thousands of disturbance scenarios on a Dask cluster.

State:      x = (p [m], v [m/s]), a unit mass (double integrator) sampled at dt = 0.1 s
Input:      u [N], force; u = -K x
Exogenous:  X[t] (2,), a random force/velocity disturbance per scenario and step, x += 0.1 X[t]
Parameters: K (1 x 2), optimised by BFGS; the batch of B scenarios is sharded over the workers
Cost:       mean over scenarios of sum_t x'Qx + u'Ru + x_T'P x_T, P the DARE solution, so the
            noise-free optimum is the LQR gain (certainty equivalence: the sample optimum is
            near it, off by the sampling noise of B scenarios)

Then: a multi-start of the same problem on the cluster (every run, best first), and ARMA(2, 1)
fits of closed-loop position series through the same executor (dynopt.map_fit), whose AR
coefficients should match the characteristic polynomial of A - BK.

Run: python examples/scaleout_dask.py                   (starts a 2-worker LocalCluster)
     python examples/scaleout_dask.py tcp://host:8786    (uses an existing Dask scheduler)
"""

import sys

import numpy as np
import scipy.linalg

import dynopt
from dynopt.models import LinearFeedback, LinearPlant, Quadratic, QuadraticTerminal


def build(B: int, horizon: int, seed: int = 0):
    dt = 0.1
    A = np.array([[1.0, dt], [0.0, 1.0]])
    Bu = np.array([[dt * dt / 2], [dt]])
    Q, R = np.diag([1.0, 0.1]), np.array([[0.01]])
    P = scipy.linalg.solve_discrete_are(A, Bu, Q, R)
    K_lqr = np.linalg.solve(R + Bu.T @ P @ Bu, Bu.T @ P @ A)
    rng = np.random.default_rng(seed)
    prob = dynopt.Problem(LinearPlant(A, Bu, E=0.1 * np.eye(2)), LinearFeedback(2, 1), Quadratic(Q, R),
                          QuadraticTerminal(P), horizon=horizon, x0=rng.standard_normal((B, 2)),
                          X=rng.standard_normal((horizon, B, 2)))
    return prob, K_lqr


def main(address=None, B: int = 4000, horizon: int = 100, n_starts: int = 4, series_length: int = 2000,
         n_series: int = 16):
    import distributed

    cluster = None
    if address is None:
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1",
                                           dashboard_address=None, memory_limit="1GiB")
        address = cluster.scheduler_address
    with distributed.Client(address) as client:
        ex = client.get_executor()
        prob, K_lqr = build(B, horizon)
        # one shard per worker thread; a shard that has not come back after 120 s (hung or lost
        # worker) is resubmitted up to twice, then the run stops with dynopt.ExecutorFailure
        prob = prob.replace(gradient=dynopt.Sharded(ex, timeout=120.0))
        res = dynopt.optimize(prob, options={"gtol": 1e-6})
        K = res.params["policy"]["K"]
        print(f"{B} scenarios on {len(client.nthreads())} workers: K = {K.ravel()}, J = {res.fun:.6f} "
              f"({res.nit} iterations)")
        print(f"LQR gain (no noise)      K = {K_lqr.ravel()}, relative gap {np.abs(K - K_lqr).max() / np.abs(K_lqr).max():.2e}")

        small, _ = build(200, horizon, seed=1)
        # a run stuck for 10 minutes becomes a failed result; the other runs are kept
        runs = dynopt.multistart(small, n_starts, ex, seed=0, spread=0.5, timeout=600.0, options={"gtol": 1e-6})
        print("multi-start (best first): " + ", ".join(f"start {r.start}: J={r.fun:.6f}" for r in runs))

        # The closed-loop position is an ARMA(2, 1) process whose AR polynomial is the characteristic
        # polynomial of A - B K: z^2 - tr z + det.  Simulate n_series long closed-loop series from rest
        # (fresh disturbances) and fit each through the same executor.
        mats = prob.plant.unflatten(prob.unpack(res.x)["plant"])
        Acl = mats["A1"] - mats["B"] @ K
        rng = np.random.default_rng(2)
        sim = dynopt.Problem(prob.plant, prob.policy, prob.cost, horizon=series_length, x0=np.zeros((n_series, 2)),
                             X=rng.standard_normal((series_length, n_series, 2)), params={"policy": res.x})
        series = list(sim.simulate().x[1:, :, 0].T)
        from dynopt.models.econometrics import ARMA
        fits = dynopt.map_fit(lambda y: ARMA(y, 2, 1, trend="n").fit(), series, ex, timeout=600.0)
        ar = np.array([f.values[:2] for f in fits])
        print(f"ARMA(2,1) fits of {len(fits)} closed-loop position series ({series_length} steps): "
              f"ar = {np.round(ar.mean(axis=0), 3)} +- {np.round(ar.std(axis=0) / np.sqrt(len(fits)), 3)}; "
              f"from A - BK: ({np.trace(Acl):.3f}, {-np.linalg.det(Acl):.3f})")
    if cluster is not None:
        cluster.close()
    return res, K_lqr, runs, fits


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
