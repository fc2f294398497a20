"""Your own plant, written once with CasADi: dynopt derives its dual, optimizes a controller for it,
and checks the gradient three ways (dynopt's BPTT, CasADi's whole-trajectory AD, finite differences).

Plant:      two gravity-drained tanks in cascade (Torricelli outflow), a pump filling the upper one
State:      x = (h1, h2), water levels [m]
Input:      u, pump voltage [V], kept in (0, 24) V by the policy
Parameters: A = 0.05 m^2 tank cross-sections, a = 2e-4 m^2 outlet areas, k_p = 5e-5 m^3/(s V) pump
            gain, g = 9.81 m/s^2 (the plant block of W; here fixed)
Policy:     u = 24 V * sigmoid(k0 + k1 (r - h2) + k2 (r - h1)), r = 0.5 m the level set-point;
            (k0, k1 [1/m], k2 [1/m]) are optimized by BFGS
Cost:       sum_t dt [ (h2 - r)^2 + 1e-5 u^2 ] over 8 initial levels, RK4 with dt = 2 s, T = 200 (400 s)

Run: python examples/casadi_own_plant.py
"""

import casadi as ca
import numpy as np

import dynopt
from dynopt import RK4, Problem
from dynopt.casadi.components import CasadiODE, CasadiPolicy, CasadiStageCost

R_SET = 0.5  # level set-point of the lower tank [m]
DT = 2.0     # step [s]


def tanks(x, u, p):
    """dh/dt [m/s] of the two tanks: pump inflow into tank 1, tank 1 drains into tank 2, tank 2 drains out."""
    q1 = p["a"] * ca.sqrt(2.0 * p["g"] * x[0])   # outflow of tank 1 [m^3/s]
    q2 = p["a"] * ca.sqrt(2.0 * p["g"] * x[1])   # outflow of tank 2 [m^3/s]
    return ca.vertcat((p["k_p"] * u[0] - q1) / p["A"], (q1 - q2) / p["A"])


def pump_policy(x, p):
    """Smoothly saturated proportional control of both levels toward the set-point [V]."""
    z = p["k0"] + p["k1"] * (R_SET - x[1]) + p["k2"] * (R_SET - x[0])
    return 24.0 / (1.0 + ca.exp(-z))


def tracking_cost(x, u, p):
    return DT * ((x[1] - R_SET) ** 2 + 1e-5 * u[0] ** 2)


def build(horizon: int = 200) -> Problem:
    ode = CasadiODE(tanks, n_state=2, n_control=1, params=dict(A=0.05, a=2e-4, k_p=5e-5, g=9.81))
    policy = CasadiPolicy(pump_policy, n_state=2, n_control=1, params=dict(k0=0.0, k1=1.0, k2=1.0))
    cost = CasadiStageCost(tracking_cost, n_state=2, n_control=1)
    x0 = np.random.default_rng(0).uniform(0.1, 0.8, size=(8, 2))
    return Problem(ode.discretize(RK4(DT)), policy, cost, horizon=horizon, x0=x0)


def main(horizon: int = 200):
    problem = build(horizon)
    check = dynopt.check_gradient(problem)   # BPTT vs CasADi whole-trajectory AD vs finite differences
    print(check)
    res = dynopt.optimize(problem, method="BFGS", options={"gtol": 1e-8, "maxiter": 200})
    gains = res.params["policy"]
    print(f"J: {check.J:.6f} -> {res.fun:.6f} after {res.nit} BFGS iterations "
          f"(k0 = {gains['k0']:.4f}, k1 = {gains['k1']:.3f} 1/m, k2 = {gains['k2']:.3f} 1/m)")
    h2_end = res.trajectory.x[-1, :, 1]
    print(f"lower-tank level after {horizon * DT:.0f} s: {h2_end.min():.4f} .. {h2_end.max():.4f} m "
          f"(set-point {R_SET} m)")
    return check, res


if __name__ == "__main__":
    main()
