r"""Truncated BPTT: an explicit, documented *approximation* of the gradient.

Definition
----------
Write the objective as a sum of sources, the stage costs ``l_s`` (s = 0..T-1) and the
terminal cost ``l_T``.  A source at step s depends on W directly (its own parameters and the
policy at step s) and through the states ``x[s], x[s-1], ...``, each reached by one more
*transition* ``f_t`` (one application of the plant, whichever of its k lags the path uses).
``TruncatedBPTT(h)`` keeps, for every source, exactly the paths that go back through at most
``h`` transitions and drops the rest:

.. math::
    g_h = \sum_s \sum_{\text{paths } p:\ l_s \to W,\ |p| \le h} (\text{product of partials on } p)

So ``h = 0`` keeps only each step's direct dependence, and ``h >= T`` gives the exact BPTT
gradient (no path is longer than T transitions).  For a lag-1 plant this is the gradient of
``sum_s l_s`` with ``x[s-h]`` held fixed ("stop-gradient") for each s separately.  This is the
sliding-window form (every source sees the same depth h), not the block form that resets the
adjoint every h steps (where a source sees between 0 and h-1 transitions).

Cost and memory
---------------
The forward sweep stores the whole trajectory, as :class:`~dynopt.BPTT`.  The backward sweep
carries one adjoint window per path length ``a = 0..h`` (a source's adjoint must be dropped
when *its own* depth reaches h, so adjoints of different depths cannot be summed), i.e.
``h + 1`` plant and policy duals per step: O(T h) work, O(h B n) extra memory.  Truncation is
for studying how far back the gradient's information comes from (and for the optimiser when
exploding products make exact gradients useless); :func:`truncation_error` measures what is
lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Sequence

import numpy as np

from ..core.components import add_adjoint
from .base import BPTT
from ..core.sweeps import Grads, cost_dual, initial_window, plant_dual, policy_dual
from ..core.validation import check_int


class TruncatedBPTT(BPTT):
    """Gradient in which every cost term reaches W through at most ``h`` transitions (approximate).

    Parameters
    ----------
    h : int
        Truncation depth in steps, ``h >= 0``; ``h >= T`` gives the exact gradient.

    See the module docstring for the exact definition, cost O(T h) and memory.
    """

    def __init__(self, h: int):
        self.h = check_int("h", h, minimum=0)

    def backward(self, setup, seg, term_ctx, grads):
        return truncated_backward(setup, seg, term_ctx, grads, self.h)

    def __repr__(self):
        return f"TruncatedBPTT(h={self.h})"


def truncated_backward(setup, seg, term_ctx, grads: Grads, h: int) -> list:
    """Backward sweep over a full-horizon segment keeping paths of at most ``h`` transitions.

    Composes the engine's per-component duals (:func:`~dynopt.core.sweeps.plant_dual`,
    :func:`~dynopt.core.sweeps.policy_dual`, :func:`~dynopt.core.sweeps.cost_dual`) with one
    adjoint window per path length.  Returns the adjoint window at ``t = 0`` summed over path
    lengths (for the x0 block) and adds the parameter adjoints into ``grads``.
    """
    k = setup.plant.lags
    H = min(h, setup.T)
    # ages[a] is the adjoint window [lam[t+1], partial lam[t], ..., partial lam[t-k+1]]
    # restricted to paths that have crossed exactly a transitions.
    ages = [initial_window(setup, term_ctx, grads)] + [[None] * (k + 1) for _ in range(H)]
    for i in range(len(seg.tape) - 1, -1, -1):
        pc, cc, fc = seg.tape[i]
        x_cost = u_cost = None
        if setup.cost is not None:
            x_cost, u_cost = cost_dual(setup, cc, grads, i)
            if setup.post:  # a post-step cost sits on x[t+1]: age 0 of lam[t+1]
                ages[0][0] = add_adjoint(ages[0][0], x_cost)
                x_cost = None
        for a in range(H):  # crossing f_t makes the path one transition longer: a + 1 <= H
            lam_next = ages[a][0]
            if lam_next is None:
                continue
            hist_bar, u_bar = plant_dual(setup, fc, lam_next, grads, i)
            tgt = ages[a + 1]
            for j in range(k):
                if hist_bar[j] is not None:
                    tgt[j + 1] = add_adjoint(tgt[j + 1], hist_bar[j])
            if u_bar is not None:
                tgt[1] = add_adjoint(tgt[1], policy_dual(setup, pc, u_bar, grads, i))
        ages[0][1] = add_adjoint(ages[0][1], x_cost)
        if u_cost is not None:
            ages[0][1] = add_adjoint(ages[0][1], policy_dual(setup, pc, u_cost, grads, i))
        ages = [w[1:] + [None] for w in ages]
    window = [None] * (k + 1)
    for w in ages:
        window = [add_adjoint(a, b) for a, b in zip(window, w)]
    return window


@dataclass
class TruncationReport:
    """Truncated against exact gradients at one W.

    Attributes
    ----------
    horizons : list of int
        The depths h.
    rel_error : list of float
        ``||g_h - g|| / ||g||`` (2-norms over W).
    cosine : list of float
        ``<g_h, g> / (||g_h|| ||g||)``: whether a descent direction survives truncation.
    exact : (n_decision,) array
        The exact gradient (full-storage BPTT).
    gradients : list of arrays
        ``g_h`` for each h.
    """

    horizons: List[int]
    rel_error: List[float]
    cosine: List[float]
    exact: np.ndarray
    gradients: List[np.ndarray] = field(repr=False)

    def summary(self) -> str:
        """A table: h, relative error, cosine."""
        lines = [f"truncated BPTT vs exact (||g|| = {np.linalg.norm(self.exact):.4g})",
                 f"{'h':>8}  {'rel. error':>11}  {'cosine':>8}"]
        for h, e, c in zip(self.horizons, self.rel_error, self.cosine):
            lines.append(f"{h:>8d}  {e:>11.3e}  {c:>8.4f}")
        return "\n".join(lines)


def truncation_error(problem, W=None, horizons: Sequence[int] = (0, 1, 2, 5, 10, 20, 50, 100)) -> TruncationReport:
    """Compare :class:`TruncatedBPTT` gradients for several depths with the exact gradient.

    Parameters
    ----------
    problem : dynopt.Problem
    W : (n_decision,) array, optional
        Default ``problem.W0``.
    horizons : sequence of int
        Depths h >= 0 to try (each costs O(T h)).
    """
    W = problem.check_W(problem.W0 if W is None else W)
    hs = [check_int("horizons", h, minimum=0) for h in horizons]
    if not hs:
        raise ValueError("horizons: expected at least one depth h >= 0, got an empty sequence")
    _, g, _ = BPTT().evaluate(problem, W)
    gn = float(np.linalg.norm(g))
    errs, coss, gs = [], [], []
    for h in hs:
        _, gh, _ = TruncatedBPTT(h).evaluate(problem, W)
        d = float(np.linalg.norm(gh - g))
        hn = float(np.linalg.norm(gh))
        errs.append(d / gn if gn > 0 else d)
        coss.append(float(gh @ g) / (hn * gn) if hn > 0 and gn > 0 else float("nan"))
        gs.append(gh)
    return TruncationReport(hs, errs, coss, g, gs)
