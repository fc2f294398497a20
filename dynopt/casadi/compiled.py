r"""Compiled sweeps: dynopt's forward and backward sweeps as CasADi loops over time.

When every component of a problem is CasADi-expressible (:func:`dynopt.casadi.forms.casadi_form`),
:class:`CompiledBPTT` builds **one** CasADi Function that runs

1. the forward sweep: ``u[t] = pi(x[t])``, ``l[t]``, ``x[t+1] = f(x[t..t-k+1], u[t])`` for
   t = 0..T-1, keeping the state windows and controls;
2. the terminal cost and its dual;
3. the backward sweep: dynopt's adjoint recursion of :mod:`dynopt.core.sweeps`, step by step
   from t = T-1 down to 0, chaining each component's dual (CasADi's reverse mode of that
   component alone, batched over the scenarios) and carrying the adjoint window
   ``[lam[t+1], partial lam[t], ..., partial lam[t-k+1]]`` and the parameter adjoints.

It is *not* CasADi's AD of the whole graph (that is the independent cross-check in
:mod:`dynopt.casadi.reference`).  The loops over time are a two-level tower: an inner
Function unrolls ``c ~ sqrt(T)`` steps and an outer one calls it ``T / c`` times, so the
graph has O(sqrt T) nodes and the parameters are passed by reference (CasADi's ``mapaccum``
would copy the parameter vector for every step).  With ``codegen=True`` the Function is
written as C, compiled with the machine's C compiler and cached on disk
(:mod:`dynopt.casadi.codegen`); without a compiler it falls back to CasADi's virtual machine
with one :class:`~dynopt.casadi.codegen.CompilerNotFoundWarning`.

The steps themselves come from :mod:`.sweep_steps`; with ``codegen`` and problems whose expanded
steps are small, :class:`CompiledBPTT` runs them instead as two compiled C loops
(:mod:`.scan_sweeps`, ``loop="scan"``).
"""

from __future__ import annotations

import math
import threading
import time
import warnings
import weakref
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import casadi as ca
import numpy as np

from .codegen import CompilerNotFound, CompilerNotFoundWarning, compile_functions, load_cached
from .sweep_steps import exog_width, inputs as _inputs, sweep_key, sweep_steps  # noqa: F401 (exog_width, sweep_key: this module's API)
from ..gradients.base import Evaluation, GradientMethod
from ..core.problem import Trajectory


def time_loop(step: ca.Function, T: int, n_acc: int, n_seq: int, *, reverse: bool = False,
              chunk: Optional[int] = None, name: str = "loop") -> ca.Function:
    """Apply ``step`` T times, feeding its first ``n_acc`` outputs back as its first inputs.

    ``step`` has inputs ``(acc_1..acc_a, seq_1..seq_s, shared...)`` and outputs
    ``(acc_1'..acc_a', out_1, ..., out_r)``.  The result has inputs
    ``(acc_1..acc_a, SEQ_1..SEQ_s, shared...)`` with ``SEQ_i`` the per-step blocks stacked
    horizontally in time order (step t reads columns ``[t w, (t+1) w)``) and outputs
    ``(acc_final..., OUT_1..OUT_r)`` stacked the same way.  ``reverse=True`` runs
    t = T-1 .. 0 (the outputs stay in time order).

    Built as an inner Function unrolling ``chunk`` steps (default ``ceil(sqrt(T))``) called
    ``T / chunk`` times by an outer one.
    """
    c = max(1, min(T, chunk or math.ceil(math.sqrt(T))))
    n_in = step.n_in()
    widths = [step.size2_in(n_acc + i) for i in range(n_seq)]
    owidths = [step.size2_out(j) for j in range(n_acc, step.n_out())]

    def block(length, nm):
        ins = [ca.MX.sym(step.name_in(i), step.size1_in(i),
                         step.size2_in(i) * (length if n_acc <= i < n_acc + n_seq else 1)) for i in range(n_in)]
        acc = ins[:n_acc]
        outs: List[list] = [[None] * length for _ in owidths]
        # one horzsplit per sequence (slicing each step separately costs O(sequence size) per slice)
        split = [_split(ins[n_acc + i], w, length) for i, w in enumerate(widths)]
        order = range(length - 1, -1, -1) if reverse else range(length)
        for tau in order:
            seqs = [sp[tau] for sp in split]
            res = step(*acc, *seqs, *ins[n_acc + n_seq:])
            acc = res[:n_acc]
            for j in range(len(owidths)):
                outs[j][tau] = res[n_acc + j]
        return ca.Function(nm, ins, list(acc) + [ca.horzcat(*o) for o in outs])

    inner = block(c, f"{name}_chunk{c}")
    rem = T % c
    tail = block(rem, f"{name}_chunk{rem}") if rem else None
    spans = [(s, c, inner) for s in range(0, T - rem, c)] + ([(T - rem, rem, tail)] if rem else [])
    ins = [ca.MX.sym(step.name_in(i), step.size1_in(i),
                     step.size2_in(i) * (T if n_acc <= i < n_acc + n_seq else 1)) for i in range(n_in)]
    acc = ins[:n_acc]
    outs = [[None] * len(spans) for _ in owidths]
    order = range(len(spans) - 1, -1, -1) if reverse else range(len(spans))
    split = [ca.horzsplit(ins[n_acc + i], [s * w for s, _, _ in spans] + [T * w]) for i, w in enumerate(widths)]
    for j in order:
        s, length, fn = spans[j]
        seqs = [sp[j] for sp in split]
        res = fn(*acc, *seqs, *ins[n_acc + n_seq:])
        acc = res[:n_acc]
        for r in range(len(owidths)):
            outs[r][j] = res[n_acc + r]
    return ca.Function(name, ins, list(acc) + [ca.horzcat(*o) for o in outs])


def _split(M, w, length):
    """``length`` blocks of ``w`` columns of M (empty blocks when w = 0)."""
    if w == 0:
        return [ca.MX(M.size1(), 0)] * length
    return ca.horzsplit(M, w)


@dataclass
class _Built:
    """The Functions of one problem structure (or its compiled scans) and what they cost to build."""

    grad: Optional[ca.Function]
    value: Optional[ca.Function]
    build_seconds: float
    compiled: bool = False
    info: object = None
    record: dict = field(default_factory=dict)
    n: Dict[str, int] = field(default_factory=dict)
    scan: object = None  # a scan_sweeps.ScanSweeps (then grad and value are None)


def build_sweeps(problem, *, chunk: Optional[int] = None) -> _Built:
    """Build the compiled-sweep Functions of a problem (see the module docstring).

    ``grad(H0, X, theta, phi, pc, pt) -> (J, g_theta, g_phi, g_pc, g_pt, lam0, xT, Hs, U, C, cT)``
    and ``value(H0, X, theta, phi, pc, pt) -> (J, xT, Hs, U, C, cT)`` where ``H0`` (k n, B) is
    the initial history stacked newest first, ``X`` (nX, T B), ``Hs`` the state windows
    (k n, T B), ``U`` (m, T B), ``C`` (1, T B) stage costs, ``cT`` (1, B) terminal costs.

    Raises
    ------
    TypeError
        If a component is not CasADi-expressible.
    """
    t_start = time.perf_counter()
    steps = sweep_steps(problem)
    fstep, bstep = steps.fstep, steps.bstep
    T, B = problem.horizon, problem.B
    n, m, k, nX = (steps.n[key] for key in ("n", "m", "k", "nX"))
    n_th, n_phi, n_pc, n_pt, ps, n_g = (steps.n[key] for key in ("n_th", "n_phi", "n_pc", "n_pt", "ps", "n_g"))
    MX = ca.MX
    floop = time_loop(fstep, T, 1, 2, chunk=chunk, name="fwd_loop")
    bloop = time_loop(bstep, T, 2, 4, reverse=True, chunk=chunk, name="bwd_loop")

    # ---------------------------------------------------------------- whole sweep
    H0, XA = MX.sym("H0", k * n, B), MX.sym("X", nX, T * B)
    TH, PHI, PC, PT = MX.sym("theta", n_th), MX.sym("phi", n_phi), MX.sym("pc", n_pc), MX.sym("pt", n_pt)
    PSEQ = ca.reshape(PHI, ps, T) if ps else MX.zeros(0, T)   # open loop: column t = U[t]
    PHI_shared = MX.zeros(0, 1) if ps else PHI
    HT, Hs, U, C = floop(H0, XA, PSEQ, TH, PHI_shared, PC)
    xT = HT[:n, :]
    total = ca.sum2(C)
    lam_T, g_pt, cT = MX.zeros(n, B), MX.zeros(n_pt, 1), MX.zeros(1, B)
    if steps.terminal is not None:
        cT, lam_T, g_pt = steps.terminal(xT, PT)
        total = total + ca.sum2(cT)
    J = total / B
    D = ca.densify  # dense outputs: results are read through CasADi's buffer interface (nonzeros only)
    value = ca.Function("dynopt_value", [H0, XA, TH, PHI, PC, PT], [D(J), D(xT), D(Hs), D(U), D(C), D(cT)],
                        ["H0", "X", "theta", "phi", "pc", "pt"], ["J", "xT", "Hs", "U", "C", "cT"])
    L0 = ca.vertcat(lam_T, MX.zeros(k * n, B))
    LF, GF, GS = bloop(L0, MX.zeros(n_g, 1), Hs, U, XA, PSEQ, TH, PHI_shared, PC)
    g_theta = GF[:n_th]
    if ps:
        g_phi_all, g_pc_all = ca.reshape(GS, ps * T, 1), GF[n_th:]
    else:
        g_phi_all, g_pc_all = GF[n_th:n_th + n_phi], GF[n_th + n_phi:]
    grad = ca.Function("dynopt_grad", [H0, XA, TH, PHI, PC, PT],
                       [D(v) for v in (J, g_theta, g_phi_all, g_pc_all, g_pt, LF[:k * n, :], xT, Hs, U, C, cT)],
                       ["H0", "X", "theta", "phi", "pc", "pt"],
                       ["J", "g_theta", "g_phi", "g_pc", "g_pt", "lam0", "xT", "Hs", "U", "C", "cT"])
    return _Built(grad=grad, value=value, build_seconds=time.perf_counter() - t_start,
                  n=dict(n=n, m=m, k=k, nX=nX, T=T, B=B))


def _call(buffers, ins, wanted):
    """Evaluate through a Function's buffer interface straight into new NumPy arrays.

    ``wanted`` maps output index -> NumPy shape whose C-order memory is the output's
    column-major layout; outputs not asked for are not written.
    """
    buf, run = buffers
    for i, a in enumerate(ins):
        buf.set_arg(i, memoryview(a))
    outs = {}
    for j, shape in wanted.items():
        outs[j] = np.empty(shape)
        buf.set_res(j, memoryview(outs[j]))
    run()
    return outs


DEFAULT_FLAGS = ("-O3", "-march=native")
"""gcc flags of compiled sweeps (P2 LQR: 1.6x faster than -O2 on this machine, benchmarks/bench_default.py)."""


class CompiledBPTT(GradientMethod):
    """BPTT with the forward and backward sweeps run as one compiled CasADi loop over time.

    Parameters
    ----------
    codegen : bool
        Generate C, compile it with ``compiler`` and cache the library on disk (keyed by the
        problem's structure); if false, run in CasADi's virtual machine.
    compiler : str
        C compiler looked up on ``PATH``; if absent, one :class:`CompilerNotFoundWarning`
        and the VM is used (same numbers).
    flags : sequence of str
        Compiler flags (default ``("-O3", "-march=native")``: vectorised for this processor; the
        cache key then includes the processor's identity, so a shared cache never serves a
        library built for another CPU).  With the default, the compiled scans choose their flags by
        step size (:mod:`.scan_sweeps`); flags given here are used for them too.
    cache_dir : path, optional
        Cache directory; default ``$DYNOPT_CACHE_DIR`` or ``~/.cache/dynopt``.
    chunk : int, optional
        Steps unrolled per inner loop of the tower (default ``ceil(sqrt(T))``).
    loop : {"auto", "scan", "tower"}
        With ``codegen``: ``"scan"`` runs the forward and the adjoint sweep as two compiled C loops
        over time (:mod:`.scan_sweeps`: fastest for scalar recursions and small batches, C code
        grows with the batch), ``"tower"`` as the two-level CasADi loop of the module docstring;
        ``"auto"`` (default) takes the scans when their estimated size is at most
        :data:`.scan_sweeps.MAX_INSTRUCTIONS`.  Same numbers either way.

    Notes
    -----
    ``evaluate(problem, W).stats["build"]`` describes the build the evaluation used:
    ``build_seconds`` (graph), ``generate_seconds`` and ``compile_seconds`` (C and gcc, 0 when
    loaded from the cache), ``cached``, ``compiled``, ``loop``.  ``build(problem).record`` gives the same.
    """

    def __init__(self, codegen: bool = False, *, compiler: str = "gcc", flags: Sequence[str] = DEFAULT_FLAGS,
                 cache_dir=None, chunk: Optional[int] = None, loop: str = "auto"):
        self.codegen = bool(codegen)
        self.compiler, self.flags, self.cache_dir, self.chunk = compiler, tuple(flags), cache_dir, chunk
        if loop not in ("auto", "scan", "tower"):
            raise ValueError(f"loop: expected 'auto', 'scan' or 'tower', got {loop!r}")
        if loop == "scan" and not (self.codegen and compiler == "gcc"):
            raise ValueError(f"loop: 'scan' needs codegen=True and compiler='gcc' (the scans are C compiled by "
                             f"gcc), got codegen={self.codegen}, compiler={compiler!r}")
        self.loop = loop
        self._built: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
        self._warned = False

    def build(self, problem) -> _Built:
        """Build (and compile, if asked) the sweep Functions of ``problem``; cached per problem.

        With ``codegen`` a library already in the disk cache for this structure is loaded
        without building the CasADi graph at all.
        """
        try:
            return self._built[problem]
        except KeyError:
            pass
        record = dict(build_seconds=0.0, generate_seconds=0.0, compile_seconds=0.0, cached=False, compiled=False,
                      loop="tower" if self.codegen else "vm")
        if self.codegen and self.compiler == "gcc" and self.loop != "tower":
            from .scan_sweeps import ScanSweeps, fits
            if self.loop == "scan" or fits(problem):
                try:
                    # the scans pick gcc flags by step size unless the caller chose flags
                    sweeps = ScanSweeps(problem, directory=self.cache_dir,
                                        flags=None if self.flags == DEFAULT_FLAGS else self.flags)
                except CompilerNotFound:
                    pass  # the tower below warns once and runs in the VM
                except RuntimeError as exc:
                    if self.loop == "scan" or "failed on the generated code" not in str(exc):
                        raise  # asked for, or not the compiler's refusal (a graph error is a bug to see)
                    # loop="auto" and gcc refused the scans' code or flags: the tower below serves
                else:
                    built = _Built(grad=None, value=None, build_seconds=sweeps.record["build_seconds"], compiled=True,
                                   scan=sweeps, record=dict(sweeps.record))
                    self._built[problem] = built
                    return built
        key = None
        if self.codegen:
            key = sweep_key(problem, chunk=self.chunk, compiler=self.compiler, flags=self.flags)
            fns = load_cached(["dynopt_grad", "dynopt_value"], prefix="dynopt_sweeps", key=key,
                              directory=self.cache_dir)
            if fns is not None:
                built = _Built(grad=fns["dynopt_grad"], value=fns["dynopt_value"], build_seconds=0.0, compiled=True)
                record.update(cached=True, compiled=True)
                built.record = record
                self._built[problem] = built
                return built
        built = build_sweeps(problem, chunk=self.chunk)
        record["build_seconds"] = built.build_seconds
        if self.codegen:
            try:
                fns, info = compile_functions([built.grad, built.value], prefix="dynopt_sweeps", key=key,
                                              compiler=self.compiler, flags=self.flags, directory=self.cache_dir)
            except CompilerNotFound:
                if not self._warned:
                    warnings.warn(
                        f"CompiledBPTT(codegen=True): C compiler {self.compiler!r} not found on PATH; running the "
                        f"sweeps in CasADi's virtual machine instead (same results, slower). Install gcc or pass "
                        f"compiler=... to compile.", CompilerNotFoundWarning, stacklevel=4)
                    self._warned = True
            else:
                built.grad, built.value = fns["dynopt_grad"], fns["dynopt_value"]
                built.compiled, built.info = True, info
                record.update(generate_seconds=info.generate_seconds,
                              compile_seconds=info.compile_seconds, cached=info.cached, compiled=True)
        built.record = record
        self._built[problem] = built
        return built

    def _evaluate(self, problem, W):
        built = self.build(problem)
        T, B, n, m, k = problem.horizon, problem.B, problem.plant.n_state, problem.plant.n_control, problem.plant.lags
        if built.scan is not None:
            o = built.scan.gradient(problem, W)
        else:
            g = built.grad
            o = _call(self._buffers(built, "grad"), _inputs(problem, W), {
                0: (1,), 1: (g.nnz_out(1),), 2: (g.nnz_out(2),), 3: (g.nnz_out(3),), 4: (g.nnz_out(4),),
                5: (B, k, n), 6: (B, n), 7: (T, B, k * n), 8: (T, B, m), 9: (T, B), 10: (B,)})
        term = None if problem.terminal_cost is None else o[10]
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is located by the template
            total = o[9].sum(axis=0) if term is None else o[9].sum(axis=0) + term
            J = float(total.sum() / B)  # the Problem's own summation order
        blocks = {"plant": o[1], "policy": o[2], "cost": o[3], "terminal": o[4]}
        for blk, src in problem.shared.items():
            blocks[src] = blocks[src] + blocks[blk]
        parts = [o[5].transpose(1, 0, 2).ravel() if name == "x0" else blocks[name] for name in problem.decision]
        x = np.empty((T + 1, B, n))
        x[:T] = o[7][:, :, :n]
        x[T] = o[6]
        traj = Trajectory(x=x, u=o[8], stage_cost=o[9], terminal_cost=term, objective=J)
        return Evaluation(J, np.concatenate(parts), traj, {"forward": 1, "backward": 1, "build": dict(built.record)})

    @staticmethod
    def _buffers(built, which):
        # one buffer set per built Function and thread (a buffer is mutable state)
        local = built.__dict__.setdefault("_local", threading.local())
        cache = local.__dict__.setdefault("buffers", {})
        if which not in cache:
            cache[which] = getattr(built, which).buffer()
        return cache[which]

    def _value(self, problem, W):
        """J(W) from the compiled forward loop only."""
        built = self.build(problem)
        T, B = problem.horizon, problem.B
        if built.scan is not None:
            C, cT = built.scan.value(problem, W)
            o = {4: C, 5: cT}
        else:
            o = _call(self._buffers(built, "value"), _inputs(problem, W), {4: (T, B), 5: (B,)})
        term = None if problem.terminal_cost is None else o[5]
        with np.errstate(over="ignore", invalid="ignore"):
            total = o[4].sum(axis=0) if term is None else o[4].sum(axis=0) + term
        return float(total.sum() / B), {"forward": 1}

    def __reduce__(self):  # the settings travel; built Functions and libraries stay in this process
        return (_make_compiled, (type(self), self.codegen, self.compiler, self.flags, self.cache_dir, self.chunk,
                                 self.loop))

    def __repr__(self):
        return f"CompiledBPTT(codegen={self.codegen}" + (f", loop={self.loop!r})" if self.loop != "auto" else ")")


def _make_compiled(cls, codegen, compiler, flags, cache_dir, chunk, loop):
    return cls(codegen, compiler=compiler, flags=flags, cache_dir=cache_dir, chunk=chunk, loop=loop)
