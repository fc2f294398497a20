r"""Exact Hessian-vector products of a problem's objective: forward mode over the adjoint sweep.

For a decision vector ``W`` and a direction ``v`` (both ``(n_decision,)``),

.. math:: H v = \frac{d}{d\epsilon}\Big|_{\epsilon=0} \nabla_W J(W + \epsilon v)

is the directional derivative of the gradient, i.e. Werbos's *second-order adjoint*
(forward-over-reverse).  Two ways:

``"casadi"`` (exact)
    When every component of the problem has a CasADi form (all built-in models, every
    ``Casadi*`` component), the forward sweep plus dynopt's adjoint recursion are built as one
    CasADi Function (:func:`dynopt.casadi.compiled.build_sweeps`) and CasADi's forward mode is
    run over it (``Function.forward(1)``): the tangent of every state, control, adjoint and
    parameter adjoint along ``v``.  Exact to rounding, for any number of lags, ``x0`` in the
    decision, shared parameter blocks and open-loop sequences; cost a small constant (~2-3)
    times one gradient.  The Function is built once per problem (cached weakly).
``"fd"`` (fallback)
    For problems with a NumPy-only component: the central difference of the exact gradient
    along ``v``, ``(g(W + h v) - g(W - h v)) / (2 h)`` with ``h = eps^(1/3) (1 + |W|) / |v|``
    (two gradients; error O(h^2), about 1e-10 relative on smooth problems).  dynopt says so
    once per problem with :class:`HessianFallbackWarning`.

Small problems (forward graph up to ``EXPAND_LIMIT`` scalar operations) have the product
Function expanded into one scalar (SX) graph, 5-10x faster in CasADi's virtual machine.

:func:`gauss_newton_hessp` gives generalized Gauss-Newton products ``J_phi^T (d2 J_c) J_phi v``
(the costs' curvature along the trajectory's Jacobian, none of the dynamics'): Gauss-Newton for
least-squares objectives, positive semidefinite for convex costs.

Public functions: :func:`hessp` (SciPy's name and signature order ``hessp(W, v)``),
:func:`value_grad_hessp`, :func:`hessian` (dense, ``n`` products), :func:`hessp_function`
(a closure for ``scipy.optimize.minimize(..., hessp=...)``) and :func:`gauss_newton_hessp`.
"""

from __future__ import annotations

import threading
import warnings
import weakref
from typing import Callable, NamedTuple

import numpy as np

from ..core.types import Array

__all__ = ["HessianFallbackWarning", "HVP", "hessp", "value_grad_hessp", "hessian", "hessp_function",
           "exact_hessp_supported", "gauss_newton_hessp"]

METHODS = ("auto", "casadi", "fd")


class HessianFallbackWarning(UserWarning):
    """Hessian-vector products of this problem are central differences of its exact gradient
    (a component has no CasADi form), not exact second derivatives."""


class HVP(NamedTuple):
    """``(J, grad, Hv)`` at one W along one direction."""

    J: float
    grad: Array
    Hv: Array


# ----------------------------------------------------------------------------------------- helpers
def _check_v(problem, v) -> Array:
    va = np.asarray(v, dtype=np.float64) if not isinstance(v, (str, bytes)) else None
    if va is None or va.dtype.kind not in "f":
        raise TypeError(f"v: expected a float vector of shape ({problem.n_decision},), got {type(v).__name__}")
    if va.shape != (problem.n_decision,):
        raise ValueError(f"v: expected shape ({problem.n_decision},) (the decision vector's), got {va.shape}")
    if not np.isfinite(va).all():
        raise ValueError(f"v: expected finite entries, got {int((~np.isfinite(va)).sum())} non-finite")
    return va


def _check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    return method


def exact_hessp_supported(problem) -> bool:
    """True when every component of ``problem`` has a CasADi form (exact products available)."""
    from ..casadi.forms import problem_forms
    return problem_forms(problem) is not None


# ----------------------------------------------------------------------------------------- exact (CasADi)
class _Exact:
    """Forward mode over the compiled forward + adjoint sweep Function of one problem."""

    def __init__(self, problem):
        import casadi as ca

        from ..casadi.compiled import build_sweeps
        built = build_sweeps(problem)
        g = built.grad                 # (H0, X, theta, phi, pc, pt) -> (J, g_theta, g_phi, g_pc, g_pt, lam0, ...)
        ins = [ca.MX.sym(g.name_in(i), g.size1_in(i), g.size2_in(i)) for i in range(g.n_in())]
        outs = g(*ins)[:6]
        sub = ca.Function("dynopt_grad_only", ins, outs)
        fwd = sub.forward(1)
        seeds = [ca.MX.sym("d_" + g.name_in(i), g.size1_in(i), g.size2_in(i)) for i in range(g.n_in())]
        seeds[1] = ca.MX(g.size1_in(1), g.size2_in(1))   # the data X is not differentiated
        sens = fwd(*ins, *outs, *seeds)
        named = [s for i, s in enumerate(seeds) if i != 1]
        F = ca.Function("dynopt_hvp", ins + named, [ca.densify(o) for o in list(outs) + list(sens)])
        self.expanded = False
        if _expand_size(problem) <= EXPAND_LIMIT:
            try:
                F = F.expand()            # one scalar graph: ~5-10x faster in CasADi's VM than nested MX calls
                self.expanded = True
            except RuntimeError:          # a form with non-expandable nodes: keep the MX graph
                pass
        self.function = F
        self.lock = threading.Lock()

    def __call__(self, problem, W, v):
        from ..casadi.sweep_steps import inputs as _inputs
        ins = _inputs(problem, W)
        seeds = _tangent_inputs(problem, v)
        ins = [ins[0].T, ins[1].T] + list(ins[2:])   # NumPy (B, k n), (T B, nX) -> CasADi (k n, B), (nX, T B)
        with self.lock:
            res = self.function.call(ins + seeds)
        J = float(res[0])
        g = _assemble(problem, [r.full() for r in res[1:6]])
        Hv = _assemble(problem, [r.full() for r in res[7:12]])
        return J, g, Hv


EXPAND_LIMIT = 400_000
"""Largest forward graph (scalar operations over all steps and scenarios) expanded to SX."""


def _expand_size(problem) -> float:
    """Scalar operations of one forward sweep, ``T B sum(ops per step)``; inf if a form is not SX."""
    from ..casadi.forms import problem_forms
    forms = problem_forms(problem)
    per_step = 0
    for name, form in forms.items():
        if form is None:
            continue
        if not form.is_sx:
            return float("inf")
        per_step += form.function.n_instructions()
    return float(per_step) * problem.horizon * problem.B


def _tangent_inputs(problem, v):
    """The direction ``v`` as tangents of the sweep Function's inputs (H0, theta, phi, pc, pt);
    blocks outside the decision have zero tangent; shared blocks take their source's."""
    from ..core.problem import BLOCKS
    k, B, n = problem.plant.lags, problem.B, problem.plant.n_state
    sizes = {name: int(np.asarray(val).size) for name, val in problem.unpack(problem.W0).items()}
    slices = problem.block_slices()
    tan = {}
    for name in BLOCKS:
        tan[name] = v[slices[name]] if name in slices else np.zeros(sizes[name])
    for blk, src in problem.shared.items():
        tan[blk] = tan[src]
    H0 = np.ascontiguousarray(tan["x0"].reshape(k, B, n).transpose(1, 0, 2).reshape(B, k * n))
    # CasADi's (k n, B) column-major = NumPy (B, k n) C order; pass as the (k n, B) matrix
    return [H0.T.copy(), *(np.ascontiguousarray(tan[b], dtype=np.float64) for b in ("plant", "policy", "cost",
                                                                                   "terminal"))]


def _assemble(problem, parts):
    """``(g_theta, g_phi, g_pc, g_pt, lam0)`` as CasADi-shaped arrays -> a decision vector."""
    k, B, n = problem.plant.lags, problem.B, problem.plant.n_state
    blocks = {"plant": parts[0].ravel(), "policy": parts[1].ravel(), "cost": parts[2].ravel(),
              "terminal": parts[3].ravel()}
    for blk, src in problem.shared.items():
        blocks[src] = blocks[src] + blocks[blk]
    out = []
    for name in problem.decision:
        if name == "x0":
            lam0 = parts[4].reshape(k, n, B)          # rows j n + i, columns b
            out.append(lam0.transpose(0, 2, 1).ravel())
        else:
            out.append(blocks[name])
    return np.concatenate(out) if out else np.zeros(0)


_EXACT: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_WARNED: "weakref.WeakSet" = weakref.WeakSet()
_BUILD_LOCK = threading.Lock()


def _exact_for(problem) -> _Exact:
    with _BUILD_LOCK:
        try:
            return _EXACT[problem]
        except KeyError:
            ex = _Exact(problem)
            _EXACT[problem] = ex
            return ex


def _resolve(problem, method: str) -> str:
    method = _check_method(method)
    if method == "auto":
        return "casadi" if exact_hessp_supported(problem) else "fd"
    if method == "casadi" and not exact_hessp_supported(problem):
        raise TypeError("method: 'casadi' needs a CasADi form for every component of the problem "
                        "(dynopt.casadi.reference.supports(problem) is False); use method='fd' or 'auto'")
    return method


# ----------------------------------------------------------------------------------------- fallback
def _fd(problem, W, v):
    nv = float(np.linalg.norm(v))
    J, g = problem.value_and_grad(W)
    if nv == 0.0:
        return J, g, np.zeros_like(W)
    h = np.finfo(float).eps ** (1 / 3) * (1.0 + float(np.linalg.norm(W))) / nv
    gp = problem.value_and_grad(W + h * v)[1]
    gm = problem.value_and_grad(W - h * v)[1]
    return J, g, (gp - gm) / (2.0 * h)


# ----------------------------------------------------------------------------------------- Gauss-Newton
class _GaussNewton:
    r"""Generalized Gauss-Newton products ``G v = Jphi^T (d2 Jc) Jphi v``.

    ``Jphi`` is the Jacobian of the trajectory map W -> (states, controls, terminal state, cost
    parameters) and ``d2 Jc`` the Hessian of the summed costs in those variables (block diagonal
    over steps): the exact Hessian without the dynamics' and policy's own curvature.  Forward
    mode of the compiled forward sweep, the cost Hessian by forward over reverse, then reverse
    mode of the forward sweep.
    """

    def __init__(self, problem):
        import casadi as ca

        from ..casadi.compiled import build_sweeps
        from ..casadi.forms import batched_forward, problem_forms
        built = build_sweeps(problem)
        V = built.value                 # (H0, X, theta, phi, pc, pt) -> (J, xT, Hs, U, C, cT)
        forms = problem_forms(problem)
        T, B = problem.horizon, problem.B
        n, k = problem.plant.n_state, problem.plant.lags
        m = problem.plant.n_control
        post = problem.cost is not None and getattr(problem.cost, "timing", "pre") == "post"
        ins = [ca.MX.sym(V.name_in(i), V.size1_in(i), V.size2_in(i)) for i in range(V.n_in())]
        outs = V(*ins)
        seeds = [ca.MX.sym("d_" + V.name_in(i), V.size1_in(i), V.size2_in(i)) for i in range(V.n_in())]
        seeds[1] = ca.MX(V.size1_in(1), V.size2_in(1))
        sens = V.forward(1)(*ins, *outs, *seeds)
        dxT, dHs, dU = sens[1], sens[2], sens[3]
        # the cost as a function of (states, controls, terminal state, cost parameters)
        nX_f = forms["plant"].function.size1_in(k + 1)
        nX_p = forms["policy"].function.size1_in(1)
        xs, us, xT = ca.MX.sym("xs", n, T * B), ca.MX.sym("us", m, T * B), ca.MX.sym("xT", n, B)
        pc, pt = ca.MX.sym("pc", ins[4].size1()), ca.MX.sym("pt", ins[5].size1())
        Jc = 0
        if forms["cost"] is not None:
            wc = forms["cost"].function.size1_in(2)
            xin = ca.horzcat(xs[:, B:], xT) if post else xs
            Jc = Jc + ca.sum2(batched_forward(forms["cost"], T * B, [3])(xin, us, ins[1][nX_f + nX_p:nX_f + nX_p + wc, :],
                                                                        pc))
        if forms["terminal"] is not None:
            Jc = Jc + ca.sum2(batched_forward(forms["terminal"], B, [1])(xT, pt))
        Jc = Jc / B
        zs = [xs, us, xT, pc, pt]
        cf = ca.Function("jc", zs + [ins[1]], [Jc])
        cz = [ca.MX.sym("z" + str(i), z.size1(), z.size2()) for i, z in enumerate(zs)]
        dz = [ca.MX.sym("dz" + str(i), z.size1(), z.size2()) for i, z in enumerate(zs)]
        cval = cf(*cz, ins[1])
        bars = cf.reverse(1)(*cz, ins[1], cval, 1.0)[:5]           # gradient in (xs, us, xT, pc, pt)
        gfun = ca.Function("gc", cz + [ins[1]], bars)
        gout = gfun(*cz, ins[1])
        hv = gfun.forward(1)(*cz, ins[1], *gout, *dz, ca.MX(ins[1].size1(), ins[1].size2()))
        hfun = ca.Function("hc", cz + dz + [ins[1]], hv)          # (d2 Jc) dz, forward over reverse
        # evaluated on the trajectory, along its tangent (dHs[:n] are the states' tangents)
        w = hfun(outs[2][:n, :], outs[3], outs[1], ins[4], ins[5], dHs[:n, :], dU, dxT, seeds[4], seeds[5], ins[1])
        wx, wu, wT, wpc, wpt = w
        out_seeds = [ca.MX(1, 1), wT, ca.vertcat(wx, ca.MX(n * (k - 1), T * B)), wu, ca.MX(1, T * B), ca.MX(1, B)]
        adj = V.reverse(1)(*ins, *outs, *out_seeds)
        # adjoints of (H0, X, theta, phi, pc, pt); the cost's own parameters enter directly too
        res = [adj[2], adj[3], adj[4] + wpc, adj[5] + wpt, adj[0]]
        named = [s for i, s in enumerate(seeds) if i != 1]
        F = ca.Function("dynopt_ggn", ins + named, [ca.densify(r) for r in res])
        if _expand_size(problem) <= EXPAND_LIMIT:
            try:
                F = F.expand()
            except RuntimeError:
                pass
        self.function = F
        self.lock = threading.Lock()

    def __call__(self, problem, W, v):
        from ..casadi.sweep_steps import inputs as _inputs
        ins = _inputs(problem, W)
        ins = [ins[0].T, ins[1].T] + list(ins[2:])
        seeds = _tangent_inputs(problem, v)
        with self.lock:
            res = self.function.call(ins + seeds)
        return _assemble(problem, [r.full() for r in res])


_GGN: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def gauss_newton_hessp(problem, W, v) -> Array:
    r"""Generalized Gauss-Newton product ``G(W) v``, ``(n_decision,)``.

    .. math:: G = J_\phi^T \, \nabla^2 J_c \, J_\phi

    with :math:`J_\phi` the Jacobian of the simulated trajectory (states, controls, terminal
    state; cost parameters pass through) with respect to W and :math:`\nabla^2 J_c` the
    Hessian of the costs in those variables.  For a least-squares objective whose residuals are
    linear in the trajectory (tracking, quadratic costs, ``(y - C x)^2`` fits) this is the
    Gauss-Newton matrix ``2 J_r^T J_r``; in general it is the exact Hessian without the
    dynamics' and the policy's second derivatives: positive semidefinite when the costs are
    convex, so CG-based Newton methods never meet negative curvature.  Needs a CasADi form for
    every component.
    """
    W = problem.check_W(W)
    v = _check_v(problem, v)
    if not exact_hessp_supported(problem):
        raise TypeError("problem: Gauss-Newton products need a CasADi form for every component "
                        "(dynopt.casadi.reference.supports(problem) is False)")
    with _BUILD_LOCK:
        try:
            g = _GGN[problem]
        except KeyError:
            g = _GGN[problem] = _GaussNewton(problem)
    out = g(problem, W, v)
    if not np.isfinite(out).all():
        raise FloatingPointError("gauss_newton_hessp: non-finite product at this W; the simulation diverges here")
    return out


# ----------------------------------------------------------------------------------------- public
def value_grad_hessp(problem, W, v, *, method: str = "auto") -> HVP:
    """``(J, dJ/dW, H v)`` at ``W`` along ``v`` in one pass.

    Parameters
    ----------
    problem : dynopt.Problem
    W, v : (n_decision,) arrays
        The point and the direction.
    method : {"auto", "casadi", "fd"}
        ``"casadi"``: exact forward-over-reverse (needs a CasADi form for every component);
        ``"fd"``: central difference of the exact gradient (3 gradients); ``"auto"``: the exact
        one when available, else ``"fd"`` with one :class:`HessianFallbackWarning` per problem.

    Returns
    -------
    HVP
        ``J`` (float), ``grad`` and ``Hv`` (both ``(n_decision,)``), J as the problem states it.
    """
    W = problem.check_W(W)
    v = _check_v(problem, v)
    how = _resolve(problem, method)
    if how == "casadi":
        J, g, Hv = _exact_for(problem)(problem, W, v)
    else:
        if method == "auto" and problem not in _WARNED:
            _WARNED.add(problem)
            warnings.warn("hessp: a component of this problem has no CasADi form, so Hessian-vector products are "
                          "central differences of the exact gradient along v (about 1e-10 relative, 2 extra "
                          "gradients per product); give every component a CasADi form for exact products",
                          HessianFallbackWarning, stacklevel=3)
        J, g, Hv = _fd(problem, W, v)
    if not (np.isfinite(J) and np.isfinite(g).all() and np.isfinite(Hv).all()):
        if not np.isfinite(J):
            problem.value(W)          # raises SimulationDivergedError naming the step and component
        raise FloatingPointError(f"hessp: non-finite gradient or H v at this W (J={J}): the simulation's "
                                 f"derivatives overflow here")
    return HVP(float(J), np.asarray(g, float), np.asarray(Hv, float))


def hessp(problem, W, v, *, method: str = "auto") -> Array:
    """The Hessian-vector product ``H(W) v`` of the problem's objective, ``(n_decision,)``.

    Exact (CasADi forward mode over the adjoint sweep) when every component has a CasADi form,
    else a central difference of the exact gradient (see :func:`value_grad_hessp`).
    """
    return value_grad_hessp(problem, W, v, method=method).Hv


def hessian(problem, W, *, method: str = "auto") -> Array:
    """The dense Hessian ``(n, n)`` from ``n`` products with the unit vectors, symmetrised.

    Meant for small decisions (covariances, checks); Newton-type optimizers need only
    :func:`hessp`.
    """
    W = problem.check_W(W)
    n = problem.n_decision
    H = np.empty((n, n))
    e = np.zeros(n)
    for i in range(n):
        e[i] = 1.0
        H[:, i] = value_grad_hessp(problem, W, e, method=method).Hv
        e[i] = 0.0
    return 0.5 * (H + H.T)


def hessp_function(problem, *, method: str = "auto") -> Callable[[Array, Array], Array]:
    """``hessp(W, v) -> H v`` for ``scipy.optimize.minimize(..., hessp=...)``.

    The returned callable keeps a count of products in its ``calls`` attribute.
    """
    _check_method(method)

    def f(W, v):
        f.calls += 1
        return hessp(problem, W, v, method=method)

    f.calls = 0
    return f
