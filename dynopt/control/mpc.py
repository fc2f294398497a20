r"""Receding-horizon control (MPC) on top of :func:`dynopt.optimize`.

At every sample k the loop

1. sets the model's initial state to the measured plant state ``x[k]``;
2. solves the model's open-loop problem over its horizon N (decision = the control sequence
   ``U (N, m)``; control bounds enforced by L-BFGS-B), warm-started from the previous solution
   shifted by one step (last control repeated);
3. applies the first control ``U[0]`` to the simulated plant, which may differ from the model
   (other parameters, other dynamics, disturbances).

It records the solve times, iterations, predicted costs, solver status and the constraint
violations of what was applied (control bounds, and state bounds if given: MPC here enforces
bounds on u only; state bounds are reported, not imposed).
"""

from __future__ import annotations

import time
import warnings
from typing import Callable, Optional

import numpy as np
import scipy.optimize

from ..core.components import Plant
from ..core.problem import Problem
from ..core.validation import as_float_array
from ..optimize import optimize

__all__ = ["MPCResult", "receding_horizon"]


class MPCResult(scipy.optimize.OptimizeResult):
    """The closed-loop run of :func:`receding_horizon`.

    Attributes
    ----------
    x : (steps + 1, n) array
        Plant states ``x[0] .. x[steps]``.
    u : (steps, m) array
        Applied controls.
    solve_times : (steps,) array
        Wall time of each solve [s].
    iterations, evaluations : (steps,) int arrays
        Optimizer iterations and (J, gradient) evaluations per solve.
    predicted_cost : (steps,) array
        Optimal model cost at each sample.
    solver_success : (steps,) bool array
    messages : list of str
        The optimizer's message at each sample.
    u_violation : (steps,) array
        ``max(0, u - u_hi, u_lo - u)`` of the applied control (0 when bounds hold).
    x_violation : (steps + 1,) array or None
        The same for ``x_bounds``, if given.
    plans : (steps, N, m) array
        Every solved control sequence.
    success : bool
        Every solve succeeded.
    """


def _with_x0(model: Problem, x0, X):
    changes = {"x0": x0}
    if X is not None:
        changes["X"] = X
    replace = getattr(model, "replace", None)
    if replace is not None:
        return replace(**changes)
    blocks = model.unpack(model.W0)  # fixed blocks (and start values) as the model holds them
    params = {k: blocks[k] for k in ("policy", "plant", "cost", "terminal") if blocks[k].size}
    return Problem(model.plant, model.policy, model.cost, model.terminal_cost, horizon=model.horizon,
                   x0=changes["x0"], X=changes.get("X", model.X), params=params, decision=model.decision,
                   objective=model.objective, gradient=model.gradient)


def _bounds(name, b, m):
    if b is None:
        return np.full(m, -np.inf), np.full(m, np.inf)
    try:
        lo, hi = b
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected a pair (lo, hi) of scalars or ({m},) arrays, got {b!r}") from None
    lo = np.full(m, -np.inf) if lo is None else np.broadcast_to(as_float_array(f"{name}[0]", lo, finite=False), (m,))
    hi = np.full(m, np.inf) if hi is None else np.broadcast_to(as_float_array(f"{name}[1]", hi, finite=False), (m,))
    if np.any(np.isnan(lo)) or np.any(np.isnan(hi)):
        raise ValueError(f"{name}: expected numbers or +-inf, got NaN")
    if np.any(lo > hi):
        i = int(np.argmax(lo > hi))
        raise ValueError(f"{name}: expected lo <= hi, got lo={lo[i]} > hi={hi[i]} at index {i}")
    return np.array(lo, float), np.array(hi, float)


def _violation(v, lo, hi):
    return np.maximum(0.0, np.maximum(v - hi, lo - v)).max(axis=-1)


def receding_horizon(model: Problem, x0, steps: int, *, plant: Optional[Plant] = None, plant_params=None,
                     plant_X=None, model_X: Optional[Callable[[int], object]] = None, u_bounds=None, x_bounds=None,
                     options: Optional[dict] = None, warm_start: str = "shift") -> MPCResult:
    r"""Run MPC for ``steps`` samples: re-solve ``model`` from each measured state, apply ``U[0]``.

    Parameters
    ----------
    model : Problem
        The prediction model: one scenario (B = 1), lag-1 plant, horizon N, decision
        ``("policy",)`` where the policy is an open-loop sequence whose block is ``U (N, m)``
        row-major (e.g. ``dynopt.models.OpenLoop``), any stage and terminal costs.
    x0 : (n,) array
        Initial plant state.
    steps : int
        Number of closed-loop samples.
    plant : Plant, optional
        The simulated plant (lag 1, same n and m); default the model's plant.
    plant_params : (n_params,) array, optional
        Its parameters; default ``plant.default_params()`` (the model's own plant block when
        ``plant`` is omitted).
    plant_X : (steps, nX) array, optional
        Exogenous inputs of the simulated plant (disturbances), one row per sample.
    model_X : callable ``k -> X``, optional
        The model's exogenous inputs for the window starting at sample k (e.g. a reference
        preview), in any form the Problem accepts; default the model's own X at every sample.
    u_bounds : (lo, hi), optional
        Control bounds (scalars or (m,) arrays; None for unbounded side), imposed by L-BFGS-B.
    x_bounds : (lo, hi), optional
        State bounds, only reported (``x_violation``).
    options : dict, optional
        L-BFGS-B options (default ``{"maxiter": 500, "ftol": 1e-12, "gtol": 1e-8}``).
    warm_start : {"shift", "previous", "cold"}
        Start of each solve: the previous plan shifted by one step with its last control
        repeated, the previous plan as is, or the model's ``W0``.

    Returns
    -------
    MPCResult
    """
    if not isinstance(model, Problem):
        raise TypeError(f"model: expected a dynopt.Problem, got {type(model).__name__}")
    if model.B != 1:
        raise ValueError(f"model: expected a single scenario (B = 1), got B={model.B}")
    if model.plant.lags != 1:
        raise ValueError(f"model: expected a lag-1 plant, got lags={model.plant.lags}")
    n, m, N = model.plant.n_state, model.plant.n_control, model.horizon
    if m < 1:
        raise ValueError("model: expected a plant with controls (m >= 1), got m=0")
    if tuple(model.decision) != ("policy",) or model.n_decision != N * m:
        raise ValueError(f"model: expected decision ('policy',) made of an open-loop sequence U (N={N}, m={m}) "
                         f"= {N * m} values, got decision {tuple(model.decision)} with {model.n_decision} values")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps: expected an integer >= 1, got {steps!r}")
    if warm_start not in ("shift", "previous", "cold"):
        raise ValueError(f"warm_start: expected 'shift', 'previous' or 'cold', got {warm_start!r}")
    x = as_float_array("x0", x0).ravel()
    if x.shape != (n,):
        raise ValueError(f"x0: expected shape ({n},), got {np.shape(x0)}")
    if plant is None:
        plant = model.plant
        theta = model.unpack(model.W0)["plant"] if plant_params is None else plant_params
    else:
        if not isinstance(plant, Plant):
            raise TypeError(f"plant: expected a dynopt.Plant, got {type(plant).__name__}")
        if plant.lags != 1 or plant.n_state != n or plant.n_control != m:
            raise ValueError(f"plant: expected a lag-1 plant with n={n}, m={m} (the model's), got "
                             f"lags={plant.lags}, n={plant.n_state}, m={plant.n_control}")
        theta = plant.default_params() if plant_params is None else plant_params
    theta = as_float_array("plant_params", theta).ravel()
    if theta.shape != (plant.n_params,):
        raise ValueError(f"plant_params: expected {plant.n_params} values, got {theta.size}")
    if plant.n_exog:
        if plant_X is None:
            raise ValueError(f"plant_X: the simulated plant reads nX={plant.n_exog} inputs; "
                             f"expected (steps, nX), got None")
        PX = as_float_array("plant_X", plant_X)
        if PX.shape != (steps, plant.n_exog):
            raise ValueError(f"plant_X: expected shape ({steps}, {plant.n_exog}), got {PX.shape}")
    lo, hi = _bounds("u_bounds", u_bounds, m)
    xlo, xhi = _bounds("x_bounds", x_bounds, n) if x_bounds is not None else (None, None)
    opts = {"maxiter": 500, "ftol": 1e-12, "gtol": 1e-8}
    opts.update(options or {})
    bounds = None if u_bounds is None else {"policy": (np.tile(lo, N), np.tile(hi, N))}

    xs, us, plans = [x.copy()], [], []
    times, nits, nfevs, costs, oks, msgs = [], [], [], [], [], []
    W = np.clip(model.W0, np.tile(lo, N), np.tile(hi, N))
    for k in range(steps):
        prob = _with_x0(model, x[None, :], None if model_X is None else model_X(k))
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeWarning)
            res = optimize(prob, W, method="L-BFGS-B", bounds=bounds, options=opts, on_interrupt="raise")
        times.append(time.perf_counter() - t0)
        failed = [w for w in caught if issubclass(w.category, RuntimeWarning)]
        oks.append(bool(res.success) and not failed)
        msgs.append(str(res.message))
        nits.append(int(res.nit))
        nfevs.append(int(res.nfev))
        costs.append(float(res.fun))
        U = np.asarray(res.x, dtype=np.float64).reshape(N, m)
        plans.append(U.copy())
        u = U[0].copy()
        us.append(u)
        Xk = None if not plant.n_exog else PX[k][None, :]
        x_next, _ = plant.forward((x[None, :],), u[None, :], Xk, theta)
        x = np.asarray(x_next, dtype=np.float64)[0].copy()
        if not np.all(np.isfinite(x)):
            raise FloatingPointError(f"plant: the state turned non-finite at sample {k + 1} under u = {u}")
        xs.append(x.copy())
        if warm_start == "shift":
            W = np.concatenate([U[1:], U[-1:]]).ravel()
        elif warm_start == "previous":
            W = U.ravel()
        else:
            W = np.clip(model.W0, np.tile(lo, N), np.tile(hi, N))
    X_arr, U_arr = np.array(xs), np.array(us)
    out = MPCResult(
        x=X_arr, u=U_arr, solve_times=np.array(times), iterations=np.array(nits), evaluations=np.array(nfevs),
        predicted_cost=np.array(costs), solver_success=np.array(oks), messages=msgs,
        u_violation=_violation(U_arr, lo, hi),
        x_violation=None if xlo is None else _violation(X_arr, xlo, xhi),
        plans=np.array(plans), success=bool(all(oks)),
    )
    if not out.success:
        bad = [k for k, ok in enumerate(oks) if not ok]
        warnings.warn(f"receding_horizon: {len(bad)} of {steps} solves did not succeed (first at sample {bad[0]}: "
                      f"{msgs[bad[0]]})", RuntimeWarning, stacklevel=2)
    return out
