"""Identify the outlet areas and pump gain of two cascaded water tanks from the lower level only.

State:      x = (h1, h2) tank levels [m]
Input:      u = pump voltage [V], held over each 5 s sample (zero-order hold), RK4 with dt = 5 s
Model:      A dh1/dt = k u - a1 sqrt(2 g h1),   A dh2/dt = a1 sqrt(2 g h1) - a2 sqrt(2 g h2)
            A = 0.0154 m^2, g = 9.81 m/s^2
Parameters: pump gain k [m^3/(s V)], outlet areas a1, a2 [m^2]: positive, fitted as logarithms
Measured:   h2 only (y = h2, level sensor noise 2 mm), three step tests of different lengths;
            initial levels known

Run: python examples/identify_two_tanks.py [--plot]
"""

import argparse

import casadi as ca
import numpy as np

import dynopt
from dynopt.sysid import Experiment, identify

A, G, DT = 0.0154, 9.81, 5.0
TRUE = dict(k=3.3e-5, a1=5.0e-5, a2=4.5e-5)


def tanks(x, u, p):
    q1 = p["a1"] * ca.sqrt(2 * G * x[0])
    q2 = p["a2"] * ca.sqrt(2 * G * x[1])
    return ca.vertcat(p["k"] * u[0] - q1, q1 - q2) / A


def plant(params):
    ode = dynopt.CasadiODE(tanks, n_state=2, n_control=1, params={k: [v] for k, v in params.items()})
    return ode.discretize(dynopt.RK4(DT))


def step_tests(seed=0):
    """Three step tests simulated with the true model's own step, with sensor noise."""
    r = np.random.default_rng(seed)
    true = plant(TRUE)
    theta = true.default_params()
    tests = []
    for volts, N, x0 in ((5.0, 120, [0.05, 0.05]), (3.0, 80, [0.20, 0.15]), (7.0, 60, [0.02, 0.10])):
        u = np.full((N, 1), volts)
        u[N // 2:] *= 0.5                                     # a step down half way
        xs = [np.array([x0])]
        for i in range(N):
            xs.append(true.forward((xs[-1],), u[i:i + 1], None, theta)[0])
        h2 = np.concatenate(xs)[:, 1] + 0.002 * r.standard_normal(N + 1)
        tests.append(Experiment(h2, u=u, x0=x0, name=f"{volts:g} V"))
    return tests


def main(plot=False):
    res = identify(plant(dict(k=2e-5, a1=3e-5, a2=6e-5)), step_tests(), measure=[1], noise_std=0.002,
                   fit="plant", positive=["k", "a1", "a2"])
    print(res.summary())
    for (name, true), est, se in zip(TRUE.items(), res.estimates, res.covariance.se):
        print(f"{name}: true {true:.4g}, estimate {est:.4g} +- {se:.2g}")
    if plot:
        import matplotlib.pyplot as plt
        res.plot(time=DT)
        plt.show()
    return res


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plot", action="store_true", help="show measured against fitted levels")
    main(plot=ap.parse_args().plot)
