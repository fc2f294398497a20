r"""Standard errors for any problem: covariance of estimates from second-order information.

Three estimators of the covariance of a minimiser :math:`\hat W` of a fit criterion:

``"hessian"``
    :math:`\Sigma = s\,H^{-1}` with :math:`H` the exact Hessian of the total criterion
    (:func:`dynopt.gradients.hessian.hessian`: forward over reverse, or central differences of
    the exact gradient for NumPy-only components).
``"gauss-newton"``
    :math:`\Sigma = \sigma^2 (J_r^T J_r)^{-1}` from the Jacobian :math:`J_r` of the residuals of
    a least-squares fit (:mod:`dynopt.sysid` passes its exact one), or for a Problem the
    generalized Gauss-Newton matrix (:func:`dynopt.gradients.hessian.gauss_newton_hessp`).
``"sandwich"``
    :math:`\Sigma = H^{-1} \big(\sum_b s_b s_b^T\big) H^{-1}` with :math:`s_b` the gradient of
    scenario (experiment, series) b's contribution: robust to a misstated likelihood
    (Huber/White).

dynopt's objective is a mean over the B scenarios, :math:`J = \frac1B\sum_b J_b`; ``loss``
states what :math:`B J` is: ``"nll"`` a negative log-likelihood (:math:`\Sigma = (B H)^{-1}`),
``"sse"`` a sum of squared residuals with unknown noise variance
(:math:`\sigma^2 = B J / (n_{obs} - p)`, :math:`\Sigma = 2\sigma^2 (B H)^{-1}`, which is the
Gauss-Newton covariance at a zero-residual limit).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import prod
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from ..core.types import Array

__all__ = ["Covariance", "covariance", "covariance_matrix", "entry_names"]

KINDS = ("hessian", "gauss-newton", "sandwich")
LOSSES = ("nll", "sse")


@dataclass(frozen=True)
class Covariance:
    """Estimates with their covariance, named entry by entry.

    Attributes
    ----------
    estimates : (p,) array
    cov : (p, p) array
    names : tuple of p str
        One label per entry, e.g. ``"plant.a[0]"``.
    kind : str
        ``"hessian"``, ``"gauss-newton"``, ``"sandwich"`` (or ``"delta"`` after a transform).
    dof : int or None
        Residual degrees of freedom for Student-t intervals; ``None``: normal quantiles.
    blocks : dict
        ``{block name: slice}`` into the entries (e.g. ``"plant"``, ``"x0"``).
    """

    estimates: Array
    cov: Array
    names: Tuple[str, ...]
    kind: str
    dof: Optional[int] = None
    blocks: Dict[str, slice] = field(default_factory=dict)

    @property
    def se(self) -> Array:
        """Standard errors ``(p,)``, ``sqrt(diag(cov))``."""
        return np.sqrt(np.clip(np.diag(self.cov), 0.0, None))

    @property
    def corr(self) -> Array:
        """Correlation matrix ``(p, p)``."""
        s = self.se
        with np.errstate(divide="ignore", invalid="ignore"):
            c = self.cov / np.outer(s, s)
        np.fill_diagonal(c, 1.0)
        return c

    def ci(self, alpha: float = 0.05) -> Array:
        """Two-sided ``1 - alpha`` confidence intervals ``(p, 2)`` (Student-t with ``dof`` if set)."""
        if not (isinstance(alpha, (int, float)) and 0.0 < alpha < 1.0):
            raise ValueError(f"alpha: expected a number in (0, 1), got {alpha!r}")
        import scipy.stats
        q = scipy.stats.norm.ppf(1 - alpha / 2) if self.dof is None else scipy.stats.t.ppf(1 - alpha / 2, self.dof)
        return np.column_stack([self.estimates - q * self.se, self.estimates + q * self.se])

    def block(self, name: str) -> "Covariance":
        """The entries of one block (``"plant"``, ``"x0"``, ``"plant.A1"``, ...)."""
        if name not in self.blocks:
            raise KeyError(f"name: expected one of {sorted(self.blocks)}, got {name!r}")
        sl = self.blocks[name]
        return Covariance(self.estimates[sl], self.cov[sl, sl], self.names[sl], self.kind, self.dof, {name: slice(0, sl.stop - sl.start)})

    def summary(self, alpha: float = 0.05) -> str:
        """A table: name, estimate, standard error, z (or t) and the confidence interval."""
        lo_hi = self.ci(alpha)
        w = max([len(n) for n in self.names] + [9])
        stat = "t" if self.dof is not None else "z"
        lines = [f"{'parameter':<{w}} {'estimate':>12} {'std err':>11} {stat:>8} {'[' + str(alpha / 2):>11} "
                 f"{str(1 - alpha / 2) + ']':>11}"]
        for i, n in enumerate(self.names):
            se = self.se[i]
            z = self.estimates[i] / se if se > 0 else np.nan
            lines.append(f"{n:<{w}} {self.estimates[i]:>12.6g} {se:>11.4g} {z:>8.3f} {lo_hi[i, 0]:>11.5g} "
                         f"{lo_hi[i, 1]:>11.5g}")
        lines.append(f"covariance: {self.kind}" + ("" if self.dof is None else f", {self.dof} residual dof"))
        return "\n".join(lines)

    def __str__(self):
        return self.summary()


def _check_kind(kind):
    if kind not in KINDS:
        raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")
    return kind


def _inverse_pd(M: Array, what: str, names: Sequence[str]) -> Array:
    """Inverse of a symmetric positive definite matrix; a clear error naming the weakest direction."""
    M = 0.5 * (M + M.T)
    if not np.isfinite(M).all():
        raise ValueError(f"{what}: expected finite entries, got non-finite values")
    lam, V = np.linalg.eigh(M)
    tol = max(M.shape[0], 1) * np.finfo(float).eps * max(np.abs(lam).max(initial=0.0), 1e-300)
    if lam.size and lam[0] <= tol:
        v = V[:, 0]
        top = np.argsort(-np.abs(v))[:3]
        dirs = ", ".join(f"{v[i]:+.2f} {names[i]}" for i in top)
        raise ValueError(f"{what}: expected a positive definite matrix (a strict minimum with identifiable "
                         f"parameters), got smallest eigenvalue {lam[0]:.3g} (largest {lam[-1]:.3g}) along "
                         f"{dirs}: these parameters are not identified by the data, or W is not a minimum")
    return (V / lam) @ V.T


def covariance_matrix(kind: str, *, hessian: Optional[Array] = None, jacobian: Optional[Array] = None,
                      scores: Optional[Array] = None, scale: float = 1.0,
                      names: Optional[Sequence[str]] = None) -> Array:
    """The covariance matrix ``(p, p)`` from second-order information.

    Parameters
    ----------
    kind : {"hessian", "gauss-newton", "sandwich"}
    hessian : (p, p) array, optional
        Hessian of the total criterion (``"hessian"``; the bread of ``"sandwich"``).
    jacobian : (n_obs, p) array, optional
        Residual Jacobian (``"gauss-newton"``; with ``"sandwich"`` and no Hessian the bread is
        ``J^T J``).
    scores : (n_groups, p) array, optional
        Per-group gradients of the criterion (``"sandwich"``), e.g. per scenario or residual.
    scale : float
        Multiplies the inverse: ``sigma^2`` for ``"gauss-newton"``, 1 for a negative
        log-likelihood Hessian.
    """
    _check_kind(kind)
    p = None
    for a in (hessian, jacobian, scores):
        if a is not None:
            p = np.shape(a)[-1]
            break
    names = list(names) if names is not None else [f"w[{i}]" for i in range(p or 0)]
    if kind == "hessian":
        if hessian is None:
            raise TypeError("hessian: expected a (p, p) array for kind='hessian', got None")
        return scale * _inverse_pd(np.asarray(hessian, float), "hessian", names)
    if kind == "gauss-newton":
        if jacobian is None:
            raise TypeError("jacobian: expected an (n_obs, p) array for kind='gauss-newton', got None")
        Jr = np.asarray(jacobian, float)
        return scale * _inverse_pd(Jr.T @ Jr, "J^T J (Gauss-Newton)", names)
    if scores is None:
        raise TypeError("scores: expected an (n_groups, p) array for kind='sandwich', got None")
    if hessian is not None:
        bread = _inverse_pd(np.asarray(hessian, float), "hessian", names)
    elif jacobian is not None:
        Jr = np.asarray(jacobian, float)
        bread = _inverse_pd(Jr.T @ Jr, "J^T J", names)
    else:
        raise TypeError("hessian: the sandwich needs a bread: a hessian or a jacobian, got neither")
    S = np.asarray(scores, float)
    return bread @ (S.T @ S) @ bread


def entry_names(problem) -> Tuple[Tuple[str, ...], Dict[str, slice]]:
    """One label per entry of the decision vector, and ``{block or sub-block: slice}``.

    Entries read ``"plant.A1[0,1]"`` (the component's named arrays), ``"x0[b,i]"`` or, for a
    lagged history, ``"x0[j,b,i]"``.
    """
    names = [None] * problem.n_decision
    blocks = dict(problem.block_slices())
    subs = problem.sub_blocks()
    blocks.update(subs)
    x0_shape = np.shape(problem.unpack(problem.W0)["x0"])
    comps = {"plant": problem.plant, "policy": problem.policy, "cost": problem.cost,
             "terminal": problem.terminal_cost}
    for label, sl in subs.items():
        if label == "x0":
            shape = x0_shape
        elif "." in label:
            blk, sub = label.split(".", 1)
            shape = dict(comps[blk].param_spec)[sub]
        else:
            shape = (sl.stop - sl.start,)
        size = prod(shape) if shape else 1
        for j in range(size):
            idx = np.unravel_index(j, shape) if shape else ()
            names[sl.start + j] = f"{label}[{','.join(str(int(i)) for i in idx)}]"
    return tuple(names), blocks


def covariance(problem, W, *, kind: str = "hessian", loss: str = "nll", nobs: Optional[int] = None,
               method: str = "auto", jacobian: Optional[Array] = None) -> Covariance:
    """Standard errors of the decision ``W`` of a fitted problem, named by block.

    Parameters
    ----------
    problem : dynopt.Problem
        Its objective ``J`` (a mean over the B scenarios) is the fit criterion; ``W`` a minimiser.
    W : (n_decision,) array
    kind : {"hessian", "gauss-newton", "sandwich"}
        ``"sandwich"`` takes one gradient per scenario (``problem.scenarios(b, b + 1)``).
    loss : {"nll", "sse"}
        What ``B J`` is: a negative log-likelihood, or a sum of squared residuals with unknown
        variance (then ``nobs``, the number of residuals, is required).
    nobs : int, optional
        Number of observations (residuals), for ``loss="sse"`` and for Student-t intervals.
    method : {"auto", "casadi", "fd"}
        How Hessian-vector products are taken (see :func:`dynopt.gradients.hessian.hessp`).
    jacobian : (nobs, n_decision) array, optional
        Residual Jacobian for ``kind="gauss-newton"``; without it the Gauss-Newton matrix is
        built from :func:`dynopt.gradients.hessian.gauss_newton_hessp` (the costs' curvature
        along the trajectory's Jacobian; needs CasADi forms).

    Returns
    -------
    Covariance
        ``.se``, ``.ci(alpha)``, ``.corr``, ``.block(name)``, ``.summary()``.
    """
    from ..gradients.hessian import hessian as dense_hessian
    _check_kind(kind)
    if loss not in LOSSES:
        raise ValueError(f"loss: expected one of {LOSSES}, got {loss!r}")
    W = problem.check_W(W)
    p, B = problem.n_decision, problem.B
    names, blocks = entry_names(problem)
    dof = None
    if nobs is not None:
        if isinstance(nobs, bool) or not isinstance(nobs, (int, np.integer)) or nobs <= p:
            raise ValueError(f"nobs: expected an integer > n_decision = {p}, got {nobs!r}")
        dof = int(nobs) - p
    if loss == "sse":
        if nobs is None:
            raise TypeError("nobs: loss='sse' needs the number of residuals to estimate the noise variance, got None")
        sigma2 = B * problem.value(W) / dof
    if kind == "gauss-newton" and jacobian is None:
        from ..gradients.hessian import gauss_newton_hessp
        G = np.column_stack([gauss_newton_hessp(problem, W, e) for e in np.eye(p)])
        Htot = B * 0.5 * (G + G.T)
        if loss == "sse":
            Htot = Htot / (2.0 * sigma2)
        cov = covariance_matrix("hessian", hessian=Htot, names=names)
        return Covariance(W.copy(), cov, names, kind, dof, blocks)
    if kind == "gauss-newton":
        Jr = np.asarray(jacobian, float)
        if Jr.ndim != 2 or Jr.shape[1] != p:
            raise ValueError(f"jacobian: expected shape (nobs, {p}), got {Jr.shape}")
        scale = sigma2 if loss == "sse" else 1.0
        cov = covariance_matrix("gauss-newton", jacobian=Jr, scale=scale, names=names)
        return Covariance(W.copy(), cov, names, kind, dof, blocks)
    Htot = B * dense_hessian(problem, W, method=method)
    if loss == "sse":
        Htot = Htot / (2.0 * sigma2)      # Hessian of SSE / (2 sigma^2), the Gaussian NLL
    if kind == "hessian":
        cov = covariance_matrix("hessian", hessian=Htot, names=names)
    else:
        scores = np.empty((B, p))
        slices = problem.block_slices()
        for b in range(B):
            sub = problem.scenarios(b, b + 1)
            blk = problem.unpack(W)
            Wb = sub.pack(**{name: (_rows(blk[name], b, problem) if name == "x0" else blk[name])
                             for name in problem.decision})
            gb = sub.value_and_grad(Wb)[1]
            s = np.zeros(p)
            for name, sl_b in sub.block_slices().items():
                if name == "x0":
                    s[_x0_entries(problem, b)] = gb[sl_b]
                else:
                    s[slices[name]] = gb[sl_b]
            scores[b] = s / (2.0 * sigma2) if loss == "sse" else s
        cov = covariance_matrix("sandwich", hessian=Htot, scores=scores, names=names)
    return Covariance(W.copy(), cov, names, kind, dof, blocks)


def _rows(x0, b, problem):
    k = problem.plant.lags
    a = np.asarray(x0).reshape((k, problem.B, problem.plant.n_state))
    return a[:, b:b + 1, :]


def _x0_entries(problem, b):
    k, B, n = problem.plant.lags, problem.B, problem.plant.n_state
    sl = problem.block_slices()["x0"]
    idx = np.arange(k * B * n).reshape(k, B, n)[:, b, :].ravel()
    return sl.start + idx
