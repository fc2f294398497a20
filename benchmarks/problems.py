"""Benchmark problems of ../shared/benchmarks/PROBLEMS.md built with dynopt and its model library."""

from __future__ import annotations

import numpy as np

from dynopt import RK4, Discretized, Problem
from dynopt.models import MLPPolicy, Pendulum, SwingUpCost

P1_REFERENCE = {
    # (T, B): (J, ||grad||_2, grad[0], grad[1216]) from PROBLEMS.md (numpy BPTT; JAX agrees to 1e-14)
    (200, 64): (20.657640981153797, 4.895200905363769, 0.0035667394777607595, 0.2288366468475451),
    (50, 64): (5.10472535214533, 0.561430263458815, -0.003679733079413179, -0.0064684949016523205),
    (800, 64): (80.78141890172884, 6.366110937273686, -0.03372267298626705, 0.6813132797823925),
    (3200, 64): (321.1401646493383, 9.71612101736497, -0.21607391518762722, 2.3290241311886515),
    (200, 1): (21.069253278725736, 8.094757513074308, 0.031186529042679628, 0.647258530363238),
    (200, 1024): (20.710060403310536, 4.676552272924075, -0.04999443372259481, -0.23977682264952502),
}


def p1_initial_states(B: int):
    """``(theta0, omega0)``, each (B,), drawn as PROBLEMS.md says."""
    rng = np.random.default_rng(1)
    theta0 = rng.uniform(-np.pi, np.pi, size=B)
    omega0 = rng.uniform(-1, 1, size=B)
    return theta0, omega0


def p1_problem(T: int = 200, B: int = 64) -> Problem:
    """P1 pendulum-MLP: RK4 pendulum (dt = 0.05 s), 3-32-32-1 tanh MLP, u_max = 2 N m."""
    theta0, omega0 = p1_initial_states(B)
    plant = Discretized(Pendulum(g=9.81, l=1.0, m=1.0, b=0.1), RK4(0.05))
    policy = MLPPolicy(2, 1, hidden=(32, 32), u_max=2.0, angles=(0,), seed=0)
    return Problem(plant, policy, SwingUpCost(dt=0.05), horizon=T, x0=np.stack([theta0, omega0], axis=1))


def p1_check(J: float, g, T: int = 200, B: int = 64) -> float:
    """Largest relative deviation from the P1 reference values (J, norm, two entries)."""
    ref = P1_REFERENCE[(T, B)]
    got = (J, float(np.linalg.norm(g)), g[0], g[1216])
    return max(abs(a - b) / abs(b) for a, b in zip(got, ref))
