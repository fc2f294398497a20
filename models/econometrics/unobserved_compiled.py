r"""The local linear trend's Kalman filter after its exact diffuse period, with exact first and second
derivatives in the variance ratios, as one compiled pass over the data
(:mod:`dynopt.casadi.sensitivities`).

At unit irregular variance (``H = 1``; the ratios ``q = (sigma2.level, sigma2.trend) / sigma2.irregular``)
the filter after the diffuse period is a regular 2-state Kalman filter.  With the predicted state
``a = (a0, a1)`` and covariance ``P = [[p00, p01], [p01, p11]]`` and ``o_t`` = 1 where ``y_t`` is
observed (0 where missing: prediction only),

    v_t = o_t (y_t - a0),   F_t = p00 + 1,   K = o_t (p00, p01) / F_t,
    a <- T (a + K v_t),     P <- T (P - K (p00, p01)) T' + diag(q),     T = [[1, 1], [0, 1]],

written once for CasADi (which differentiates it).  The state carried is ``x = (a0, a1, p00, p01,
p11, v_t, F_t, Lambda)`` with ``Lambda = sum_t o_t log F_t``, and the summed term is
``l_t = o_t (log F_t + v_t^2 / (c F_t))`` (``c`` a constant: 1 in the fit, so that ``sum l = Lambda
+ S`` with ``S = sum_t o_t v_t^2 / F_t``; the irregular variance at the estimate for the scores).
One pass gives ``S``, ``Lambda`` and their gradients and Hessians in ``q``: the profile
log-likelihood's exact Newton step (:func:`profile_derivatives`).

The diffuse period (up to the second observed value; the state after it is affine in ``q``, so its
derivative is exact from two evaluations and its second derivative zero) runs in Python
(:func:`diffuse_head`).  The loop is compiled once per machine in a background thread the first time
a fit asks for it (:func:`dynopt.casadi.scan.scan_when_ready`); until it is ready, and with
``DYNOPT_COMPILE=0`` or no compiler, fits use the NumPy filter of :mod:`.unobserved` (BFGS on
complex-step gradients: the same optimum to the optimizer's tolerance).
"""

from __future__ import annotations

import functools
import math
from typing import Callable, Optional

import numpy as np

from dynopt.casadi import scan as _scan
from dynopt.casadi import sensitivities as _sens

LOG2PI = float(np.log(2 * np.pi))
KEY = ("unobserved", "lltrend", 1)
PREFIX = "dynopt_lltrend"
NX = 8
K = 2


@functools.lru_cache(maxsize=1)
def recursion() -> "_sens.SecondOrderRecursion":
    """The augmented CasADi step (filter state and its sensitivities in ``q``, sums of ``l``)."""
    import casadi as ca
    x, xn = ca.SX.sym("x", NX), ca.SX.sym("x_next", NX)
    z = ca.SX.sym("z", 2)  # y_t (0 where missing), o_t
    q = ca.SX.sym("q", K)
    c = ca.SX.sym("c", 1)
    a0, a1, p00, p01, p11, lam = x[0], x[1], x[2], x[3], x[4], x[7]
    o = z[1]
    v = o * (z[0] - a0)
    F = p00 + 1.0
    k0, k1 = o * p00 / F, o * p01 / F
    u0, u1 = a0 + k0 * v, a1 + k1 * v
    s00, s01, s11 = p00 - k0 * p00, p01 - k0 * p01, p11 - k1 * p01
    nxt = ca.vertcat(u0 + u1, u1, s00 + 2.0 * s01 + s11 + q[0], s01 + s11, s11 + q[1], v, F, lam + o * ca.log(F))
    f = ca.Function("lltrend_f", [x, z, q, c], [nxt])
    lt = ca.Function("lltrend_l", [xn, z, q, c], [z[1] * (ca.log(xn[6]) + xn[5] * xn[5] / (c[0] * xn[6]))])
    return _sens.SecondOrderRecursion(f, lt, name="lltrend_sens", per_step="state+score")


def build_step():
    """The step Function compiled by :func:`pass_function`."""
    return recursion().step


def diffuse_head(y, q1, q2):
    """The exact diffuse steps of the local linear trend filter at unit irregular variance.

    Parameters
    ----------
    y : (N,) array
        The series (NaN missing), at least two observed values.
    q1, q2 : float
        Variance ratios ``sigma2.level / sigma2.irregular`` and ``sigma2.trend / sigma2.irregular``.

    Returns
    -------
    t : int
        The first step after the diffuse period (one after the second observed value).
    state : (5,) array
        ``(a0, a1, p00, p01, p11)`` predicted for step ``t``.
    llf : float
        The diffuse steps' log-likelihood, ``-1/2 sum (log 2 pi + log F_inf)`` (free of ``q``).
    v : list of (int, float)
        The diffuse steps and their innovations.

    The same arithmetic as :meth:`.unobserved.LocalLevel.filter` (Koopman and Durbin's univariate
    exact diffuse update while ``F_inf > 0``).
    """
    a0 = a1 = p00 = p01 = p11 = 0.0
    i00, i01, i11 = 1.0, 0.0, 1.0
    llf, vs, t, seen = 0.0, [], 0, 0
    while seen < 2:
        yt = y[t]
        if yt == yt:
            vt = yt - a0
            Fi, Fs = i00, p00 + 1.0
            k1 = i01 / Fi
            ms0, ms1 = p00, p01
            a0, a1 = a0 + vt, a1 + k1 * vt
            p00 = p00 + Fs - 2 * ms0
            p01 = p01 + k1 * Fs - ms1 - ms0 * k1
            p11 = p11 + k1 * k1 * Fs - 2 * k1 * ms1
            i00, i01, i11 = 0.0, 0.0, i11 - k1 * i01
            llf -= 0.5 * (LOG2PI + math.log(Fi))
            vs.append((t, vt))
            seen += 1
        a0 = a0 + a1
        p00, p01, p11 = p00 + 2 * p01 + p11 + q1, p01 + p11, p11 + q2
        i00, i01 = i00 + 2 * i01 + i11, i01 + i11
        t += 1
    return t, np.array([a0, a1, p00, p01, p11]), llf, vs


class Pass:
    """The compiled pass on one series: :meth:`derivatives` at ratios ``q``.

    Parameters
    ----------
    y : (N,) array
        The series (NaN missing), at least two observed values in the diffuse period and one after.
    scan : dynopt.casadi.scan.CompiledScan
        The compiled :func:`build_step`.
    """

    def __init__(self, y, scan):
        y = np.asarray(y, dtype=np.float64)
        self.scan = scan
        self.rec = recursion()
        self.t0, _, self.llf_diffuse, self.v_diffuse = diffuse_head(y, 0.0, 0.0)
        rest = y[self.t0:]
        obs = ~np.isnan(rest)
        Z = np.empty((len(rest), 2))
        Z[:, 0] = np.where(obs, rest, 0.0)
        Z[:, 1] = obs
        self.Z, self.obs, self.n = Z, obs, int(obs.sum())
        self.y = y
        # the state after the diffuse period is affine in q: its derivative from the evaluations at the unit vectors
        base = diffuse_head(y, 0.0, 0.0)[1]
        self._head = (base, np.column_stack([diffuse_head(y, 1.0, 0.0)[1] - base, diffuse_head(y, 0.0, 1.0)[1] - base]))
        rec = self.rec
        self._lam = (NX - 1, rec.nx + (NX - 1), rec.nx + NX + (NX - 1))  # Lambda, dLambda/dq1, dLambda/dq2
        self._lam_E = [rec.nx * (1 + rec.k) + i for i, e in enumerate(rec.kept) if e[0] == NX - 1]
        self._lam_E_ab = [e[1:] for e in rec.kept if e[0] == NX - 1]

    def _x0(self, q):
        base, D = self._head
        x0 = np.zeros(NX)
        x0[:5] = base + D @ q
        D0 = np.zeros((NX, K))
        D0[:5] = D
        return self.rec.initial_state(x0, D0)

    def derivatives(self, q, *, c=1.0, outputs=False):
        """``(S, dS (2,), d2S (2, 2), Lambda, dLambda (2,), d2Lambda (2, 2), Y)`` at ratios ``q (2,)``:
        ``S = sum v_t^2 / F_t`` and ``Lambda = sum log F_t`` over the observed steps after the diffuse
        period (unit irregular variance) and their exact derivatives in ``q``.  With ``outputs``,
        ``Y (n_rest, 10)``: per step the state after it (``v_t``, ``F_t`` in columns 5, 6) and the
        derivative of ``o_t (log F_t + v_t^2 / (c F_t))`` in ``q`` (columns 8, 9)."""
        q = np.asarray(q, dtype=np.float64)
        XT, Y = self.scan(self._x0(q), self.Z, np.array([q[0], q[1], c]), outputs=outputs)
        L, g, H, _ = self.rec.sums(XT)
        lam = XT[list(self._lam)]
        d2lam = np.zeros((K, K))
        for i, (a, b) in zip(self._lam_E, self._lam_E_ab):
            d2lam[a, b] = d2lam[b, a] = XT[i]
        # sum l = Lambda + S / c
        S, dS, d2S = c * (L - lam[0]), c * (g - lam[1:]), c * (H - d2lam)
        return S, dS, d2S, lam[0], lam[1:].copy(), d2lam, Y

    def profile(self, u):
        """The profile log-likelihood (irregular variance concentrated out) at ``u = log q (2,)`` with
        its exact gradient and Hessian in ``u``: ``(value, grad (2,), hess (2, 2), S)``."""
        q = np.exp(u)
        S, dS, d2S, lam, dlam, d2lam, _ = self.derivatives(q)
        n = self.n
        value = -0.5 * n * (LOG2PI + 1.0 + math.log(S / n)) - 0.5 * lam + self.llf_diffuse
        gq = -0.5 * n * dS / S - 0.5 * dlam
        hq = -0.5 * n * (d2S / S - np.outer(dS, dS) / (S * S)) - 0.5 * d2lam
        return value, q * gq, hq * np.outer(q, q) + np.diag(q * gq), S


def pass_for(y, *, block: bool = False) -> Optional[Pass]:
    """A :class:`Pass` on ``y``, or None while the compiled loop is not available (being built,
    ``DYNOPT_COMPILE=0``, no compiler).  ``block=True`` waits for the build."""
    scan = (_scan.cached_scan if block else _scan.scan_when_ready)(KEY, build_step, prefix=PREFIX)
    return None if scan is None else Pass(y, scan)


def status() -> str:
    """What the compiled pass is doing: ``"compiled"``, ``"building"``, ``"not requested"`` or
    ``"not compiled: <reason>"`` (:func:`dynopt.casadi.scan.scan_status`)."""
    return _scan.scan_status(KEY)


def wait_ready(timeout: Optional[float] = None) -> str:
    """Wait for a background build started by a fit, then :func:`status`."""
    _scan.wait_scan(KEY, timeout)
    return status()
