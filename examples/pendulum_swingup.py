"""Pendulum swing-up with an MLP policy trained by BFGS (the `dynopt demo pendulum` job as a script).

State:      x = (theta [rad], omega [rad/s]), theta = 0 upright, not wrapped
Input:      u = torque [N m], |u| <= u_max = 5 N m (tanh squashing in the policy)
Parameters: pendulum g = 9.81 m/s^2, l = 1 m, m = 1 kg, b = 0.1 N m s/rad; RK4 with dt = 0.05 s;
            policy weights of a 3-16-16-1 tanh MLP on (cos theta, sin theta, omega)
Cost:       dt * sum_t (1 - cos theta) + 0.1 omega^2 + 0.01 u^2, mean over initial states

Run: python examples/pendulum_swingup.py [--quick]
"""

import argparse
import warnings

from dynopt import optimize
from dynopt.models.demos import pendulum_problem


def main(quick: bool = False):
    prob = pendulum_problem(batch=8 if quick else 16, horizon=60 if quick else 100)
    print(f"cost before: {prob.value(prob.W0):.4f}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # maxiter reached: reported below
        res = optimize(prob, method="BFGS", options={"maxiter": 20 if quick else 250})
    print(f"cost after:  {res.fun:.4f} after {res.nit} iterations ({res.message})")
    return res


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    main(ap.parse_args().quick)
