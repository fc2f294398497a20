r"""A nonlinear recurrent econometric model in Werbos's style, fitted by BPTT.

Werbos fitted a recurrent model of the natural gas market by backpropagation through time,
comparing one-step prediction with multi-step simulation.  Here, for a scalar series ``y``
with exogenous inputs ``x`` (nX) and L lags::

    z_t   = (yhat_{t-1}, ..., yhat_{t-L}, x_t)                           (L + nX)
    yhat_t = c + a' z_t + W2 tanh(W1 z_t + b1)                           (H hidden units)

* ``objective="one-step"``: ``yhat_{t-j}`` are the observed ``y_{t-j}``: the one-step
  prediction error, a batch of ``N - L`` one-step problems (the engine's batch axis);
* ``objective="simulation"``: the model runs freely from the first L observations, feeding
  back its own predictions; the multi-step simulation error over the whole sample, a
  recurrence of ``N - L`` steps that dynopt's BPTT differentiates.

Both minimise the mean squared error ``MSE``; ``llf = -n/2 (log(2 pi MSE) + 1)`` (Gaussian,
variance concentrated out), ``n = N - L``.  Parameters (plant block): ``W1 (H, L+nX), b1 (H),
W2 (1, H), a (L+nX), c (1)``; ``H = 0`` is the linear ARX model.  Neural-network weights are
not identified (hidden units can be permuted), so :meth:`fit` reports no standard errors
unless asked (``cov=True``).  Scale ``y`` and ``x`` to O(1) first.
"""

from __future__ import annotations

import numpy as np

from dynopt import Plant, Problem, StageCost, TerminalCost
from dynopt.core.validation import check_flag, check_int, describe
from dynopt.optimize import optimize

from .data import check_exog, check_order, check_series
from .fitargs import check_start_params
from .results import FitResult, hessian_from_gradient


class RecurrentEconometricPlant(Plant):
    """``x[t+1] = c + a' z + W2 tanh(W1 z + b1)``, ``z = (x[t], ..., x[t-L+1], X[t][:nX])``.

    State n = 1 (the predicted series), ``lags = L``; ``X[t]`` has ``nX + 1`` columns, the last
    (the observed series, read by the costs) ignored here.
    """

    n_control = 0

    def __init__(self, lags: int, n_inputs: int, hidden: int):
        self.lags = check_order("lags", lags, 1)
        self.nX = check_order("n_inputs", n_inputs)
        self.H = check_order("hidden", hidden)
        self.n_state = 1
        self.n_exog = self.nX + 1
        d = self.lags + self.nX
        self.d = d
        self.param_spec = (("W1", (self.H, d)), ("b1", (self.H,)), ("W2", (1, self.H)), ("a", (d,)), ("c", (1,)))

    def init_params(self, rng=0, c=0.0):
        """``W1 ~ N(0, 1/d)``, ``W2 ~ N(0, 0.1^2 / H)``, ``b1 = a = 0``, ``c`` given."""
        rng = np.random.default_rng(rng)
        W1 = rng.standard_normal((self.H, self.d)) / np.sqrt(self.d)
        W2 = 0.1 * rng.standard_normal((1, self.H)) / np.sqrt(max(self.H, 1))
        return self.flatten(W1=W1, b1=np.zeros(self.H), W2=W2, a=np.zeros(self.d), c=[c])

    def forward(self, hist, u, X, theta):
        P = self.unflatten(theta)
        z = np.concatenate(list(hist) + [X[:, :self.nX]], axis=1)
        h = np.tanh(z @ P["W1"].T + P["b1"])
        y = P["c"] + z @ P["a"][:, None] + h @ P["W2"].T
        return y, (z, h, P)

    def vjp(self, ctx, yb):
        z, h, P = ctx
        hb = (yb @ P["W2"]) * (1.0 - h * h)
        zb = yb @ P["a"][None, :] + hb @ P["W1"]
        grad = np.concatenate([(hb.T @ z).ravel(), hb.sum(0), (yb.T @ h).ravel(), (yb.T @ z).ravel(), yb.sum(0)])
        hist_bar = tuple(zb[:, j:j + 1] for j in range(self.lags))
        return hist_bar, None, grad

    def __repr__(self):
        return f"RecurrentEconometricPlant(lags={self.lags}, n_inputs={self.nX}, hidden={self.H})"


class SquaredError(StageCost):
    """``l_t = w (x[t] - X[t][-1])^2`` (the observed value is the last exogenous column)."""

    def __init__(self, n_exog: int, weight: float):
        self.n_exog, self.w = n_exog, float(weight)

    def forward(self, t, x, u, X, p):
        r = x[:, 0] - X[:, -1]
        return self.w * r * r, r

    def vjp(self, r, c_bar):
        return (2.0 * self.w * c_bar * r)[:, None], None, np.zeros(0)


class TerminalSquaredError(TerminalCost):
    """``l_T = w (x[T] - target)^2`` with a per-scenario target ``(B,)``."""

    def __init__(self, target, weight: float):
        self.target, self.w = np.asarray(target, dtype=np.float64), float(weight)

    def forward(self, x, p):
        r = x[:, 0] - self.target
        return self.w * r * r, r

    def vjp(self, r, c_bar):
        return (2.0 * self.w * c_bar * r)[:, None], np.zeros(0)


class RecurrentEconometricModel:
    """Werbos-style recurrent model of a scalar series with exogenous inputs.

    Parameters
    ----------
    y : (N,) array
    lags : int
        L >= 1.
    hidden : int
        Hidden tanh units (0: linear ARX).
    exog : (N, nX) array, optional
        Inputs at the predicted time.
    """

    def __init__(self, y, lags: int = 2, hidden: int = 4, *, exog=None):
        L = check_order("lags", lags, 1)
        self.y = check_series(y, min_length=L + 2, what=f"{L} lags")
        self.exog = check_exog(exog, len(self.y))
        self.plant = RecurrentEconometricPlant(L, self.exog.shape[1], check_order("hidden", hidden))
        self.L = L
        self.n = len(self.y) - L
        self.name = f"recurrent model (L={L}, H={hidden}, nX={self.exog.shape[1]})"

    def problem(self, objective: str = "one-step", theta=None) -> Problem:
        """The dynopt :class:`~dynopt.Problem` whose J is the mean squared error; decision: the plant."""
        y, x, L, n = self.y, self.exog, self.L, self.n
        theta = self.plant.init_params(c=float(np.mean(y))) if theta is None else np.asarray(theta, float)
        if objective == "one-step":
            # B = n scenarios, horizon 1: x0 = observed lags, terminal cost = squared error of y_{L+b}
            x0 = np.stack([y[L - 1 - j:L - 1 - j + n] for j in range(L)])[:, :, None]
            X = np.concatenate([x[L:], y[L - 1:L - 1 + n, None]], axis=1)[None]
            cost = SquaredError(self.plant.n_exog, 0.0)
            return Problem(self.plant, cost=cost, terminal_cost=TerminalSquaredError(y[L:], 1.0), horizon=1,
                           x0=x0, X=X, params={"plant": theta}, decision=("plant",))
        if objective == "simulation":
            # B = 1, horizon n: x[t] = yhat_{L-1+t}; stage cost at t compares with y_{L-1+t} (t = 0 is exact)
            x0 = np.stack([y[L - 1 - j:L - j] for j in range(L)])[:, :, None]
            X = np.concatenate([x[L:], y[L - 1:L - 1 + n, None]], axis=1)[:, None, :]
            return Problem(self.plant, cost=SquaredError(self.plant.n_exog, 1.0 / n),
                           terminal_cost=TerminalSquaredError(y[-1:], 1.0 / n), horizon=n, x0=x0, X=X,
                           params={"plant": theta}, decision=("plant",))
        raise ValueError(f"objective: expected 'one-step' or 'simulation', got {objective!r}")

    def fit(self, objective: str = "one-step", *, start_params=None, rng=0, method="BFGS", options=None,
            cov: bool = False) -> FitResult:
        """Minimise the MSE with :func:`dynopt.optimize` (exact BPTT gradients).

        ``start_params``: a parameter vector or a :class:`FitResult` (e.g. fit ``"one-step"``
        first, then refine by ``"simulation"``, as Werbos compared them); default
        :meth:`RecurrentEconometricPlant.init_params` with seed ``rng``.  ``options`` go to SciPy
        (default ``gtol=1e-7``, ``maxiter=1000``); a run that stops at ``maxiter`` warns.
        """
        names = [f"{b}[{i}]" for b, s in self.plant.param_spec for i in range(int(np.prod(s)))]
        cov = check_flag("cov", cov)
        if options is not None and not isinstance(options, dict):
            raise TypeError(f"options: expected a dict of scipy.optimize options (e.g. {{'maxiter': 500}}) or None, "
                            f"got {type(options).__name__} {describe(options)}")
        if isinstance(start_params, FitResult):
            start_params = start_params.values
        if start_params is None:
            if not isinstance(rng, np.random.Generator):
                rng = check_int("rng", rng, minimum=0)
            theta = self.plant.init_params(rng, c=float(np.mean(self.y)))
        else:
            theta = check_start_params(start_params, names)
        prob = self.problem(objective, theta)
        res = optimize(prob, method=method, options={"maxiter": 1000, "gtol": 1e-7, **(options or {})})
        mse = float(res.fun)
        llf = -0.5 * self.n * (np.log(2 * np.pi * mse) + 1.0)
        k = len(res.x)
        C = np.full((k, k), np.nan)
        if cov:  # llf(theta, sigma2) with sigma2 at its optimum: Hessian of -n/2 MSE / sigma2 in theta
            C = np.linalg.inv(-hessian_from_gradient(lambda w: -0.5 * self.n * prob.value_and_grad(w)[1] / mse, res.x))
        pred = self.predict(res.x, objective)
        out = FitResult(self, names, res.x, llf, self.n, C, -0.5 * self.n * res.jac / mse, self.y[self.L:] - pred, res,
                        objective)
        out.extra["mse"] = mse
        out.extra["n_sigma"] = 1
        return out

    def predict(self, theta, objective: str = "one-step"):
        """In-sample predictions of ``y_L .. y_{N-1}``: one-step or free simulation."""
        traj = self.problem(objective, theta).simulate(np.asarray(theta, float))
        return traj.x[1, :, 0] if objective == "one-step" else traj.x[1:, 0, 0]

    def forecast(self, result, steps, *, alpha=0.05, exog=None):
        """Iterated point forecasts (no intervals: the model states no forecast distribution)."""
        steps = check_order("steps", steps, 1)
        fx = check_exog(exog, steps, self.plant.nX, name="exog")
        hist = tuple(np.array([[self.y[-1 - j]]]) for j in range(self.L))
        out = np.empty(steps)
        for h in range(steps):
            X = np.concatenate([fx[h], [0.0]])[None]
            yn, _ = self.plant.forward(hist, None, X, result.values)
            out[h] = yn[0, 0]
            hist = (yn,) + hist[:-1]
        return {"mean": out}

    def simulate(self, theta, nsimulations, *, rng=None, noise=0.0, exog=None):
        """Free run from the last L observations, with optional Gaussian shocks of std ``noise``."""
        n = check_order("nsimulations", nsimulations, 1)
        fx = check_exog(exog, n, self.plant.nX, name="exog")
        rng = np.random.default_rng(rng)
        hist = tuple(np.array([[self.y[-1 - j]]]) for j in range(self.L))
        out = np.empty(n)
        for t in range(n):
            yn, _ = self.plant.forward(hist, None, np.concatenate([fx[t], [0.0]])[None], np.asarray(theta, float))
            yn = yn + noise * rng.standard_normal()
            out[t] = yn[0, 0]
            hist = (yn,) + hist[:-1]
        return out
