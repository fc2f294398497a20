"""Cart-pole swing-up to an exact terminal state: from hanging down to upright and at rest.

State:      x = (p [m], theta [rad] from upright, v [m/s], omega [rad/s]); x(0) = (0, pi, 0, 0)
Input:      F [N] on the cart, one value per step of dt = 0.1 s, |F| <= 20 N
Plant:      dynopt.models.CartPole (m_c = 1 kg, m_p = 0.1 kg, l = 0.5 m), RK4 step
Cost:       sum_t F[t]^2 dt (control effort)
Constraint: x[T] = (0, 0, 0, 0) exactly (TerminalConstraint, 4 equality rows)

Solved by scipy's SLSQP with the exact gradient of the cost and the exact Jacobian of the
terminal state (one adjoint sweep per row); ``method="auglag"`` runs the augmented Lagrangian.

Run: python examples/cartpole_terminal.py
"""

import time

import numpy as np

import dynopt
from dynopt.control.constraints import ConstrainedProblem, TerminalConstraint, solve
from dynopt.models import CartPole, OpenLoop, Quadratic


def build(horizon: int = 30, dt: float = 0.1):
    """The swing-up problem and its terminal constraint."""
    # one CasADi call per step (the RK4 step fused from CartPole's CasADi form)
    plant = dynopt.as_casadi(CartPole()).discretize(dynopt.RK4(dt))
    problem = dynopt.Problem(plant, OpenLoop(4, 1, horizon), Quadratic(np.zeros(4), [dt]), horizon=horizon,
                             x0=[0.0, np.pi, 0.0, 0.0], gradient=dynopt.BPTT())
    upright = TerminalConstraint(lambda x: x, equal=0.0, n_state=4, name="upright")
    return ConstrainedProblem(problem, [upright])


def main(horizon: int = 30, dt: float = 0.1, method: str = "SLSQP", f_max: float = 20.0):
    cp = build(horizon, dt)
    t0 = time.perf_counter()
    res = solve(cp, method=method, bounds={"policy": (-f_max, f_max)})
    seconds = time.perf_counter() - t0
    F = res.x
    x_T = res.trajectory.x[-1, 0]
    theta = res.trajectory.x[:, 0, 1]
    print(f"{method}: effort {res.fun:.6f} N^2 s in {seconds:.1f} s ({res.nit} iterations)")
    print(f"x[T] = {np.array2string(x_T, precision=10)}; max violation {res.max_violation:.1e}")
    print(f"max |F| = {np.abs(F).max():.2f} N; pole angle from {theta[0]:.3f} to {theta[-1]:.1e} rad, "
          f"min {theta.min():.2f}, max {theta.max():.2f}")
    print(f"terminal multipliers {np.array2string(res.multipliers['upright'][0], precision=4)}")
    return res


if __name__ == "__main__":
    main()
