r"""The constant-mean GARCH(1, 1) likelihood with its exact gradient, Hessian and scores in one
compiled pass over the data (:mod:`dynopt.casadi.sensitivities`).

The recursion, written once for CasADi (which differentiates it), with ``m_t = [t >= 1]`` so that
step 0 uses the fixed backcast ``b``:

    s_t = omega + alpha (m_t (y_{t-1} - mu)^2 + (1 - m_t) b) + beta s_{t-1},     s_{-1} = b
    l_t = -(log 2 pi + log s_t + (y_t - mu)^2 / s_t) / 2

Same numbers as :func:`.garch_newton.derivatives` (the lfilter form, tested to rounding), about
3x faster per pass on long series.  The loop is compiled once per machine (gcc, dynopt's private
cache) in a background thread the first time a fit asks for it (:func:`dynopt.casadi.scan.scan_when_ready`);
until it is ready, and with ``DYNOPT_COMPILE=0`` or no compiler, fits use the lfilter form.
"""

from __future__ import annotations

import functools
from typing import Callable, Optional

import numpy as np

from dynopt.casadi import scan as _scan
from dynopt.casadi import sensitivities as _sens

LOG2PI = float(np.log(2 * np.pi))
KEY = ("garch11", "constant-mean", 1)
PREFIX = "dynopt_garch11"
K = 4
FLAGS = _scan.FLAGS + ("-freciprocal-math",)
"""gcc flags: ``-freciprocal-math`` lets the step divide by ``s_t`` once (its derivatives divide by
``s_t`` nine times); it changes results by rounding only (tested against the lfilter form)."""


@functools.lru_cache(maxsize=1)
def recursion() -> "_sens.SecondOrderRecursion":
    """The augmented CasADi step (state ``s`` and its sensitivities, sums of ``l``)."""
    import casadi as ca
    s, sn = ca.SX.sym("s"), ca.SX.sym("s_next")
    z = ca.SX.sym("z", 3)  # y_{t-1}, y_t, m_t
    th = ca.SX.sym("theta", K)  # mu, omega, alpha, beta
    c = ca.SX.sym("c", 1)  # backcast
    mu, omega, alpha, beta = th[0], th[1], th[2], th[3]
    sq = z[2] * (z[0] - mu) ** 2 + (1 - z[2]) * c[0]
    f = ca.Function("garch_f", [s, z, th, c], [omega + alpha * sq + beta * s])
    e = z[1] - mu
    lt = ca.Function("garch_l", [sn, z, th, c], [-0.5 * (LOG2PI + ca.log(sn) + e * e / sn)])
    # the sum of log s_t is added outside the loop (one vectorised np.log over the states)
    lv = ca.Function("garch_lv", [sn, z, th, c], [-0.5 * (LOG2PI + e * e / sn)])
    return _sens.SecondOrderRecursion(f, lt, l_value=lv, name="garch11_sens", per_step="state")


def build_step():
    """The step Function compiled by :func:`pass_function`."""
    return recursion().step


def pass_function(y, backcast, *, block: bool = False) -> Optional[Callable]:
    """``derivs(values) -> (llf, grad (4,), hessian (4, 4), opg (4, 4))`` (``opg`` the sum of the
    per-observation scores' outer products)
    on the series ``y (N,)`` with the fixed ``backcast``, or None while the compiled loop is not
    available (being built, ``DYNOPT_COMPILE=0``, no compiler).  ``block=True`` waits for the build."""
    scan = (_scan.cached_scan if block else _scan.scan_when_ready)(KEY, build_step, prefix=PREFIX, flags=FLAGS)
    if scan is None:
        return None
    y = np.asarray(y, dtype=np.float64)
    Z = np.empty((len(y), 3))
    Z[0, 0], Z[1:, 0] = 0.0, y[:-1]
    Z[:, 1] = y
    Z[0, 2], Z[1:, 2] = 0.0, 1.0
    rec = recursion()
    X0 = rec.initial_state([float(backcast)])
    c = np.array([float(backcast)])

    def derivs(values):
        L, g, H, S, Y = rec.run(scan, X0, Z, values, c, outputs=True)
        return L - 0.5 * float(np.log(Y[:, 0]).sum()), g, H, S

    return derivs


GRID_KEY = ("garch11", "grid", 1)


def grid_candidates():
    """The start grid of :meth:`.garch.GARCH._grid_start`: ``(persistence, alpha)`` pairs, ``(n, 2)``."""
    return np.array([(pers, a) for pers in (0.5, 0.8, 0.9, 0.95, 0.98) for a in (0.01, 0.05, 0.1, 0.2) if a < pers])


def build_grid_step():
    """Every grid candidate's variance recursion and its sum of ``e_t^2 / s_t`` in one step:
    state ``(s (n,), sum (n,))``, inputs ``(sq_{t-1}, e_t^2)``, parameters ``(omega, alpha, beta)`` per
    candidate; per-step output ``s (n,)`` (the logs are summed outside, vectorised)."""
    import casadi as ca
    n = len(grid_candidates())
    x, z, p = ca.SX.sym("x", 2 * n), ca.SX.sym("z", 2), ca.SX.sym("p", 3 * n)
    s = p[:n] + p[n:2 * n] * z[0] + p[2 * n:] * x[:n]
    return ca.Function("garch11_grid", [x, z, p], [ca.vertcat(s, x[n:] + z[1] / s), s])


def grid_loglikes(y, mu, omega, alpha, beta, backcast, *, block: bool = False) -> Optional[np.ndarray]:
    """Log-likelihoods ``(n,)`` of the grid candidates (``omega, alpha, beta`` each ``(n,)``, the
    constant mean ``mu``) on ``y``, in one compiled loop; None while it is not available."""
    n = len(grid_candidates())
    if not len(omega) == len(alpha) == len(beta) == n:
        raise ValueError(f"omega, alpha, beta: expected {n} values each (one per grid candidate), got "
                         f"{len(omega)}, {len(alpha)}, {len(beta)}")
    scan = (_scan.cached_scan if block else _scan.scan_when_ready)(GRID_KEY, build_grid_step, prefix=PREFIX + "_grid")
    if scan is None:
        return None
    e = np.asarray(y, dtype=np.float64) - mu
    Z = np.empty((len(e), 2))
    Z[0, 0], Z[1:, 0] = backcast, e[:-1] * e[:-1]
    Z[:, 1] = e * e
    X0 = np.zeros(2 * n)
    X0[:n] = backcast  # s_{-1} = b: s_0 = omega + (alpha + beta) b
    XT, S = scan(X0, Z, np.concatenate([omega, alpha, beta]))
    with np.errstate(invalid="ignore", divide="ignore"):
        return -0.5 * (len(e) * LOG2PI + np.log(S).sum(axis=0) + XT[n:])


def status() -> str:
    """What the compiled pass is doing: ``"compiled"``, ``"building"``, ``"not requested"`` or
    ``"not compiled: <reason>"`` (:func:`dynopt.casadi.scan.scan_status`)."""
    return _scan.scan_status(KEY)
