"""Linear discrete-time plants with any number of lags."""

from __future__ import annotations

import numpy as np

from dynopt import Plant
from dynopt.core.validation import as_float_array, check_shape


class LinearPlant(Plant):
    r"""``x[t+1] = A_1 x[t] + A_2 x[t-1] + ... + A_k x[t-k+1] + B u[t] (+ E X[t])``.

    Parameters
    ----------
    A : (n, n) array, or a sequence of k (n, n) arrays for k lags
    B : (n, m) array
    E : (n, nX) array, optional
        Gain of exogenous inputs (disturbances).

    The plant block of W is ``A_1, ..., A_k, B`` (and ``E``), each row-major, so a user can
    identify the matrices from data.
    """

    def __init__(self, A, B, E=None):
        As = as_float_array("A", A)
        if As.ndim == 2:
            As = As[None]
        if As.ndim != 3 or As.shape[1] != As.shape[2]:
            raise ValueError(f"A: expected shape (n, n) or (k, n, n), got {np.shape(A)}")
        k, n, _ = As.shape
        Bm = check_shape("B", as_float_array("B", B), (n, None))
        self.n_state, self.n_control, self.lags = n, Bm.shape[1], k
        spec = [(f"A{j + 1}", (n, n)) for j in range(k)] + [("B", Bm.shape)]
        parts = [As.ravel(), Bm.ravel()]
        if E is not None:
            Em = check_shape("E", as_float_array("E", E), (n, None))
            self.n_exog = Em.shape[1]
            spec.append(("E", Em.shape))
            parts.append(Em.ravel())
        self.param_spec = tuple(spec)
        self._defaults = np.concatenate(parts)

    def default_params(self):
        return self._defaults.copy()

    def _mats(self, theta):
        p = self.unflatten(theta)
        return [p[f"A{j + 1}"] for j in range(self.lags)], p["B"], p.get("E")

    def forward(self, hist, u, X, theta):
        As, Bm, Em = self._mats(theta)
        x = hist[0] @ As[0].T
        for j in range(1, self.lags):
            x += hist[j] @ As[j].T
        if self.n_control:
            x += u @ Bm.T
        if Em is not None:
            x += X @ Em.T
        return x, (hist, u, X, As, Bm, Em)

    def vjp(self, ctx, xb):
        hist, u, X, As, Bm, Em = ctx
        hist_bar = tuple(xb @ A for A in As)
        grads = [xb.T @ h for h in hist] + [xb.T @ u]
        if Em is not None:
            grads.append(xb.T @ X)
        u_bar = xb @ Bm if self.n_control else None
        return hist_bar, u_bar, np.concatenate([g.ravel() for g in grads])

    def __repr__(self):
        return f"LinearPlant(n={self.n_state}, m={self.n_control}, lags={self.lags})"


def double_integrator(dt: float, mass: float = 1.0) -> LinearPlant:
    r"""Exact zero-order-hold discretisation of :math:`\ddot p = F/m` with step ``dt`` [s].

    State ``(p [m], v [m/s])``, control ``F`` [N]:
    ``A = [[1, dt], [0, 1]]``, ``B = [[dt^2 / (2m)], [dt / m]]``.
    """
    A = np.array([[1.0, dt], [0.0, 1.0]])
    B = np.array([[dt * dt / (2 * mass)], [dt / mass]])
    return LinearPlant(A, B)
