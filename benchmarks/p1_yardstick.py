"""Hand-written NumPy forward + adjoint of benchmark problem P1 (pendulum-MLP).

A yardstick for dynopt's engine and a second, independent check of its gradient: the whole
closed loop (MLP policy, RK4 pendulum, swing-up cost) written out in one function, with the
adjoint derived by hand.  See ../shared/benchmarks/PROBLEMS.md for the problem.
"""

from __future__ import annotations

import numpy as np

DT, C1, C2, C3, UMAX = 0.05, 9.81, 1.0, 0.1, 2.0


def unpack(w):
    """Split the 1217 parameters into (W1, b1, W2, b2, W3, b3)."""
    W1 = w[0:96].reshape(32, 3)
    b1 = w[96:128]
    W2 = w[128:1152].reshape(32, 32)
    b2 = w[1152:1184]
    W3 = w[1184:1216].reshape(1, 32)
    b3 = w[1216:1217]
    return W1, b1, W2, b2, W3, b3


def _f(th, om, u):
    return om, C1 * np.sin(th) + C2 * u - C3 * om


def p1_value(w, th0, om0, T):
    """J of P1 by a plain forward loop: ``w`` (1217,), ``th0, om0`` (B,)."""
    value, _ = _run(w, th0, om0, T, grad=False)
    return value


def p1_value_and_grad(w, th0, om0, T):
    """(J, dJ/dw) of P1 by a hand-written forward sweep and adjoint sweep."""
    return _run(w, th0, om0, T, grad=True)


def _run(w, th0, om0, T, grad):
    W1, b1, W2, b2, W3, b3 = unpack(w)
    B = th0.shape[0]
    th, om = th0.copy(), om0.copy()
    J = 0.0
    tape = []
    h = DT
    for _ in range(T):
        c, s = np.cos(th), np.sin(th)
        obs = np.stack((c, s, om), axis=1)
        h1 = np.tanh(obs @ W1.T + b1)
        h2 = np.tanh(h1 @ W2.T + b2)
        a = (h2 @ W3.T + b3)[:, 0]
        ta = np.tanh(a)
        u = UMAX * ta
        J += DT * np.sum((1.0 - c) + 0.1 * om * om + 0.01 * u * u)
        # RK4 stages
        th1, om1 = th, om
        k1t, k1o = _f(th1, om1, u)
        th2, om2 = th + 0.5 * h * k1t, om + 0.5 * h * k1o
        k2t, k2o = _f(th2, om2, u)
        th3, om3 = th + 0.5 * h * k2t, om + 0.5 * h * k2o
        k3t, k3o = _f(th3, om3, u)
        th4, om4 = th + h * k3t, om + h * k3o
        k4t, k4o = _f(th4, om4, u)
        if grad:
            tape.append((th, om, c, s, obs, h1, h2, ta, u, th1, th2, th3, th4))
        th = th + h / 6 * (k1t + 2 * k2t + 2 * k3t + k4t)
        om = om + h / 6 * (k1o + 2 * k2o + 2 * k3o + k4o)
    J /= B
    if not grad:
        return J, None
    gW1, gb1, gW2, gb2, gW3, gb3 = (np.zeros_like(p) for p in unpack(w))
    lt, lo = np.zeros(B), np.zeros(B)  # adjoints of theta, omega at t+1
    cb = 1.0 / B
    for (th, om, c, s, obs, h1, h2, ta, u, th1, th2, th3, th4) in reversed(tape):
        # x_next = x + h/6 (k1 + 2k2 + 2k3 + k4); k = (omega_i, C1 sin th_i + C2 u - C3 omega_i)
        at, ao = lt.copy(), lo.copy()
        ub = np.zeros(B)
        kt, ko = (h / 6) * lt, (h / 6) * lo          # adjoint of k4
        for stage, (ths, scale) in enumerate(((th4, h), (th3, 0.5 * h), (th2, 0.5 * h), (th1, 0.0))):
            # adjoint of stage input (th_s, om_s) from k_s = f(th_s, om_s)
            gth = ko * C1 * np.cos(ths)
            gom = kt - C3 * ko
            ub += C2 * ko
            at += gth
            ao += gom
            if stage < 3:
                nxt = 2.0 if stage < 2 else 1.0
                kt = nxt * (h / 6) * lt + scale * gth
                ko = nxt * (h / 6) * lo + scale * gom
        # stage cost
        at += cb * DT * s
        ao += cb * DT * 0.2 * om
        ub += cb * DT * 0.02 * u
        # policy
        ga = ub * UMAX * (1 - ta * ta)
        gW3 += ga @ h2
        gb3 += ga.sum()
        g2 = np.outer(ga, W3[0]) * (1 - h2 * h2)
        gW2 += g2.T @ h1
        gb2 += g2.sum(0)
        g1 = (g2 @ W2) * (1 - h1 * h1)
        gW1 += g1.T @ obs
        gb1 += g1.sum(0)
        gobs = g1 @ W1
        at += -s * gobs[:, 0] + c * gobs[:, 1]
        ao += gobs[:, 2]
        lt, lo = at, ao
    g = np.concatenate([gW1.ravel(), gb1, gW2.ravel(), gb2, gW3.ravel(), gb3])
    return J, g


# ----------------------------------------------------------------------------- P2 (lqr-long)
def p2_value_and_grad(K, A, Bm, X0, T, r=0.1):
    """(J, dJ/dK) of P2 (``x+ = A x + B u``, ``u = -K x``, ``l = x'x + r u'u``, J the batch mean)
    by a hand-written forward loop and adjoint loop: ``K`` (m, n), ``A`` (n, n), ``Bm`` (n, m),
    ``X0`` (B, n).  The hand-written yardstick of the P2 row of ``bench_p1.py``."""
    B = X0.shape[0]
    x = X0.copy()
    J = 0.0
    xs, us = [], []
    for _ in range(T):
        u = -(x @ K.T)
        J += np.sum(x * x) + r * np.sum(u * u)
        xs.append(x)
        us.append(u)
        x = x @ A.T + u @ Bm.T
    lam = np.zeros_like(X0)          # adjoint of x[t+1]
    gK = np.zeros_like(K)
    for x, u in zip(reversed(xs), reversed(us)):
        ub = (2.0 * r / B) * u + lam @ Bm
        gK -= ub.T @ x
        lam = (2.0 / B) * x + lam @ A - ub @ K
    return J / B, gK.ravel()
