r"""The weighted residuals of an identification problem as one CasADi graph, with their Jacobian.

For experiment e with samples ``i = 0..N_e`` and outputs ``j``:

* simulation error (multi-step, Werbos's "pure robust" fit): ``x[0] = x0_e``,
  ``x[i+1] = f(x[i], u[i], X[i]; p)``, residual ``(y[i, j] - h(x[i])_j) / sigma_j``;
* one-step-ahead prediction error: ``xhat[i+1] = f(y[i], u[i], X[i]; p)`` from the measured
  state (h must be the identity), residual ``(y[i+1, j] - xhat[i+1]_j) / sigma_j``;
* multiple shooting (simulation error with ``shooting = L``): the record is cut into segments
  of L steps, each segment after the first starts from a state node ``s`` in the decision, and
  ``w_c (x_end - s)`` is appended per node (a continuity penalty: ``w_c`` large ties the segments).

Only measured entries give residuals (the mask selects them when the graph is built).  The
Jacobian comes from the forward sensitivity equations ``S[i+1] = f_x S[i] + f_p dp/dz`` carried
through the same loop as the states (one pass gives r and dr/dz; cheap when the decision is
small), and h_x S for the outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import casadi as ca
import numpy as np

__all__ = ["ResidualModel", "build_residuals"]


@dataclass
class ResidualModel:
    """Compiled residual functions of one identification problem.

    Attributes
    ----------
    rj : casadi.Function
        ``z -> (r, dr/dz)``, ``r`` (n_res,).
    r : casadi.Function
        ``z -> r``.
    outputs : casadi.Function
        ``z -> [yhat_e (ny, N_e + 1) for each experiment]``.
    hess : casadi.Function
        ``z -> Hessian of 0.5 |r|^2`` (n_z, n_z), exact.
    n_meas : int
        Number of measurement residuals (the first ``n_meas`` entries of r).
    meas_index : list of (e, i, j) arrays
        Experiment, sample and output of each measurement residual.
    """

    rj: ca.Function
    r: ca.Function
    outputs: ca.Function
    n_meas: int
    meas_index: np.ndarray
    z: ca.MX = None
    r_expr: ca.MX = None

    def hessian(self, zv) -> np.ndarray:
        """Exact Hessian of ``0.5 |r|^2`` at ``zv``, ``(n_z, n_z)`` (built on first use)."""
        if getattr(self, "_hess", None) is None:
            self._hess = ca.Function("sysid_hess", [self.z], [ca.hessian(0.5 * ca.sumsqr(self.r_expr), self.z)[0]])
        return np.asarray(ca.densify(self._hess(zv)))


def _sensitivity_step(step: ca.Function, nz: int) -> ca.Function:
    """``(x, S, u, X, p, P) -> (x+, S+)`` with ``S+ = f_x S + f_p P``: the step and its forward
    sensitivity equation for ``nz`` directions (S = dx/dz, P = dp/dz)."""
    Sym = ca.SX if step.is_a("SXFunction") else ca.MX
    n, m, nX, npar = (step.size1_in(i) for i in range(4))
    x, u, X, p = Sym.sym("x", n), Sym.sym("u", m), Sym.sym("X", nX), Sym.sym("p", npar)
    S, P = Sym.sym("S", n, nz), Sym.sym("P", npar, nz)
    xn = step(x, u, X, p)
    Sn = ca.mtimes(ca.jacobian(xn, x), S) + ca.mtimes(ca.jacobian(xn, p), P)
    return ca.Function("sens_step", [x, S, u, X, p, P], [xn, Sn])


def _output_sensitivity(h: ca.Function, nz: int) -> ca.Function:
    """``(x, S) -> (h(x), h_x S)``."""
    x = ca.SX.sym("x", h.size1_in(0))
    S = ca.SX.sym("S", h.size1_in(0), nz)
    y = h(x)
    return ca.Function("h_sens", [x, S], [y, ca.mtimes(ca.jacobian(y, x), S)])


def build_residuals(step: ca.Function, h: ca.Function, experiments, *, p_of_z, x0_of_z, nodes_of_z, z: ca.MX,
                    sigma: np.ndarray, error: str, shooting, continuity_weight: float,
                    jacobian: str = "sensitivities") -> ResidualModel:
    """Build the residual graph (see the module docstring).

    ``p_of_z``: plant parameters as an expression of ``z``; ``x0_of_z(e)``: the initial state of
    experiment e; ``nodes_of_z(e, k)``: the k-th shooting node of experiment e.  Each segment of
    a record is one ``mapaccum`` of the one-step Function augmented with its forward
    sensitivity equation ``S[i+1] = f_x S[i] + f_p dp/dz`` (``jacobian="sensitivities"``: one
    scalar loop carrying the state and its nz sensitivities), outputs one ``map`` of h and h_x.
    ``jacobian="casadi"`` asks CasADi for the Jacobian of the residual graph instead (the same
    numbers, for cross-checks).
    """
    nz = z.size1()
    ny = h.size1_out(0)
    meas, cont, idx, yhats, mjac, cjac = [], [], [], [], [], []
    cache = {}

    def fn(kind, L):
        key = (kind, L)
        if key not in cache:
            if kind == "acc":
                cache[key] = sstep.mapaccum(f"sim{L}", L, 2)
            elif kind == "hmap":
                cache[key] = hs.map(f"h{L}", "serial", L, [], [])
            else:
                cache[key] = sstep.map(f"pred{L}", "serial", L, [], [])
        return cache[key]

    sstep, hs = _sensitivity_step(step, nz), _output_sensitivity(h, nz)
    Pz = ca.jacobian(p_of_z, z)
    for e, ex in enumerate(experiments):
        N = ex.N
        U = ca.DM(ex.u.T) if ex.u is not None else ca.DM.zeros(0, N)
        X = ca.DM(ex.X.T) if ex.X is not None else ca.DM.zeros(0, N)
        if error == "simulation":
            L = shooting or N
            x = x0_of_z(e)
            Sx = ca.jacobian(x, z)
            xcols, scols, node, s0 = [x], [Sx], 0, 0
            while s0 < N:
                s1 = min(N, s0 + L)
                w = s1 - s0
                xs, Ss = fn("acc", w)(x, Sx, U[:, s0:s1], X[:, s0:s1], ca.repmat(p_of_z, 1, w), ca.repmat(Pz, 1, w))
                if s1 < N:
                    nd = nodes_of_z(e, node)
                    Snd = ca.jacobian(nd, z)
                    cont.append(continuity_weight * (xs[:, -1] - nd))
                    cjac.append(continuity_weight * (Ss[:, (w - 1) * nz:] - Snd))
                    xcols += [xs[:, :-1], nd]
                    scols += [Ss[:, :(w - 1) * nz], Snd]
                    x, Sx = nd, Snd
                    node += 1
                else:
                    xcols.append(xs)
                    scols.append(Ss)
                s0 = s1
            Yhat, dY = fn("hmap", N + 1)(ca.horzcat(*xcols), ca.horzcat(*scols))
        else:
            Ymeas = ca.DM(np.nan_to_num(ex.y[:-1].T))
            xh, Sh = fn("pred", N)(Ymeas, ca.DM.zeros(Ymeas.size1(), N * nz), U, X, ca.repmat(p_of_z, 1, N),
                                   ca.repmat(Pz, 1, N))
            Yp, dYp = fn("hmap", N)(xh, Sh)
            Yhat = ca.horzcat(ca.DM.nan(ny, 1), Yp)
            dY = ca.horzcat(ca.DM.zeros(ny, nz), dYp)
        yhats.append(Yhat)
        use = ex.mask.copy()
        if error == "prediction":
            use[0] = False
            use[1:] &= ex.mask[:-1].all(axis=1, keepdims=True)
        ii, jj = np.nonzero(use)                     # sample-major order
        if ii.size:
            lin = (ii * ny + jj).tolist()            # column-major index into Yhat (ny, N + 1)
            meas.append((ca.DM(ex.y[ii, jj]) - ca.vec(Yhat)[lin]) / ca.DM(sigma[jj]))
            # dY (ny, (N + 1) nz): entry (j, i nz + c) at linear index j + ny (i nz + c)
            base = jj + ny * ii * nz
            flat = (base[None, :] + ny * np.arange(nz)[:, None]).ravel().tolist()   # c-major: reshape below
            rows = ca.reshape(ca.vec(dY)[flat], ii.size, nz)
            mjac.append(-rows / ca.repmat(ca.DM(sigma[jj]), 1, nz))
            idx.append(np.column_stack([np.full(ii.size, e), ii, jj]))
    if not meas:
        raise ValueError("experiments: no residual can be formed (prediction error needs consecutive fully "
                         "measured samples)")
    r = ca.vertcat(*meas, *cont)
    if jacobian == "sensitivities":
        Jr = ca.vertcat(*mjac, *cjac)
    elif jacobian == "casadi":
        Jr = ca.jacobian(r, z)
    else:
        raise ValueError(f"jacobian: expected 'sensitivities' or 'casadi', got {jacobian!r}")
    rj = ca.Function("sysid_rj", [z], [r, ca.densify(Jr)])
    rf = ca.Function("sysid_r", [z], [r])
    outputs = ca.Function("sysid_outputs", [z], yhats)
    n_meas = sum(int(mi.size1()) for mi in meas)
    return ResidualModel(rj, rf, outputs, n_meas, np.concatenate(idx).astype(int), z, r)
