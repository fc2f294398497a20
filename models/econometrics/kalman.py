r"""Exact Gaussian likelihood of a regression with ARMA(p, q) errors, by the Kalman filter.

State-space form (Harvey), ``r = max(p, q + 1)``::

    y_t - mu - x_t' beta = Z alpha_t,        Z = (1, 0, ..., 0)
    alpha_{t+1} = T alpha_t + R eta_t,       eta_t ~ N(0, sigma2)

``T`` has ``phi`` in its first column and ones on the superdiagonal; ``R = (1, theta_1, ...,
theta_{r-1})``.  Stationary initialisation: ``a_0 = 0``, ``P_0`` solves
``P_0 = T P_0 T' + sigma2 R R'``.

The filter is a dynopt :class:`~dynopt.Plant` whose state is the prediction ``(a_t, vec P_t)``
and whose stage cost is ``-log`` of the innovation density; it is an ordinary
:class:`dynopt.Problem` (public API only) in which one parameter block, the model's natural
parameters, feeds the plant, the stage cost and the terminal cost (``shared=``), and whose
decision holds that block and ``x0`` (the adjoint of ``P_0`` is needed for the stationary
initialisation's own derivative).  With an invertible MA part ``P_t`` converges to its steady state ``sigma2 R R'`` (gain
``T R``); from the first step ``m`` where ``max|P_m - sigma2 R R'| <= STEADY_TOL *
max|sigma2 R R'|`` the filter *is* the ARMA inversion, so the remaining ``N - m``
observations go through :func:`scipy.signal.lfilter` (initial state ``-a_m``) and its
time-reversed adjoint, as a terminal cost.  This is statsmodels' own steady-state switch;
the value differs from filtering to the end by O(N * STEADY_TOL) relative, far below 1e-10.
If ``P_t`` never converges (non-invertible MA) the filter runs over all N steps.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import solve_discrete_lyapunov

from dynopt import BPTT, Plant, Problem, StageCost, TerminalCost

from .filters import allpole, allpole_adjoint, lagged_dots

LOG2PI = np.log(2 * np.pi)
STEADY_TOL = 1e-14


class ARMALayout:
    """Natural parameter vector ``(const?, beta (kx), phi (p), theta (q), sigma2)`` and the
    state-space matrices built from it."""

    def __init__(self, p, q, k_exog, trend):
        self.p, self.q, self.kx, self.trend = p, q, k_exog, trend
        self.kc = 1 if trend == "c" else 0
        self.r = max(p, q + 1)
        self.nz = max(p, q)
        self.n_params = self.kc + k_exog + p + q + 1

    def split(self, theta):
        kc, kx, p, q = self.kc, self.kx, self.p, self.q
        mu = theta[0] if kc else 0.0
        beta = theta[kc:kc + kx]
        phi = theta[kc + kx:kc + kx + p]
        th = theta[kc + kx + p:kc + kx + p + q]
        return mu, beta, phi, th, theta[-1]

    def merge(self, mu_bar, beta_bar, phi_bar, th_bar, s2_bar):
        out = [np.atleast_1d(mu_bar)] if self.kc else []
        return np.concatenate(out + [np.asarray(beta_bar).ravel(), phi_bar, th_bar, [s2_bar]])

    def matrices(self, theta):
        mu, beta, phi, th, s2 = self.split(theta)
        r = self.r
        T = np.eye(r, k=1)
        T[:self.p, 0] = phi
        R = np.zeros(r)
        R[0] = 1.0
        R[1:self.q + 1] = th
        return T, R, s2

    def grads_from_matrices(self, T_bar, R_bar, s2_bar):
        """Parameter adjoint from adjoints of ``T``, ``R``, ``sigma2``."""
        g = np.zeros(self.n_params)
        o = self.kc + self.kx
        g[o:o + self.p] = T_bar[:self.p, 0]
        g[o + self.p:o + self.p + self.q] = R_bar[1:self.q + 1]
        g[-1] = s2_bar
        return g


class _Cached:
    def _mats(self, theta):
        key = theta.tobytes()
        if getattr(self, "_key", None) != key:
            T, R, s2 = self.layout.matrices(theta)
            self._key, self._m = key, (T, R, s2, s2 * (R[:, None] * R[None, :]))
        return self._m


class KalmanStep(_Cached, Plant):
    """One prediction step of the Kalman filter: ``(a_t, P_t), y_t -> (a_{t+1}, P_{t+1})``.

    State ``(r + r*r,)``: ``a`` then ``P`` row-major; exogenous ``X[t] = (y_t, x_t)``;
    parameters the natural ARMA vector.  Batch size 1 (one series).
    """

    lags = 1
    n_control = 0

    def __init__(self, layout: ARMALayout):
        self.layout = layout
        r = layout.r
        self.n_state = r + r * r
        self.n_exog = 1 + layout.kx
        self.param_spec = (("theta", (layout.n_params,)),)

    def forward(self, hist, u, X, theta):
        L = self.layout
        r = L.r
        T, R, s2, RR = self._mats(theta)
        mu, beta, *_ = L.split(theta)
        x = hist[0][0]
        a, P = x[:r], x[r:].reshape(r, r)
        Xt = X[0]
        yt = Xt[0] - mu - Xt[1:] @ beta
        v = yt - a[0]
        F = P[0, 0]
        p0 = P[:, 0]
        g = T @ p0
        TP = T @ P
        a1 = T @ a + g * (v / F)
        P1 = TP @ T.T + RR - (g[:, None] * g[None, :]) / F
        out = np.empty((1, self.n_state))
        out[0, :r] = a1
        out[0, r:] = P1.ravel()
        return out, (a, P, TP, v, F, g, p0, Xt, T, R, s2)

    def vjp(self, ctx, xb):
        a, P, TP, v, F, g, p0, Xt, T, R, s2 = ctx
        L = self.layout
        r = L.r
        a1b = xb[0, :r]
        P1b = xb[0, r:].reshape(r, r)
        Psym = P1b + P1b.T
        s2b = R @ P1b @ R
        Rb = s2 * (Psym @ R)
        gb = -(Psym @ g) / F + a1b * (v / F)
        ga = g @ a1b
        Fb = (g @ P1b @ g) / (F * F) - ga * v / (F * F)
        vb = ga / F
        Tb = (a1b[:, None] * a[None, :]) + (gb[:, None] * p0[None, :]) + P1b @ (T @ P.T) + P1b.T @ TP
        ab = T.T @ a1b
        Pb = T.T @ P1b @ T
        Pb[:, 0] += T.T @ gb
        Pb[0, 0] += Fb
        ab[0] -= vb
        yb = vb
        theta_bar = L.grads_from_matrices(Tb, Rb, s2b)
        if L.kc:
            theta_bar[0] -= yb
        theta_bar[L.kc:L.kc + L.kx] -= yb * Xt[1:]
        out = np.empty((1, self.n_state))
        out[0, :r] = ab
        out[0, r:] = Pb.ravel()
        return (out,), None, theta_bar


class InnovationCost(StageCost):
    """``l_t = (log 2 pi + log F_t + v_t^2 / F_t) / 2``, ``v_t = y_t - mu - x_t' beta - a_t[0]``,
    ``F_t = P_t[0, 0]``: minus the log density of observation t given the past."""

    def __init__(self, layout: ARMALayout):
        self.layout = layout
        self.n_exog = 1 + layout.kx
        self.param_spec = (("theta", (layout.n_params,)),)

    def forward(self, t, x, u, X, p):
        L = self.layout
        mu, beta, *_ = L.split(p)
        Xt = X[0]
        v = Xt[0] - mu - Xt[1:] @ beta - x[0, 0]
        F = x[0, L.r]
        return np.array([0.5 * (LOG2PI + np.log(F) + v * v / F)]), (v, F, Xt, x.shape)

    def vjp(self, ctx, c_bar):
        v, F, Xt, shape = ctx
        L = self.layout
        cb = c_bar[0]
        xb = np.zeros(shape)
        yb = cb * v / F
        xb[0, 0] = -yb
        xb[0, L.r] = cb * 0.5 * (1.0 / F - v * v / (F * F))
        pb = np.zeros(L.n_params)
        if L.kc:
            pb[0] = -yb
        pb[L.kc:L.kc + L.kx] = -yb * Xt[1:]
        return xb, None, pb


class SteadyStateTail(TerminalCost):
    r"""Minus the log-likelihood of observations ``m .. N-1`` once the filter is in steady state:
    ``v = lfilter([1, -phi], [1, theta], y~[m:], zi=-a_m[:nz])``, ``F = sigma2``."""

    def __init__(self, layout: ARMALayout, y_tail, x_tail):
        self.layout, self.y, self.x = layout, y_tail, x_tail
        self.param_spec = (("theta", (layout.n_params,)),)

    def forward(self, x, p):
        L = self.layout
        mu, beta, phi, th, s2 = L.split(p)
        n = len(self.y)
        if n == 0:
            return np.zeros(1), None
        yt = self.y - mu - self.x @ beta
        w = yt.copy()
        for i in range(1, L.p + 1):
            w[i:] -= phi[i - 1] * yt[:n - i]
        nz = min(L.nz, n)
        w[:nz] -= x[0, :nz]
        ma = np.concatenate([[1.0], th])
        v = allpole(ma, w)
        c = 0.5 * (n * (LOG2PI + np.log(s2)) + (v @ v) / s2)
        return np.array([c]), (yt, v, ma, phi, s2, nz, x.shape)

    def vjp(self, ctx, c_bar):
        L = self.layout
        if ctx is None:
            return None, np.zeros(L.n_params)
        yt, v, ma, phi, s2, nz, shape = ctx
        cb = c_bar[0]
        n = len(v)
        lam, th_bar = allpole_adjoint(ma, v, cb * v / s2)
        xb = np.zeros(shape)
        xb[0, :nz] = -lam[:nz]
        phi_bar = -lagged_dots(lam, yt, L.p)
        yb = lam.copy()
        for i in range(1, L.p + 1):
            yb[:n - i] -= phi[i - 1] * lam[i:]
        s2_bar = cb * 0.5 * (n / s2 - (v @ v) / (s2 * s2))
        return xb, L.merge(-yb.sum(), -(self.x.T @ yb), phi_bar, th_bar, s2_bar)


def stationary_covariance(T, R, s2):
    """``P_0`` with ``P_0 = T P_0 T' + s2 R R'``."""
    return solve_discrete_lyapunov(T, s2 * (R[:, None] * R[None, :]))


def steady_step(T, R, s2, n_max):
    """First ``m >= 1`` with ``P_m`` at steady state (or ``n_max``) and ``P_0``."""
    P0 = stationary_covariance(T, R, s2)
    Pss = s2 * (R[:, None] * R[None, :])
    tol = STEADY_TOL * np.abs(Pss).max()
    P = P0
    for m in range(n_max):
        if m >= 1 and np.abs(P - Pss).max() <= tol:
            return m, P0
        g = T @ P[:, 0]
        P = T @ P @ T.T + Pss - (g[:, None] * g[None, :]) / P[0, 0]
    return n_max, P0


def exact_loglike(layout: ARMALayout, y, exog, theta, *, grad=True, steady=True):
    """Exact Gaussian log-likelihood (and its gradient) of the natural parameters ``theta``.

    Returns ``(llf, grad or None, info)``; ``info`` holds the innovations ``v (N,)``, their
    variances ``F (N,)``, the final prediction ``(a_N, P_N)`` and the switch step ``m``.
    """
    theta = np.asarray(theta, dtype=np.float64)
    T, R, s2 = layout.matrices(theta)
    N = len(y)
    if not s2 > 0 or (layout.p and np.max(np.abs(np.linalg.eigvals(T))) >= 1.0):
        # outside the stationary region (reachable only with transformed=False): no stationary
        # initialisation exists, so the likelihood is -inf (the optimiser backtracks)
        return -np.inf, (np.zeros_like(theta) if grad else None), None
    m, P0 = steady_step(T, R, s2, N) if steady else (N, stationary_covariance(T, R, s2))
    r = layout.r
    plant = KalmanStep(layout)
    cost = InnovationCost(layout)
    term = SteadyStateTail(layout, y[m:], exog[m:])
    X = np.concatenate([y[:m, None], exog[:m]], axis=1)[:, None, :]
    x0 = np.concatenate([np.zeros(r), P0.ravel()])[None]
    problem = Problem(plant, None, cost, term, horizon=m, x0=x0, X=X, params={"plant": theta},
                      decision=("plant", "x0"), shared={"cost": "plant", "terminal": "plant"}, gradient=BPTT())
    W = problem.W0
    info = {"m": m}
    g = None
    if not grad:
        return -problem.value(W), None, info
    J, gW = problem.value_and_grad(W)
    npar = layout.n_params
    g = gW[:npar].copy()
    P0b = gW[npar + r:].reshape(r, r)
    if np.any(P0b):
        S = solve_discrete_lyapunov(T.T, P0b)  # adjoint Lyapunov: S = T' S T + P0_bar
        Tb = S @ T @ P0.T + S.T @ T @ P0
        Rb = s2 * (S + S.T) @ R
        g = g + layout.grads_from_matrices(Tb, Rb, R @ S @ R)
    return -J, -g, info


def innovations(layout: ARMALayout, y, exog, theta):
    """Innovations ``v (N,)``, variances ``F (N,)``, final prediction ``a_N (r,)``, ``P_N (r, r)``."""
    theta = np.asarray(theta, dtype=np.float64)
    T, R, s2 = layout.matrices(theta)
    mu, beta, phi, th, _ = layout.split(theta)
    m, _ = steady_step(T, R, s2, len(y))
    r, N = layout.r, len(y)
    # re-run the filter part keeping states to read v_t, F_t (cheap: m steps)
    X = np.concatenate([y[:m, None], exog[:m]], axis=1)
    P0 = stationary_covariance(T, R, s2)
    a, P = np.zeros(r), P0
    v = np.empty(N)
    F = np.empty(N)
    for t in range(m):
        v[t] = X[t, 0] - mu - X[t, 1:] @ beta - a[0]
        F[t] = P[0, 0]
        g = T @ P[:, 0]
        a = T @ a + g * v[t] / F[t]
        P = T @ P @ T.T + s2 * (R[:, None] * R[None, :]) - (g[:, None] * g[None, :]) / F[t]
    if m < N:
        x_m = np.concatenate([a, P.ravel()])[None]
        _, tail = SteadyStateTail(layout, y[m:], exog[m:]).forward(x_m, theta)
        v[m:] = tail[1]
        F[m:] = s2
        yt = y - mu - exog @ beta
        a = steady_state_prediction(phi, th, yt, v, r)
        P = s2 * (R[:, None] * R[None, :])
    return v, F, a, P


def steady_state_prediction(phi, th, yt, v, r):
    """``a_N`` of the steady-state filter: ``a_N[i] = sum_{k > i} phi_k yt_{N+i-k} + theta_k v_{N+i-k}``."""
    N = len(yt)
    a = np.zeros(r)
    for i in range(r):
        for k in range(i + 1, r + 1):
            s = N - 1 - (k - i - 1)
            if s < 0:
                continue
            if k <= len(phi):
                a[i] += phi[k - 1] * yt[s]
            if k <= len(th):
                a[i] += th[k - 1] * v[s]
    return a
