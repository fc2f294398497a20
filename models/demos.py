r"""``dynopt demo pendulum``: train an MLP policy that swings up and balances a pendulum.

Formulation (and why):

* plant: RK4 pendulum, dt = 0.05 s, torque limited to |u| <= 5 N m by the policy's tanh
  (gravity's largest torque is 9.81 N m, so most initial states need one or two pumping swings);
* policy: tanh MLP 3-16-16-1 on (cos theta, sin theta, omega): smooth, periodic in theta;
* cost: ``dt * sum (1 - cos theta) + 0.01 omega^2 + 0.01 u^2``.  The velocity weight is what
  decides success: with 0.1 (the former default) a full swing (omega ~ 6 rad/s at the bottom)
  costs more per second than hanging still (0.1 * 36 > 2), and BFGS settled where 19% of the
  states were balanced; with 0.01 the swing pays for itself;
* curriculum on the horizon: BFGS on T/5, 2T/5, ..., T steps, each stage warm-started from the
  last, equal shares of the iterations.  Short horizons give well-conditioned gradients that
  teach the catch near the top and the first pumping swing; each longer one adds a swing.
  Measured (16 states, T = 100, 250 iterations, seeds 1-8): all 16 training states balanced
  for every seed; of 256 held-out initial states 99-100% for seeds 1-7, 76% for seed 8.  Three
  stages (T/4, T/2, T) failed on one seed in five (50%); no curriculum needed ~2x the
  iterations.

Success is counted as in the README: ``|theta| < 0.1 rad`` (wrapped to upright) through the
last second, on the training states and on 256 held-out initial states.
"""

from __future__ import annotations

import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from dynopt import RK4, Discretized, Problem, optimize
from dynopt.results import save_result

from .costs import Quadratic, SwingUpCost
from .linear import LinearPlant
from .mechanics import Pendulum
from .policies import MLPPolicy

DT = 0.05
"""Time step of the demo [s]."""

W_OMEGA = 0.01
"""Weight of omega^2 in the demo's cost (see the module docstring)."""


def initial_states(batch: int, seed: int) -> np.ndarray:
    """``(batch, 2)`` initial states: ``theta0 ~ U(-pi, pi)`` rad, ``omega0 ~ U(-1, 1)`` rad/s."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.uniform(-np.pi, np.pi, batch), rng.uniform(-1, 1, batch)], axis=1)


def pendulum_problem(batch: int = 16, horizon: int = 100, seed: int = 1, hidden=(16, 16), u_max: float = 5.0,
                     w_omega: float = W_OMEGA, x0=None) -> Problem:
    """The demo problem: RK4 pendulum (dt = 0.05 s, |u| <= u_max N m), tanh MLP, swing-up cost.

    Initial states ``x0`` (B, 2), default :func:`initial_states` ``(batch, seed)``; the cost is
    ``SwingUpCost(dt, w_omega=w_omega)``.
    """
    x0 = initial_states(batch, seed) if x0 is None else x0
    plant = Discretized(Pendulum(), RK4(DT))
    policy = MLPPolicy(2, 1, hidden=hidden, u_max=u_max, angles=(0,), seed=0)
    return Problem(plant, policy, SwingUpCost(dt=DT, w_omega=w_omega), horizon=horizon, x0=x0)


def balanced(x: np.ndarray, last_steps: int = int(round(1.0 / DT)), tol: float = 0.1) -> np.ndarray:
    """Which trajectories of ``x`` (T + 1, B, 2) keep ``|theta| < tol`` (wrapped) through the
    last ``last_steps`` states (default: the last second).  Returns a (B,) bool array."""
    th = np.angle(np.exp(1j * x[-last_steps:, :, 0]))
    return np.all(np.abs(th) < tol, axis=0)


def curriculum(horizon: int, maxiter: int, n_stages: int = 5):
    """Stages ``[(T_i, maxiter_i)]``: horizons T/5, 2T/5, ..., T with equal shares of the
    iterations (a single stage when T or the budget is too small to split)."""
    if horizon < 4 * n_stages or maxiter < 2 * n_stages:
        return [(horizon, maxiter)]
    its = [maxiter // n_stages] * n_stages
    its[-1] += maxiter - sum(its)
    return [(int(round(horizon * (i + 1) / n_stages)), its[i]) for i in range(n_stages)]


def _check_writable(out_dir) -> Path:
    """Create ``out_dir`` if needed and prove it is writable before any training."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".dynopt-write-test-", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OSError(f"out_dir: expected a writable directory, got {str(out)!r} ({exc.strerror or exc}); "
                      f"choose another with --out") from None
    return out


def train_pendulum(batch: int = 16, horizon: int = 100, maxiter: int = 250, seed: int = 1, *, progress=False,
                   echo=None, hidden=(16, 16), stages=None):
    """Train the demo policy with the horizon curriculum.

    Returns a dict with ``W`` (best weights), ``problem`` (the full-horizon problem),
    ``stages`` (list of per-stage dicts: horizon, iterations, cost), ``iterations``,
    ``evaluations``, ``cost_history`` (full-horizon stage only: every stage's history joined),
    ``interrupted`` (Ctrl-C) and ``message``.  On Ctrl-C the best point seen so far is kept.
    """
    x0 = initial_states(batch, seed)
    full = pendulum_problem(batch, horizon, seed, hidden=hidden, x0=x0)
    W = full.W0
    state = {"W": W.copy()}
    out = {"problem": full, "stages": [], "iterations": 0, "evaluations": 0, "cost_history": [],
           "grad_norm_history": [], "interrupted": False, "message": ""}
    stages = curriculum(horizon, maxiter) if stages is None else stages
    for T, its in stages:
        prob = pendulum_problem(batch, T, seed, hidden=hidden, x0=x0)

        def keep(info):
            state["W"] = info.x.copy()

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # maxiter reached: reported below
                res = optimize(prob, state["W"], method="BFGS", options={"maxiter": its}, progress=progress,
                               callback=keep)
        except KeyboardInterrupt:
            out["interrupted"] = True
            out["message"] = f"interrupted (Ctrl-C) in the stage of {T} steps; kept the last iterate"
            break
        state["W"] = res.x.copy()
        out["iterations"] += int(res.nit)
        out["evaluations"] += int(res.nfev)
        out["cost_history"] += list(res.cost_history)
        out["grad_norm_history"] += list(res.grad_norm_history)
        out["stages"].append({"horizon": T, "iterations": int(res.nit), "cost": float(res.fun)})
        out["message"] = str(res.message)
        if echo is not None:
            echo(f"  stage {len(out['stages'])}/{len(stages)}: {T} steps, {res.nit} BFGS iterations, "
                 f"cost {res.fun:.4f}")
        if "interrupt" in str(res.message).lower():  # an optimize that returns on Ctrl-C
            out["interrupted"] = True
            break
    out["W"] = state["W"]
    return out


def run_pendulum_demo(out_dir="dynopt-results", *, batch=16, horizon=100, maxiter=250, progress=True,
                      plot=True, seed=1, echo=print, holdout=256) -> dict:
    """Train, report, save.  Returns a dict with the result, the written paths and timings.

    The output folder is checked for writability before training; Ctrl-C during training
    saves what was reached (``"interrupted": true`` in the JSON).
    """
    out_dir = _check_writable(out_dir)
    t0 = time.perf_counter()
    x0 = initial_states(batch, seed)
    prob = pendulum_problem(batch, horizon, seed, x0=x0)
    W0 = prob.W0
    J0 = prob.value(W0)
    echo(f"dynopt demo pendulum: {prob.n_decision} policy weights, {batch} initial states, "
         f"{horizon} steps of {DT} s; BFGS over horizons {[T for T, _ in curriculum(horizon, maxiter)]}")
    echo(f"cost before: {J0:.4f}")
    tr = train_pendulum(batch, horizon, maxiter, seed, progress=progress, echo=echo)
    elapsed = time.perf_counter() - t0
    W = tr["W"]
    traj = prob.simulate(W)
    ok = balanced(traj.x)
    test = pendulum_problem(holdout, horizon, seed + 1000) if holdout else None
    ok_test = balanced(test.simulate(W).x) if holdout else np.zeros(0, bool)
    if tr["interrupted"]:
        echo(f"interrupted: {tr['message']}")
    echo(f"cost after:  {traj.objective:.4f}  ({tr['iterations']} BFGS iterations, {tr['evaluations']} evaluations, "
         f"{elapsed:.1f} s)")
    echo(f"balanced upright through the last second (|theta| < 0.1 rad): {ok.mean() * 100:.0f}% of the {batch} "
         f"training states" + (f", {ok_test.mean() * 100:.0f}% of {holdout} new ones" if holdout else "")
         + f"; time {elapsed:.1f} s")
    meta = {
        "problem": f"pendulum swing-up, RK4 dt={DT} s, MLP 3-16-16-1, u_max=5 N m, "
                   f"cost dt*(1-cos theta + {W_OMEGA} omega^2 + 0.01 u^2)",
        "batch": batch, "horizon": horizon, "seed": seed, "method": "BFGS", "stages": tr["stages"],
        "cost_before": J0, "cost_after": float(traj.objective), "iterations": tr["iterations"],
        "evaluations": tr["evaluations"], "message": tr["message"], "interrupted": tr["interrupted"],
        "seconds": elapsed, "fraction_upright": float(ok.mean()),
        "fraction_upright_holdout": float(ok_test.mean()) if holdout else None, "holdout": holdout,
    }
    arrays = {"W": W, "W0": W0, "states": traj.x, "controls": traj.u, "balanced": ok,
              "cost_history": np.asarray(tr["cost_history"]), "grad_norm_history": np.asarray(tr["grad_norm_history"])}
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
            _plot(traj, ok, tr, png)
            paths["png"] = png
            echo(f"saved {png}")
    return {"result": tr, "trajectory": traj, "paths": paths, "meta": meta}


def _plot(traj, ok, tr, path: Path):
    """Distance from upright (continuous: no wrap lines), torque and cost history."""
    import matplotlib.pyplot as plt

    x = traj.x
    t = np.arange(x.shape[0]) * DT
    dist = np.degrees(np.abs(np.angle(np.exp(1j * x[:, :, 0]))))
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for b in range(x.shape[1]):
        axes[0].plot(t, dist[:, b], lw=0.9, color="tab:green" if ok[b] else "tab:red", alpha=0.8)
    axes[0].axhspan(0, np.degrees(0.1), color="k", alpha=0.1)
    axes[0].axvspan(t[-1] - 1.0, t[-1], color="tab:blue", alpha=0.07)
    axes[0].set(xlabel="time [s]", ylabel="distance from upright [deg]", ylim=(-3, 183), yticks=[0, 45, 90, 135, 180],
                title=f"{ok.sum()}/{ok.size} balanced (green) in the last second")
    axes[1].plot(t[:-1], traj.u[:, :, 0], lw=0.8)
    axes[1].set(xlabel="time [s]", ylabel="u [N m]", title="torque (|u| <= 5 N m)")
    axes[2].semilogy(tr["cost_history"])
    edges = np.cumsum([s["iterations"] + 1 for s in tr["stages"]])[:-1]
    for e in edges:
        axes[2].axvline(e - 0.5, color="k", lw=0.6, ls=":")
    axes[2].set(xlabel="BFGS iteration (dotted: next horizon)", ylabel="J of the stage", title="cost history")
    fig.tight_layout()
    with open(path, "xb") as fh:
        fig.savefig(fh, format="png", dpi=90)
    plt.close(fig)


def diagnose_problem(name: str, horizon: int = 200, batch: int = 4, seed: int = 0) -> Problem:
    """Built-in problems of ``dynopt diagnose``.

    ``"linear-0.9"`` / ``"linear-1.1"``: ``x[t+1] = A x[t]``, n = 2, A non-normal with
    spectral radius 0.9 / 1.1, cost ``sum_t ||x[t]||^2``, W = the entries of A.
    ``"pendulum"``: the RK4 pendulum (dt = 0.05 s) under the demo's untrained tanh-MLP policy
    (3-16-16-1, |u| <= 5 N m) and the swing-up cost with the former velocity weight 0.1,
    W = the policy weights.
    """
    rng = np.random.default_rng(seed)
    if name in ("linear-0.9", "linear-1.1"):
        rho = 0.9 if name == "linear-0.9" else 1.1
        A = np.array([[rho, 0.5], [0.0, 0.5 * rho]])
        return Problem(LinearPlant(A, np.zeros((2, 0))), None, Quadratic(np.eye(2)), horizon=horizon,
                       x0=rng.standard_normal((batch, 2)), decision=("plant",))
    if name == "pendulum":
        return pendulum_problem(batch=batch, horizon=horizon, seed=seed + 1, w_omega=0.1)
    raise ValueError(f"name: expected 'linear-0.9', 'linear-1.1' or 'pendulum', got {name!r}")
