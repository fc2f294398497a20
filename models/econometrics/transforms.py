r"""Parameter transforms used while optimising, as statsmodels does.

The optimiser works on unconstrained reals ``u``; the model sees natural parameters:

* AR coefficients ``phi = constrain_stationary(u)``: Jones (1980) / Monahan (1984): partial
  autocorrelations ``r_k = u_k / sqrt(1 + u_k^2)`` in (-1, 1) mapped by the Durbin-Levinson
  recursion to coefficients whose polynomial ``1 - phi_1 z - ... - phi_p z^p`` has all roots
  outside the unit circle (a stationary AR part).  Identical to statsmodels'
  ``constrain_stationary_univariate``.
* MA coefficients ``theta = -constrain_stationary(u)``: an invertible MA part
  (roots of ``1 + theta_1 z + ...`` outside the unit circle), as statsmodels' SARIMAX.
* variances ``sigma2 = exp(u)`` (positive); GARCH ``(alpha, beta)`` by a two-way logistic map
  keeping ``alpha, beta > 0`` and ``alpha + beta < 1`` (covariance stationary).

Jacobians ``d params / d u`` are taken by complex-step differentiation (every map here is
real-analytic), exact to rounding; gradients are chained through them, so the optimiser
always gets the exact gradient of the transformed objective.
"""

from __future__ import annotations

import numpy as np

_CS_STEP = 1e-30  # complex step: no subtractive cancellation, so any tiny step is exact to rounding


def constrain_stationary(u):
    """Unconstrained ``(n,)`` -> coefficients of a stationary AR polynomial ``(n,)``."""
    u = np.asarray(u)
    n = u.shape[0]
    if n == 1:  # the recursion's one step, without its work matrix
        return -u / np.sqrt(1 + u * u)
    y = np.zeros((n, n), dtype=u.dtype)
    r = u / np.sqrt(1 + u * u)
    for k in range(n):
        for i in range(k):
            y[k, i] = y[k - 1, i] + r[k] * y[k - 1, k - i - 1]
        y[k, k] = r[k]
    return -y[n - 1, :] if n else np.zeros(0, dtype=u.dtype)


def unconstrain_stationary(c):
    """Inverse of :func:`constrain_stationary`; ``ValueError`` if ``c`` is not stationary."""
    c = np.asarray(c, dtype=np.float64)
    n = c.shape[0]
    if n == 0:
        return np.zeros(0)
    if n == 1:
        r = -c
        if abs(r[0]) >= 1:
            raise ValueError(f"coefficients {c} are not stationary (a partial autocorrelation has |r| >= 1)")
        return r / np.sqrt(1 - r * r)
    y = np.zeros((n, n))
    y[n - 1] = -c
    for k in range(n - 1, 0, -1):
        for i in range(k):
            y[k - 1, i] = (y[k, i] - y[k, k] * y[k, k - i - 1]) / (1 - y[k, k] ** 2)
    r = y.diagonal()
    if np.any(np.abs(r) >= 1):
        raise ValueError(f"coefficients {c} are not stationary (a partial autocorrelation has |r| >= 1)")
    return r / np.sqrt(1 - r * r)


def complex_step_jacobian(fun, u):
    """``d fun / d u`` of shape (len(fun(u)), len(u)) by the complex step."""
    u = np.asarray(u, dtype=np.float64)
    cols = []
    for j in range(u.size):
        z = u.astype(np.complex128)
        z[j] += 1j * _CS_STEP
        cols.append(np.imag(fun(z)) / _CS_STEP)
    m = np.asarray(fun(u)).size
    return np.stack(cols, axis=1) if cols else np.zeros((m, 0))


class Transform:
    """A map from unconstrained ``u`` to natural parameters, block by block.

    Parameters
    ----------
    blocks : list of (kind, size)
        ``kind`` one of ``"free"`` (identity), ``"ar"``, ``"ma"``, ``"var"`` (exp),
        ``"garch"`` (size 2: alpha, beta).
    """

    KINDS = ("free", "ar", "ma", "var", "garch")

    def __init__(self, blocks):
        self.blocks = [(k, int(s)) for k, s in blocks if int(s) > 0]
        for k, _ in self.blocks:
            if k not in self.KINDS:
                raise ValueError(f"kind: expected one of {self.KINDS}, got {k!r}")

    def _apply(self, u, inverse=False):
        out, off = [], 0
        for kind, size in self.blocks:
            v = u[off:off + size]
            off += size
            if kind == "free":
                out.append(v)
            elif kind == "ar":
                out.append(unconstrain_stationary(v) if inverse else constrain_stationary(v))
            elif kind == "ma":
                out.append(unconstrain_stationary(-v) if inverse else -constrain_stationary(v))
            elif kind == "var":
                out.append(np.log(v) if inverse else np.exp(v))
            else:  # garch (alpha, beta)
                if inverse:
                    a, b = v
                    if not (a > 0 and b > 0 and a + b < 1):
                        raise ValueError(f"GARCH (alpha, beta) = ({a}, {b}) outside alpha, beta > 0, alpha + beta < 1")
                    rest = 1 - a - b
                    out.append(np.log(np.array([a / rest, b / rest])))
                else:
                    e = np.exp(v)
                    out.append(e / (1 + e.sum()))
        return np.concatenate(out) if out else np.zeros(0, dtype=u.dtype)

    def __call__(self, u):
        """Natural parameters from unconstrained ``u``."""
        return self._apply(np.asarray(u))

    def inverse(self, params):
        """Unconstrained ``u`` from natural parameters (``ValueError`` outside the region)."""
        return self._apply(np.asarray(params, dtype=np.float64), inverse=True)

    def jacobian(self, u):
        """``d params / d u``, square and block diagonal: identity, ``exp`` and the logistic map in
        closed form, the stationarity maps by the complex step (exact to rounding)."""
        u = np.asarray(u, dtype=np.float64)
        J = np.zeros((u.size, u.size))
        off = 0
        for kind, size in self.blocks:
            v = u[off:off + size]
            sl = slice(off, off + size)
            if kind == "free":
                J[sl, sl] = np.eye(size)
            elif kind == "var":
                J[sl, sl] = np.diag(np.exp(v))
            elif kind == "garch":
                e = np.exp(v)
                d = 1 + e.sum()
                J[sl, sl] = np.diag(e / d) - np.outer(e, e) / d ** 2
            elif size == 1:  # phi = -u / sqrt(1 + u^2) (theta = -phi): derivative -(1 + u^2)^(-3/2)
                J[off, off] = (-1.0 if kind == "ar" else 1.0) * (1 + v[0] * v[0]) ** -1.5
            else:
                sign = 1.0 if kind == "ar" else -1.0
                J[sl, sl] = complex_step_jacobian(lambda z: sign * constrain_stationary(z), v)
            off += size
        return J
