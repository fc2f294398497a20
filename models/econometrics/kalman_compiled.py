r"""The exact ARMA likelihood of :mod:`.kalman` with its time-varying part in one compiled loop.

Two compiled forms of the same Kalman steps; both give the value and gradient of
:func:`.kalman.exact_loglike` to rounding (tested):

* the **scan** (default when it is built): the Kalman step and its forward sensitivities with
  respect to the natural parameters, ``D_t = d (a_t, P_t) / d theta``, as one
  :class:`dynopt.casadi.scan.CompiledScan` (a C loop over the NumPy buffers, ~20-40 ns per step for
  ARMA(1, 1)-(2, 1), no argument conversion).  The loop also sums the terms and their gradients and
  can write the innovations, their variances and the per-observation scores (the OPG
  covariance's input).  Series of up to :data:`FULL_MAX` observations run to the end in it; longer
  ones run the head of ``M`` steps in it and the steady-state tail as below, the tail's adjoint of
  ``a_M`` chained through ``D_M``.  The stationary ``P_0`` and its derivative come from the
  Lyapunov equation and its derivative (one inverse of ``I - T kron T`` for all parameters).  The step is
  compiled in the background the first time a model shape ``(p, q, k_exog, trend)`` asks for it
  (cached on disk, later processes load it in milliseconds); until then, for ``r > SCAN_R_MAX``,
  or with compiled code switched off (``DYNOPT_COMPILE=0``), the CasADi form answers.
* the **CasADi form**: the first ``M`` Kalman steps (the part of the filter before its covariance
  reaches the steady state) as a CasADi ``mapaccum`` of the SX Kalman step (one C loop in
  CasADi's virtual machine) whose reverse mode gives the adjoint of the same steps; the
  steady-state tail is the :class:`.kalman.SteadyStateTail` ``lfilter`` pair and the stationary
  initialisation the adjoint Lyapunov equation, exactly as :func:`.kalman.exact_loglike`.

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
FULL_MAX = 4096
"""Series up to this length run to the end in the compiled scan (no steady-state tail): measured for
ARMA(2, 1), one value and gradient costs 160 vs 190 us at N = 2000 and 230 vs 220 us at N = 4000
(full scan vs head and ``lfilter`` tail), 380 vs 290 us at N = 8000."""
SCAN_R_MAX = 6
"""Largest state dimension ``r = max(p, q + 1)`` given to the compiled scan (its step grows as
``r^2 k``; larger models, e.g. seasonal ones, keep the CasADi form)."""
_CACHE = {}


def _kalman_update(a, P, T, R, s2, yt, seen):
    """One Kalman step in CasADi symbols: ``(a_next, P_next, cost, v, F)`` from the state mean ``a``
    (r,) and covariance ``P`` (r, r), transition ``T``, noise loading ``R`` and variance ``s2``, the
    demeaned observation ``yt`` and ``seen`` (0 for a missing observation: no update, no likelihood
    term); ``cost`` is the term's negative log-likelihood, ``v`` the innovation, ``F`` its variance."""
    import casadi as ca
    v = seen * (yt - a[0])
    F = P[0, 0]
    g = T @ P[:, 0]
    a1 = T @ a + g * (v / F)
    P1 = T @ P @ T.T + s2 * (R @ R.T) - seen * (g @ g.T) / F
    cost = seen * 0.5 * (np.log(2 * np.pi) + ca.log(F) + v * v / F)
    return a1, P1, cost, v, F


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
    a1, P1, cost, _, _ = _kalman_update(a, P, T, R, s2, yt, seen)
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


def _triu(r):
    return [(i, j) for i in range(r) for j in range(i, r)]


def _scan_step(p, q, kx, kc):
    """The Kalman step with forward sensitivities, ``(X, z, theta) -> (X_next, y)`` for
    :class:`dynopt.casadi.scan.CompiledScan`.

    ``X = (a (r), triu P (r (r + 1) / 2, row-major), vec D (nx k, column-major), L, g (k))`` with
    ``nx = r + r (r + 1) / 2``, ``D = d (a, triu P) / d theta``, ``L`` the running sum of
    ``l_t = -log N(v_t; 0, F_t)`` and ``g`` of its gradient; ``z = (y_t (0 where missing), x_t (kx),
    observed flag)``; ``theta`` the natural parameters ``(const?, beta, phi, theta, sigma2)``;
    per-step output ``y = (v_t, F_t, d log N / d theta (k))``.
    """
    import casadi as ca
    r = max(p, q + 1)
    tri = _triu(r)
    nx, k = r + len(tri), kc + kx + p + q + 1
    x, z, th = ca.SX.sym("x", nx), ca.SX.sym("z", 2 + kx), ca.SX.sym("theta", k)
    mu = th[0] if kc else 0.0
    beta, phi, ma, s2 = th[kc:kc + kx], th[kc + kx:kc + kx + p], th[kc + kx + p:kc + kx + p + q], th[k - 1]
    T = ca.SX.zeros(r, r)
    for i in range(p):
        T[i, 0] = phi[i]
    for i in range(r - 1):
        T[i, i + 1] = 1.0
    R = ca.SX.zeros(r, 1)
    R[0] = 1.0
    for j in range(q):
        R[j + 1] = ma[j]
    a = x[:r]
    P = ca.SX.zeros(r, r)
    for n, (i, j) in enumerate(tri):
        P[i, j] = P[j, i] = x[r + n]
    seen = z[1 + kx]
    yt = z[0] - mu - (ca.dot(z[1:1 + kx], beta) if kx else 0.0)
    a1, P1, lt, v, F = _kalman_update(a, P, T, R, s2, yt, seen)
    fx = ca.vertcat(a1, *[P1[i, j] for i, j in tri])
    D = ca.reshape(ca.SX.sym("D", nx * k), nx, k)
    D1 = ca.jacobian(fx, x) @ D + ca.jacobian(fx, th)
    dl = (ca.jacobian(lt, x) @ D + ca.jacobian(lt, th)).T
    Ls, gs = ca.SX.sym("L"), ca.SX.sym("g", k)
    X = ca.vertcat(x, ca.vec(D), Ls, gs)
    Xn = ca.vertcat(fx, ca.vec(D1), Ls + lt, gs + dl)
    return ca.Function("kalman_scan", [X, z, th], [Xn, ca.vertcat(v, F, -dl)])


def kalman_scan(layout, *, block=False):
    """The process-wide compiled scan of :func:`_scan_step` for ``layout``'s shape, or None (not built
    yet, being built in the background, ``r > SCAN_R_MAX``, or compiled code unavailable).
    ``block``: build (or load) it now."""
    if layout.r > SCAN_R_MAX:
        return None
    from dynopt.casadi import scan as _scan
    p, q, kx, kc = layout.p, layout.q, layout.kx, layout.kc
    key = ("arma_kalman_scan", p, q, kx, kc)
    get = _scan.cached_scan if block else _scan.scan_when_ready
    return get(key, lambda: _scan_step(p, q, kx, kc), prefix=f"dynopt_kalman_p{p}_q{q}_x{kx}_c{kc}")


_LAYOUTS = {}


def _scan_layout(layout):
    key = (layout.p, layout.q, layout.kx, layout.kc)
    sl = _LAYOUTS.get(key)
    if sl is None:
        sl = _LAYOUTS[key] = _ScanLayout(layout)
    return sl


class _ScanLayout:
    """Offsets into the scan's augmented state (see :func:`_scan_step`)."""

    def __init__(self, layout):
        r = layout.r
        self.r, self.k = r, layout.n_params
        self.iu = np.triu_indices(r)
        self.nt = len(self.iu[0])
        self.nx = r + self.nt
        self.d_at = self.nx
        self.l_at = self.nx * (1 + self.k)
        self.n = self.l_at + 1 + self.k


def _initial_state(layout, sl, T, R, s2, grad):
    """``X_0``: ``a_0 = 0``, the stationary ``P_0`` (``P0 = T P0 T' + s2 R R'``) and, with ``grad``,
    its derivative in the natural parameters (``dP0 = T dP0 T' + dT P0 T' + T P0 dT' + d(s2 R R')``),
    all from one inverse of ``I - T kron T`` (``r <= SCAN_R_MAX``)."""
    r, k = sl.r, sl.k
    Ainv = np.linalg.inv(np.eye(r * r) - (T[:, None, :, None] * T[None, :, None, :]).reshape(r * r, r * r))
    RR = R[:, None] * R[None, :]
    P0 = (Ainv @ (s2 * RR).reshape(r * r)).reshape(r, r)
    X0 = np.zeros(sl.n)
    X0[r:sl.nx] = P0[sl.iu]
    if not grad:
        return X0
    p, q = layout.p, layout.q
    # right-hand sides for (phi_1..p, theta_1..q, sigma2): dT = e_i e_0' gives e_i c' + c e_i' with
    # c = T P0 e_0; dR = e_{j+1} gives s2 (e_{j+1} R' + R e_{j+1}'); d sigma2 gives R R'
    E = np.eye(r)
    c = T @ P0[:, 0]
    Ep, Eq = E[:p], E[1:q + 1]
    Q = np.concatenate([Ep[:, :, None] * c[None, None, :] + c[None, :, None] * Ep[:, None, :],
                        s2 * (Eq[:, :, None] * R[None, None, :] + R[None, :, None] * Eq[:, None, :]),
                        RR[None]])
    dP = (Ainv @ Q.reshape(p + q + 1, r * r).T).T.reshape(p + q + 1, r, r)
    D0 = np.zeros((sl.nx, k))
    D0[r:, k - p - q - 1:] = dP[:, sl.iu[0], sl.iu[1]].T
    X0[sl.d_at:sl.l_at] = D0.ravel(order="F")
    return X0


def _stationary(layout, T):
    """Whether the AR part is stationary (all eigenvalues of ``T`` inside the unit circle)."""
    if layout.p == 0:
        return True
    if layout.p == 1:
        return abs(T[0, 0]) < 1.0
    return np.max(np.abs(np.linalg.eigvals(T))) < 1.0


def _scan_inputs(y, exog, M):
    missing = np.isnan(y[:M])
    Z = np.empty((M, 2 + exog.shape[1]))
    Z[:, 0] = np.where(missing, 0.0, y[:M])
    Z[:, 1:-1] = exog[:M]
    Z[:, -1] = ~missing
    return Z


def _covering_head(y, head):
    """``min(N, head)``, doubled until the head covers every missing observation."""
    N = len(y)
    M = min(N, head)
    missing = np.isnan(y)
    if missing.any():
        last = int(np.nonzero(missing)[0][-1]) + 1
        while M < min(N, last + 1):
            M *= 2
    return min(N, M)


def _head_length(y, head):
    """Steps the scan runs: the whole series up to :data:`FULL_MAX`, else :func:`_covering_head`."""
    return len(y) if len(y) <= FULL_MAX else _covering_head(y, head)


def exact_loglike_scan(layout, y, exog, theta, scan, *, grad=True, head=HEAD, outputs=False):
    """``(llf, grad or None)`` as :func:`.kalman.exact_loglike` through the compiled scan, ``None`` when
    the head does not reach the steady state (try a longer head); with ``outputs`` (series of at most
    :data:`FULL_MAX` observations) ``(llf, grad, Y)``, ``Y (N, 2 + k)`` the innovations, their
    variances and the per-observation scores (rows of missing observations: ``v`` NaN, scores 0)."""
    theta = np.asarray(theta, dtype=np.float64)
    T, R, s2 = layout.matrices(theta)
    N, r = len(y), layout.r
    if not s2 > 0 or not _stationary(layout, T):
        return (-np.inf, (np.zeros_like(theta) if grad else None)) + ((None,) if outputs else ())
    sl = _scan_layout(layout)
    M = _head_length(y, head)
    if outputs and M < N:
        raise ValueError(f"outputs: per-observation outputs need N <= {FULL_MAX}, got N = {N}")
    X0 = _initial_state(layout, sl, T, R, s2, grad)
    XT, Y = scan(X0, _scan_inputs(y, exog, M), theta, outputs=outputs)
    J = float(XT[sl.l_at])
    g = XT[sl.l_at + 1:].copy()
    if M < N:
        iu = sl.iu
        Pss = s2 * np.outer(R, R)
        if np.abs(XT[r:sl.nx] - Pss[iu]).max() > STEADY_TOL * np.abs(Pss).max() * 10:
            return None
        xM = np.concatenate([XT[:r], np.zeros(r * r)])
        tail = SteadyStateTail(layout, y[M:], exog[M:])
        tc, tctx = tail.forward(xM[None, :], theta)
        J += float(tc[0])
        if grad:
            xb_tail, th_tail = tail.vjp(tctx, np.ones(1))
            g += np.asarray(th_tail, dtype=np.float64)
            if xb_tail is not None:
                DM = XT[sl.d_at:sl.l_at].reshape(sl.k, sl.nx).T
                g += DM[:r].T @ np.asarray(xb_tail, dtype=np.float64).ravel()[:r]
    out = (-J, -g if grad else None)
    if outputs:
        Y[:, 0][np.isnan(y)] = np.nan
        return out + (Y,)
    return out


def exact_loglike_compiled(layout, y, exog, theta, *, grad=True, head=HEAD, use_scan=True):
    """``(llf, grad or None)`` as :func:`.kalman.exact_loglike`, or ``None`` when the head of
    ``M = min(N, head)`` steps does not reach the steady state (try a longer head).  The compiled
    scan when it is ready (:func:`exact_loglike_scan`), else the CasADi form."""
    scan = kalman_scan(layout) if use_scan else None
    if scan is not None:
        return exact_loglike_scan(layout, y, exog, theta, scan, grad=grad, head=head)
    theta = np.asarray(theta, dtype=np.float64)
    T, R, s2 = layout.matrices(theta)
    mu, beta, phi, th, _ = layout.split(theta)
    N, r, kx = len(y), layout.r, layout.kx
    if not s2 > 0 or (layout.p and np.max(np.abs(np.linalg.eigvals(T))) >= 1.0):
        return -np.inf, (np.zeros_like(theta) if grad else None)
    M = _covering_head(y, head)
    missing = np.isnan(y)
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


def exact_scores(layout, y, exog, theta):
    """``(scores (N, k), v (N,), F (N,))`` as :func:`.loglikeobs.arma_exact_scores` (per-observation
    scores of the exact log-likelihood, innovations, their variances) from one pass of the compiled
    scan, or None when the scan is not ready or ``N > FULL_MAX`` (the caller's NumPy path answers)."""
    scan = kalman_scan(layout) if len(y) <= FULL_MAX else None
    if scan is None:
        return None
    _, _, Y = exact_loglike_scan(layout, y, exog, theta, scan, grad=True, outputs=True)
    if Y is None:
        return None
    return Y[:, 2:], Y[:, 0], Y[:, 1]
