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
Jacobian is CasADi's ``jacobian`` of the whole graph, which runs forward mode (forward
sensitivities) when the decision is small.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List

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


def build_residuals(step: ca.Function, h: ca.Function, experiments, *, p_of_z, x0_of_z, nodes_of_z, z: ca.MX,
                    sigma: np.ndarray, error: str, shooting, continuity_weight: float) -> ResidualModel:
    """Build the residual graph (see the module docstring).

    ``p_of_z``: plant parameters as an expression of ``z``; ``x0_of_z(e)``: the initial state of
    experiment e; ``nodes_of_z(e, k)``: the k-th shooting node of experiment e.  Each segment of
    a record is one ``mapaccum`` of the one-step Function (a loop CasADi differentiates as a
    whole: its forward sensitivities are one loop too), outputs one ``map`` of h.
    """
    meas, cont, idx, yhats = [], [], [], []
    accs, maps = {}, {}

    def acc(L):
        if L not in accs:
            accs[L] = step.mapaccum(f"sim{L}", L)
        return accs[L]

    def hmap(L):
        if L not in maps:
            maps[L] = h.map(f"h{L}", "serial", L, [], [])
        return maps[L]

    for e, ex in enumerate(experiments):
        N = ex.N
        U = ca.DM(ex.u.T) if ex.u is not None else ca.DM.zeros(0, N)
        X = ca.DM(ex.X.T) if ex.X is not None else ca.DM.zeros(0, N)
        if error == "simulation":
            L = shooting or N
            x = x0_of_z(e)
            cols, node, s0 = [x], 0, 0
            while s0 < N:
                s1 = min(N, s0 + L)
                xs = acc(s1 - s0)(x, U[:, s0:s1], X[:, s0:s1], ca.repmat(p_of_z, 1, s1 - s0))
                if s1 < N:
                    nd = nodes_of_z(e, node)
                    cont.append(continuity_weight * (xs[:, -1] - nd))
                    cols.append(xs[:, :-1])
                    cols.append(nd)
                    x = nd
                    node += 1
                else:
                    cols.append(xs)
                s0 = s1
            Yhat = hmap(N + 1)(ca.horzcat(*cols))
        else:
            Ymeas = ca.DM(np.nan_to_num(ex.y[:-1].T))
            xh = step.map(f"pred{N}", "serial", N, [], [])(Ymeas, U, X, ca.repmat(p_of_z, 1, N))
            Yhat = ca.horzcat(ca.DM.nan(h.size1_out(0), 1), hmap(N)(xh))
        yhats.append(Yhat)
        use = ex.mask.copy()
        if error == "prediction":
            use[0] = False
            use[1:] &= ex.mask[:-1].all(axis=1, keepdims=True)
        ii, jj = np.nonzero(use)                     # sample-major order
        if ii.size:
            lin = (ii * h.size1_out(0) + jj).tolist()  # column-major index into Yhat (ny, N + 1)
            meas.append((ca.DM(ex.y[ii, jj]) - ca.vec(Yhat)[lin]) / ca.DM(sigma[jj]))
            idx.append(np.column_stack([np.full(ii.size, e), ii, jj]))
    if not meas:
        raise ValueError("experiments: no residual can be formed (prediction error needs consecutive fully "
                         "measured samples)")
    r = ca.vertcat(*meas, *cont)
    Jr = ca.jacobian(r, z)
    rj = ca.Function("sysid_rj", [z], [r, ca.densify(Jr)])
    rf = ca.Function("sysid_r", [z], [r])
    outputs = ca.Function("sysid_outputs", [z], yhats)
    n_meas = sum(int(mi.size1()) for mi in meas)
    return ResidualModel(rj, rf, outputs, n_meas, np.concatenate(idx).astype(int), z, r)
