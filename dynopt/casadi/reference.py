r"""An independent gradient: CasADi's own reverse AD over the whole unrolled trajectory.

:class:`CasadiReference` builds the entire simulation ``J(W)`` as one CasADi MX graph: for
t = 0..T-1 it chains the components' CasADi forms (:mod:`dynopt.casadi.forms`), each
applied to all B scenarios at once (the form's batched Function, else ``Function.map(B)``), adds the stage costs and the
terminal cost, and asks CasADi for ``gradient(J, W)``.  Nothing of dynopt's backward sweep,
its component duals or its window bookkeeping is used, so agreement with
:class:`~dynopt.BPTT` is a genuine cross-check.  :func:`dynopt.check_gradient` adds it as
the ``"casadi"`` column when :func:`supports` is true.

Build cost grows linearly with T (one graph node per component per step); the built Function
is cached per problem.  ``codegen=True`` compiles it to C (often slow to compile for long
horizons: the graph is unrolled).
"""

from __future__ import annotations

import time
import weakref
from typing import Optional

import casadi as ca
import numpy as np

from .forms import batched_forward, problem_forms
from ..gradients.base import Evaluation, GradientMethod
from .sweep_steps import exog_width, inputs as _inputs

__all__ = ["CasadiReference", "supports"]


def supports(problem) -> bool:
    """True when every component of ``problem`` (plant, policy, costs) has a CasADi form."""
    return problem_forms(problem) is not None


def build_unrolled(problem, *, gradient: bool = True) -> ca.Function:
    """``F(Z, X) -> (J, dJ/dZ)`` over the unrolled trajectory, by CasADi's reverse AD
    (``F(Z, X) -> J`` only, when ``gradient`` is false: the forward simulation alone).

    ``Z`` is every block concatenated in the order policy, plant, cost, terminal, x0 (x0 as
    ``(k, B, n)`` C order); ``X`` is ``(nX, T B)`` with column ``t B + b`` = ``X[t, b]``.
    """
    forms = problem_forms(problem)
    if forms is None:
        raise TypeError("problem: CasadiReference needs a CasADi form for every component; "
                        "supports(problem) is False")
    plant, pol, cost, term = forms["plant"], forms["policy"], forms["cost"], forms["terminal"]
    T, B = problem.horizon, problem.B
    n, k = problem.plant.n_state, problem.plant.lags
    nX = exog_width(problem)
    post = cost is not None and getattr(problem.cost, "timing", "pre") == "post"
    sizes = _block_sizes(problem)
    Z = ca.MX.sym("Z", sum(sizes.values()))
    XA = ca.MX.sym("X", nX, T * B)
    parts, off = {}, 0
    for name, size in sizes.items():
        parts[name] = Z[off:off + size]
        off += size
    # x0 block (k, B, n) C order: entry (j, b, i) at j B n + b n + i  ->  (n, B) column-major per lag
    hist = [ca.reshape(parts["x0"][j * B * n:(j + 1) * B * n], n, B) for j in range(k)]

    def mapped(form, shared):
        return batched_forward(form, B, shared)

    f_map = mapped(plant, [k + 2])
    p_map = mapped(pol, [2])
    c_map = mapped(cost, [3]) if cost is not None else None
    wf, wp = plant.function.size1_in(k + 1), pol.function.size1_in(1)
    wc = 0 if cost is None else cost.function.size1_in(2)
    ps = pol.step_slice
    par = dict(parts)
    for blk, src in problem.shared.items():   # a shared block reads its source's values
        par[blk] = parts[src]
    total = ca.MX.zeros(1, B)
    for t in range(T):
        Xt = XA[:, t * B:(t + 1) * B]   # rows: [plant | policy | cost] exogenous columns
        phi_t = par["policy"][t * ps:(t + 1) * ps] if ps else par["policy"]
        u = p_map(hist[0], Xt[wf:wf + wp, :], phi_t)
        xn = f_map(*hist, u, Xt[:wf, :], par["plant"])
        if c_map is not None:
            total = total + c_map(xn if post else hist[0], u, Xt[wf + wp:wf + wp + wc, :], par["cost"])
        hist = [xn] + hist[:k - 1]
    if term is not None:
        total = total + mapped(term, [1])(hist[0], par["terminal"])
    J = ca.sum2(total) / B
    if not gradient:
        return ca.Function("casadi_reference_value", [Z, XA], [J], ["Z", "X"], ["J"])
    return ca.Function("casadi_reference", [Z, XA], [J, ca.gradient(J, Z)], ["Z", "X"], ["J", "dJ_dZ"])


def _block_sizes(problem):
    blocks = problem.unpack(problem.W0)
    return {name: int(np.asarray(blocks[name]).size) for name in ("policy", "plant", "cost", "terminal", "x0")}


class CasadiReference(GradientMethod):
    """``(J, dJ/dW)`` by CasADi's reverse-mode AD of the whole unrolled trajectory.

    Parameters
    ----------
    codegen : bool
        Compile the unrolled Function to C (cached on disk, see :mod:`dynopt.casadi.codegen`);
        default: CasADi's virtual machine.
    compiler, flags, cache_dir :
        As :class:`~dynopt.casadi.compiled.CompiledBPTT`.

    Notes
    -----
    ``evaluate(problem, W).stats["build"]``: ``build_seconds`` (graph and AD),
    ``generate_seconds``, ``compile_seconds``, ``cached``, ``compiled``.
    """

    def __init__(self, codegen: bool = False, *, compiler: str = "gcc", flags=("-O1",), cache_dir=None):
        self.codegen, self.compiler, self.flags, self.cache_dir = bool(codegen), compiler, tuple(flags), cache_dir
        self._built: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()

    def build(self, problem) -> ca.Function:
        """The reference Function of ``problem`` (built once per problem)."""
        return self._build(problem)[0]

    def _build(self, problem):
        try:
            return self._built[problem]
        except KeyError:
            pass
        t0 = time.perf_counter()
        F = build_unrolled(problem)
        record = dict(build_seconds=time.perf_counter() - t0, generate_seconds=0.0,
                               compile_seconds=0.0, cached=False, compiled=False)
        if self.codegen:
            import warnings

            from .codegen import CompilerNotFound, CompilerNotFoundWarning, compile_functions
            try:
                fns, info = compile_functions([F], prefix="dynopt_reference", compiler=self.compiler,
                                              flags=self.flags, directory=self.cache_dir)
            except CompilerNotFound:
                warnings.warn(f"CasadiReference(codegen=True): C compiler {self.compiler!r} not found on PATH; "
                              f"using CasADi's virtual machine", CompilerNotFoundWarning, stacklevel=3)
            else:
                F = fns[F.name()]
                record.update(generate_seconds=info.generate_seconds, compile_seconds=info.compile_seconds,
                                       cached=info.cached, compiled=True)
        self._built[problem] = (F, record)
        return F, record

    def evaluate(self, problem, W: Optional[np.ndarray] = None):
        """As :meth:`GradientMethod.evaluate`; ``W`` defaults to ``problem.W0``."""
        return super().evaluate(problem, problem.W0 if W is None else W)

    def _evaluate(self, problem, W):
        F, record = self._build(problem)
        blocks = problem.unpack(W)
        Z = np.concatenate([np.asarray(blocks[b], dtype=float).ravel()
                            for b in ("policy", "plant", "cost", "terminal", "x0")])
        T, B = problem.horizon, problem.B
        X = _inputs(problem, W)[1].T
        J, gZ = F.call([Z, X])
        gZ = np.asarray(gZ).ravel()
        sizes, offs, off = _block_sizes(problem), {}, 0
        for name, size in sizes.items():
            offs[name] = slice(off, off + size)
            off += size
        g = {name: gZ[offs[name]] for name in offs}
        for blk, src in problem.shared.items():
            g[src] = g[src] + g[blk]
        return Evaluation(float(J), np.concatenate([g[name] for name in problem.decision]), None,
                          {"build": dict(record)})

    def __repr__(self):
        return f"CasadiReference(codegen={self.codegen})"
