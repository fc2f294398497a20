"""Identify a predator-prey (Lotka-Volterra) model's rates and initial states from noisy counts.

State:      x = (prey, predator) [thousands of animals]
Input:      none
Model:      d prey / dt = a prey - b prey predator,  d predator / dt = d prey predator - c predator
            (RK4 with the sample period dt = 0.1 year between samples)
Parameters: rates a, c [1/year], b, d [1/(year thousand)]: positive, fitted as log-rates;
            the initial state of each of two surveys
Data:       two surveys of different lengths (15 and 9 years), Gaussian count noise 0.3, a few
            samples missing (NaN)

Run: python examples/identify_lotka_volterra.py [--plot]
"""

import argparse

import casadi as ca
import numpy as np

import dynopt
from dynopt.sysid import Experiment, identify

DT = 0.1
TRUE = dict(a=1.0, b=0.4, c=0.8, d=0.2)


def lotka_volterra(x, u, p):
    prey, pred = x[0], x[1]
    return ca.vertcat(p["a"] * prey - p["b"] * prey * pred, p["d"] * prey * pred - p["c"] * pred)


def plant(params):
    ode = dynopt.CasadiODE(lotka_volterra, n_state=2, params={k: [v] for k, v in params.items()})
    return ode.discretize(dynopt.RK4(DT))


def surveys(seed=0):
    """Simulate the truth with the plant's own step and add noise and gaps."""
    r = np.random.default_rng(seed)
    true = plant(TRUE)
    theta = true.default_params()
    out = []
    for x0, N in (([10.0, 5.0], 150), ([4.0, 8.0], 90)):
        x = [np.array([x0])]                                   # (B = 1, n)
        for _ in range(N):
            x.append(true.forward((x[-1],), np.zeros((1, 0)), None, theta)[0])
        y = np.concatenate(x) + 0.3 * r.standard_normal((N + 1, 2))
        y[r.choice(N + 1, 5, replace=False), r.integers(0, 2, 5)] = np.nan
        out.append(y)
    return out


def main(plot=False):
    y1, y2 = surveys()
    res = identify(plant(dict(a=0.7, b=0.3, c=1.2, d=0.3)),
                   [Experiment(y1, x0=[9.0, 4.0], name="survey A"), Experiment(y2, x0=[5.0, 7.0], name="survey B")],
                   fit=("plant", "x0"), positive=["a", "b", "c", "d"], noise_std=0.3)
    print(res.summary())
    lo, hi = res.covariance.ci(0.05)[:4].T
    for (name, true), l, h in zip(TRUE.items(), lo, hi):
        print(f"{name}: true {true:.3f}, 95% interval [{l:.3f}, {h:.3f}]{'' if l <= true <= h else '  (missed)'}")
    if plot:
        import matplotlib.pyplot as plt
        res.plot(time=DT)
        plt.show()
    return res


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plot", action="store_true", help="show measured against fitted outputs")
    main(plot=ap.parse_args().plot)
