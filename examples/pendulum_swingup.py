"""Pendulum swing-up with an MLP policy trained by BFGS (the `dynopt demo pendulum` job as a script).

State:      x = (theta [rad], omega [rad/s]), theta = 0 upright, not wrapped
Input:      u = torque [N m], |u| <= u_max = 5 N m (tanh squashing in the policy)
Parameters: pendulum g = 9.81 m/s^2, l = 1 m, m = 1 kg, b = 0.1 N m s/rad; RK4 with dt = 0.05 s;
            policy weights of a 3-16-16-1 tanh MLP on (cos theta, sin theta, omega)
Cost:       dt * sum_t (1 - cos theta) + 0.01 omega^2 + 0.01 u^2, mean over initial states
Training:   BFGS over horizons T/5, 2T/5, ..., T (each stage warm-started from the last)

Run: python examples/pendulum_swingup.py [--quick]
"""

import argparse

import numpy as np
import scipy.optimize

from dynopt.models.demos import balanced, curriculum, pendulum_problem, train_pendulum


def main(quick: bool = False):
    batch, horizon, maxiter = (12, 80, 120) if quick else (16, 100, 250)
    prob = pendulum_problem(batch=batch, horizon=horizon)
    J0 = prob.value(prob.W0)
    print(f"cost before: {J0:.4f} ({batch} initial states, {horizon} steps, horizons "
          f"{[T for T, _ in curriculum(horizon, maxiter)]})")
    tr = train_pendulum(batch, horizon, maxiter)
    traj = prob.simulate(tr["W"])
    ok = balanced(traj.x)
    print(f"cost after:  {traj.objective:.4f} after {tr['iterations']} BFGS iterations; "
          f"{ok.mean() * 100:.0f}% balanced through the last second")
    return scipy.optimize.OptimizeResult(x=tr["W"], fun=traj.objective, cost_history=np.array([J0, traj.objective]),
                                         trajectory=traj, balanced=ok, stages=tr["stages"])


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    main(ap.parse_args().quick)
