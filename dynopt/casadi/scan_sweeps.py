r"""Compiled sweeps as two compiled scans: the forward sweep and the adjoint sweep, each one C loop.

The per-step Functions of :func:`.sweep_steps.sweep_steps` (the same forward step and the same
adjoint recursion as the tower of :func:`.compiled.build_sweeps`) are expanded to SX and run by
:class:`.scan.CompiledScan`: the forward loop writes each step's state window, control and stage
cost; the backward loop reads them in reverse and carries the adjoint window and the parameter
adjoints.  No CasADi call node per step (the tower pays one per component per step, ~15-40 ns
each) and no recomputation of the forward step in the backward loop.  The terminal cost and its
dual are a third compiled function, run once per evaluation.

Worth it while the expanded steps are small (scalar recursions, small batches: every scenario's
arithmetic is written out); :func:`fits` estimates the size from the components' one-step forms
and :class:`~dynopt.CompiledBPTT` keeps the tower above :data:`MAX_INSTRUCTIONS`.
"""

from __future__ import annotations

import time
from typing import Optional

import casadi as ca
import numpy as np

from .sweep_steps import inputs as _inputs, sweep_key, sweep_steps
from .forms import problem_forms
from .scan import CompiledScan

MAX_INSTRUCTIONS = 60000
"""Largest estimated size (SX instructions of the forward plus backward step, all scenarios) built
as scans: gcc's time grows with it."""

FAST_BUILD_INSTRUCTIONS = 3000
"""Up to this estimated size the steps are compiled with :data:`.scan.FLAGS` (``-O3``, the step
inlined into the driver loop: well under a second of gcc)."""

SMALL_INSTRUCTIONS = 15000
"""Up to this estimated size (above :data:`FAST_BUILD_INSTRUCTIONS`) with :data:`MEDIUM_FLAGS`; above
it with :data:`LARGE_FLAGS`."""

MEDIUM_FLAGS = ("-O3", "-march=native", "-fno-semantic-interposition")
"""gcc flags of medium steps (no forced inlining: for a big step the call costs nothing and forcing it
slows gcc and the code).  P1 B=1 (15k instructions): 5 s of gcc, 0.83 ms per gradient (forced
inlining: 10 s, 1.18 ms; -O1: 3.7 s, 1.7 ms; the tower: 0.6 s, 1.6 ms; JAX 0.74-0.96 ms)."""

LARGE_FLAGS = ("-O1", "-march=native", "-fno-semantic-interposition")
"""gcc flags of large steps.  P2 (LQR n=8, B=32, 44k instructions): -O1 builds in 3.3 s and runs a
gradient in 27 ms, -O2 in 11 s / 20 ms, -O3 in 12 s / 20 ms (JAX: 34 ms)."""


def estimate_instructions(problem) -> Optional[int]:
    """Estimated SX instructions of both expanded steps (the one-step forms' sizes times the batch
    times 4: the forward step and its dual), or None if a component has no CasADi form."""
    forms = problem_forms(problem)
    if forms is None:
        return None
    total = 0
    for form in forms.values():
        if form is not None:
            f = form.function
            total += f.n_instructions() if f.is_a("SXFunction") else f.expand().n_instructions()
    return 4 * problem.B * total


def fits(problem) -> bool:
    """Whether :class:`ScanSweeps` is the compiled form to build for ``problem``."""
    est = estimate_instructions(problem)
    return est is not None and est <= MAX_INSTRUCTIONS


class ScanSweeps:
    """The forward and backward sweeps of ``problem`` as two :class:`.scan.CompiledScan`.

    Parameters
    ----------
    problem : dynopt.Problem
        Every component CasADi-expressible.
    flags : sequence of str, optional
        gcc flags (default by estimated size: :data:`.scan.FLAGS`, :data:`MEDIUM_FLAGS` or
        :data:`LARGE_FLAGS`).
    directory : path, optional
        Cache directory.

    Attributes
    ----------
    record : dict
        ``build_seconds`` (graphs), ``generate_seconds``, ``compile_seconds`` (0 when loaded from the
        cache), ``cached``, ``compiled`` (True), ``loop`` (``"scan"``).
    """

    def __init__(self, problem, *, flags=None, directory=None):
        t0 = time.perf_counter()
        steps = sweep_steps(problem)
        self.n = dict(steps.n, T=problem.horizon)
        n, k, m, nX, B = (self.n[key] for key in ("n", "k", "m", "nX", "B"))
        n_th, n_phi, n_pc, ps, n_g = (self.n[key] for key in ("n_th", "n_phi", "n_pc", "ps", "n_g"))
        nphs = 0 if ps else n_phi
        kn = k * n
        MX = ca.MX
        p = MX.sym("p", n_th + nphs + n_pc)
        th, phi, pc = p[:n_th], p[n_th:n_th + nphs], p[n_th + nphs:]
        # forward: x = vec H (k n, B), z = (vec Xt (nX, B), pt (ps,)), y = (vec H_t, vec u, c)
        x = MX.sym("x", kn * B)
        z = MX.sym("z", nX * B + ps)
        Hn, Ht, u, c = steps.fstep(ca.reshape(x, kn, B), ca.reshape(z[:nX * B], nX, B), z[nX * B:], th, phi, pc)
        fwd = ca.Function("fwd", [x, z, p], [ca.vec(Hn), ca.vertcat(ca.vec(Ht), ca.vec(u), ca.vec(c))])
        # backward: x = (vec Lam ((k+1) n, B), G (n_g,)), z = (vec H_t, vec u_t, vec Xt, pt), y = g_pt
        nl = (k + 1) * n * B
        xb = MX.sym("x", nl + n_g)
        zb = MX.sym("z", (kn + m + nX) * B + ps)
        o = 0
        parts = []
        for rows in (kn, m, nX):
            parts.append(ca.reshape(zb[o:o + rows * B], rows, B))
            o += rows * B
        Ln, Gn, gs = steps.bstep(ca.reshape(xb[:nl], (k + 1) * n, B), xb[nl:], parts[0], parts[1], parts[2],
                                 zb[o:], th, phi, pc)
        bwd = ca.Function("bwd", [xb, zb, p], [ca.vertcat(ca.vec(Ln), Gn), gs] if ps else
                          [ca.vertcat(ca.vec(Ln), Gn)])
        t1 = time.perf_counter()
        if flags is None:
            est = estimate_instructions(problem)
            flags = (None if est <= FAST_BUILD_INSTRUCTIONS else MEDIUM_FLAGS if est <= SMALL_INSTRUCTIONS
                     else LARGE_FLAGS)
        key = sweep_key(problem, chunk=None, compiler="gcc", flags=("scan",) + tuple(flags or ()))[:12]
        self.fscan = CompiledScan(fwd, prefix=f"dynopt_fs{key}", flags=flags, directory=directory)
        self.bscan = CompiledScan(bwd, prefix=f"dynopt_bs{key}", flags=flags, directory=directory)
        self.tscan = None
        if steps.terminal is not None:  # one step: z = vec xT (n, B), p = pt; y = (cT, vec lam_T, g_pt)
            n_pt = self.n["n_pt"]
            dummy, zt, pt = MX.sym("x", 1), MX.sym("z", n * B), MX.sym("p", n_pt)
            cT, lamT, gpt = steps.terminal(ca.reshape(zt, n, B), pt)
            term = ca.Function("term", [dummy, zt, pt], [dummy, ca.vertcat(ca.vec(cT), ca.vec(lamT), gpt)])
            self.tscan = CompiledScan(term, prefix=f"dynopt_ts{key}", flags=None, directory=directory)
        infos = [sc.info for sc in (self.fscan, self.bscan, self.tscan) if sc is not None]
        self.record = dict(build_seconds=t1 - t0, generate_seconds=sum(i.generate_seconds for i in infos),
                           compile_seconds=sum(i.compile_seconds for i in infos),
                           cached=all(i.cached for i in infos), compiled=True, loop="scan")

    def _forward(self, problem, W):
        H0, X, th, phi, pc, pt = _inputs(problem, W)
        T, B, nX, ps = self.n["T"], self.n["B"], self.n["nX"], self.n["ps"]
        Xr = X.reshape(T, B * nX)
        pseq = phi.reshape(T, ps) if ps else np.zeros((T, 0))
        p = np.concatenate([th, np.zeros(0) if ps else phi, pc])
        HT, Y = self.fscan(H0.ravel(), np.concatenate([Xr, pseq], axis=1), p)
        return HT, Y, Xr, pseq, p, pt

    def _terminal(self, xT, pt):
        """``(cT (B,), lam_T (B, n), g_pt)`` or zeros without a terminal cost."""
        B, n, n_pt = self.n["B"], self.n["n"], self.n["n_pt"]
        if self.tscan is None:
            return None, np.zeros((B, n)), np.zeros(n_pt)
        _, y = self.tscan(np.zeros(1), np.ascontiguousarray(xT).reshape(1, n * B), pt)
        y = y[0]
        return y[:B], y[B:B + n * B].reshape(B, n), y[B + n * B:]

    def _split(self, HT, Y):
        T, B, n, k, m = (self.n[key] for key in ("T", "B", "n", "k", "m"))
        kn = k * n
        Hs = Y[:, :kn * B].reshape(T, B, kn)
        U = Y[:, kn * B:(kn + m) * B].reshape(T, B, m)
        C = Y[:, (kn + m) * B:]
        return HT.reshape(B, kn)[:, :n], Hs, U, C

    def value(self, problem, W):
        """``(C (T, B), cT (B,) or None)``: stage and terminal costs."""
        HT, Y, _, _, _, pt = self._forward(problem, W)
        xT, _, _, C = self._split(HT, Y)
        cT = self._terminal(xT, pt)[0]
        return C, cT

    def gradient(self, problem, W):
        """The outputs of the tower's gradient Function, as NumPy arrays keyed 1-10 (see
        :meth:`.compiled.CompiledBPTT._evaluate`)."""
        T, B, n, k, m, n_g = (self.n[key] for key in ("T", "B", "n", "k", "m", "n_g"))
        n_th, n_phi, ps = self.n["n_th"], self.n["n_phi"], self.n["ps"]
        HT, Y, Xr, pseq, p, pt = self._forward(problem, W)
        xT, Hs, U, C = self._split(HT, Y)
        cT, lamT, g_pt = self._terminal(xT, pt)
        L0 = np.zeros((B, (k + 1) * n))
        L0[:, :n] = lamT
        state0 = np.concatenate([L0.ravel(), np.zeros(n_g)])
        Zb = np.concatenate([Y[:, :(k * n + m) * B], Xr, pseq], axis=1)
        sT, gs = self.bscan(state0, Zb, p, reverse=True, outputs=bool(ps))
        nl = (k + 1) * n * B
        GF = sT[nl:]
        lam0 = sT[:nl].reshape(B, (k + 1) * n)[:, :k * n].reshape(B, k, n)
        if ps:
            g_phi, g_pc = gs.ravel(), GF[n_th:]
        else:
            g_phi, g_pc = GF[n_th:n_th + n_phi], GF[n_th + n_phi:]
        return {1: GF[:n_th], 2: g_phi, 3: g_pc, 4: g_pt, 5: lam0, 6: xT, 7: Hs, 8: U, 9: C,
                10: np.zeros(B) if cT is None else cT}
