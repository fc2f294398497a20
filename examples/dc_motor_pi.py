"""DC motor speed: a PI controller with voltage saturation and anti-windup, tuned by dynopt,
against python-control's LQI (state feedback with integral action) under the same limit.

State:      x = (omega [rad/s], i [A]); output y = omega
Input:      armature voltage V [V], saturated to |V| <= 12 V
Parameters: J = 0.01 kg m^2, b = 0.1 N m s, K = 0.01 N m/A (= V s/rad), R = 1 ohm, L = 0.5 H
            (the "DC Motor Speed" example of the Control Tutorials for MATLAB and Simulink);
            zero-order hold, dt = 10 ms
PI:         V = sat(Kp e + I), e = r - omega, back-calculation anti-windup
            I+ = I + Ki dt e + Kb dt (V - v); Kp, Ki, Kb tuned by BFGS on
            dt * sum (r - omega)^2 + 1e-4 V^2 over setpoint steps to 0.5, 1.0 and 1.1 rad/s
LQI:        u = -K (x, z), z+ = z + (omega - r), K from control.dlqr(..., integral_action=C)
            with Q = diag(1, 0, 50), R = 1e-4 (the same effort weight), saturated, no anti-windup

Run: python examples/dc_motor_pi.py [--quick] [--plot FILE.png]
"""

import argparse
import warnings

import numpy as np

from dynopt import optimize
from dynopt.control.lqr import c2d
from dynopt.control.metrics import plot_responses, step_metrics
from dynopt.models import LinearPlant, PID, pid_problem

DT, V_MAX = 0.01, 12.0
JM, BM, KM, RM, LM = 0.01, 0.1, 0.01, 1.0, 0.5
A_C = np.array([[-BM / JM, KM / JM], [-KM / LM, -RM / LM]])
B_C = np.array([[0.0], [1.0 / LM]])
C = np.array([[1.0, 0.0]])
STEPS = (0.5, 1.0, 1.1)  # rad/s


def simulate_lqi(K, Ad, Bd, r, T):
    """The saturated LQI loop, one setpoint: returns omega (T + 1,) and V (T,)."""
    x, z = np.zeros(2), 0.0
    ys, us = [0.0], []
    for _ in range(T):
        u = float(np.clip(-(K[0, :2] @ x + K[0, 2] * z), -V_MAX, V_MAX))
        z += x[0] - r
        x = Ad @ x + Bd[:, 0] * u
        ys.append(x[0])
        us.append(u)
    return np.array(ys), np.array(us)


def main(quick: bool = False, plot_path=None):
    import control  # python-control (pip install control): the LQI reference

    T = 150 if quick else 300
    Ad, Bd = c2d(A_C, B_C, DT)
    plant = LinearPlant(Ad, Bd)
    pid = PID(2, 0, DT, u_limits=(-V_MAX, V_MAX), anti_windup="back-calculation",
              gains={"Kp": 10.0, "Ki": 10.0, "Kb": 1.0})
    refs = np.broadcast_to(np.array(STEPS), (T, len(STEPS)))
    prob = pid_problem(plant, pid, refs, horizon=T, x0=np.zeros((len(STEPS), 2)), w_u=1e-4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a line-search stop at the optimum is reported below
        res = optimize(prob, method="BFGS", options={"maxiter": 60 if quick else 200})
    gains = {k: float(v) for k, v in res.params["policy"].items()}
    print("PI gains (dynopt):", {k: round(v, 3) for k, v in gains.items()},
          f"cost {res.cost_history[0]:.5f} -> {res.fun:.5f} in {res.nit} iterations")

    K_lqi, _, _ = control.dlqr(Ad, Bd, np.diag([1.0, 0.0, 50.0]), np.array([[1e-4]]), integral_action=C)
    t = np.arange(T + 1) * DT
    j = STEPS.index(1.0)
    y_pi, u_pi = res.trajectory.x[:, j, 0], res.trajectory.u[:, j, 0]
    y_lqi, u_lqi = simulate_lqi(K_lqi, Ad, Bd, 1.0, T)
    m_pi = step_metrics(t, y_pi, yfinal=1.0)
    m_lqi = step_metrics(t, y_lqi, yfinal=1.0)
    print(f"{'1 rad/s step':14s} {'rise [s]':>9s} {'overshoot [%]':>14s} {'settling [s]':>13s} {'IAE':>8s} {'ISE':>8s}")
    for name, m in (("PI (dynopt)", m_pi), ("LQI (control)", m_lqi)):
        print(f"{name:14s} {m.rise_time:9.3f} {m.overshoot:14.2f} {m.settling_time:13.3f} {m.iae:8.4f} {m.ise:8.4f}")
    if plot_path is not None:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig = plot_responses(t, np.stack([y_pi, y_lqi], axis=1), reference=1.0, u=np.stack([u_pi, u_lqi], axis=1),
                             labels=["PI, back-calculation (dynopt)", "LQI (python-control), no anti-windup"],
                             u_limits=(-V_MAX, V_MAX), title="DC motor speed, 1 rad/s step", ylabel="omega [rad/s]",
                             ulabel="V [V]", path=plot_path)
        plt.close(fig)
        print(f"saved {plot_path}")
    return {"result": res, "gains": gains, "pi": m_pi, "lqi": m_lqi, "K_lqi": K_lqi, "t": t,
            "y_pi": y_pi, "y_lqi": y_lqi, "problem": prob}


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--plot", default=None, help="write a PNG of the 1 rad/s step responses")
    args = ap.parse_args()
    main(args.quick, args.plot)
