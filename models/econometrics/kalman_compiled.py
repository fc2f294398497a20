r"""The exact ARMA likelihood of :mod:`.kalman` with its time-varying part in one compiled loop.

The first ``M`` Kalman steps (the part of the filter before its covariance reaches the steady
state) run as a CasADi ``mapaccum`` of the SX Kalman step (one C loop in CasADi's virtual machine)
whose reverse mode gives the adjoint of the same steps; the steady-state tail is the
:class:`.kalman.SteadyStateTail` ``lfilter`` pair and the stationary initialisation the adjoint
Lyapunov equation, exactly as :func:`.kalman.exact_loglike`.  Same value and gradient to
rounding (tested), without a Python step per observation: the fix for short series, where the
per-step Python Kalman filter dominated.

Missing observations (NaN in ``y``) skip the update and add no likelihood term; the head is
lengthened to cover the last of them.  ``M = min(N, head)``; when ``P_M`` has not reached the
steady state (a nearly non-invertible MA part) the function returns None and the caller doubles
``head`` (``M = N`` always succeeds).
Compiled functions are cached per ``(r, k_exog, M)`` for the process; heads of up to
``EXPAND_MAX / (r + r^2)`` steps are expanded to SX (fastest per call), longer ones stay MX.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import solve_discrete_lyapunov

from .kalman import STEADY_TOL, SteadyStateTail

HEAD = 32
EXPAND_MAX = 1024
_CACHE = {}


def _head_function(r, kx, M):
    key = (r, kx, M)
    if key in _CACHE:
        return _CACHE[key]
    import casadi as ca
    ns = r + r * r
    x = ca.SX.sym("x", ns)           # (a, vec P) row-major
    obs = ca.SX.sym("obs", 2 + kx)   # y_t (0 where missing), x_t, observed flag
    seen = obs[1 + kx]
    par = ca.SX.sym("par", 1 + kx + r * r + r + 1)  # mu, beta, T (row-major), R, s2
    mu, beta = par[0], par[1:1 + kx]
    T = ca.reshape(par[1 + kx:1 + kx + r * r], r, r).T
    R = par[1 + kx + r * r:1 + kx + r * r + r]
    s2 = par[-1]
    a = x[:r]
    P = ca.reshape(x[r:], r, r).T
    yt = obs[0] - mu - (ca.dot(obs[1:1 + kx], beta) if kx else 0)
    v = seen * (yt - a[0])  # a missing observation: no update, no likelihood term
    F = P[0, 0]
    g = T @ P[:, 0]
    a1 = T @ a + g * (v / F)
    P1 = T @ P @ T.T + s2 * (R @ R.T) - seen * (g @ g.T) / F
    cost = seen * 0.5 * (np.log(2 * np.pi) + ca.log(F) + v * v / F)
    step = ca.Function("kstep", [x, obs, par], [ca.vertcat(a1, ca.reshape(P1.T, r * r, 1)), cost])
    acc = step.mapaccum("khead", M, [0], [0])
    x0 = ca.MX.sym("x0", ns)
    Y = ca.MX.sym("Y", 2 + kx, M)
    pm = ca.MX.sym("p", par.shape[0])
    xb = ca.MX.sym("xb", ns)
    Xs, C = acc(x0, Y, pm)
    xM = Xs[:, -1]
    J = ca.sum2(C)
    L = J + ca.dot(xM, xb)
    fval = ca.Function("kval", [x0, Y, pm], [J, xM])
    fgrad = ca.Function("kgrad", [x0, Y, pm, xb], [ca.gradient(L, pm), ca.gradient(L, x0)])
    if M * ns <= EXPAND_MAX:  # SX virtual machine: no MX call overhead, worth it for short heads
        fval, fgrad = fval.expand(), fgrad.expand()
    _CACHE[key] = (fval, fgrad)
    return fval, fgrad


def _lyapunov(A, Q):
    """``X`` with ``X = A X A' + Q`` (``scipy.linalg.solve_discrete_lyapunov``'s direct method,
    ``(I - A kron A) vec X = vec Q``, without its per-call overhead; SciPy itself above 10 x 10)."""
    r = A.shape[0]
    if r > 10:
        return solve_discrete_lyapunov(A, Q)
    K = (A[:, None, :, None] * A[None, :, None, :]).reshape(r * r, r * r)
    return np.linalg.solve(np.eye(r * r) - K, Q.reshape(r * r)).reshape(r, r)


def _dense(v):
    return np.asarray(v, dtype=np.float64).ravel()


def exact_loglike_compiled(layout, y, exog, theta, *, grad=True, head=HEAD):
    """``(llf, grad or None)`` as :func:`.kalman.exact_loglike`, or ``None`` when the head of
    ``M = min(N, head)`` steps does not reach the steady state (try a longer head)."""
    theta = np.asarray(theta, dtype=np.float64)
    T, R, s2 = layout.matrices(theta)
    mu, beta, phi, th, _ = layout.split(theta)
    N, r, kx = len(y), layout.r, layout.kx
    if not s2 > 0 or (layout.p and np.max(np.abs(np.linalg.eigvals(T))) >= 1.0):
        return -np.inf, (np.zeros_like(theta) if grad else None)
    M = min(N, head)
    missing = np.isnan(y)
    if missing.any():  # the head covers every missing observation
        last = int(np.nonzero(missing)[0][-1]) + 1
        while M < min(N, last + 1):
            M *= 2
        M = min(N, M)
    fval, fgrad = _head_function(r, kx, M)
    P0 = _lyapunov(T, s2 * (R[:, None] * R[None, :]))  # kalman.stationary_covariance
    x0 = np.concatenate([np.zeros(r), P0.ravel()])
    Y = np.concatenate([np.where(missing[:M], 0.0, y[:M])[:, None], exog[:M], (~missing[:M])[:, None]], axis=1).T
    par = np.concatenate([[mu], beta, T.ravel(), R, [s2]])
    J, xM = fval(x0, Y, par)
    J, xM = float(J), _dense(xM)
    Pss = s2 * np.outer(R, R)
    if M < N and np.abs(xM[r:].reshape(r, r) - Pss).max() > STEADY_TOL * np.abs(Pss).max() * 10:
        return None
    tail = SteadyStateTail(layout, y[M:], exog[M:])
    tc, tctx = tail.forward(xM[None, :], theta)
    J += float(tc[0])
    if not grad:
        return -J, None
    xb_tail, th_tail = tail.vjp(tctx, np.ones(1))
    xb = np.zeros(r + r * r) if xb_tail is None else np.asarray(xb_tail, dtype=np.float64).ravel()
    gp, gx0 = fgrad(x0, Y, par, xb)
    gp, gx0 = _dense(gp), _dense(gx0)
    # chain (mu, beta, T, R, s2) -> natural parameters, plus the stationary P0 (adjoint Lyapunov)
    Tb = gp[1 + kx:1 + kx + r * r].reshape(r, r)
    Rb = gp[1 + kx + r * r:1 + kx + r * r + r].copy()
    s2b = gp[-1]
    P0b = gx0[r:].reshape(r, r)
    if np.any(P0b):
        S = _lyapunov(T.T, P0b)
        Tb = Tb + S @ T @ P0.T + S.T @ T @ P0
        Rb = Rb + s2 * (S + S.T) @ R
        s2b = s2b + R @ S @ R
    g = layout.grads_from_matrices(Tb, Rb, s2b)
    if layout.kc:
        g[0] += gp[0]
    g[layout.kc:layout.kc + kx] += gp[1:1 + kx]
    g = g + np.asarray(th_tail, dtype=np.float64)
    return -J, -g
