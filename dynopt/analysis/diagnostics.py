r"""Gradient-flow diagnostics: where the gradient comes from in time, and whether it vanishes or explodes.

``dynopt.diagnose(problem, W)`` runs one forward sweep (stored) and one backward sweep and
reports

* the adjoint norms ``||lambda[t]||`` (Frobenius over the batch), t = 0..T, where
  ``lambda[t] = dJ/dx[t]`` (ordered derivative, Werbos eq. 16);
* each step's contribution to ``dJ/dW``: the 2-norm over the decision blocks of
  ``(df_t/dW)^T lambda[t+1] + (dpi_t/dW)^T ubar[t] + dl_t/dW`` (they add up to the gradient);
* estimates of ``||Phi(t0, t0+L)||_2`` for growing lags L, where
  ``Phi = J[t0+L-1] ... J[t0]`` is the product of closed-loop step Jacobians
  ``J[t] = d hist[t+1] / d hist[t]`` (policy included; for k lags the companion map on the
  stacked history of k states).  Seeds 001 and 004: this product is what makes gradients
  vanish or explode;
* a plain-words verdict with the effective memory in steps.

Norms of Jacobian products without dense Jacobians
--------------------------------------------------
``||Phi||_2`` is the square root of the top eigenvalue of ``Phi^T Phi``; power iteration on it
needs ``Phi v`` and ``Phi^T w``.  ``Phi^T w`` is exact: the chain of the components' duals
(vjp).  The duals give no forward-mode product, and transposing a black-box linear map
without it would need n calls (a dense Jacobian), so ``Phi v`` is taken as a chain of
*central differences of the step map* along v, ``(f(h + e v) - f(h - e v)) / 2e`` with
``e = eps^(1/3) max(1, ||h||)`` per scenario and unit ``v`` (error O(e^2) relative, ~1e-11;
exact up to rounding for linear maps).  Vectors are renormalised every step and the growth
is accumulated in logarithms, so products of 1e-300 or 1e+300 are handled.  The estimate
reported is the Rayleigh-Ritz value ``sigma_max(Phi Q)`` over a small orthonormal block Q
(block power iteration; a lower bound on the norm that converges to it).  The scenarios of the batch are iterated together (one norm each);
the report gives the geometric mean and the maximum over scenarios and over a few start
times t0.

Verdict
-------
With ``N(L)`` the lag norm (geometric mean) and ``N(T)`` its value over the whole horizon
(extrapolated with the per-step rate ``gamma`` fitted on the two longest lags when
``max_lag < T``): ``"exploding"`` if ``N(T) > explode_tol`` (default 1e3), ``"vanishing"`` if
``N(T) < vanish_tol`` (1e-3), otherwise ``"healthy"``.  The effective memory is the lag at
which ``N(L)`` first falls below ``vanish_tol`` (interpolated log-linearly between the lags
tried), i.e. how many steps back a perturbation of the state still has a thousandth of its
effect; ``inf`` if that does not happen within the horizon.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..core.sweeps import Grads, backward_segment, forward_segment, initial_window, terminal_forward
from ..gradients.base import locate_backward
from ..core.types import Array
from ..core.validation import check_int

FD_SCALE = np.finfo(float).eps ** (1 / 3)


@dataclass
class DiagnosticReport:
    """What :func:`diagnose` found.  ``summary()`` prints it, ``plot()`` draws it.

    Attributes
    ----------
    horizon, batch, lags_of_plant : int
        T, B and the plant's k.
    objective : float
        J at W.
    gradient : (n_decision,) array
        dJ/dW (equal to full-storage BPTT's).
    adjoint_norms : (T + 1,) array
        ``||lambda[t]||_F`` over the batch, t = 0..T.
    step_contributions : (T,) array
        Norm of step t's contribution to dJ/dW (decision blocks only; x0 excluded).
    lags : (nL,) int array
        The lags L tried (1, 2, 4, ..., max_lag).
    lag_norms, lag_norms_max : (nL,) arrays
        Geometric mean and maximum over scenarios and start times of ``||Phi(t0, t0+L)||_2``.
    rate : float
        Per-step growth factor gamma of the Jacobian products (from the two longest lags).
    horizon_norm : float
        ``N(T)``, the product norm over the whole horizon (extrapolated if needed).
    verdict : str
        ``"vanishing"``, ``"exploding"`` or ``"healthy"``.
    memory : float
        Effective memory in steps (see the module docstring); ``inf`` if longer than T.
    """

    horizon: int
    batch: int
    lags_of_plant: int
    objective: float
    gradient: Array
    adjoint_norms: Array
    step_contributions: Array
    lags: np.ndarray
    lag_norms: Array
    lag_norms_max: Array
    rate: float
    horizon_norm: float
    verdict: str
    memory: float
    vanish_tol: float
    explode_tol: float
    notes: list = field(default_factory=list)

    def explanation(self) -> str:
        """The verdict in plain words."""
        T, g = self.horizon, self.rate
        if self.verdict == "vanishing":
            return (f"vanishing: a perturbation of the state shrinks about {g:.3g}x per step; after "
                    f"~{self.memory:.0f} steps its effect is below {self.vanish_tol:g} of its size, so "
                    f"costs more than ~{self.memory:.0f} steps ahead barely shape the gradient at a given "
                    f"step (horizon T = {T}); truncating BPTT at a few times that depth loses little, and "
                    f"long-range effects are out of the gradient's reach")
        if self.verdict == "exploding":
            grow = f"grows about {g:.3g}x per step" if g > 1 else "grows"
            dbl = f" (doubling every ~{np.log(2) / np.log(g):.1f} steps)" if g > 1 else ""
            return (f"exploding: a perturbation of the state {grow}{dbl}; across the horizon "
                    f"T = {T} the Jacobian product reaches ~{self.horizon_norm:.3g}, so adjoints grow "
                    f"backwards in time, early steps' sensitivities dominate the gradient and the objective is ill-conditioned: shorten the "
                    f"horizon, stabilise the loop (policy) first, clip the gradient, or truncate")
        return (f"healthy: over the whole horizon T = {T} the Jacobian product stays between "
                f"{self.vanish_tol:g} and {self.explode_tol:g} (N(T) ~ {self.horizon_norm:.3g}, "
                f"{g:.4g}x per step), so every step's cost reaches the parameters used before it")

    def summary(self) -> str:
        """A printable text report."""
        lam = self.adjoint_norms
        c = self.step_contributions
        lines = [f"gradient-flow diagnostics: T = {self.horizon}, B = {self.batch}, k = {self.lags_of_plant}, "
                 f"J = {self.objective:.6g}, ||dJ/dW|| = {np.linalg.norm(self.gradient):.4g}",
                 "",
                 "norm of products of step Jacobians ||J[t0+L-1] ... J[t0]||_2 (geometric mean, max):"]
        for L, a, b in zip(self.lags, self.lag_norms, self.lag_norms_max):
            lines.append(f"  L = {int(L):>7d}   {a:11.4e}   {b:11.4e}")
        lines.append(f"per-step rate gamma = {self.rate:.6g}, over the horizon N(T) ~ {self.horizon_norm:.4g}")
        lines.append("")
        idx = np.unique(np.linspace(0, self.horizon, min(self.horizon + 1, 6)).round().astype(int))
        lines.append("adjoint norms ||lambda[t]||: " + ", ".join(f"t={i}: {lam[i]:.3e}" for i in idx))
        if c.size and c.sum() > 0:
            share = np.cumsum(c) / c.sum()
            t90 = int(np.argmax(share >= 0.9))
            peak = int(np.argmax(c))
            lines.append(f"step contributions to dJ/dW: largest at t = {peak} ({c[peak]:.3e}), last step "
                         f"{c[-1]:.3e}; 90% of their summed norms come from steps t <= {t90}")
        lines.append("")
        lines.append(f"verdict: {self.explanation()}")
        mem = "longer than the horizon" if not np.isfinite(self.memory) else f"{self.memory:.1f} steps"
        lines.append(f"effective memory (product norm falls below {self.vanish_tol:g}): {mem}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def plot(self, path=None):
        """Draw adjoint norms, step contributions and lag norms; save to ``path`` if given.

        Needs matplotlib (``pip install 'dynopt[plot]'``); returns the figure.
        """
        try:
            import matplotlib.pyplot as plt
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("plot: matplotlib is needed (pip install 'dynopt[plot]')") from exc
        fig, ax = plt.subplots(1, 3, figsize=(13, 3.6))
        t = np.arange(self.horizon + 1)
        lam = np.where(self.adjoint_norms > 0, self.adjoint_norms, np.nan)  # exact zeros are not drawn
        con = np.where(self.step_contributions > 0, self.step_contributions, np.nan)
        ax[0].semilogy(t, lam)
        ax[0].set(xlabel="step t", ylabel="||lambda[t]||", title="adjoint norms")
        ax[1].semilogy(t[:-1], con)
        ax[1].set(xlabel="step t", ylabel="norm", title="step contributions to dJ/dW")
        ax[2].loglog(self.lags, self.lag_norms, "o-", label="geometric mean")
        ax[2].loglog(self.lags, self.lag_norms_max, "x--", label="max")
        ax[2].axhline(self.vanish_tol, color="grey", lw=0.5)
        ax[2].axhline(self.explode_tol, color="grey", lw=0.5)
        ax[2].set(xlabel="lag L [steps]", ylabel="||J ... J||_2", title=f"Jacobian products: {self.verdict}")
        ax[2].legend()
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=90)
        return fig


class _Recorder:
    """A hook on :func:`dynopt.core.sweeps.backward_segment` that records ``||lambda[t]||`` and each
    step's contribution to the decision blocks' parameter adjoints (difference of the
    accumulators before and after the step)."""

    def __init__(self, setup, decision, grads, lam_T):
        self.T = setup.T
        self.lam = np.zeros(self.T + 1)
        self.contrib = np.zeros(self.T)
        self.lam[self.T] = 0.0 if lam_T is None else np.linalg.norm(lam_T)
        self.names = [a for a, blk in (("theta", "plant"), ("phi", "policy"), ("p_cost", "cost"))
                      if blk in decision]
        self.prev = {a: getattr(grads, a).copy() for a in self.names}

    def __call__(self, t, window, grads):
        self.lam[t] = 0.0 if window[0] is None else np.linalg.norm(window[0])
        sq = 0.0
        for a in self.names:
            cur = getattr(grads, a)
            d = cur - self.prev[a]
            sq += float(np.vdot(d, d))
            self.prev[a] = cur.copy()
        self.contrib[t] = np.sqrt(sq)


class _StepMaps:
    """Closed-loop step Jacobians of a stored trajectory: exact transposed products (duals) and
    central-difference products (see the module docstring)."""

    def __init__(self, setup, seg):
        self.setup, self.seg = setup, seg
        k = setup.plant.lags
        self.k = k
        # states[t + k - 1] = x[t] for t = -k+1 .. T
        self.states = [setup.hist0[j] for j in range(k - 1, -1, -1)] + list(seg.xs)

    def hist(self, t):
        k = self.k
        return tuple(self.states[t + k - 1 - j] for j in range(k))

    def _step(self, t, hist):
        s = self.setup
        u, _ = s.policy.forward(t, hist[0], None if s.X_policy is None else s.X_policy[t], s.phi)
        x, _ = s.plant.forward(hist, u, None if s.X_plant is None else s.X_plant[t], s.theta)
        return x

    def jvp(self, t, V):
        hist = self.hist(t)
        size = np.sqrt(sum((h * h).sum(axis=1) for h in hist))
        e = (FD_SCALE * np.maximum(1.0, size))[:, None]
        with np.errstate(all="ignore"):
            xp = self._step(t, tuple(h + e * v for h, v in zip(hist, V)))
            xm = self._step(t, tuple(h - e * v for h, v in zip(hist, V)))
        return [(xp - xm) / (2 * e)] + list(V[:-1])

    def vjp(self, t, Wb):
        s = self.setup
        pc, _, fc = self.seg.tape[t]
        hist_bar, u_bar, _ = s.plant.vjp(fc, Wb[0])
        out = []
        for j in range(self.k):
            v = hist_bar[j] if hist_bar[j] is not None else np.zeros_like(Wb[0])
            out.append(v + Wb[j + 1] if j + 1 < self.k else v)
        if u_bar is not None and u_bar.size:
            xp, _ = s.policy.vjp(pc, u_bar)
            if xp is not None:
                out[0] = out[0] + xp
        return out


def _to_list(Z, k, n):
    """(B, kn) -> list of k (B, n) arrays (newest first)."""
    return [Z[:, j * n:(j + 1) * n] for j in range(k)]


def _chain(maps, Q, ts, apply):
    """Apply the step maps ``apply(t, V)`` for t in ``ts`` to the p columns of ``Q`` (B, kn, p),
    rescaling each scenario by one common factor per step; returns (result, log of the scale)."""
    B, kn, p = Q.shape
    k = maps.k
    n = kn // k
    logs = np.zeros(B)
    Z = Q.copy()
    for t in ts:
        cols = [np.concatenate(apply(t, _to_list(Z[:, :, j], k, n)), axis=1) for j in range(p)]
        Z = np.stack(cols, axis=2)
        s = np.sqrt((Z * Z).sum(axis=1)).max(axis=1)
        safe = np.where(s > 0, s, 1.0)
        with np.errstate(divide="ignore"):
            logs += np.log(s)
        Z /= safe[:, None, None]
    return Z, logs


def product_norm(maps: _StepMaps, t0: int, L: int, rng, *, block: int = 3, maxiter: int = 40,
                 tol: float = 1e-10) -> Array:
    """Per-scenario ``log ||J[t0+L-1] ... J[t0]||_2``, ``(B,)``.

    Block power (subspace) iteration on ``Phi^T Phi`` with ``p = min(block, k n)`` orthonormal
    vectors per scenario and Rayleigh-Ritz: the estimate is the top singular value of
    ``Phi Q``, which converges like ``(sigma_{p+1} / sigma_1)^(2i)`` (exact after one
    iteration when ``p = k n``).  Stops when the log estimate changes by less than ``tol``.
    """
    B, n, k = maps.setup.B, maps.setup.plant.n_state, maps.k
    p = min(block, k * n)
    Q, _ = np.linalg.qr(rng.standard_normal((B, k * n, p)))
    prev = None
    fwd, bwd = range(t0, t0 + L), range(t0 + L - 1, t0 - 1, -1)
    for _ in range(maxiter):
        Z, logf = _chain(maps, Q, fwd, maps.jvp)
        with np.errstate(divide="ignore"):
            est = logf + np.log(np.linalg.svd(Z, compute_uv=False)[:, 0])
        Y, _ = _chain(maps, Z, bwd, maps.vjp)
        Q, _ = np.linalg.qr(Y)
        if prev is not None and np.all((np.abs(est - prev) <= tol) | ~np.isfinite(est)):
            break
        prev = est
    return est


def _lag_grid(max_lag: int):
    lags, L = [], 1
    while L < max_lag:
        lags.append(L)
        L *= 2
    lags.append(max_lag)
    return np.array(lags)


def diagnose(problem, W=None, *, max_lag: Optional[int] = None, starts: int = 3, vanish_tol: float = 1e-3,
             explode_tol: float = 1e3, seed: int = 0) -> DiagnosticReport:
    """Gradient-flow diagnostics of a problem at W (see the module docstring).

    Parameters
    ----------
    problem : dynopt.Problem
    W : (n_decision,) array, optional
        Default ``problem.W0``.
    max_lag : int, optional
        Longest lag L tried; default ``min(T, 1024)``.  Lags are 1, 2, 4, ..., max_lag.
    starts : int
        Number of start times t0 per lag, spread over ``[0, T - L]`` (>= 1).
    vanish_tol, explode_tol : float
        Thresholds of the verdict on the horizon product norm, ``0 < vanish_tol < 1 < explode_tol``.
    seed : int
        Seed of the power iterations' start vectors.

    Returns
    -------
    DiagnosticReport
        Memory: the whole trajectory is stored (as by :class:`~dynopt.BPTT`).
    """
    W = problem.check_W(problem.W0 if W is None else W)
    T = problem.horizon
    max_lag = min(T, 1024) if max_lag is None else min(check_int("max_lag", max_lag, minimum=1), T)
    starts = check_int("starts", starts, minimum=1)
    if not 0 < vanish_tol < 1 < explode_tol:
        raise ValueError(f"vanish_tol, explode_tol: expected 0 < vanish_tol < 1 < explode_tol, got {vanish_tol}, {explode_tol}")
    setup = problem.setup(W, per_step=True)
    seg = forward_segment(setup, setup.hist0, 0, T, keep=True)
    term, tctx = terminal_forward(setup, seg.hist[0])
    traj = problem.trajectory(setup, seg, term)
    grads = Grads(setup)
    window = initial_window(setup, tctx, grads)
    rec = _Recorder(setup, problem.decision, grads, window[0])
    with np.errstate(all="ignore"):
        window = backward_segment(setup, seg, window, grads, hook=rec)
        grads.finish(setup)
    g = problem.gradient_from(grads, window)
    if not np.isfinite(g).all():
        raise locate_backward(problem, W, g)
    lam, contrib = rec.lam, rec.contrib

    maps = _StepMaps(setup, seg)
    rng = np.random.default_rng(seed)
    lags = _lag_grid(max_lag)
    mean_log, max_log = [], []
    for L in lags:
        t0s = np.unique(np.linspace(0, T - L, starts).round().astype(int))
        logs = np.concatenate([product_norm(maps, int(t0), int(L), rng) for t0 in t0s])
        mean_log.append(np.mean(logs))
        max_log.append(np.max(logs))
    mean_log, max_log = np.array(mean_log), np.array(max_log)
    if len(lags) >= 2 and np.all(np.isfinite(mean_log[-2:])):
        log_rate = (mean_log[-1] - mean_log[-2]) / (lags[-1] - lags[-2])
    else:
        log_rate = mean_log[-1] / lags[-1]
    log_NT = mean_log[-1] + (T - lags[-1]) * log_rate
    if log_NT > np.log(explode_tol):
        verdict = "exploding"
    elif log_NT < np.log(vanish_tol):
        verdict = "vanishing"
    else:
        verdict = "healthy"
    memory = _memory(lags, mean_log, log_rate, np.log(vanish_tol), T)
    notes = []
    if max_lag < T:
        notes.append(f"lags beyond {max_lag} extrapolated with the per-step rate")
    with np.errstate(over="ignore"):
        return DiagnosticReport(
            horizon=T, batch=setup.B, lags_of_plant=problem.plant.lags, objective=traj.objective, gradient=g,
            adjoint_norms=lam, step_contributions=contrib, lags=lags, lag_norms=np.exp(mean_log),
            lag_norms_max=np.exp(max_log), rate=float(np.exp(log_rate)), horizon_norm=float(np.exp(log_NT)),
            verdict=verdict, memory=memory, vanish_tol=vanish_tol, explode_tol=explode_tol, notes=notes)


def _memory(lags, logs, log_rate, log_tol, T) -> float:
    below = np.nonzero(logs < log_tol)[0]
    if below.size:
        i = below[0]
        if i == 0:
            return float(lags[0] * log_tol / logs[0]) if logs[0] < 0 and np.isfinite(logs[0]) else float(lags[0])
        L0, L1, a, b = lags[i - 1], lags[i], logs[i - 1], logs[i]
        if not np.isfinite(b):
            return float(L1)
        return float(L0 + (log_tol - a) * (L1 - L0) / (b - a))
    if log_rate < 0:
        L = lags[-1] + (log_tol - logs[-1]) / log_rate
        return float(L) if L <= T else float("inf")
    return float("inf")
