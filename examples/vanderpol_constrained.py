"""CasADi's direct_single_shooting example with dynopt: Van der Pol with the state bound x1 >= -0.25.

State:      x = (x1, x2) [-], x1' = (1 - x2^2) x1 - x2 + u, x2' = x1, x(0) = (0, 1)
Input:      u [-], held over each of N = 20 intervals of a 10 s horizon, |u| <= 1
Integrator: RK4 with M = 4 sub-steps per interval (dynopt.RK4(dt, substeps=4))
Cost:       the integral of x1^2 + x2^2 + u^2, computed with the same RK4 stages
            (IntegralCost: CasADi's "quadrature" qf)
Constraint: x1[k] >= -0.25 after every interval k = 1 .. N (StateConstraint)

Solved by dynopt's augmented Lagrangian (one forward and one adjoint sweep per evaluation) as
single shooting and as multiple shooting (a node per interval, CasADi's direct_multiple_shooting
layout: the 20 segments are one batch), and for comparison by IPOPT on CasADi's own formulation
of the same discretised problem.

Run: python examples/vanderpol_constrained.py
"""

import time

import casadi as ca
import numpy as np

import dynopt
from dynopt.control.constraints import ConstrainedProblem, StateConstraint, solve
from dynopt.control.shooting import MultipleShooting, OpenLoopHold
from dynopt.core.integrators import IntegralCost


class VanDerPol(dynopt.ODE):
    """dx/dt of the Van der Pol oscillator in CasADi's example, with its dual (NumPy, batched)."""

    n_state, n_control = 2, 1

    def forward(self, x, u, X, theta):
        out = np.empty_like(x)
        x1, x2 = x[:, 0], x[:, 1]
        out[:, 0] = (1 - x2 * x2) * x1 - x2 + u[:, 0]
        out[:, 1] = x1
        return out, x

    def vjp(self, x, xdot_bar):
        x1, x2 = x[:, 0], x[:, 1]
        x_bar = np.empty_like(x)
        x_bar[:, 0] = (1 - x2 * x2) * xdot_bar[:, 0] + xdot_bar[:, 1]
        x_bar[:, 1] = (-2 * x2 * x1 - 1) * xdot_bar[:, 0]
        return x_bar, xdot_bar[:, :1].copy(), np.zeros(0)


class Running(dynopt.StageCost):
    """q = x1^2 + x2^2 + u^2 per unit time."""

    n_state, n_control = 2, 1

    def forward(self, t, x, u, X, p):
        return (x * x).sum(1) + (u * u).sum(1), (x, u)

    def vjp(self, ctx, q_bar):
        x, u = ctx
        return 2 * x * q_bar[:, None], 2 * u * q_bar[:, None], np.zeros(0)


def ipopt_reference(N, M, Tf=10.0):
    """CasADi's direct_single_shooting.py (Opti form): the same RK4 stages and quadrature.

    Returns the controls (N,), the cost and IPOPT's multipliers of the N path bounds x1 >= -0.25."""
    x, u = ca.MX.sym("x", 2), ca.MX.sym("u")
    f = ca.Function("f", [x, u], [ca.vertcat((1 - x[1] ** 2) * x[0] - x[1] + u, x[0]), x[0] ** 2 + x[1] ** 2 + u ** 2])
    opti = ca.Opti()
    U = opti.variable(N)
    DT = Tf / N / M
    Xk, J = ca.MX(np.array([0.0, 1.0])), 0
    for k in range(N):
        for _ in range(M):
            k1, q1 = f(Xk, U[k])
            k2, q2 = f(Xk + DT / 2 * k1, U[k])
            k3, q3 = f(Xk + DT / 2 * k2, U[k])
            k4, q4 = f(Xk + DT * k3, U[k])
            Xk = Xk + DT / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
            J = J + DT / 6 * (q1 + 2 * q2 + 2 * q3 + q4)
        opti.subject_to(Xk[0] >= -0.25)
    opti.subject_to(opti.bounded(-1, U, 1))
    opti.minimize(J)
    opti.solver("ipopt", {"print_time": False}, {"print_level": 0, "sb": "yes", "tol": 1e-12})
    sol = opti.solve()
    return np.array(sol.value(U)), float(sol.value(J)), np.array(sol.value(opti.lam_g))[:N]


def main(N: int = 20, M: int = 4, Tf: float = 10.0, method: str = "auglag"):
    plant = dynopt.Discretized(VanDerPol(), dynopt.RK4(Tf / N, substeps=M))
    problem = dynopt.Problem(plant, OpenLoopHold(2, 1, N), IntegralCost(Running(), plant), horizon=N,
                             x0=[0.0, 1.0], gradient=dynopt.BPTT())
    x1_min = StateConstraint(lambda x: x[0], lower=-0.25, n_state=2, name="x1_min")   # casadi expression
    t0 = time.perf_counter()
    res = solve(ConstrainedProblem(problem, [x1_min]), method=method, bounds={"policy": (-1, 1)})
    seconds = time.perf_counter() - t0
    U_ref, J_ref, _ = ipopt_reference(N, M, Tf)
    x1 = res.trajectory.x[:, 0, 0]
    print(f"dynopt ({method}): J = {res.fun:.10f} in {seconds:.1f} s, max violation {res.max_violation:.1e}, "
          f"{res.outer_iterations} outer / {res.inner_iterations} inner iterations")
    print(f"IPOPT (CasADi):      J = {J_ref:.10f}; relative difference {abs(res.fun - J_ref) / J_ref:.1e}, "
          f"max |u - u_ipopt| = {np.abs(res.x - U_ref).max():.1e}")
    active = np.nonzero(x1[1:] < -0.25 + 1e-6)[0] + 1
    print(f"x1 >= -0.25 active at k = {active.tolist()}; multipliers there "
          f"{np.round(res.multipliers['x1_min'][active, 0, 0], 4).tolist()}")
    # multiple shooting: the same discretised problem, node states as decision variables
    ms = MultipleShooting(plant, IntegralCost(Running(), plant), horizon=N, x0=[0.0, 1.0], segments=N,
                          constraints=[x1_min], gradient=dynopt.BPTT())
    t0 = time.perf_counter()
    res_ms = solve(ms.constrained, bounds=ms.control_bounds(-1.0, 1.0))
    seconds = time.perf_counter() - t0
    print(f"dynopt multiple shooting: J = {res_ms.fun:.10f} in {seconds:.1f} s, max violation "
          f"{res_ms.max_violation:.1e} (continuity and x1 bound), max |u - u_single| = "
          f"{np.abs(ms.controls(res_ms.x)[:, 0] - res.x).max():.1e}")
    return res, res_ms, J_ref


if __name__ == "__main__":
    main()
