"""Linear discrete-time plants with any number of lags, and the deferred-product accumulator
the model library's duals share (:class:`OuterSum`)."""

from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np

from dynopt import Plant
from dynopt.core.validation import check_shape

from ._checks import channel_names, matrix, real_array

FLUSH_ELEMENTS = 16384
"""Entries (rows x columns of its widest factor) an :class:`OuterSum` stacks before forming its
partial products: 128 KiB per factor keeps the stacked copies in reused heap memory (larger
ones are fresh ``mmap`` pages, whose page faults cost more than the per-step products saved;
measured on P1: 8192 x 32 rows was 1.34-1.43x the yardstick, 512 x 32 rows 1.09-1.2x), bounds
the memory a deferred adjoint holds (checkpointed sweeps stay bounded), and still gives BLAS
products of hundreds of rows."""


class OuterSum:
    r"""Accumulates :math:`\sum_t L_t^T R^{(j)}_t` (and optionally :math:`\sum_t 1^T L_t`) over
    the steps of a backward sweep as one product over stacked rows.

    ``width``, when given, is the widest factor's number of columns (sets the flush size at
    once; otherwise from the first step).  A dual calls :meth:`add` once per step with ``L_t`` ``(B, p)`` and the right factors
    ``R^{(j)}_t`` ``(B, q_j)``; :meth:`take` returns the summed products (and column sums)
    and resets.  Once the stacked rows hold ``FLUSH_ELEMENTS`` entries of the widest factor the
    partial products are formed, so memory stays bounded whatever the horizon.  The result equals the per-step sum up to the order
    of floating-point summation.
    """

    __slots__ = ("n_right", "colsum", "left", "rights", "rows", "limit", "prods", "sums")

    def __init__(self, n_right: int, colsum: bool = False, width: int = 0):
        self.n_right, self.colsum = n_right, colsum
        self.left: List[np.ndarray] = []
        self.rights: List[List[np.ndarray]] = [[] for _ in range(n_right)]
        self.rows = 0
        self.limit = max(1, FLUSH_ELEMENTS // width) if width > 0 else 0
        self.prods: Optional[List[np.ndarray]] = None
        self.sums: Optional[np.ndarray] = None

    def add(self, L, *R) -> None:
        """Record one step: ``L`` (B, p), ``R`` each (B, q_j) (arrays not modified later)."""
        self.left.append(L)
        for acc, r in zip(self.rights, R):
            acc.append(r)
        if not self.limit:
            width = max([L.shape[1]] + [r.shape[1] for r in R])
            self.limit = max(1, FLUSH_ELEMENTS // max(width, 1))
        self.rows += L.shape[0]
        if self.rows >= self.limit:
            self._flush()

    def add1(self, L, R) -> None:
        """:meth:`add` with one right factor, for an accumulator built with ``width`` (the
        per-step fast path: no argument packing)."""
        self.left.append(L)
        self.rights[0].append(R)
        self.rows += L.shape[0]
        if self.rows >= self.limit:
            self._flush()

    def _flush(self) -> None:
        if not self.left:
            return
        L = self.left[0] if len(self.left) == 1 else np.concatenate(self.left)
        LT = L.T
        prods = [np.dot(LT, r[0] if len(r) == 1 else np.concatenate(r)) for r in self.rights]
        if self.prods is None:
            self.prods = prods
        else:
            for acc, p in zip(self.prods, prods):
                acc += p
        if self.colsum:
            s = L.sum(axis=0)
            self.sums = s if self.sums is None else self.sums + s
        self.left = []
        self.rights = [[] for _ in range(self.n_right)]
        self.rows = 0

    def take(self):
        """``(products, column sums)`` accumulated since the last call (``(None, None)`` if no
        step was added); resets the accumulator."""
        self._flush()
        out = (self.prods, self.sums)
        self.prods, self.sums = None, None
        return out


class _LinearBound:
    """LinearPlant parameters parsed once per evaluation (see :meth:`LinearPlant.bind`)."""

    __slots__ = ("As", "Bm", "Em", "ATs", "BT", "ET", "grad", "acc")

    def __init__(self, As, Bm, Em, grad: bool, defer: bool):
        self.As, self.Bm, self.Em, self.grad = As, Bm, Em, grad
        # contiguous transposes once per evaluation: np.dot(x, A^T) without a strided operand
        self.ATs = [np.ascontiguousarray(A.T) for A in As]
        self.BT = np.ascontiguousarray(Bm.T)
        self.ET = None if Em is None else np.ascontiguousarray(Em.T)
        width = max(As[0].shape[0], Bm.shape[1], 0 if Em is None else Em.shape[1])
        self.acc = OuterSum(len(As) + 1 + (Em is not None), width=width) if (grad and defer) else None


class LinearPlant(Plant):
    r"""``x[t+1] = A_1 x[t] + A_2 x[t-1] + ... + A_k x[t-k+1] + B u[t] (+ E X[t])``.

    Parameters
    ----------
    A : (n, n) array, or a sequence of k (n, n) arrays for k lags
    B : (n, m) array
    E : (n, nX) array, optional
        Gain of exogenous inputs (disturbances).
    channels : sequence of str, optional
        Names of the X channels ``E`` multiplies (when the problem's X is a dict of named
        channels), concatenated in this order to the ``nX`` columns.

    The plant block of W is ``A_1, ..., A_k, B`` (and ``E``), each row-major, so a user can
    identify the matrices from data.  When the block is not a decision variable the dual
    forms no A/B/E adjoint; when it is, the adjoint is one product over all steps.
    """

    def __init__(self, A, B, E=None, *, channels: Optional[Sequence[str]] = None):
        As = real_array("A", A)
        if As.ndim == 2:
            As = As[None]
        if As.ndim != 3 or As.shape[1] != As.shape[2] or As.shape[1] == 0 or As.shape[0] == 0:
            raise ValueError(f"A: expected shape (n, n) or (k, n, n) with n >= 1, got {np.shape(A)}")
        k, n, _ = As.shape
        Bm = matrix("B", B, rows=n, what="(n, m) input matrix, n = A's size")
        self.n_state, self.n_control, self.lags = n, Bm.shape[1], k
        spec = [(f"A{j + 1}", (n, n)) for j in range(k)] + [("B", Bm.shape)]
        parts = [As.ravel(), Bm.ravel()]
        if E is not None:
            Em = matrix("E", E, rows=n, what="(n, nX) exogenous-input gain, n = A's size")
            if Em.shape[1] == 0:
                raise ValueError(f"E: expected at least one column (nX >= 1), got shape {Em.shape}")
            self.n_exog = Em.shape[1]
            spec.append(("E", Em.shape))
            parts.append(Em.ravel())
        if channels is not None:
            if E is None:
                raise ValueError(f"channels: expected none for a plant without E (no exogenous input), got {channels!r}")
            self.channels = channel_names("channels", channels)
        self.param_spec = tuple(spec)
        self._defaults = np.concatenate(parts)
        self._np = self._defaults.size

    @property
    def n_params(self) -> int:
        return self._np

    def default_params(self):
        return self._defaults.copy()

    def bind(self, params, *, grad: bool):
        """Parse ``A_j, B, E`` once per evaluation; ``grad=False`` skips their adjoints."""
        return self._bind(params, grad=bool(grad), defer=grad != "per_step")

    def _bind(self, theta, *, grad, defer):
        theta = np.asarray(theta, dtype=np.float64)
        check_shape(f"{type(self).__name__} parameters", theta, (self._np,))
        n, m, k = self.n_state, self.n_control, self.lags
        As = [theta[j * n * n:(j + 1) * n * n].reshape(n, n) for j in range(k)]
        off = k * n * n
        Bm = theta[off:off + n * m].reshape(n, m)
        Em = theta[off + n * m:].reshape(n, self.n_exog) if self.n_exog else None
        return _LinearBound(As, Bm, Em, grad, defer)

    def param_grad(self, bound):
        if not isinstance(bound, _LinearBound) or bound.acc is None:
            return None
        prods, _ = bound.acc.take()
        if prods is None:
            return None
        return np.concatenate([p.ravel() for p in prods])

    def forward(self, hist, u, X, theta):
        if not isinstance(theta, _LinearBound):  # called outside an engine evaluation
            theta = self._bind(theta, grad=True, defer=False)
        ATs = theta.ATs
        x = np.dot(hist[0], ATs[0])
        for j in range(1, self.lags):
            x += np.dot(hist[j], ATs[j])
        if self.n_control:
            x += np.dot(u, theta.BT)
        if theta.ET is not None:
            x += np.dot(X, theta.ET)
        return x, (hist, u, X, theta)

    def vjp(self, ctx, xb):
        hist, u, X, b = ctx
        As = b.As
        hist_bar = tuple(np.dot(xb, A) for A in As) if self.lags > 1 else (np.dot(xb, As[0]),)
        u_bar = np.dot(xb, b.Bm) if self.n_control else None
        if not b.grad:
            return hist_bar, u_bar, None
        rights = tuple(hist) + (u,) + ((X,) if b.Em is not None else ())
        if b.acc is not None:
            b.acc.add(xb, *rights)
            return hist_bar, u_bar, None
        return hist_bar, u_bar, np.concatenate([np.dot(xb.T, r).ravel() for r in rights])

    def __repr__(self):
        return f"LinearPlant(n={self.n_state}, m={self.n_control}, lags={self.lags})"


def double_integrator(dt: float, mass: float = 1.0) -> LinearPlant:
    r"""Exact zero-order-hold discretisation of :math:`\ddot p = F/m` with step ``dt`` [s].

    State ``(p [m], v [m/s])``, control ``F`` [N]:
    ``A = [[1, dt], [0, 1]]``, ``B = [[dt^2 / (2m)], [dt / m]]``.
    """
    from ._checks import positive
    dt, mass = positive("dt", dt), positive("mass", mass)
    A = np.array([[1.0, dt], [0.0, 1.0]])
    B = np.array([[dt * dt / (2 * mass)], [dt / mass]])
    return LinearPlant(A, B)
