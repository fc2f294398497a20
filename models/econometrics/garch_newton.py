r"""Exact first and second derivatives of the constant-mean GARCH(1, 1) likelihood, and the Newton
fit they allow.

With ``u_t = y_t - mu`` and ``s_t = sigma2_t``,

    s_0 = omega + (alpha + beta) b,      s_t = omega + alpha u_{t-1}^2 + beta s_{t-1}   (t >= 1)

(``b`` the fixed backcast).  Every sensitivity ``D_i s`` and ``D_ij s`` obeys the same linear
recursion ``x_t = beta x_{t-1} + f_t`` with its own forcing ``f`` (DESIGN.md: a linear recursion runs
as ``scipy.signal.lfilter``).  The four first and six non-zero second sensitivities (those of
``(omega, omega)``, ``(omega, alpha)`` and ``(alpha, alpha)`` vanish) have the forcings below; four
rows go through ``lfilter``, the others are closed forms (:func:`derivatives`)::

    f^mu_t = -2 alpha u_{t-1},  f^omega_t = 1,  f^alpha_t = u_{t-1}^2,  f^beta_t = s_{t-1}
    f^{mu mu}_t = 2 alpha,  f^{mu alpha}_t = -2 u_{t-1},  f^{i beta}_t = D_i s_{t-1} (twice for beta beta)

(at ``t = 0``: ``f^omega = 1``, ``f^alpha = f^beta = b``, the rest 0).  With ``l_t = -(log 2 pi +
log s_t + u_t^2 / s_t) / 2``, ``a_t = (1 / s_t - u_t^2 / s_t^2) / 2`` and ``c_t = (2 u_t^2 / s_t^3
- 1 / s_t^2) / 2``:

    d l_t / d theta_i = -a_t D_i s_t + [i = mu] u_t / s_t
    d2 l_t / d theta_i d theta_j = -a_t D_ij s_t - c_t D_i s_t D_j s_t
                                   - (u_t / s_t^2) ([i = mu] D_j s_t + [j = mu] D_i s_t) - [i = j = mu] / s_t

Parameter order ``(mu, omega, alpha, beta)``.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import OptimizeResult
from scipy.signal import lfilter

LOG2PI = np.log(2 * np.pi)
_PAIRS = ((0, 0), (0, 2), (0, 3), (1, 3), (2, 3), (3, 3))  # second sensitivities with non-zero forcing


def variances(values, y, backcast):
    """``(u (N,), s (N,))``: residuals and conditional variances."""
    mu, omega, alpha, beta = values
    u = y - mu
    d = np.empty_like(u)
    d[0] = omega + (alpha + beta) * backcast
    d[1:] = omega + alpha * (u[:-1] * u[:-1])
    return u, lfilter([1.0], [1.0, -beta], d)


def loglike_domain(values):
    """Whether ``omega, alpha, beta > 0`` and ``alpha + beta < 1`` (finite values)."""
    mu, omega, alpha, beta = values
    return bool(np.isfinite(mu) and omega > 0 and alpha > 0 and beta > 0 and alpha + beta < 1)


def loglike(values, y, backcast):
    """Log-likelihood (``-inf`` outside ``omega, alpha, beta > 0``, ``alpha + beta < 1``)."""
    if not loglike_domain(values):
        return -np.inf
    u, s = variances(values, y, backcast)
    if not s.min() > 0:
        return -np.inf
    return -0.5 * float(len(y) * LOG2PI + np.log(s).sum() + (u * u / s).sum())


def derivatives(values, y, backcast, *, scores=False):
    """``(llf, grad (4,), hessian (4, 4), scores (N, 4) or None)`` of the log-likelihood, exact.

    Four rows go through ``lfilter`` (``D_mu s``, ``D_beta s`` and their ``beta`` derivatives); the
    others are closed forms of the same recursion: ``D_omega s_t = sum_{k<=t} beta^k``, its
    ``beta`` derivative ``sum_{k<=t} k beta^(k-1)``, ``s = omega D_omega s + alpha D_alpha s +
    b beta^(t+1)`` (solved for ``D_alpha s``; its ``beta`` derivative for ``D_alpha beta s``),
    ``D_mu mu s = 2 alpha (D_omega s - beta^t)`` and ``D_mu alpha s = D_mu s / alpha``.
    """
    mu, omega, alpha, beta = values
    N = len(y)
    u, s = variances(values, y, backcast)
    a = np.array([1.0, -beta])
    k = np.arange(N, dtype=np.float64)
    bt = np.zeros(N)  # beta^t, left 0 below 1e-20 (no denormals: they make pow ~20x slower)
    K = N if beta > 0.999 else min(N, int(-46.0 / np.log(beta)) + 1)
    bt[:K] = beta ** k[:K]
    # the geometric sums reach their limits (to 1e-20) at K: the rest is a copy of the last value
    d_om = np.empty(N)
    d_om[:K] = np.cumsum(bt[:K])
    d_om[K:] = d_om[K - 1]
    d_omb = np.empty(N)
    d_omb[0] = 0.0
    d_omb[1:K] = np.cumsum(k[1:K] * bt[:K - 1])
    d_omb[K:] = d_omb[K - 1]
    F = np.zeros((2, N))
    F[0, 1:] = -2.0 * alpha * u[:-1]
    F[1, 0], F[1, 1:] = backcast, s[:-1]
    Dmb = lfilter([1.0], a, F, axis=-1)  # D_mu s, D_beta s
    F[0, 1:] = Dmb[0, :-1]
    F[1, 1:] = 2.0 * Dmb[1, :-1]
    F[:, 0] = 0.0
    D2mb = lfilter([1.0], a, F, axis=-1)  # D_mu beta s, D_beta beta s
    D1 = np.empty((4, N))
    D1[0], D1[1], D1[3] = Dmb[0], d_om, Dmb[1]
    D1[2] = s - omega * d_om
    D1[2, :K] -= backcast * beta * bt[:K]
    D1[2] /= alpha
    u2 = u * u
    inv = 1.0 / s
    r = u2 * inv
    llf = -0.5 * float(N * LOG2PI + np.log(s).sum() + r.sum())
    at = 0.5 * inv * (1.0 - r)
    ct = 0.5 * inv * inv * (2.0 * r - 1.0)
    w = u * inv
    G = D1 * -at  # (4, N) per-observation scores, transposed
    G[0] += w
    g = G.sum(axis=1)
    H = -(D1 * ct) @ D1.T
    m = (w * inv) @ D1.T  # sum_t u_t / s_t^2 D_j s_t
    H[0] -= m
    H[:, 0] -= m
    H[0, 0] -= inv.sum()
    # h2[i] = sum_t a_t D_pair s_t for the six pairs of _PAIRS, the closed-form rows as dot products
    a_om, a_omb, a_bt = d_om @ at, d_omb @ at, bt @ at
    a_mu, a_b = Dmb @ at
    a_mub, a_bb = D2mb @ at
    a_kbt = (k[:K] + 1.0) * bt[:K] @ at[:K]
    h2 = (2.0 * alpha * (a_om - a_bt), a_mu / alpha, a_mub, a_omb,
          (a_b - omega * a_omb - backcast * a_kbt) / alpha, a_bb)
    for (i, j), v in zip(_PAIRS, h2):
        H[i, j] -= v
        if i != j:
            H[j, i] -= v
    return llf, g, H, (G.T if scores else None)


def to_free(values):
    """Unconstrained ``(mu, log omega, log(alpha / r), log(beta / r))``, ``r = 1 - alpha - beta``
    (the map of :class:`.transforms.Transform` blocks ``free, var, garch``)."""
    mu, omega, alpha, beta = values
    r = 1.0 - alpha - beta
    return np.array([mu, np.log(omega), np.log(alpha / r), np.log(beta / r)])


def from_free(u):
    """Inverse of :func:`to_free`: ``(values (4,), omega, p)`` with ``p = (alpha, beta)`` (``omega``
    is also ``d omega / d u_1``; ``diag(p) - p p'`` the logistic block's Jacobian)."""
    e = np.exp(u[2:])
    p = e / (1.0 + e.sum())
    omega = np.exp(u[1])
    return np.array([u[0], omega, p[0], p[1]]), omega, p


def free_derivatives(u, g, H):
    """Gradient ``(4,)`` and Hessian ``(4, 4)`` in unconstrained parameters from those in natural ones:
    ``J' g`` and ``J' H J + sum_i g_i d2 values_i / du du``."""
    _, omega, p = from_free(u)
    J = np.zeros((4, 4))
    J[0, 0], J[1, 1] = 1.0, omega
    J[2:, 2:] = np.diag(p) - np.outer(p, p)
    gu = J.T @ g
    Hu = J.T @ H @ J
    Hu[1, 1] += g[1] * omega
    # sum_i g_i d2 p_i / dv dv' = diag(gp) - gp p' - p gp' + 2 q p p' - q diag(p), gp = g * p, q = g . p
    gp = g[2:] * p
    q = gp.sum()
    Hu[2:, 2:] += np.diag(gp - q * p) - np.outer(gp, p) - np.outer(p, gp) + 2.0 * q * np.outer(p, p)
    return gu, Hu


def newton_fit(y, backcast, start, *, maxiter=100, gtol=1e-8, derivs=None):
    """Maximise the likelihood by Newton's method with the exact Hessian in the unconstrained
    parameters of :func:`to_free` (so ``omega, alpha, beta > 0``, ``alpha + beta < 1`` hold and an
    optimum on the boundary ``alpha + beta -> 1`` is approached as BFGS approaches it), backtracking
    until ``llf`` increases (Armijo).  Where ``-H`` is not positive definite the step uses the outer
    product of the scores (BHHH: their outer-product matrix, mapped to the free parameters) instead.
    Stops when the largest unconstrained gradient entry per
    observation is below ``gtol`` (BFGS's test in :func:`.results.minimize_transformed`) or the
    predicted gain is below rounding.

    ``derivs(values) -> (llf, grad, hessian, opg)``, when given, replaces :func:`derivatives` on
    this ``y`` and ``backcast`` (the compiled pass of :mod:`.garch_compiled`: same numbers).

    Returns ``(values (4,), llf, grad, hessian, opg (4, 4), OptimizeResult)`` (natural parameters;
    ``opg`` the sum of the per-observation scores' outer products); ``success`` False when
    ``maxiter`` was reached or no step increased ``llf``: the caller then falls back to BFGS.
    """
    if derivs is None:
        def derivs(values):
            llf, g, H, G = derivatives(values, y, backcast, scores=True)
            return llf, g, H, G.T @ G
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # trial points far out: -inf / NaN,
        return _newton(y, backcast, start, maxiter, gtol, derivs)          # refused by the line search


def _newton(y, backcast, start, maxiter, gtol, derivs):
    n = len(y)
    x = np.asarray(start, dtype=np.float64)
    u = to_free(x)
    llf, g, H, S = derivs(x)
    nfev, success, message = 1, False, "maximum number of Newton iterations reached"
    it, dec_prev = 0, None
    while True:
        gu, Hu = free_derivatives(u, g, H)
        if np.max(np.abs(gu)) / n < gtol:
            success, message = True, "gradient below gtol"
            break
        if it >= maxiter:
            break
        try:
            np.linalg.cholesky(-Hu)  # raises unless -Hu is positive definite
            step = np.linalg.solve(-Hu, gu)
        except np.linalg.LinAlgError:
            _, omega, p = from_free(u)
            J = np.zeros((4, 4))  # d natural / d free
            J[0, 0], J[1, 1] = 1.0, omega
            J[2:, 2:] = np.diag(p) - np.outer(p, p)
            step = np.linalg.lstsq(J.T @ S @ J, gu, rcond=None)[0]
        dec = float(gu @ step)
        if not np.isfinite(dec) or dec <= 0:
            message = "no ascent direction"
            break
        if dec < 1e-15 * max(1.0, abs(llf)):
            success, message = True, "predicted gain below rounding"
            break
        # the full step first, with every derivative at once (it is accepted almost always)
        cand = u + step
        xc = from_free(cand)[0]
        out = derivs(xc) if loglike_domain(xc) else None
        nfev += 1
        if out is None or not out[0] >= llf + 1e-4 * dec:
            t = 0.5
            while t > 1e-10:
                cand = u + t * step
                xc = from_free(cand)[0]
                f = loglike(xc, y, backcast)
                nfev += 1
                if f >= llf + 1e-4 * t * dec:
                    break
                t *= 0.5
            else:
                message = "line search failed to increase the log-likelihood"
                break
            out = derivs(xc)
            nfev += 1
        elif dec_prev is not None and dec > 0.1 * dec_prev:
            # linear convergence (an optimum at infinity in u: alpha + beta -> 1): extend the step
            # while the log-likelihood keeps increasing
            t, best = 1.0, out[0]
            while t < 64.0:
                xt = from_free(u + 2.0 * t * step)[0]
                f = loglike(xt, y, backcast)
                nfev += 1
                if not f > best:
                    break
                t, best = 2.0 * t, f
            if t > 1.0:
                cand = u + t * step
                xc = from_free(cand)[0]
                out = derivs(xc)
                nfev += 1
        dec_prev = dec
        u, x = cand, xc
        llf, g, H, S = out
        it += 1
    res = OptimizeResult(x=u, success=success, status=0 if success else 1, message=message, nit=it, nfev=nfev,
                         fun=-llf / n, jac=-gu / n)
    return x, llf, g, H, S, res
