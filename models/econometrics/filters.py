r"""All-pole linear filters and their adjoints (the dual of a linear recursion).

A recursion :math:`y_t + \sum_{j=1}^{q} a_j y_{t-j} = x_t` (zero pre-sample values) is
``y = lfilter([1], a, x)``.  Written as ``L y = x`` with ``L`` lower-triangular Toeplitz, its
dual is ``x_bar = L^{-T} y_bar``: the same filter run backward in time
(DESIGN.md section 7: this beat JAX on the ARMA CSS benchmark).  The coefficient adjoint is
:math:`\bar a_j = -\sum_t \bar x_t y_{t-j}`.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter


def allpole(a, x):
    """``y`` with ``y_t + a_1 y_{t-1} + ... + a_q y_{t-q} = x_t``, zero pre-sample.

    Parameters
    ----------
    a : (q + 1,) array, ``a[0] = 1``
    x : (N,) array
    """
    if len(a) == 1:
        return np.array(x, dtype=np.result_type(x, a, np.float64), copy=True)
    return lfilter([1.0], a, x)


def allpole_adjoint(a, y, y_bar):
    """Dual of :func:`allpole`: ``(x_bar (N,), a_bar (q,))`` for ``a[1:]``.

    Parameters
    ----------
    a : (q + 1,) array
    y : (N,) array, the filter's output
    y_bar : (N,) array, adjoint of the output
    """
    q = len(a) - 1
    if q == 0:
        return np.array(y_bar, dtype=np.float64, copy=True), np.zeros(0)
    x_bar = lfilter([1.0], a, y_bar[::-1])[::-1]
    return x_bar, -lagged_dots(x_bar, y, q)


def lagged_dots(u, v, n):
    """``[sum_t u_t v_{t-j} for j = 1..n]`` with ``v`` zero before its start, shape (n,)."""
    N = len(u)
    return np.array([u[j:] @ v[:N - j] if j < N else 0.0 for j in range(1, n + 1)])


def lag_matrix(y, p):
    """``Z[t, i] = y[t - 1 - i]`` for ``t = p .. N-1``, ``i = 0 .. p-1``; shape (N - p, p) (+ trailing dims)."""
    N = len(y)
    return np.stack([y[p - 1 - i:N - 1 - i] for i in range(p)], axis=1) if p else np.zeros((N, 0) + y.shape[1:])
