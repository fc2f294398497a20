r"""Checkpointed BPTT: the exact BPTT gradient in bounded memory, paid for with recomputation.

Full-storage :class:`~dynopt.BPTT` keeps every step's contexts, O(T) of them.  Checkpointed
BPTT keeps only the histories ``(x[t], ..., x[t-k+1])`` at a few *checkpoints* and, during the
backward sweep, re-simulates the segment between two checkpoints with its contexts kept
(:func:`dynopt.core.sweeps.forward_segment` with ``keep=True``) and runs the adjoint recursion over
it (:func:`dynopt.core.sweeps.backward_segment`).  The forward map is deterministic, so the
recomputed contexts are bit-identical to the first ones and the gradient is *the same
number* as full-storage BPTT (up to the order in which the stage costs are summed into J).

Schedule
--------
The horizon is cut into *leaves* of ``segment`` = L steps; a leaf is the unit that is taped
(its contexts kept) at once.  Between leaves, the binomial ("revolve") schedule of Griewank
(1992, "Achieving logarithmic growth of temporal and spatial complexity in reverse automatic
differentiation"; Griewank & Walther 2000, ACM TOMS 26) decides where to store histories:
with ``s`` checkpoints (beside the initial history, which the problem holds anyway) and at
most ``r`` forward evaluations of any leaf before its reversal, ``C(s + r, s)`` leaves can be
reversed, and the total number of forward leaf evaluations is the minimum possible.

* Default (``budget=None``): ``L = round(sqrt(k T))`` and ``ceil(T / L) - 1`` checkpoints,
  i.e. about ``sqrt(T / k)`` stored histories plus one taped segment of about ``sqrt(k T)``
  steps.  This is the classical two-level scheme: every step is evaluated at most twice
  (``r = 1``), so the gradient costs one extra forward sweep.
* ``budget=M``: at most M *stored states* at once, counting a checkpoint as its k states and
  one taped step as one state (a step's contexts are, for the library's models, a few arrays
  of the state's size).  The leaf length and the number of checkpoints are chosen to
  minimise the number of step evaluations within M; if ``M >= T`` nothing is recomputed.
  Small budgets (down to ``M = 1``) work, at a recomputation cost that grows like
  ``T^(1 + 1/s) / s``.

Memory and work of an evaluation are in its result's ``.stats``; the problem's
``counts["recomputed_steps"]`` adds up the extra step evaluations over all calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil, comb, sqrt
from typing import Optional

import numpy as np

from .base import Evaluation, GradientMethod
from ..core.sweeps import Grads, backward_segment, forward_segment, initial_window, terminal_forward
from ..core.validation import check_int


@dataclass(frozen=True)
class Plan:
    """A checkpointing plan for a horizon.

    Attributes
    ----------
    horizon : int
        T, steps.
    lags : int
        k, states per checkpoint.
    segment : int
        L, steps taped at once (leaf length).
    checkpoints : int
        Histories that may be stored at once beside the initial one.
    leaves : int
        ``ceil(T / L)``.
    repetitions : int
        r: the most times a leaf is evaluated before it is reversed (binomial schedule).
    """

    horizon: int
    lags: int
    segment: int
    checkpoints: int
    leaves: int
    repetitions: int

    @property
    def states(self) -> int:
        """Upper bound on stored states: ``checkpoints * k + segment``."""
        return self.checkpoints * self.lags + self.segment

    @property
    def predicted_evaluations(self) -> int:
        """Leaf evaluations of the binomial schedule times L (an upper bound on step evaluations)."""
        return self.segment * (self.leaves + _advances(self.leaves, self.checkpoints + 1))


def _beta(s: int, r: int) -> int:
    """``C(s + r, s)``: leaves reversible with s snapshots (initial one included) and r repetitions."""
    if r < 0 or s < 0:
        return 0
    return comb(s + r, s)


def _reps(l: int, s: int) -> int:
    """Smallest r with ``beta(s, r) >= l`` (s >= 1)."""
    r = 0
    while _beta(s, r) < l:
        r += 1
    return r


def _advances(l: int, s: int) -> int:
    """Minimal forward leaf evaluations, besides one taping each, to reverse l leaves with s snapshots.

    Griewank & Walther (2000), Prop. 1: ``t(l, s) = r l - beta(s + 1, r - 1)`` with r the
    smallest repetition number such that ``beta(s, r) >= l``.
    """
    if l <= 1:
        return 0
    if s == 1:
        return l * (l - 1) // 2
    r = _reps(l, s)
    return r * l - _beta(s + 1, r - 1)


def _split(l: int, s: int) -> int:
    """Leaves to advance before storing the next checkpoint, for l leaves and s snapshots (s >= 2).

    The left part (reversed later with s snapshots, r - 1 repetitions) may hold at most
    ``beta(s, r - 1)`` leaves, the right part (s - 1 snapshots, r repetitions) at most
    ``beta(s - 1, r)``; within that range the split minimising the total work is taken.
    """
    r = _reps(l, s)
    lo = max(1, l - _beta(s - 1, r))
    hi = min(l - 1, _beta(s, r - 1))
    if hi <= lo:
        return max(1, min(lo, l - 1))
    if hi - lo <= 64:
        cands = range(lo, hi + 1)
    else:
        cands = sorted(set(np.linspace(lo, hi, 65).round().astype(int).tolist()))
    return min(cands, key=lambda m: (m + _advances(l - m, s - 1) + _advances(m, s), -m))


def make_plan(horizon: int, lags: int = 1, budget: Optional[int] = None) -> Plan:
    """Choose the leaf length and the number of checkpoints.

    Parameters
    ----------
    horizon : int
        T >= 1.
    lags : int
        k >= 1, the plant's lags (a checkpoint stores k states).
    budget : int, optional
        Most stored states at once (checkpoints count k each, taped steps one each), >= 1;
        default about ``2 sqrt(k T)``.
    """
    T = check_int("horizon", horizon, minimum=1)
    k = check_int("lags", lags, minimum=1)
    if budget is None:
        L = max(1, min(T, round(sqrt(k * T))))
        n = ceil(T / L)
        return Plan(T, k, L, n - 1, n, 1 if n > 1 else 0)
    M = check_int("budget", budget, minimum=1)
    if M >= T:
        return Plan(T, k, T, 0, 1, 0)
    best = None
    for L in range(1, M + 1):
        S = (M - L) // k
        n = ceil(T / L)
        S = min(S, n - 1)
        work = L * _advances(n, S + 1) + T
        key = (work, S * k + L)
        if best is None or key < best[0]:
            best = (key, L, S, n)
    _, L, S, n = best
    return Plan(T, k, L, S, n, _reps(n, S + 1) if S >= 1 else n - 1)


class CheckpointedBPTT(GradientMethod):
    """BPTT that stores a few histories and recomputes the rest (same gradient, bounded memory).

    Parameters
    ----------
    budget : int, optional
        Most *stored states* at once: a checkpoint of a k-lag plant counts k, a taped step
        one.  Default ``None``: about ``sqrt(T / k)`` checkpoints and a taped segment of
        about ``sqrt(k T)`` steps, every step evaluated at most twice.

    Notes
    -----
    ``evaluate(problem, W).stats`` holds: ``segment`` (L), ``checkpoints_allowed``,
        ``checkpoints_peak``, ``tape_peak`` (steps taped at once), ``states_peak``
        (checkpoint states + taped steps at once, never above ``budget``),
        ``step_evaluations``, ``recomputed_steps`` (= step_evaluations - T) and
        ``recompute_factor`` (= step_evaluations / T).

    The returned trajectory is ``None``: keeping it would cost the O(T) memory this strategy
    exists to avoid (``problem.simulate(W)`` gives it when wanted).
    """

    def __init__(self, budget: Optional[int] = None):
        if budget is not None:
            check_int("budget", budget, minimum=1)
        self.budget = budget
        self._plans: dict = {}

    def plan(self, horizon: int, lags: int = 1) -> Plan:
        """The :class:`Plan` this strategy uses for a horizon and a number of lags (memoised)."""
        key = (horizon, lags)
        if key not in self._plans:
            self._plans[key] = make_plan(horizon, lags, self.budget)
        return self._plans[key]

    def _evaluate(self, problem, W):
        setup = problem.setup(W)
        plan = self.plan(setup.T, problem.plant.lags)
        run = _Run(setup, plan)
        with np.errstate(all="ignore"):
            grads, window = run.execute()
            grads.finish(setup)
            total = run.cost_sum if run.term is None else run.cost_sum + run.term
            J = float(total.sum() / setup.B)  # an overflow is located by the template
        stats = dict(run.stats(), forward=1, backward=1)
        return Evaluation(J, problem.gradient_from(grads, window), None, stats)

    def __repr__(self):
        return f"CheckpointedBPTT(budget={self.budget})"


class _Run:
    """One checkpointed forward/backward evaluation, with its bookkeeping."""

    def __init__(self, setup, plan: Plan):
        self.setup, self.plan = setup, plan
        self.L, self.T, self.k = plan.segment, setup.T, setup.plant.lags
        self.stored = {0: setup.hist0}       # checkpoint position -> history (0 is the problem's x0)
        self.frontier = 0                    # steps [0, frontier) have had their cost added
        self.cost_sum = np.zeros(setup.B)
        self.term = None
        self.grads = Grads(setup)
        self.window = None
        self.evaluations = 0
        self.ckpt_peak = 0
        self.tape_peak = 0
        self.states_peak = 0

    def _pos(self, leaf: int) -> int:
        return min(self.T, leaf * self.L)

    def _forward(self, hist, a, b, keep):
        seg = forward_segment(self.setup, hist, a, b, keep=keep)
        self.evaluations += b - a
        if b > self.frontier:
            with np.errstate(over="ignore", invalid="ignore"):
                self.cost_sum += seg.costs[self.frontier - a:].sum(axis=0)
            self.frontier = b
            if b == self.T:
                self.term, tctx = terminal_forward(self.setup, seg.hist[0])
                self.window = initial_window(self.setup, tctx, self.grads)
        return seg

    def _note_memory(self, taped):
        n_ck = len(self.stored) - 1
        self.ckpt_peak = max(self.ckpt_peak, n_ck)
        self.tape_peak = max(self.tape_peak, taped)
        self.states_peak = max(self.states_peak, n_ck * self.k + taped)

    def _reverse_leaf(self, hist, a, b):
        seg = self._forward(hist, a, b, keep=True)
        self._note_memory(b - a)
        self.window = backward_segment(self.setup, seg, self.window, self.grads)

    def execute(self):
        # Tasks: ("rev", first leaf, end leaf, free checkpoints) or ("free", position).
        stack = [("rev", 0, self.plan.leaves, self.plan.checkpoints)]
        while stack:
            task = stack.pop()
            if task[0] == "free":
                del self.stored[task[1]]
                continue
            _, i0, i1, S = task
            t0, hist0 = self._pos(i0), self.stored[self._pos(i0)]
            if i1 - i0 == 1:
                self._reverse_leaf(hist0, t0, self._pos(i1))
            elif S == 0:
                # No checkpoint left: re-advance from t0 to each leaf, last leaf first.
                for i in range(i1 - 1, i0 - 1, -1):
                    hist = hist0 if i == i0 else self._forward(hist0, t0, self._pos(i), keep=False).hist
                    self._reverse_leaf(hist, self._pos(i), self._pos(i + 1))
                    del hist
            else:
                m = i0 + _split(i1 - i0, S + 1)
                tm = self._pos(m)
                self.stored[tm] = self._forward(hist0, t0, tm, keep=False).hist
                self._note_memory(0)
                stack += [("rev", i0, m, S), ("free", tm), ("rev", m, i1, S - 1)]
        return self.grads, self.window

    def stats(self) -> dict:
        return {
            "horizon": self.T, "segment": self.L, "checkpoints_allowed": self.plan.checkpoints,
            "checkpoints_peak": self.ckpt_peak, "tape_peak": self.tape_peak,
            "states_peak": self.states_peak, "step_evaluations": self.evaluations,
            "recomputed_steps": self.evaluations - self.T,
            "recompute_factor": self.evaluations / self.T,
        }
