"""Policies: linear state feedback, tanh MLP, open-loop control sequences.

Every policy here can read exogenous channels (a reference, a setpoint, a measured
disturbance) from the problem's X: give ``channels=("ref",)`` (names of X's dict entries,
one column each unless ``n_exog`` says otherwise) and build the Problem with
``X={"ref": r}``.

Per evaluation the engine calls ``bind`` once: the parameter vector is parsed there (not
at every step), and when the policy block is a decision variable its adjoint is formed as
one product over all steps (:class:`~dynopt.models.linear.OuterSum`) instead of one per
step; when it is not, no parameter adjoint is formed at all.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from dynopt import Policy, SliceGrad
from dynopt.core.validation import check_shape

from ._checks import exog, flag, integer, number, real_array
from .linear import OuterSum


_dot = np.dot
"""2-D matrix products: ``np.dot`` calls BLAS with less per-call overhead than ``@`` on the
small per-step matrices of a sweep (about 1 us against 2.5 us for (32, 8) x (8, 8))."""


def _check_params(comp, params):
    params = np.asarray(params, dtype=np.float64)
    return check_shape(f"{type(comp).__name__} parameters", params, (comp.n_params,))


class _FeedbackBound:
    __slots__ = ("negKT", "negK", "k0", "GT", "grad", "acc")


class LinearFeedback(Policy):
    r"""``u = -K x (+ k0) (+ G X)``.

    Parameters
    ----------
    n_state, n_control : int
        n and m.
    bias : bool
        Add a constant ``k0`` (m,).
    K0 : (m, n) array, optional
        Initial gain (``(n,)`` accepted when m = 1); default zeros.
    n_exog : int, optional, keyword-only
        Number of exogenous columns read (default: one per channel).
    channels : sequence of str, optional, keyword-only
        Named X channels read (e.g. a reference ``("ref",)``); ``G`` (m, nX) is the
        feedforward gain on them, so ``u = -K x + G r`` is a tracking controller.

    The policy block is ``K`` (m, n) row-major, then ``k0`` (m,) if ``bias``, then ``G``
    (m, nX) row-major if the policy reads X.
    """

    def __init__(self, n_state: int, n_control: int, bias: bool = False, K0=None, *,
                 n_exog: Optional[int] = None, channels: Optional[Sequence[str]] = None):
        self.n_state = integer("n_state", n_state, minimum=1)
        self.n_control = integer("n_control", n_control, minimum=1)
        self.bias = flag("bias", bias)
        self.n_exog, names = exog(n_exog, channels)
        if names is not None:
            self.channels = names
        n, m = self.n_state, self.n_control
        spec = [("K", (m, n))]
        if self.bias:
            spec.append(("k0", (m,)))
        if self.n_exog:
            spec.append(("G", (m, self.n_exog)))
        self.param_spec = tuple(spec)
        self._np = m * n + (m if self.bias else 0) + m * self.n_exog
        self._K0 = None
        if K0 is not None:
            K = real_array("K0", K0)
            if K.shape == (n,) and m == 1:
                K = K[None]
            if K.shape != (m, n):
                alt = f" or ({n},)" if m == 1 else ""
                raise ValueError(f"K0: expected the (m, n) = ({m}, {n}) gain{alt} (n_control x n_state), "
                                 f"got shape {K.shape}")
            self._K0 = K

    @property
    def n_params(self) -> int:
        return self._np

    def default_params(self):
        p = np.zeros(self._np)
        if self._K0 is not None:
            p[: self.n_control * self.n_state] = self._K0.ravel()
        return p

    def bind(self, params, *, grad: bool):
        """Parse ``K, k0, G`` once per evaluation; defer (or skip, ``grad=False``) their adjoint."""
        return self._bind(params, bool(grad), grad != "per_step")

    def _bind(self, phi, grad, defer):
        phi = _check_params(self, phi)
        m, n, nX = self.n_control, self.n_state, self.n_exog
        b = _FeedbackBound()
        K = phi[:m * n].reshape(m, n)
        b.negK = -K
        b.negKT = np.ascontiguousarray(b.negK.T)
        off = m * n
        b.k0 = phi[off:off + m] if self.bias else None
        off += m if self.bias else 0
        b.GT = np.ascontiguousarray(phi[off:off + m * nX].reshape(m, nX).T) if nX else None
        b.grad = grad
        b.acc = OuterSum(1 + (nX > 0), colsum=self.bias, width=max(m, n, nX)) if (grad and defer) else None
        return b

    def forward(self, t, x, X, phi):
        if not isinstance(phi, _FeedbackBound):  # called outside an engine evaluation
            phi = self._bind(phi, True, False)
        u = _dot(x, phi.negKT)
        if phi.k0 is not None:
            u += phi.k0
        if phi.GT is not None:
            u += _dot(X, phi.GT)
        return u, (x, X, phi)

    def vjp(self, ctx, u_bar):
        x, X, b = ctx
        x_bar = _dot(u_bar, b.negK)
        if not b.grad:
            return x_bar, None
        if b.acc is not None:
            if b.GT is None:
                b.acc.add1(u_bar, x)
            else:
                b.acc.add(u_bar, x, X)
            return x_bar, None
        parts = [-(u_bar.T @ x).ravel()]
        if self.bias:
            parts.append(u_bar.sum(axis=0))
        if b.GT is not None:
            parts.append((u_bar.T @ X).ravel())
        return x_bar, np.concatenate(parts)

    def param_grad(self, bound):
        if not isinstance(bound, _FeedbackBound) or bound.acc is None:
            return None
        prods, sums = bound.acc.take()
        if prods is None:
            return None
        parts = [-prods[0].ravel()]
        if self.bias:
            parts.append(sums)
        if self.n_exog:
            parts.append(prods[1].ravel())
        return np.concatenate(parts)

    def __repr__(self):
        extra = f", n_exog={self.n_exog}" if self.n_exog else ""
        return f"LinearFeedback(n={self.n_state}, m={self.n_control}, bias={self.bias}{extra})"


class _MLPBound:
    __slots__ = ("Ws", "WTs", "bs", "grad", "accs")


class MLPPolicy(Policy):
    r"""A tanh multilayer perceptron, optionally squashed to ``|u| <= u_max``.

    ``obs = (features(x), X)``; ``h_1 = tanh(W_1 obs + b_1)``, ..., ``a = W_L h_{L-1} + b_L``,
    ``u = u_max tanh(a)`` (or ``u = a`` without ``u_max``).

    Parameters
    ----------
    n_state, n_control : int
    hidden : sequence of int
        Hidden layer widths, e.g. ``(32, 32)``; ``()`` gives an affine policy of the features.
    u_max : float, optional
        Control bound (units of the control), > 0.
    angles : sequence of int
        Distinct state indices that are angles: each is replaced in ``obs`` by ``(cos, sin)``
        at its place, e.g. pendulum ``(theta, omega)`` with ``angles=(0,)`` gives
        ``obs = (cos theta, sin theta, omega)``.
    seed : int
        Seed of the default initialisation: ``W_i ~ N(0, 1/fan_in)`` drawn in layer order from
        one ``numpy.random.default_rng(seed)``, biases zero.
    n_exog : int, optional, keyword-only
        Number of exogenous columns appended to ``obs`` (default: one per channel).
    channels : sequence of str, optional, keyword-only
        Named X channels read (a reference, a setpoint), appended to ``obs`` in this order.

    The policy block is ``W1, b1, W2, b2, ...`` (each ``W_i`` is (out, in), row-major).
    """

    def __init__(self, n_state: int, n_control: int, hidden: Sequence[int] = (32, 32),
                 u_max: Optional[float] = None, angles: Sequence[int] = (), seed: int = 0, *,
                 n_exog: Optional[int] = None, channels: Optional[Sequence[str]] = None):
        self.n_state = integer("n_state", n_state, minimum=1)
        self.n_control = integer("n_control", n_control, minimum=1)
        if isinstance(hidden, (str, bytes)) or not hasattr(hidden, "__iter__"):
            raise TypeError(f"hidden: expected a sequence of layer widths such as (32, 32), got {hidden!r}")
        self.hidden = tuple(integer("hidden", h, minimum=1) for h in hidden)
        if isinstance(angles, (str, bytes)) or not hasattr(angles, "__iter__"):
            raise TypeError(f"angles: expected a sequence of state indices such as (0,), got {angles!r}")
        ang = [integer("angles", a, minimum=0) for a in angles]
        for a in ang:
            if a >= self.n_state:
                raise ValueError(f"angles: expected state indices in [0, {self.n_state}), got {a}")
        if len(set(ang)) != len(ang):
            raise ValueError(f"angles: expected distinct state indices, got {tuple(ang)}")
        self.angles = tuple(sorted(ang))
        self.u_max = number("u_max", u_max, minimum=0.0, allow_none=True)
        self.seed = integer("seed", seed, minimum=0)
        self.n_exog, names = exog(n_exog, channels)
        if names is not None:
            self.channels = names
        n = self.n_state
        self.n_obs = n + len(self.angles) + self.n_exog
        sizes = (self.n_obs,) + self.hidden + (self.n_control,)
        self.sizes = sizes
        spec = []
        for i in range(len(sizes) - 1):
            spec += [(f"W{i + 1}", (sizes[i + 1], sizes[i])), (f"b{i + 1}", (sizes[i + 1],))]
        self.param_spec = tuple(spec)
        self._np = sum(sizes[i + 1] * (sizes[i] + 1) for i in range(len(sizes) - 1))
        # observation map: angle i -> (cos, sin) at columns (j, j+1); plain state i -> column j
        self._angle_cols, self._plain_cols = [], []
        j = 0
        for i in range(n):
            if i in self.angles:
                self._angle_cols.append((i, j))
                j += 2
            else:
                self._plain_cols.append((i, j))
                j += 1
        self._exog_col = j
        # plain states in runs of consecutive columns (one copy per run)
        self._plain_runs = []
        for i, j in self._plain_cols:
            if self._plain_runs and self._plain_runs[-1][1] == i and self._plain_runs[-1][3] == j:
                i0, _, j0, _ = self._plain_runs[-1]
                self._plain_runs[-1] = (i0, i + 1, j0, j + 1)
            else:
                self._plain_runs.append((i, i + 1, j, j + 1))

    @property
    def n_params(self) -> int:
        return self._np

    def default_params(self):
        rng = np.random.default_rng(self.seed)
        Ws = [rng.standard_normal((self.sizes[i + 1], self.sizes[i])) / np.sqrt(self.sizes[i])
              for i in range(len(self.sizes) - 1)]
        return np.concatenate([np.concatenate([W.ravel(), np.zeros(W.shape[0])]) for W in Ws])

    def bind(self, params, *, grad: bool):
        """Parse the layers once per evaluation; the weight adjoints become one product per
        layer over all steps (or none with ``grad=False``)."""
        return self._bind(params, bool(grad), grad != "per_step")

    def _bind(self, phi, grad, defer):
        phi = _check_params(self, phi)
        b = _MLPBound()
        b.Ws, b.WTs, b.bs = [], [], []
        off = 0
        for i in range(len(self.sizes) - 1):
            o, n = self.sizes[i + 1], self.sizes[i]
            W = phi[off:off + o * n].reshape(o, n)
            off += o * n
            b.Ws.append(W)
            b.WTs.append(np.ascontiguousarray(W.T))
            b.bs.append(phi[off:off + o])
            off += o
        b.grad = grad
        b.accs = [OuterSum(1, colsum=True, width=max(W.shape)) for W in b.Ws] if (grad and defer) else None
        return b

    def _obs(self, x, X):
        if not self.angles and not self.n_exog:
            return x
        obs = np.empty((x.shape[0], self.n_obs))
        for i, j in self._angle_cols:
            np.cos(x[:, i], out=obs[:, j])
            np.sin(x[:, i], out=obs[:, j + 1])
        for i0, i1, j0, j1 in self._plain_runs:
            obs[:, j0:j1] = x[:, i0:i1]
        if self.n_exog:
            obs[:, self._exog_col:] = X
        return obs

    def forward(self, t, x, X, phi):
        if not isinstance(phi, _MLPBound):  # called outside an engine evaluation
            phi = self._bind(phi, True, False)
        h = self._obs(x, X)
        acts = [h]
        L = len(phi.Ws)
        for i in range(L - 1):
            h = _dot(h, phi.WTs[i])
            h += phi.bs[i]
            np.tanh(h, out=h)
            acts.append(h)
        a = _dot(h, phi.WTs[L - 1])
        a += phi.bs[L - 1]
        if self.u_max is None:
            return a, (x, acts, phi, None)
        s = np.tanh(a, out=a)
        return self.u_max * s, (x, acts, phi, s)

    def vjp(self, ctx, u_bar):
        x, acts, b, s = ctx
        if s is None:
            g = u_bar
        else:
            g = s * s
            np.subtract(1.0, g, out=g)
            g *= u_bar
            g *= self.u_max
        Ws = b.Ws
        phi_bar = None
        if b.grad and b.accs is None:
            phi_bar = np.empty(self._np)
            offs = np.cumsum([0] + [W.size + W.shape[0] for W in Ws])
        for i in range(len(Ws) - 1, -1, -1):
            h = acts[i]
            if b.accs is not None:
                b.accs[i].add1(g, h)
            elif phi_bar is not None:
                W = Ws[i]
                o = offs[i]
                phi_bar[o:o + W.size] = (g.T @ h).ravel()
                phi_bar[o + W.size:o + W.size + W.shape[0]] = g.sum(axis=0)
            g = _dot(g, Ws[i])
            if i > 0:
                hh = h * h
                np.subtract(1.0, hh, out=hh)
                g *= hh
        if not self.angles and not self.n_exog:
            return g, phi_bar
        if not self.angles:
            return g[:, :self.n_state], phi_bar
        x_bar = np.empty_like(x)
        obs = acts[0]
        for i0, i1, j0, j1 in self._plain_runs:
            x_bar[:, i0:i1] = g[:, j0:j1]
        for i, j in self._angle_cols:
            np.subtract(obs[:, j] * g[:, j + 1], obs[:, j + 1] * g[:, j], out=x_bar[:, i])
        return x_bar, phi_bar

    def param_grad(self, bound):
        if not isinstance(bound, _MLPBound) or bound.accs is None:
            return None
        parts = []
        for acc, W in zip(bound.accs, bound.Ws):
            prods, sums = acc.take()
            if prods is None:
                return None
            parts += [prods[0].ravel(), sums]
        return np.concatenate(parts)

    def __repr__(self):
        extra = f", n_exog={self.n_exog}" if self.n_exog else ""
        return (f"MLPPolicy(n={self.n_state}, m={self.n_control}, hidden={self.hidden}, "
                f"u_max={self.u_max}, angles={self.angles}{extra})")


class _OpenLoopBound:
    __slots__ = ("U", "GT", "grad", "acc")

    def __init__(self, U, GT, grad, acc):
        self.U, self.GT, self.grad, self.acc = U, GT, grad, acc


class OpenLoop(Policy):
    r"""An open-loop control sequence ``u[t] = U[t]`` (``+ G X[t]`` when it reads X).

    Parameters
    ----------
    n_state, n_control : int
    horizon : int
        T, the number of steps (the Problem's horizon).
    U0 : (T, m) array, optional
        Initial sequence (``(T,)`` accepted when m = 1, and the flat row-major ``(T m,)``);
        default zeros.
    n_exog : int, optional, keyword-only
        Number of exogenous columns read (default: one per channel).
    channels : sequence of str, optional, keyword-only
        Named X channels read (e.g. a reference): ``u[t] = U[t] + G r[t]`` with a
        feedforward gain ``G`` (m, nX), so the same sequence serves every reference.  Such
        a policy has no CasADi form (NumPy sweeps only).

    The policy block is ``U`` of shape (T, m), row-major (then ``G`` (m, nX) row-major when
    the policy reads X); bounds on ``U`` (L-BFGS-B) are control limits.  Without X every
    scenario gets the same control.
    """

    def __init__(self, n_state: int, n_control: int, horizon: int, U0=None, *,
                 n_exog: Optional[int] = None, channels: Optional[Sequence[str]] = None):
        self.n_state = integer("n_state", n_state, minimum=1)
        self.n_control = integer("n_control", n_control, minimum=1)
        self.horizon = integer("horizon", horizon, minimum=1)
        self.n_exog, names = exog(n_exog, channels)
        if names is not None:
            self.channels = names
        T, m, nX = self.horizon, self.n_control, self.n_exog
        self.param_spec = (("U", (T, m)),) + ((("G", (m, nX)),) if nX else ())
        self._np = T * m + m * nX
        self._U0 = None
        if U0 is not None:
            U = real_array("U0", U0)
            if U.shape != (T, m) and U.shape != (T * m,):
                raise ValueError(f"U0: expected the (T, m) = ({T}, {m}) control sequence (or its flat row-major "
                                 f"({T * m},) form), got shape {U.shape}")
            self._U0 = U.ravel().copy()

    @property
    def n_params(self) -> int:
        return self._np

    def default_params(self):
        p = np.zeros(self._np)
        if self._U0 is not None:
            p[:self._U0.size] = self._U0
        return p

    def bind(self, params, *, grad: bool):
        """View the sequence as (T, m) once per evaluation; ``grad=False`` skips its adjoint."""
        return self._bind(params, bool(grad), grad != "per_step")

    def _bind(self, phi, grad, defer):
        phi = _check_params(self, phi)
        T, m, nX = self.horizon, self.n_control, self.n_exog
        U = phi[:T * m].reshape(T, m)
        GT = np.ascontiguousarray(phi[T * m:].reshape(m, nX).T) if nX else None
        acc = OuterSum(1, width=max(m, nX)) if (nX and grad and defer) else None
        return _OpenLoopBound(U, GT, grad, acc)

    def forward(self, t, x, X, phi):
        if not isinstance(phi, _OpenLoopBound):  # called outside an engine evaluation
            phi = self._bind(phi, True, False)
        if phi.GT is None:
            return np.broadcast_to(phi.U[t], (x.shape[0], self.n_control)), (t, None, phi)
        u = _dot(X, phi.GT)
        u += phi.U[t]
        return u, (t, X, phi)

    def vjp(self, ctx, u_bar):
        t, X, b = ctx
        if not b.grad:
            return None, None
        m = self.n_control
        gU = u_bar.sum(axis=0)
        if b.GT is None:
            return None, SliceGrad(slice(t * m, (t + 1) * m), gU)
        if b.acc is not None:
            b.acc.add1(u_bar, X)
            return None, SliceGrad(slice(t * m, (t + 1) * m), gU)
        g = np.zeros(self._np)
        g[t * m:(t + 1) * m] = gU
        g[self.horizon * m:] = np.dot(u_bar.T, X).ravel()
        return None, g

    def param_grad(self, bound):
        if not isinstance(bound, _OpenLoopBound) or bound.acc is None:
            return None
        prods, _ = bound.acc.take()
        if prods is None:
            return None
        g = np.zeros(self._np)
        g[self.horizon * self.n_control:] = prods[0].ravel()
        return g

    def __repr__(self):
        extra = f", n_exog={self.n_exog}" if self.n_exog else ""
        return f"OpenLoop(n={self.n_state}, m={self.n_control}, horizon={self.horizon}{extra})"
