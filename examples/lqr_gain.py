"""Tune a static state-feedback gain for a linear plant and compare it with the Riccati (DARE) gain.

State:      x (4,), a lightly damped two-mass system sampled at dt = 0.1 s (dimensionless units)
Input:      u (1,), force on the first mass
Parameters: K (1 x 4), u = -K x, optimised by BFGS over 8 initial states
Cost:       sum_t x'Qx + u'Ru + x_T' P x_T, with P the DARE solution, so the optimum is the LQR gain

Run: python examples/lqr_gain.py
"""

import numpy as np
import scipy.linalg
from scipy.signal import cont2discrete

from dynopt import Problem, optimize
from dynopt.models import LinearFeedback, LinearPlant, Quadratic, QuadraticTerminal


def main(horizon: int = 60):
    k, c = 1.0, 0.05  # spring stiffness, damping
    Ac = np.array([[0, 0, 1, 0], [0, 0, 0, 1], [-k, k, -c, c], [k, -k, c, -c]], dtype=float)
    Bc = np.array([[0.0], [0.0], [1.0], [0.0]])
    A, B, *_ = cont2discrete((Ac, Bc, np.eye(4), np.zeros((4, 1))), 0.1)
    Q, R = np.diag([10.0, 10.0, 1.0, 1.0]), np.array([[0.1]])
    P = scipy.linalg.solve_discrete_are(A, B, Q, R)
    K_lqr = np.linalg.solve(R + B.T @ P @ B, B.T @ P @ A)

    x0 = np.random.default_rng(0).standard_normal((8, 4))
    prob = Problem(LinearPlant(A, B), LinearFeedback(4, 1), Quadratic(Q, R), QuadraticTerminal(P),
                   horizon=horizon, x0=x0)
    res = optimize(prob, method="BFGS", options={"gtol": 1e-7})
    K = res.params["policy"]["K"]
    print("K (dynopt) =", np.array2string(K.ravel(), precision=6))
    print("K (DARE)   =", np.array2string(K_lqr.ravel(), precision=6))
    print(f"max relative difference {np.abs(K - K_lqr).max() / np.abs(K_lqr).max():.2e} "
          f"after {res.nit} iterations")
    return K, K_lqr


if __name__ == "__main__":
    main()
