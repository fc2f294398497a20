"""``dynopt demo pendulum``: train an MLP policy that swings up and balances a pendulum."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from dynopt import RK4, Discretized, Problem, optimize
from dynopt.results import save_result

from .costs import Quadratic, SwingUpCost
from .linear import LinearPlant
from .mechanics import Pendulum
from .policies import MLPPolicy


def pendulum_problem(batch: int = 16, horizon: int = 100, seed: int = 1, hidden=(16, 16), u_max: float = 5.0) -> Problem:
    """The demo problem: RK4 pendulum (dt = 0.05 s, |u| <= u_max N m), tanh MLP, swing-up cost.

    Initial states: ``theta0 ~ U(-pi, pi)`` rad, ``omega0 ~ U(-1, 1)`` rad/s, ``batch`` of them.
    """

    rng = np.random.default_rng(seed)
    x0 = np.stack([rng.uniform(-np.pi, np.pi, batch), rng.uniform(-1, 1, batch)], axis=1)
    plant = Discretized(Pendulum(), RK4(0.05))
    policy = MLPPolicy(2, 1, hidden=hidden, u_max=u_max, angles=(0,), seed=0)
    return Problem(plant, policy, SwingUpCost(dt=0.05), horizon=horizon, x0=x0)


def run_pendulum_demo(out_dir="dynopt-results", *, batch=16, horizon=100, maxiter=250, progress=True,
                      plot=True, seed=1, echo=print) -> dict:
    """Train, report, save.  Returns a dict with the result, the written paths and timings."""
    prob = pendulum_problem(batch, horizon, seed)
    W0 = prob.W0
    J0 = prob.value(W0)
    echo(f"dynopt demo pendulum: {prob.n_decision} policy weights, {batch} initial states, "
         f"{horizon} steps of 0.05 s")
    echo(f"cost before: {J0:.4f}")
    t0 = time.perf_counter()
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # reported below instead
        res = optimize(prob, W0, method="BFGS", options={"maxiter": maxiter}, progress=progress)
    elapsed = time.perf_counter() - t0
    last = res.trajectory.x[-20:, :, 0]  # the final second
    upright = np.mean(np.all(np.abs(np.angle(np.exp(1j * last))) < 0.1, axis=0))
    echo(f"cost after:  {res.fun:.4f}  ({res.nit} BFGS iterations, {res.nfev} evaluations, {elapsed:.1f} s; "
         f"{res.message})")
    echo(f"balanced upright through the last second (|theta| < 0.1 rad): {upright * 100:.0f}% of initial states")
    meta = {
        "problem": "pendulum swing-up, RK4 dt=0.05 s, MLP 3-16-16-1, u_max=5 N m",
        "batch": batch, "horizon": horizon, "seed": seed, "method": "BFGS",
        "cost_before": J0, "cost_after": res.fun, "iterations": int(res.nit),
        "evaluations": int(res.nfev), "success": bool(res.success), "message": str(res.message),
        "seconds": elapsed, "fraction_upright": float(upright),
    }
    arrays = {"W": res.x, "W0": W0, "states": res.trajectory.x, "controls": res.trajectory.u,
              "cost_history": res.cost_history, "grad_norm_history": res.grad_norm_history}
    paths = save_result(out_dir, "pendulum", arrays, meta)
    echo(f"saved {paths['npz']} and {paths['json']}")
    if plot:
        try:
            import matplotlib
        except ImportError:
            echo("no plot: matplotlib is not installed (pip install 'dynopt[plot]' to get a PNG)")
        else:
            matplotlib.use("Agg")
            png = paths["npz"].with_suffix(".png")
            _plot(res, png)
            paths["png"] = png
            echo(f"saved {png}")
    return {"result": res, "paths": paths, "meta": meta}


def _plot(res, path: Path):
    import matplotlib.pyplot as plt

    x = res.trajectory.x
    t = np.arange(x.shape[0]) * 0.05
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].plot(t, np.angle(np.exp(1j * x[:, :, 0])), lw=0.8)
    axes[0].set(xlabel="time [s]", ylabel="theta (wrapped) [rad]", title="angle, 0 = upright")
    axes[1].plot(t[:-1], res.trajectory.u[:, :, 0], lw=0.8)
    axes[1].set(xlabel="time [s]", ylabel="u [N m]", title="torque")
    axes[2].semilogy(res.cost_history)
    axes[2].set(xlabel="BFGS iteration", ylabel="J", title="cost history")
    fig.tight_layout()
    with open(path, "xb") as fh:
        fig.savefig(fh, format="png", dpi=90)
    plt.close(fig)


def diagnose_problem(name: str, horizon: int = 200, batch: int = 4, seed: int = 0) -> Problem:
    """Built-in problems of ``dynopt diagnose``.

    ``"linear-0.9"`` / ``"linear-1.1"``: ``x[t+1] = A x[t]``, n = 2, A non-normal with
    spectral radius 0.9 / 1.1, cost ``sum_t ||x[t]||^2``, W = the entries of A.
    ``"pendulum"``: the RK4 pendulum (dt = 0.05 s) under the demo's untrained tanh-MLP policy
    (3-16-16-1, |u| <= 5 N m) and swing-up cost, W = the policy weights.
    """
    rng = np.random.default_rng(seed)
    if name in ("linear-0.9", "linear-1.1"):
        rho = 0.9 if name == "linear-0.9" else 1.1
        A = np.array([[rho, 0.5], [0.0, 0.5 * rho]])
        return Problem(LinearPlant(A, np.zeros((2, 0))), None, Quadratic(np.eye(2)), horizon=horizon,
                       x0=rng.standard_normal((batch, 2)), decision=("plant",))
    if name == "pendulum":
        return pendulum_problem(batch=batch, horizon=horizon, seed=seed + 1)
    raise ValueError(f"name: expected 'linear-0.9', 'linear-1.1' or 'pendulum', got {name!r}")
