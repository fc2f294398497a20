r"""One time step of dynopt's compiled sweeps, shared by the two compiled forms.

:func:`sweep_steps` builds, from the components' CasADi forms, the forward step (``u[t] =
pi(x[t])``, ``l[t]``, ``x[t+1] = f(...)``), the backward step (dynopt's adjoint recursion of
:mod:`dynopt.core.sweeps` chaining each component's dual, batched over the scenarios) and the
terminal cost with its dual.  :mod:`.compiled` stacks them into the tower of CasADi loops,
:mod:`.scan_sweeps` into two compiled C loops.  Also here: the inputs' layout
(:func:`inputs`) and the structure key of a problem's compiled code (:func:`sweep_key`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Dict, Optional

import casadi as ca
import numpy as np

from .codegen import code_digest
from .forms import batched_pair, problem_forms


def _maps(form, shared, adjoint_of, B, tag):
    """Forward over B scenarios and a dual callable returning the adjoints of ``adjoint_of``
    (zeros for zero-size inputs, which are left out: CasADi's C code for empty map reductions
    does not compile)."""
    F = form.function
    live = [i for i in adjoint_of if F.nnz_in(i) > 0]
    fwd, vjp_fn = batched_pair(form, B, shared, live, tag=tag)

    def vjp(*args):
        res = vjp_fn(*args)
        res = [res] if len(live) == 1 else list(res)
        got = dict(zip(live, res))
        return [got[i] if i in got else ca.MX.zeros(F.size1_in(i), 1 if i in shared else B) for i in adjoint_of]
    return fwd, vjp


@dataclass
class SweepSteps:
    """One time step of the forward and of the backward sweep as CasADi Functions, and the
    terminal cost with its dual (shared by the tower of :func:`build_sweeps` and the compiled
    scans of :mod:`.scan_sweeps`).

    ``fstep(H, Xt, pt, theta, phi, pc) -> (H_next, H_t, u, c)``;
    ``bstep(Lam, G, H_t, u_t, Xt, pt, theta, phi, pc) -> (Lam_next, G_next, g_pt)``;
    ``terminal(xT, pt) -> (cT, lam_T, g_pt)`` (None without a terminal cost).
    """

    fstep: ca.Function
    bstep: ca.Function
    terminal: Optional[ca.Function]
    n: Dict[str, int]


def sweep_steps(problem) -> SweepSteps:
    """The per-step Functions of ``problem``'s sweeps (see :class:`SweepSteps`).

    Raises
    ------
    TypeError
        If a component is not CasADi-expressible.
    """
    forms = problem_forms(problem)
    if forms is None:
        raise TypeError("problem: every component needs a CasADi form for compiled sweeps; "
                        "use dynopt.casadi.reference.supports(problem) to check")
    plant, pol, cost, term = forms["plant"], forms["policy"], forms["cost"], forms["terminal"]
    B = problem.B
    n, m, k = problem.plant.n_state, problem.plant.n_control, problem.plant.lags
    nX = exog_width(problem)
    post = problem.cost is not None and getattr(problem.cost, "timing", "pre") == "post"
    n_th, n_phi = problem.plant.n_params, problem.policy.n_params
    n_pc = 0 if problem.cost is None else problem.cost.n_params
    n_pt = 0 if problem.terminal_cost is None else problem.terminal_cost.n_params
    ps = pol.step_slice
    cbar = 1.0 / B  # adjoint seed of every stage and terminal cost (J is the batch mean)

    f_fwd, f_vjp = _maps(plant, [k + 2], list(range(k + 1)) + [k + 2], B, "plant")
    p_fwd, p_vjp = _maps(pol, [2], [0, 2], B, "policy")
    if cost is not None:
        c_fwd, c_vjp = _maps(cost, [3], [0, 1, 3], B, "cost")
    # each component reads its own exogenous columns: X stacks [plant | policy | cost] (see inputs)
    nX_f, nX_p = plant.function.size1_in(k + 1), pol.function.size1_in(1)
    nX_c = 0 if cost is None else cost.function.size1_in(2)
    offsets = {"plant": 0, "policy": nX_f, "cost": nX_f + nX_p}

    def xs_(X, w, who):
        return X[offsets[who]:offsets[who] + w, :]

    MX = ca.MX
    # ---------------------------------------------------------------- forward step
    H = MX.sym("H", k * n, B)
    Xt = MX.sym("Xt", nX, B)
    pt = MX.sym("pt", ps, 1) if ps else MX.sym("pt", 0, 1)
    th, phi, pc = MX.sym("theta", n_th), MX.sym("phi", 0 if ps else n_phi), MX.sym("pc", n_pc)
    hist = [H[j * n:(j + 1) * n, :] for j in range(k)]
    polp = pt if ps else phi
    u = p_fwd(hist[0], xs_(Xt, nX_p, "policy"), polp)
    xn = f_fwd(*hist, u, xs_(Xt, nX_f, "plant"), th)
    if cost is None:
        c = MX.zeros(1, B)
    else:  # a post-step cost (timing="post") reads x[t+1]
        c = c_fwd(xn if post else hist[0], u, xs_(Xt, nX_c, "cost"), pc)
    Hn = ca.vertcat(xn, *hist[:k - 1])
    fstep = ca.Function("fwd_step", [H, Xt, pt, th, phi, pc], [Hn, H, u, c],
                        ["H", "Xt", "pt", "theta", "phi", "pc"], ["H_next", "H_t", "u", "c"])

    # ---------------------------------------------------------------- backward step (adjoint recursion)
    n_g = n_th + (0 if ps else n_phi) + n_pc
    L = MX.sym("Lam", (k + 1) * n, B)   # [lam[t+1], partial lam[t], ..., partial lam[t-k+1]]
    G = MX.sym("G", n_g, 1)
    Hb, ub_in = MX.sym("H_t", k * n, B), MX.sym("u_t", m, B)
    Xb, ptb = MX.sym("Xt", nX, B), (MX.sym("pt", ps, 1) if ps else MX.sym("pt", 0, 1))
    thb, phib, pcb = MX.sym("theta", n_th), MX.sym("phi", 0 if ps else n_phi), MX.sym("pc", n_pc)
    histb = [Hb[j * n:(j + 1) * n, :] for j in range(k)]
    win = [L[j * n:(j + 1) * n, :] for j in range(k + 1)]
    g_pc, uc = MX.zeros(n_pc, 1), MX.zeros(m, B)
    if cost is not None:
        if post:  # recompute x[t+1] for the post-step cost's dual; its adjoint joins lam[t+1]
            xnb = f_fwd(*histb, ub_in, xs_(Xb, nX_f, "plant"), thb)
            xc, uc, g_pc = c_vjp(xnb, ub_in, xs_(Xb, nX_c, "cost"), pcb, cbar * MX.ones(1, B))
            win[0] = win[0] + xc
        else:
            xc, uc, g_pc = c_vjp(histb[0], ub_in, xs_(Xb, nX_c, "cost"), pcb, cbar * MX.ones(1, B))
            win[1] = win[1] + xc
    bars = f_vjp(*histb, ub_in, xs_(Xb, nX_f, "plant"), thb, win[0])
    for j in range(k):
        win[j + 1] = win[j + 1] + bars[j]
    u_bar, g_th = bars[k] + uc, bars[k + 1]
    xp, g_phi = p_vjp(histb[0], xs_(Xb, nX_p, "policy"), ptb if ps else phib, u_bar)
    win[1] = win[1] + xp
    Ln = ca.vertcat(*win[1:], MX.zeros(n, B))
    if ps:
        Gn, g_slice = G + ca.vertcat(g_th, g_pc), g_phi
    else:
        Gn, g_slice = G + ca.vertcat(g_th, g_phi, g_pc), MX.zeros(0, 1)
    bstep = ca.Function("bwd_step", [L, G, Hb, ub_in, Xb, ptb, thb, phib, pcb], [Ln, Gn, g_slice],
                        ["Lam", "G", "H_t", "u_t", "Xt", "pt", "theta", "phi", "pc"], ["Lam_next", "G_next", "g_pt"])

    terminal = None
    if term is not None:
        t_fwd, t_vjp = _maps(term, [1], [0, 1], B, "terminal")
        xT, PT = MX.sym("xT", n, B), MX.sym("pt", n_pt)
        lam_T, g_pt = t_vjp(xT, PT, cbar * MX.ones(1, B))
        terminal = ca.Function("terminal", [xT, PT], [t_fwd(xT, PT), lam_T, g_pt], ["xT", "pt"],
                               ["cT", "lam_T", "g_pt"])
    return SweepSteps(fstep, bstep, terminal, dict(n=n, m=m, k=k, nX=nX, B=B, n_th=n_th, n_phi=n_phi,
                                                   n_pc=n_pc, n_pt=n_pt, ps=ps, n_g=n_g))


def exog_width(problem) -> int:
    """Columns of the stacked exogenous input ``[plant | policy | cost]`` of the compiled sweeps."""
    return sum(0 if problem.exog(c) is None else problem.exog(c).shape[2] for c in ("plant", "policy", "cost"))


def inputs(problem, W):
    """Inputs as C-contiguous arrays whose memory is the column-major CasADi layout:
    ``H0`` (k n, B) is NumPy (B, k n); ``X`` (nX, T B) is NumPy (T B, nX)."""
    b = problem.unpack(W)
    k, B, n = problem.plant.lags, problem.B, problem.plant.n_state
    T = problem.horizon
    H0 = b["x0"].reshape(k, B, n).transpose(1, 0, 2).reshape(B, k * n)
    parts = [problem.exog(c) for c in ("plant", "policy", "cost")]
    parts = [p.reshape(T * B, -1) for p in parts if p is not None]
    X = np.concatenate(parts, axis=1) if parts else np.zeros((T * B, 0))
    return [np.ascontiguousarray(a, dtype=np.float64) for a in
            (H0, X, b["plant"], b["policy"], b["cost"], b["terminal"])]


def sweep_key(problem, *, chunk, compiler, flags) -> str:
    """Disk-cache key of the compiled sweeps of ``problem``, computed without building them.

    SHA-256 of everything the generated code depends on: :func:`~dynopt.casadi.codegen.code_digest`
    (dynopt's version, the source of every module that builds the forward and dual graphs, so a
    change there never loads a stale library, CasADi's version, the compiler and its flags),
    T, B, sizes, lags, chunk, the stage cost's timing (a post-step cost reads ``x[t+1]``: another
    graph), each component's exogenous width, and each component form's serialized one-step
    Function and batched Function (their constants included).
    """
    h = hashlib.sha256()
    h.update(code_digest(compiler, flags).encode())
    T, B = problem.horizon, problem.B
    widths = tuple(0 if problem.exog(c) is None else problem.exog(c).shape[2] for c in ("plant", "policy", "cost"))
    timing = None if problem.cost is None else getattr(problem.cost, "timing", "pre")
    h.update(repr((T, B, problem.plant.n_state, problem.plant.n_control,
                   problem.plant.lags, widths, timing, chunk)).encode())
    forms = problem_forms(problem)
    if forms is None:
        raise TypeError("problem: every component needs a CasADi form for compiled sweeps; "
                        "use dynopt.casadi.reference.supports(problem) to check")
    for name, form in forms.items():
        h.update(name.encode())
        if form is None:
            h.update(b"none")
            continue
        h.update(repr((form.kind, form.step_slice)).encode())
        h.update(form.function.serialize().encode())
        if form.batched is not None:
            h.update(form.batched(B).serialize().encode())
    return h.hexdigest()[:20]
