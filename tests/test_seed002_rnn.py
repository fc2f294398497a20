"""The two-step hand derivation of dE/dW_R in shared/seeds/002 for a small tanh RNN.

h_t = tanh(z_t), z_t = W_F x_t + W_R h_{t-1} + b; E depends on h_2 only.  Unrolled twice:
dE/dW_R = delta_2 h_1' + ((W_R' delta_2) * tanh'(z_1)) h_0',  delta_2 = dE/dz_2
(the seed's "h_{t-1} + W_R tanh'(z_{t-1}) h_{t-2}" written with matrix orders fixed, which,
as seed 003 warns, shapes alone cannot check).
"""

import numpy as np

from dynopt import Plant, Problem
from dynopt.models import QuadraticTerminal


class TanhRNN(Plant):
    """h[t+1] = tanh(W_F x[t] + W_R h[t] + b); x[t] is the exogenous input X[t]."""

    def __init__(self, n_hidden, n_in):
        self.n_state, self.n_control, self.n_exog = n_hidden, 0, n_in
        self.param_spec = (("W_F", (n_hidden, n_in)), ("W_R", (n_hidden, n_hidden)), ("b", (n_hidden,)))

    def forward(self, hist, u, X, theta):
        p = self.unflatten(theta)
        h = np.tanh(X @ p["W_F"].T + hist[0] @ p["W_R"].T + p["b"])
        return h, (hist[0], X, h, p)

    def vjp(self, ctx, hb):
        h_prev, X, h, p = ctx
        dz = hb * (1 - h * h)
        g = np.concatenate([(dz.T @ X).ravel(), (dz.T @ h_prev).ravel(), dz.sum(0)])
        return (dz @ p["W_R"],), None, g


def test_two_step_hand_derivation():
    r = np.random.default_rng(0)
    n, d = 3, 2
    W_F, W_R, b = r.standard_normal((n, d)), 0.8 * r.standard_normal((n, n)), 0.1 * r.standard_normal(n)
    h0, X = r.standard_normal(n), r.standard_normal((2, d))
    y = r.standard_normal(n)
    rnn = TanhRNN(n, d)
    theta = rnn.flatten(W_F=W_F, W_R=W_R, b=b)
    # E = |h_2 - y|^2 as a terminal cost with P = I and x_ref = y
    prob = Problem(rnn, terminal_cost=QuadraticTerminal(np.eye(n), x_ref=y), horizon=2, x0=h0,
                   X=X, params={"plant": theta}, decision=("plant",))
    E, g = prob.value_and_grad(prob.W0)
    gW_R = prob.named(g)["plant"]["W_R"]

    z1 = W_F @ X[0] + W_R @ h0 + b
    h1 = np.tanh(z1)
    z2 = W_F @ X[1] + W_R @ h1 + b
    h2 = np.tanh(z2)
    assert E == np.sum((h2 - y) ** 2)
    delta2 = 2 * (h2 - y) * (1 - h2 ** 2)                       # dE/dz_2
    hand = np.outer(delta2, h1) + np.outer((W_R.T @ delta2) * (1 - h1 ** 2), h0)
    # same arithmetic in a different order: agreement to rounding (1e-14 relative)
    np.testing.assert_allclose(gW_R, hand, rtol=1e-13, atol=1e-15)
    # and the transposed ordering the forum thread (seed 003) warns about is really different
    wrong = np.outer(h1, delta2) + np.outer(h0, (W_R.T @ delta2) * (1 - h1 ** 2))
    assert np.abs(gW_R - wrong).max() > 1e-3
