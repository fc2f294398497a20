"""Open-loop control sequence with control limits: move a cart 1 m and stop it, |F| <= 0.3 N.

State:      x = (p [m], v [m/s]), exact zero-order-hold double integrator, dt = 0.1 s, mass 1 kg
Input:      u = F [N], one value per step, bounded |F| <= 0.3 N (L-BFGS-B bounds)
Parameters: the control sequence U (T x 1)
Cost:       sum_t (p - 1)^2 + 0.1 v^2 + 0.01 F^2, terminal 100 ((p_T - 1)^2 + v_T^2)

Run: python examples/open_loop_bounded.py
"""

import numpy as np

from dynopt import Problem, optimize
from dynopt.models import OpenLoop, Quadratic, QuadraticTerminal, double_integrator


def main(horizon: int = 50):
    prob = Problem(double_integrator(dt=0.1), OpenLoop(2, 1, horizon),
                   Quadratic([1.0, 0.1], [0.01], x_ref=[1.0, 0.0]),
                   QuadraticTerminal(100 * np.eye(2), x_ref=[1.0, 0.0]),
                   horizon=horizon, x0=[0.0, 0.0])
    res = optimize(prob, method="L-BFGS-B", bounds={"policy": (-0.3, 0.3)})
    U = res.params["policy"]["U"].ravel()
    p_T, v_T = res.trajectory.x[-1, 0]
    print(f"cost {res.fun:.4f}; final position {p_T:.4f} m, velocity {v_T:.4f} m/s")
    print(f"force range [{U.min():.3f}, {U.max():.3f}] N; {np.sum(np.isclose(np.abs(U), 0.3))} steps at the limit")
    return res


if __name__ == "__main__":
    main()
