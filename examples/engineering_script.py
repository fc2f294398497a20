"""An engineering script: size a PI-like heater controller for a room, plant written in a few lines.

State:      x = (T_room [degC above ambient], integral of error [degC s])
Input:      u = heater power [kW], clipped softly by the cost, not by the plant
Parameters: u = -(k_p (T - 5) ... written as u = -K x + k0: K = (k_p [kW/degC], k_i [kW/(degC s)]),
            feed-forward k0 [kW]
Plant:      C dT/dt = u - T_room / R_th with C = 20 kJ/degC, R_th = 2 degC/kW (first-order thermal
            model), explicit Euler with dt = 1 s
Cost:       sum_t (T_room - 5)^2 + 0.1 u^2 over 300 s from 4 starting temperatures

Run: python examples/engineering_script.py
"""

import numpy as np

import dynopt
from dynopt.models import LinearFeedback, Quadratic

C, R_TH, SETPOINT = 20.0, 2.0, 5.0  # kJ/degC, degC/kW, degC


class Room(dynopt.ODE):
    """dT/dt = (u - T / R_th) / C;  d(integral)/dt = T - setpoint."""

    n_state, n_control = 2, 1

    def forward(self, x, u, X, theta):
        dx = np.stack([(u[:, 0] - x[:, 0] / R_TH) / C, x[:, 0] - SETPOINT], axis=1)
        return dx, None

    def vjp(self, ctx, bar):
        x_bar = np.stack([-bar[:, 0] / (R_TH * C) + bar[:, 1], np.zeros(len(bar))], axis=1)
        return x_bar, bar[:, :1] / C, np.zeros(0)


def main(horizon: int = 300):
    plant = dynopt.Discretized(Room(), dynopt.Euler(dt=1.0))
    prob = dynopt.Problem(plant, LinearFeedback(2, 1, bias=True), Quadratic([1.0, 0.0], [0.1], x_ref=[SETPOINT, 0.0]),
                          horizon=horizon, x0=[[0.0, 0.0], [2.0, 0.0], [8.0, 0.0], [-3.0, 0.0]])
    print(dynopt.check_gradient(prob, prob.pack(policy=[0.5, 0.01, 1.0]), casadi=False).summary())
    res = dynopt.optimize(prob, prob.pack(policy=[0.5, 0.01, 1.0]), method="BFGS")
    K, bias = res.params["policy"]["K"].ravel(), res.params["policy"]["k0"][0]
    print(f"k_p = {K[0]:.3f} kW/degC, k_i = {K[1]:.4f} kW/(degC s), k0 = {bias:.3f} kW; cost {res.fun:.2f}")
    print(f"final temperatures: {np.round(res.trajectory.x[-1, :, 0], 3)} degC (setpoint {SETPOINT})")
    return res


if __name__ == "__main__":
    main()
