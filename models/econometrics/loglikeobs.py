r"""Per-observation log-likelihoods ``llf_t`` written with complex-safe NumPy/SciPy operations, so
that :func:`.covariance.complex_step_scores` differentiates them exactly (scores for the ``opg``
and ``robust`` covariances), and standardised residuals for the diagnostics.

``arma_exact_obs`` is the Kalman filter of :mod:`.kalman` (same state-space form, same stationary
initialisation, same steady-state switch to :func:`scipy.signal.lfilter`), written once more
without the engine's sweeps; the tests check the two give the same log-likelihood to 1e-12.
"""

from __future__ import annotations

import numpy as np

from .filters import allpole
from .kalman import STEADY_TOL

LOG2PI = np.log(2 * np.pi)


def _matrices(layout, theta):
    mu, beta, phi, th, s2 = layout.split(theta)
    r = layout.r
    T = np.eye(r, k=1).astype(theta.dtype)
    T[:layout.p, 0] = phi
    R = np.zeros(r, dtype=theta.dtype)
    R[0] = 1.0
    R[1:layout.q + 1] = th
    return mu, beta, phi, th, s2, T, R


def arma_exact_obs(layout, y, exog, theta):
    """``(llf_t (N,), v_t (N,), F_t (N,))``: exact-likelihood contributions, innovations and their
    variances of a regression with ARMA errors (:mod:`.kalman`'s form), complex-safe.  A missing
    ``y_t`` (NaN) has ``llf_t = 0`` and ``v_t = NaN``."""
    theta = np.asarray(theta)
    mu, beta, phi, th, s2, T, R = _matrices(layout, theta)
    r, N = layout.r, len(y)
    yt = y - mu - exog @ beta
    Q = s2 * np.outer(R, R)
    P = np.linalg.solve(np.eye(r * r) - np.kron(T, T), Q.ravel()).reshape(r, r)
    tol = STEADY_TOL * np.abs(Q.real).max()
    a = np.zeros(r, dtype=theta.dtype)
    v = np.empty(N, dtype=theta.dtype)
    F = np.empty(N, dtype=theta.dtype)
    m = N
    missing = np.isnan(y)
    last = int(np.nonzero(missing)[0][-1]) + 1 if missing.any() else 0
    for t in range(N):
        if t >= max(1, last) and np.abs((P - Q).real).max() <= tol:
            m = t
            break
        F[t] = P[0, 0]
        if missing[t]:  # no update; v and the likelihood term are NaN / 0
            v[t] = np.nan
            a = T @ a
            P = T @ P @ T.T + Q
            continue
        v[t] = yt[t] - a[0]
        g = T @ P[:, 0]
        a = T @ a + g * (v[t] / F[t])
        P = T @ P @ T.T + Q - np.outer(g, g) / F[t]
    if m < N:  # steady state: the ARMA inversion, initial state -a_m
        n = N - m
        w = yt[m:].copy()
        for i in range(1, layout.p + 1):
            w[i:] -= phi[i - 1] * yt[m:N - i]
        nz = min(layout.nz, n)
        w[:nz] -= a[:nz]
        v[m:] = allpole(np.concatenate([[1.0], th]), w)
        F[m:] = s2
    llf = np.where(np.isnan(v.real), 0.0, -0.5 * (LOG2PI + np.log(F) + v * v / F))
    return llf, v, F


def arma_final_prediction(layout, y, exog, theta):
    """``(a_N (r,), P_N (r, r))``: the one-step prediction after the sample (for forecasts),
    missing observations allowed."""
    from .kalman import steady_state_prediction
    theta = np.asarray(theta, dtype=np.float64)
    mu, beta, phi, th, s2, T, R = _matrices(layout, theta)
    _, v, F = arma_exact_obs(layout, y, exog, theta)
    Q = s2 * np.outer(R, R)
    P = np.linalg.solve(np.eye(layout.r ** 2) - np.kron(T, T), Q.ravel()).reshape(layout.r, layout.r)
    a = np.zeros(layout.r)
    yt = y - mu - exog @ beta
    tol = STEADY_TOL * np.abs(Q).max()
    missing = np.isnan(y)
    last = int(np.nonzero(missing)[0][-1]) + 1 if missing.any() else 0
    for t in range(len(y)):
        if t >= max(1, last) and np.abs(P - Q).max() <= tol:
            return steady_state_prediction(phi, th, yt, v, layout.r), Q
        if missing[t]:
            a, P = T @ a, T @ P @ T.T + Q
            continue
        g = T @ P[:, 0]
        a = T @ a + g * (v[t] / F[t])
        P = T @ P @ T.T + Q - np.outer(g, g) / F[t]
    return a, P


def css_obs(e, s2):
    """Conditional Gaussian contributions ``-1/2 (log 2 pi s2 + e_t^2 / s2)``."""
    return -0.5 * (LOG2PI + np.log(s2) + e * e / s2)


def arma_exact_obs_batch(layout, y, exog, thetas):
    """:func:`arma_exact_obs` for ``B`` parameter vectors at once, ``thetas (B, k)``: the Kalman
    steps run once over the batch (one Python step for all ``B``).  The rows must share their real
    parts (complex-step perturbations of one point): the steady-state switch is taken from the
    first row.  Returns ``(llf_t, v_t, F_t)``, each ``(B, N)``."""
    thetas = np.asarray(thetas)
    B = thetas.shape[0]
    r, N, p, q = layout.r, len(y), layout.p, layout.q
    mu, beta, phi, th, s2 = layout.split(thetas.T)  # each with the batch as last axis
    dt = thetas.dtype
    T = np.zeros((B, r, r), dtype=dt)
    T[:, np.arange(r - 1), np.arange(1, r)] = 1.0
    T[:, :p, 0] = phi.T
    R = np.zeros((B, r), dtype=dt)
    R[:, 0] = 1.0
    R[:, 1:q + 1] = th.T
    yt = y[None, :] - np.asarray(mu)[..., None] - (beta.T @ exog.T if exog.shape[1] else 0.0)
    Q = s2[:, None, None] * (R[:, :, None] * R[:, None, :])
    kron = (T[:, :, None, :, None] * T[:, None, :, None, :]).reshape(B, r * r, r * r)
    P = np.linalg.solve(np.eye(r * r) - kron, Q.reshape(B, r * r, 1)).reshape(B, r, r)
    tol = STEADY_TOL * np.abs(Q[0].real).max()
    Tt = np.swapaxes(T, 1, 2)
    a = np.zeros((B, r), dtype=dt)
    v = np.empty((B, N), dtype=dt)
    F = np.empty((B, N), dtype=dt)
    m = N
    missing = np.isnan(y)
    last = int(np.nonzero(missing)[0][-1]) + 1 if missing.any() else 0
    for t in range(N):
        if t >= max(1, last) and np.abs((P[0] - Q[0]).real).max() <= tol:
            m = t
            break
        F[:, t] = P[:, 0, 0]
        if missing[t]:
            v[:, t] = np.nan
            a = np.einsum("bij,bj->bi", T, a)
            P = T @ P @ Tt + Q
            continue
        v[:, t] = yt[:, t] - a[:, 0]
        g = np.einsum("bij,bj->bi", T, P[:, :, 0])
        a = np.einsum("bij,bj->bi", T, a) + g * (v[:, t] / F[:, t])[:, None]
        P = T @ P @ Tt + Q - g[:, :, None] * g[:, None, :] / F[:, t, None, None]
    if m < N:  # steady state: the ARMA inversion, initial state -a_m
        n = N - m
        w = np.empty((B, n), dtype=dt)  # the batch's dtype (complex under complex-step) and width
        w[:] = yt[:, m:]
        for i in range(1, p + 1):
            w[:, i:] -= phi[i - 1][:, None] * yt[:, m:N - i]
        nz = min(layout.nz, n)
        w[:, :nz] -= a[:, :nz]
        for b in range(B):
            v[b, m:] = allpole(np.concatenate([[1.0], th[:, b]]), w[b])
        F[:, m:] = s2[:, None]
    llf = np.where(np.isnan(v.real), 0.0, -0.5 * (LOG2PI + np.log(F) + v * v / F))
    return llf, v, F


def arma_exact_scores(layout, y, exog, theta, expand=None, h=1e-30):
    """Complex-step scores of :func:`arma_exact_obs` in one batched filter.

    Parameters
    ----------
    theta : (k,) array
        The point (natural parameters of ``expand``'s input, or of ``layout`` when ``expand`` is None).
    expand : callable or None
        Complex-safe map from ``theta`` to the ARMA parameters of ``layout`` (SARIMA's expansion).

    Returns
    -------
    scores : (N, k) array, ``d llf_t / d theta`` (0 rows at missing observations)
    v, F : (N,) arrays, innovations and their variances at ``theta`` (real parts of the first
        perturbed filter: ``Re f(x + ih) = f(x) + O(h^2)``)
    """
    theta = np.asarray(theta, dtype=np.float64)
    k = theta.size
    Z = theta[None, :] + 1j * h * np.eye(k)
    full = np.stack([expand(z) for z in Z]) if expand is not None else Z
    llf, v, F = arma_exact_obs_batch(layout, y, exog, full)
    return (llf.imag / h).T, v[0].real, F[0].real
