"""Model predictive control of a pendulum: swing-up and balance against a plant that differs
from the model, torque bounded, re-solved warm-started at every sample.

State:      x = (theta [rad], omega [rad/s]), theta = 0 upright
Input:      u = torque [N m], |u| <= 5 N m (bounds of L-BFGS-B on the planned sequence)
Model:      pendulum m = 1 kg, l = 1 m, b = 0.1 N m s/rad, g = 9.81 m/s^2, RK4 dt = 0.05 s;
            plan of N = 30 steps (1.5 s), cost dt * sum (1 - cos theta) + 0.01 omega^2 + 0.01 u^2
Plant:      the same pendulum with m = 1.2 kg and b = 0.15 N m s/rad (model mismatch)
Run:        140 samples (7 s) from hanging down; --quick: 30 samples from 0.3 rad

Run: python examples/mpc_pendulum.py [--quick]
"""

import argparse

import numpy as np

from dynopt import RK4, Discretized, Problem
from dynopt.control.mpc import receding_horizon
from dynopt.models import OpenLoop, Pendulum, SwingUpCost

DT, N, U_MAX = 0.05, 30, 5.0
PLANT = dict(m=1.2, b=0.15)


def main(quick: bool = False):
    x0, steps = ([0.3, 0.0], 30) if quick else ([np.pi - 0.1, 0.0], 140)
    model = Problem(Discretized(Pendulum(), RK4(DT)), OpenLoop(2, 1, N), SwingUpCost(DT, w_omega=0.01),
                    horizon=N, x0=x0)
    plant = Discretized(Pendulum(**PLANT), RK4(DT))
    res = receding_horizon(model, x0, steps, plant=plant, u_bounds=(-U_MAX, U_MAX),
                           options={"maxiter": 200, "ftol": 1e-12, "gtol": 1e-7})
    theta = np.angle(np.exp(1j * res.x[:, 0]))
    print(f"{steps} samples: solve time median {np.median(res.solve_times) * 1e3:.0f} ms, max "
          f"{res.solve_times.max() * 1e3:.0f} ms; {res.iterations.mean():.1f} L-BFGS-B iterations per solve")
    print(f"|u| max {np.abs(res.u).max():.3f} N m (bound {U_MAX}), bound violation {res.u_violation.max():.1e}; "
          f"|theta| over the last second {np.abs(theta[-20:]).max():.2e} rad")
    return res


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    main(ap.parse_args().quick)
