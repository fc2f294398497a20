"""Policies: linear state feedback, tanh MLP, open-loop control sequences."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from dynopt import Policy, SliceGrad
from dynopt.core.validation import check_int


class LinearFeedback(Policy):
    r"""``u = -K x (+ k0)``; the policy block is ``K`` (m, n) row-major, then ``k0`` (m,) if ``bias``."""

    def __init__(self, n_state: int, n_control: int, bias: bool = False, K0=None):
        self.n_state = check_int("n_state", n_state, minimum=1)
        self.n_control = check_int("n_control", n_control, minimum=1)
        self.bias = bool(bias)
        spec = [("K", (n_control, n_state))]
        if bias:
            spec.append(("k0", (n_control,)))
        self.param_spec = tuple(spec)
        self._K0 = None if K0 is None else np.asarray(K0, dtype=np.float64)

    def default_params(self):
        p = np.zeros(self.n_params)
        if self._K0 is not None:
            p[: self.n_control * self.n_state] = self._K0.ravel()
        return p

    def forward(self, t, x, X, phi):
        m, n = self.n_control, self.n_state
        K = phi[: m * n].reshape(m, n)
        u = -(x @ K.T)
        if self.bias:
            u += phi[m * n:]
        return u, (x, K)

    def vjp(self, ctx, u_bar):
        x, K = ctx
        gK = -(u_bar.T @ x)
        g = np.concatenate([gK.ravel(), u_bar.sum(axis=0)]) if self.bias else gK.ravel()
        return -(u_bar @ K), g

    def __repr__(self):
        return f"LinearFeedback(n={self.n_state}, m={self.n_control}, bias={self.bias})"


class MLPPolicy(Policy):
    r"""A tanh multilayer perceptron, optionally squashed to ``|u| <= u_max``.

    ``obs = features(x)``; ``h_1 = tanh(W_1 obs + b_1)``, ..., ``a = W_L h_{L-1} + b_L``,
    ``u = u_max tanh(a)`` (or ``u = a`` without ``u_max``).

    Parameters
    ----------
    n_state, n_control : int
    hidden : sequence of int
        Hidden layer widths, e.g. ``(32, 32)``.
    u_max : float, optional
        Control bound (units of the control).
    angles : sequence of int
        State indices that are angles: each is replaced in ``obs`` by ``(cos, sin)`` at its
        place, e.g. pendulum ``(theta, omega)`` with ``angles=(0,)`` gives
        ``obs = (cos theta, sin theta, omega)``.
    seed : int
        Seed of the default initialisation: ``W_i ~ N(0, 1/fan_in)`` drawn in layer order from
        one ``numpy.random.default_rng(seed)``, biases zero.

    The policy block is ``W1, b1, W2, b2, ...`` (each ``W_i`` is (out, in), row-major).
    """

    def __init__(self, n_state: int, n_control: int, hidden: Sequence[int] = (32, 32),
                 u_max: Optional[float] = None, angles: Sequence[int] = (), seed: int = 0):
        self.n_state = check_int("n_state", n_state, minimum=1)
        self.n_control = check_int("n_control", n_control, minimum=1)
        self.hidden = tuple(check_int("hidden", h, minimum=1) for h in hidden)
        self.angles = tuple(sorted(int(a) for a in angles))
        for a in self.angles:
            if not 0 <= a < n_state:
                raise ValueError(f"angles: expected state indices in [0, {n_state}), got {a}")
        if u_max is not None and not u_max > 0:
            raise ValueError(f"u_max: expected a positive bound, got {u_max}")
        self.u_max = None if u_max is None else float(u_max)
        self.seed = seed
        self.n_obs = n_state + len(self.angles)
        sizes = (self.n_obs,) + self.hidden + (n_control,)
        self.sizes = sizes
        spec = []
        for i in range(len(sizes) - 1):
            spec += [(f"W{i + 1}", (sizes[i + 1], sizes[i])), (f"b{i + 1}", (sizes[i + 1],))]
        self.param_spec = tuple(spec)
        # observation map: angle i -> (cos, sin) at columns (j, j+1); plain state i -> column j
        self._angle_cols, self._plain_cols = [], []
        j = 0
        for i in range(n_state):
            if i in self.angles:
                self._angle_cols.append((i, j))
                j += 2
            else:
                self._plain_cols.append((i, j))
                j += 1
        self._cached = (None, None)

    def default_params(self):
        rng = np.random.default_rng(self.seed)
        Ws = [rng.standard_normal((self.sizes[i + 1], self.sizes[i])) / np.sqrt(self.sizes[i])
              for i in range(len(self.sizes) - 1)]
        return np.concatenate([np.concatenate([W.ravel(), np.zeros(W.shape[0])]) for W in Ws])

    def _layers(self, phi):
        # Views into phi; cached by identity of the phi object (views follow its contents).
        cached_phi, layers = self._cached
        if cached_phi is phi:
            return layers
        layers, off = [], 0
        for i in range(len(self.sizes) - 1):
            o, n = self.sizes[i + 1], self.sizes[i]
            W = phi[off:off + o * n].reshape(o, n)
            off += o * n
            layers.append((W, W.T, phi[off:off + o], slice(off - o * n, off), slice(off, off + o)))
            off += o
        self._cached = (phi, layers)
        return layers

    def forward(self, t, x, X, phi):
        if self.angles:
            obs = np.empty((x.shape[0], self.n_obs))
            for i, j in self._angle_cols:
                np.cos(x[:, i], out=obs[:, j])
                np.sin(x[:, i], out=obs[:, j + 1])
            for i, j in self._plain_cols:
                obs[:, j] = x[:, i]
        else:
            obs = x
        layers = self._layers(phi)
        acts = [obs]
        h = obs
        for _, WT, b, _, _ in layers[:-1]:
            h = h @ WT
            h += b
            np.tanh(h, out=h)
            acts.append(h)
        _, WT, b, _, _ = layers[-1]
        a = h @ WT
        a += b
        if self.u_max is None:
            return a, (x, acts, layers, None)
        s = np.tanh(a, out=a)
        return self.u_max * s, (x, acts, layers, s)

    def vjp(self, ctx, u_bar):
        x, acts, layers, s = ctx
        g = u_bar if s is None else u_bar * (self.u_max * (1.0 - s * s))
        phi_bar = np.empty(self.n_params)
        for i in range(len(layers) - 1, -1, -1):
            W, _, _, sW, sb = layers[i]
            h = acts[i]
            np.sum(g, axis=0, out=phi_bar[sb])
            np.matmul(g.T, h, out=phi_bar[sW].reshape(W.shape))
            g = g @ W
            if i > 0:
                g *= 1.0 - h * h
        if not self.angles:
            return g, phi_bar
        x_bar = np.empty_like(x)
        obs = acts[0]
        for i, j in self._plain_cols:
            x_bar[:, i] = g[:, j]
        for i, j in self._angle_cols:
            x_bar[:, i] = obs[:, j] * g[:, j + 1] - obs[:, j + 1] * g[:, j]
        return x_bar, phi_bar

    def __repr__(self):
        return (f"MLPPolicy(n={self.n_state}, m={self.n_control}, hidden={self.hidden}, "
                f"u_max={self.u_max}, angles={self.angles})")


class OpenLoop(Policy):
    r"""An open-loop control sequence ``u[t] = U[t]``, the same for every scenario.

    The policy block is ``U`` of shape (T, m), row-major; bounds on it (L-BFGS-B) are control
    limits.
    """

    def __init__(self, n_state: int, n_control: int, horizon: int, U0=None):
        self.n_state = check_int("n_state", n_state, minimum=1)
        self.n_control = check_int("n_control", n_control, minimum=1)
        self.horizon = check_int("horizon", horizon, minimum=1)
        self.param_spec = (("U", (horizon, n_control)),)
        self._U0 = None if U0 is None else np.asarray(U0, dtype=np.float64).ravel()

    def default_params(self):
        return np.zeros(self.n_params) if self._U0 is None else self._U0.copy()

    def forward(self, t, x, X, phi):
        m = self.n_control
        return np.broadcast_to(phi[t * m:(t + 1) * m], (x.shape[0], m)), t

    def vjp(self, t, u_bar):
        m = self.n_control
        return None, SliceGrad(slice(t * m, (t + 1) * m), u_bar.sum(axis=0))

    def __repr__(self):
        return f"OpenLoop(n={self.n_state}, m={self.n_control}, horizon={self.horizon})"
