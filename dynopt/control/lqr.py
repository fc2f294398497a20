r"""Linear-quadratic regulators on ``scipy.linalg``: infinite-horizon gains (discrete and
continuous), the finite-horizon Riccati recursion, and zero-order-hold discretisation.

Conventions follow python-control: ``u = -K x``; the cost is

.. math:: \sum_t x'Qx + u'Ru + 2x'Nu \quad\text{(discrete)}, \qquad
          \int x'Qx + u'Ru + 2x'Nu\,dt \quad\text{(continuous)}

and :func:`dlqr` / :func:`lqr` return ``(K, S, E)``: the gain, the Riccati solution and the
closed-loop eigenvalues, as a named tuple that also unpacks like python-control's.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.linalg

from ..core.validation import as_float_array

__all__ = ["LQRResult", "FiniteHorizonLQR", "Discretization", "dlqr", "lqr", "finite_horizon_lqr", "c2d",
           "is_stabilizable"]


class LQRResult(NamedTuple):
    """Infinite-horizon LQR solution (unpacks as ``K, S, E``).

    Attributes
    ----------
    K : (m, n) array
        State-feedback gain, ``u = -K x``.
    S : (n, n) array
        Stabilising solution of the algebraic Riccati equation (cost-to-go ``x'Sx``).
    E : (n,) complex array
        Eigenvalues of ``A - B K``.
    """

    K: np.ndarray
    S: np.ndarray
    E: np.ndarray


class FiniteHorizonLQR(NamedTuple):
    """Finite-horizon LQR from the backward Riccati recursion.

    Attributes
    ----------
    K : (T, m, n) array
        Time-varying gains, ``u[t] = -K[t] x[t]``.
    P : (T + 1, n, n) array
        Cost-to-go matrices, ``V_t(x) = x' P[t] x``; ``P[T] = Qf``.
    """

    K: np.ndarray
    P: np.ndarray


class Discretization(NamedTuple):
    """Zero-order-hold discretisation ``x[k+1] = Ad x[k] + Bd u[k]`` (unpacks as ``Ad, Bd``)."""

    Ad: np.ndarray
    Bd: np.ndarray


# ----------------------------------------------------------------------------- validation
def _matrices(A, B):
    A = as_float_array("A", A)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"A: expected a square matrix (n, n), got shape {A.shape}")
    n = A.shape[0]
    B = as_float_array("B", B)
    if B.ndim == 1 and n == 1:
        B = B[None, :]
    elif B.ndim == 1:
        B = B[:, None]
    if B.ndim != 2 or B.shape[0] != n:
        raise ValueError(f"B: expected shape (n, m) with n={n} (the rows of A), got {np.shape(B)}")
    return A, B


def _sym(name, M, size, *, definite: bool):
    M = as_float_array(name, M)
    if M.ndim == 0 and size == 1:
        M = M.reshape(1, 1)
    if M.ndim == 1 and M.shape[0] == size:
        M = np.diag(M)
    if M.shape != (size, size):
        raise ValueError(f"{name}: expected shape ({size}, {size}) (or its diagonal ({size},)), got {M.shape}")
    asym = np.abs(M - M.T).max() if size else 0.0
    if asym > 1e-10 * max(1.0, np.abs(M).max()):
        raise ValueError(f"{name}: expected a symmetric matrix, got max |{name} - {name}'| = {asym:.3g}")
    M = 0.5 * (M + M.T)
    lo = float(np.linalg.eigvalsh(M).min()) if size else 1.0
    tol = 1e-12 * max(1.0, np.abs(M).max())
    if definite and lo <= tol:
        raise ValueError(f"{name}: expected a positive definite weight, got smallest eigenvalue {lo:.3g}")
    if not definite and lo < -tol:
        raise ValueError(f"{name}: expected a positive semidefinite weight, got smallest eigenvalue {lo:.3g}")
    return M


def _weights(A, B, Q, R, N):
    n, m = B.shape
    Q = _sym("Q", Q, n, definite=False)
    R = _sym("R", R, m, definite=True)
    if N is None:
        N = np.zeros((n, m))
    else:
        N = as_float_array("N", N)
        if N.ndim == 1 and m == 1:
            N = N[:, None]
        if N.shape != (n, m):
            raise ValueError(f"N: expected shape ({n}, {m}), got {N.shape}")
        joint = np.block([[Q, N], [N.T, R]])
        lo = float(np.linalg.eigvalsh(joint).min())
        if lo < -1e-12 * max(1.0, np.abs(joint).max()):
            raise ValueError(f"N: expected [[Q, N], [N', R]] positive semidefinite, got smallest eigenvalue {lo:.3g}")
    return Q, R, N


def is_stabilizable(A, B, *, discrete: bool, tol: float = 1e-9) -> bool:
    r"""PBH test: every mode of ``A`` that is not asymptotically stable is controllable.

    A mode :math:`\lambda` is unstable when :math:`|\lambda| \ge 1` (``discrete=True``) or
    :math:`\mathrm{Re}\,\lambda \ge 0` (continuous); it is controllable when
    ``rank [A - lambda I, B] = n``.
    """
    A, B = _matrices(A, B)
    return _first_uncontrollable(A, B, discrete, tol) is None


def _first_uncontrollable(A, B, discrete, tol):
    n = A.shape[0]
    scale = max(1.0, np.abs(A).max(), np.abs(B).max() if B.size else 0.0)
    for lam in np.linalg.eigvals(A):
        unstable = abs(lam) >= 1.0 - tol if discrete else lam.real >= -tol
        if not unstable:
            continue
        M = np.hstack([A - lam * np.eye(n), B])
        s = np.linalg.svd(M, compute_uv=False)  # n singular values
        if s[n - 1] <= tol * scale:
            return lam
    return None


def _check_stabilizable(A, B, discrete):
    lam = _first_uncontrollable(A, B, discrete, 1e-9)
    if lam is not None:
        region = "|lambda| >= 1" if discrete else "Re(lambda) >= 0"
        raise ValueError(
            f"(A, B): expected a stabilisable pair, got an uncontrollable mode lambda = {lam:.6g} with {region} "
            f"(PBH test: rank [A - lambda I, B] < n); no feedback u = -K x can stabilise it"
        )


def _solve(kind, solver, A, B, Q, R, N):
    try:
        return solver(A, B, Q, R, s=N)
    except (np.linalg.LinAlgError, ValueError) as exc:
        raise ValueError(
            f"Q: the {kind} Riccati equation has no stabilising solution with these weights ({exc}); "
            f"(Q, A) must have no unobservable mode on the stability boundary"
        ) from None


# ----------------------------------------------------------------------------- gains
def dlqr(A, B, Q, R, N=None) -> LQRResult:
    r"""Discrete-time infinite-horizon LQR gain.

    Minimises :math:`\sum_{t \ge 0} x'Qx + u'Ru + 2x'Nu` subject to ``x[t+1] = A x[t] + B u[t]``.

    Parameters
    ----------
    A : (n, n) array
    B : (n, m) array
    Q : (n, n) array or its diagonal (n,)
        Symmetric positive semidefinite state weight.
    R : (m, m) array or its diagonal (m,)
        Symmetric positive definite control weight.
    N : (n, m) array, optional
        Cross weight.

    Returns
    -------
    LQRResult
        ``K (m, n)`` with ``u = -K x``, ``S (n, n)`` from ``scipy.linalg.solve_discrete_are``,
        ``E (n,)`` eigenvalues of ``A - B K``.

    Raises
    ------
    ValueError
        Wrong shapes, asymmetric or indefinite weights, a non-stabilisable ``(A, B)``, or no
        stabilising Riccati solution.
    """
    A, B = _matrices(A, B)
    Q, R, N = _weights(A, B, Q, R, N)
    _check_stabilizable(A, B, discrete=True)
    S = _solve("discrete", scipy.linalg.solve_discrete_are, A, B, Q, R, N)
    K = np.linalg.solve(R + B.T @ S @ B, B.T @ S @ A + N.T)
    return LQRResult(K, S, np.linalg.eigvals(A - B @ K))


def lqr(A, B, Q, R, N=None) -> LQRResult:
    r"""Continuous-time infinite-horizon LQR gain.

    Minimises :math:`\int_0^\infty x'Qx + u'Ru + 2x'Nu\,dt` subject to
    :math:`\dot x = A x + B u`.  Arguments and result as :func:`dlqr`, with
    ``S`` from ``scipy.linalg.solve_continuous_are`` and ``K = R^{-1} (B'S + N')``.
    """
    A, B = _matrices(A, B)
    Q, R, N = _weights(A, B, Q, R, N)
    _check_stabilizable(A, B, discrete=False)
    S = _solve("continuous", scipy.linalg.solve_continuous_are, A, B, Q, R, N)
    K = np.linalg.solve(R, B.T @ S + N.T)
    return LQRResult(K, S, np.linalg.eigvals(A - B @ K))


def finite_horizon_lqr(A, B, Q, R, horizon: int, Qf=None, N=None) -> FiniteHorizonLQR:
    r"""Finite-horizon discrete LQR by the backward Riccati recursion.

    Minimises :math:`\sum_{t=0}^{T-1} (x'Qx + u'Ru + 2x'Nu) + x[T]' Q_f x[T]`:

    .. math::
        P_T = Q_f,\quad K_t = (R + B_t'P_{t+1}B_t)^{-1}(B_t'P_{t+1}A_t + N'),\quad
        P_t = Q + A_t'P_{t+1}A_t - (A_t'P_{t+1}B_t + N) K_t

    Parameters
    ----------
    A : (n, n) array or (T, n, n) array
        Dynamics, constant or time-varying (e.g. linearised along a trajectory).
    B : (n, m) array or (T, n, m) array
    Q, R, N : as in :func:`dlqr` (constant)
    horizon : int
        T >= 1.
    Qf : (n, n) array, optional
        Terminal weight (positive semidefinite); default ``Q``.

    Returns
    -------
    FiniteHorizonLQR
        ``K (T, m, n)``, ``P (T + 1, n, n)``; the optimal cost from ``x0`` is ``x0' P[0] x0``.
    """
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise ValueError(f"horizon: expected an integer >= 1, got {horizon!r}")
    T = int(horizon)
    As, Bs = as_float_array("A", A), as_float_array("B", B)
    if As.ndim == 3:
        if As.shape[0] != T:
            raise ValueError(f"A: expected (n, n) or (T, n, n) with T={T}, got {As.shape}")
    if Bs.ndim == 3:
        if Bs.shape[0] != T:
            raise ValueError(f"B: expected (n, m) or (T, n, m) with T={T}, got {Bs.shape}")
    A0, B0 = _matrices(As[0] if As.ndim == 3 else As, Bs[0] if Bs.ndim == 3 else Bs)
    n, m = B0.shape
    As = np.broadcast_to(A0 if As.ndim == 2 else As, (T, n, n))
    Bs = np.broadcast_to(B0 if Bs.ndim == 2 else Bs, (T, n, m))
    if As.shape != (T, n, n) or Bs.shape != (T, n, m):
        raise ValueError(f"A, B: expected (T, n, n) and (T, n, m), got {As.shape} and {Bs.shape}")
    Q, R, N = _weights(A0, B0, Q, R, N)
    Qf = Q if Qf is None else _sym("Qf", Qf, n, definite=False)
    P = np.empty((T + 1, n, n))
    K = np.empty((T, m, n))
    P[T] = Qf
    for t in range(T - 1, -1, -1):
        At, Bt, Pn = As[t], Bs[t], P[t + 1]
        PB = Pn @ Bt
        K[t] = np.linalg.solve(R + Bt.T @ PB, PB.T @ At + N.T)
        Pt = Q + At.T @ Pn @ At - (At.T @ PB + N) @ K[t]
        P[t] = 0.5 * (Pt + Pt.T)
    return FiniteHorizonLQR(K, P)


def c2d(A, B, dt: float) -> Discretization:
    r"""Zero-order-hold discretisation of :math:`\dot x = A x + B u` with step ``dt``.

    ``[[Ad, Bd], [0, I]] = expm([[A, B], [0, 0]] dt)`` (``scipy.linalg.expm``): exact for a
    control held constant over each step.

    Parameters
    ----------
    A : (n, n) array
    B : (n, m) array
    dt : float
        Sampling period (> 0), in the time unit of ``A``.

    Returns
    -------
    Discretization
        ``Ad (n, n)``, ``Bd (n, m)``.
    """
    A, B = _matrices(A, B)
    dt_a = as_float_array("dt", dt)
    if dt_a.ndim != 0 or not dt_a > 0:
        raise ValueError(f"dt: expected a positive scalar sampling period, got {dt!r}")
    n, m = B.shape
    M = np.zeros((n + m, n + m))
    M[:n, :n], M[:n, n:] = A, B
    E = scipy.linalg.expm(M * float(dt_a))
    return Discretization(E[:n, :n], E[:n, n:])
