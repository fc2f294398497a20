r"""Value, gradient and Hessian of a sum over a recursion, by forward sensitivities in one compiled loop.

For a recursion with a few parameters ``theta (k,)`` (a GARCH variance, a scalar filter),

    x_{t+1} = f(x_t, z_t, theta, c),        L = sum_t l(x_{t+1}, z_t, theta, c),

the state's first and second derivatives ``D_t = dx_t / dtheta`` (nx, k) and ``E_t = d2 x_t /
dtheta2`` (nx, k, k) obey, with ``w = (x, theta)`` and ``J = [D; I_k]`` ((nx + k), k),

    D_{t+1} = (df/dw) J,      E_{t+1}[i] = J' (d2 f_i / dw2) J + sum_j (df_i / dx_j) E_t[j],

and each term's gradient and Hessian follow from ``l``'s derivatives in ``(x_{t+1}, theta)`` the
same way.  CasADi differentiates ``f`` and ``l`` symbolically (exact, no hand-derived formulas);
:class:`SecondOrderRecursion` builds the augmented step carrying ``(x, D, E, L, g, H)`` (the
symmetric ``E`` and ``H`` as upper triangles, ``E``'s entries that stay zero left out), which
runs as one :class:`.scan.CompiledScan`: at most ``nx (1 + k + k (k + 1) / 2)`` state values
and ``1 + k + k (k + 1) / 2`` sums per step.  Worth it for small ``k`` (the work grows
as ``k^2``); the adjoint sweeps of :mod:`dynopt` remain the tool for many parameters.

Per step the loop can also write the state and the terms' scores ``dl_t / dtheta`` (``(T, nx +
k)``; the scores are what OPG and sandwich covariances need).
"""

from __future__ import annotations

from typing import Optional

import casadi as ca
import numpy as np


def _triu(k):
    return [(a, b) for a in range(k) for b in range(a, k)]


def _triu_of(M, k):
    return ca.vertcat(*[M[a, b] for a, b in _triu(k)])


class SecondOrderRecursion:
    """The augmented step that carries a recursion's sensitivities and its sums' derivatives.

    Parameters
    ----------
    f : casadi.Function
        ``(x (nx,), z (nz,), theta (k,), c (nc,)) -> x_next (nx,)``.
    l : casadi.Function
        ``(x_next (nx,), z (nz,), theta (k,), c (nc,)) -> l_t`` (scalar).
    l_value : casadi.Function, optional
        The part of ``l`` summed into ``L`` (same arguments; default ``l``): a term the caller
        sums faster outside the loop (``sum log x_t`` as one vectorised ``np.log`` over the
        per-step states instead of a scalar ``log`` per step) is left out here and added by the
        caller.  Gradients and Hessians always come from ``l``.
    name : str
        Name of the step Function.
    per_step : {"state", "state+score"}
        What the loop writes each step: ``x_next (nx,)``, or ``(x_next, score (k,))``.

    Attributes
    ----------
    step : casadi.Function
        ``(X, z, p) -> (X_next, y)`` with ``p = (theta, c)`` and per-step output ``y`` (``per_step``),
        for :class:`.scan.CompiledScan`.  ``X = (x, vec D, E entries, L, g, triu H, triu S)`` with
        ``S = sum_t score_t score_t'`` (the outer product of the scores, for OPG and sandwich
        covariances without writing the scores out).
    kept : list of (state, a, b)
        The second-sensitivity entries ``E[state][a, b]`` (``a <= b``) carried in ``X``: entries that
        stay exactly zero from a zero start (their recursion has no forcing, e.g. ``d2 s / d omega2``
        in a GARCH variance) are found symbolically and left out.
    n_state : int
        Length of ``X``.

    Notes
    -----
    ``x_0`` may depend on ``theta`` to first order (``D0`` in :meth:`initial_state`); its second
    derivatives are taken as zero.
    """

    def __init__(self, f: ca.Function, l: ca.Function, *, l_value: Optional[ca.Function] = None,
                 name: str = "sens_step", per_step: str = "state+score"):
        if per_step not in ("state", "state+score"):
            raise ValueError(f"per_step: expected 'state' or 'state+score', got {per_step!r}")
        for what, fn, n_out in (("f", f, None), ("l", l, 1), ("l_value", l_value, 1)):
            if fn is None:
                continue
            if not isinstance(fn, ca.Function) or fn.n_in() != 4 or fn.n_out() != 1:
                raise ValueError(f"{what}: expected a casadi.Function of (x, z, theta, c) with one output, got "
                                 f"{fn!r}")
            if n_out == 1 and fn.numel_out(0) != 1:
                raise ValueError(f"{what}: expected a scalar output, got shape {fn.size_out(0)}")
        nx, nz, k, nc = (f.size1_in(i) for i in range(4))
        if f.size1_out(0) != nx:
            raise ValueError(f"f: expected x_next of length {nx} (the length of x), got {f.size1_out(0)}")
        self.nx, self.k = nx, k
        x, z, th, c = ca.SX.sym("x", nx), ca.SX.sym("z", nz), ca.SX.sym("theta", k), ca.SX.sym("c", nc)
        D = ca.reshape(ca.SX.sym("D", nx * k), nx, k)
        w = ca.vertcat(x, th)
        J = ca.vertcat(D, ca.SX.eye(k))
        fx = f(x, z, th, c)
        Jf = ca.jacobian(fx, w)
        D1 = Jf @ J
        forcing = [J.T @ ca.hessian(fx[i], w)[0] @ J for i in range(nx)]
        entries = [(i, a, b) for i in range(nx) for a, b in _triu(k)]
        syms = {e: ca.SX.sym("E_%d_%d_%d" % e) for e in entries}
        zero = set(entries)
        while True:  # the largest set of entries that stay zero when they start at zero
            Es = self._matrices(syms, zero, nx, k)
            E1 = [forcing[i] + sum((Jf[i, j] * Es[j] for j in range(nx)), ca.SX.zeros(k, k)) for i in range(nx)]
            still = {(i, a, b) for (i, a, b) in zero if ca.simplify(E1[i][a, b]).is_zero()}
            if still == zero:
                break
            zero = still
        self.kept = [e for e in entries if e not in zero]
        xn = ca.SX.sym("xn", nx)  # l's derivatives in its own arguments, then evaluated at x_next
        wn = ca.vertcat(xn, th)
        lt = l(xn, z, th, c)
        Jl = ca.jacobian(lt, wn)
        Hl = ca.hessian(lt, wn)[0]
        subs = lambda e: ca.substitute(e, xn, fx)  # noqa: E731
        Jn = ca.vertcat(D1, ca.SX.eye(k))
        score = (subs(Jl) @ Jn).T
        Ht = Jn.T @ subs(Hl) @ Jn
        for j in range(nx):
            Ht = Ht + subs(Jl[j]) * E1[j]
        lv = lt if l_value is None else l_value(xn, z, th, c)
        m = k * (k + 1) // 2
        Lacc, gacc, Hacc, Sacc = ca.SX.sym("L"), ca.SX.sym("g", k), ca.SX.sym("H", m), ca.SX.sym("S", m)
        X = ca.vertcat(x, ca.vec(D), *[syms[e] for e in self.kept], Lacc, gacc, Hacc, Sacc)
        Xn = ca.vertcat(fx, ca.vec(D1), *[E1[i][a, b] for i, a, b in self.kept], Lacc + subs(lv), gacc + score,
                        Hacc + _triu_of(Ht, k), Sacc + _triu_of(score @ score.T, k))
        self.n_state = X.shape[0]
        y = fx if per_step == "state" else ca.vertcat(fx, score)
        self.step = ca.Function(name, [X, z, ca.vertcat(th, c)], [Xn, y], ["X", "z", "p"], ["X_next", "y"])
        self._sums_at = nx * (1 + k) + len(self.kept)
        iu = np.triu_indices(k)
        self._up, self._lo = iu[0] * k + iu[1], iu[1] * k + iu[0]

    @staticmethod
    def _matrices(syms, zero, nx, k):
        Es = []
        for i in range(nx):
            E = ca.SX.zeros(k, k)
            for a, b in _triu(k):
                if (i, a, b) not in zero:
                    E[a, b] = syms[(i, a, b)]
                    E[b, a] = syms[(i, a, b)]
            Es.append(E)
        return Es

    def initial_state(self, x0, D0=None) -> np.ndarray:
        """``X_0 (n_state,)``: ``x0 (nx,)``, its derivative ``D0 (nx, k)`` (default zero), sums zero."""
        x0 = np.atleast_1d(np.asarray(x0, dtype=np.float64))
        if x0.shape != (self.nx,):
            raise ValueError(f"x0: expected shape ({self.nx},), got {x0.shape}")
        X = np.zeros(self.n_state)
        X[:self.nx] = x0
        if D0 is not None:
            D0 = np.asarray(D0, dtype=np.float64)
            if D0.shape != (self.nx, self.k):
                raise ValueError(f"D0: expected shape ({self.nx}, {self.k}), got {D0.shape}")
            X[self.nx:self.nx * (1 + self.k)] = D0.ravel(order="F")
        return X

    def _sym(self, v):
        k = self.k
        M = np.empty(k * k)
        M[self._up] = v
        M[self._lo] = v
        return M.reshape(k, k)

    def sums(self, XT):
        """``(L, g (k,), H (k, k), S (k, k))`` from the final augmented state ``XT (n_state,)``:
        the sum of ``l``, its gradient and Hessian, and the outer product of the scores."""
        k, m = self.k, self.k * (self.k + 1) // 2
        s = XT[self._sums_at:]
        return float(s[0]), s[1:1 + k].copy(), self._sym(s[1 + k:1 + k + m]), self._sym(s[1 + k + m:])

    def run(self, scan, X0, Z, theta, c, *, outputs: bool = False, Y: Optional[np.ndarray] = None):
        """Run the compiled :attr:`step` (``scan``, a :class:`.scan.CompiledScan` of it):
        ``(L, g (k,), H (k, k), S (k, k), Y)``, ``Y`` the per-step outputs (``(T, nx)`` or ``(T, nx +
        k)``, see ``per_step``; None unless ``outputs``)."""
        p = np.concatenate([np.asarray(theta, dtype=np.float64).ravel(), np.asarray(c, dtype=np.float64).ravel()])
        XT, Y = scan(X0, Z, p, outputs=outputs, Y=Y)
        return (*self.sums(XT), Y)
