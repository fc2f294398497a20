"""The objective SciPy sees: memoised (J, dJ/dW) per W, diverged trial points as a finite wall,
power-of-two rescaling of astronomical values, and the signals that restart a run."""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Optional

import numpy as np

from ..core.problem import Problem
from ..errors import SimulationDivergedError

DIVERGENCE_PENALTY = 10.0
"""A diverging trial point costs ``f_k + DIVERGENCE_PENALTY * max(1, |f_k|)`` (``f_k`` the
value at the current iterate, capped below the largest float), with a gradient pointing back
to the iterate, as if the objective rose quadratically along the step: every line search
rejects it and interpolates a shorter step."""

SCALE_THRESHOLD = 1e100
"""Objectives or gradients larger than this are divided by a power of two before SciPy sees
them (SciPy's inner products of gradients overflow near 1e154)."""

NONFINITE_STREAK = 20
"""Non-finite trial points in a row after which a run is restarted from its best point."""


class _Stall(Exception):
    """Raised by the evaluator when SciPy proposes non-finite points again and again."""


class _Rescale(Exception):
    """Raised from the callback to restart SciPy with a fresh scale (not a user-visible restart)."""


class _Evaluator:
    """Memoises (f, g, trajectory) by W (so no W is simulated twice) in the minimised sense
    ``f = sign * J``; feeds SciPy ``(f / scale, g / scale)`` and turns diverged trial points
    into a finite wall above the current iterate."""

    def __init__(self, problem: Problem, sign: float, max_grad_norm: Optional[float], keep: int = 4):
        self.problem, self.sign, self.max_grad_norm = problem, sign, max_grad_norm
        self.cache: "OrderedDict[bytes, tuple]" = OrderedDict()
        self.keep = keep
        self.diverged = 0
        self.nonfinite_points = 0
        self.nonfinite_streak = 0
        self.last_divergence: Optional[SimulationDivergedError] = None
        self.scale = 1.0
        self.anchor = None   # (W, f) of the current iterate
        self.best = None     # (f, W, g) lowest finite value evaluated
        self.evaluations = 0
        self.calls = 0
        self.path = None  # what the strategy reports it ran (Auto: "numpy" or "compiled")

    def lookup(self, W):
        return self.cache.get(np.asarray(W, dtype=np.float64).tobytes())

    def raw(self, W):
        """``(f, g, trajectory)`` at W, unscaled; raises SimulationDivergedError."""
        key = W.tobytes()
        hit = self.cache.get(key)
        if hit is None:
            out = self.problem.gradient.evaluate(self.problem, W)
            J, g, traj = out[0], out[1], out[2]
            self.path = (getattr(out, "stats", None) or {}).get("path", self.path)
            self.evaluations += 1
            g = self.sign * np.asarray(g, dtype=np.float64)
            if self.max_grad_norm is not None:
                from ..gradients.clipping import clip_gradient
                g = clip_gradient(g, self.max_grad_norm)
            hit = (self.sign * float(J), g, traj)
            self.cache[key] = hit
            if len(self.cache) > self.keep:
                self.cache.popitem(last=False)
            if self.best is None or hit[0] < self.best[0]:
                self.best = (hit[0], W.copy(), g)
        return hit

    def set_anchor(self, W, f):
        self.anchor = (np.array(W, dtype=np.float64), float(f))

    def penalty(self, W):
        """The wall: a finite value above the iterate's and a gradient pointing back to it."""
        W_a, f_a = self.anchor
        f_s = f_a / self.scale
        gap = min(DIVERGENCE_PENALTY * max(1.0, abs(f_s)), np.finfo(float).max / 4)
        P = min(f_s + gap, np.finfo(float).max / 2)
        g = np.zeros_like(W_a)
        if np.isfinite(W).all():
            d = W - W_a
            with np.errstate(all="ignore"):
                dd = float(d @ d)
                if dd > 0 and np.isfinite(dd):
                    g = 2.0 * (P - f_s) * d / dd
            if not np.isfinite(g).all():
                g = np.zeros_like(W_a)
        return P, g

    def hessp(self, W, v):
        """``sign * (d^2 J/dW^2) v / scale`` for SciPy's second-order methods (exact, see
        :meth:`dynopt.Problem.hessp`); zero curvature where it cannot be formed (a diverging W, or
        a non-finite direction from SciPy's subproblem solver), so the method falls back to a
        gradient step there instead of crashing."""
        W = np.asarray(W, dtype=np.float64)
        v = np.asarray(v, dtype=np.float64)
        if not (np.isfinite(W).all() and np.isfinite(v).all()):
            return np.zeros_like(v)
        try:
            Hv = self.problem.hessp(W, v)
        except SimulationDivergedError:
            return np.zeros_like(v)
        Hv = self.sign * np.asarray(Hv, dtype=np.float64) / self.scale
        return Hv if np.isfinite(Hv).all() else np.zeros_like(v)

    def __call__(self, W):
        self.calls += 1
        W = np.array(W, dtype=np.float64)
        if not np.isfinite(W).all():  # SciPy's own arithmetic broke down: never evaluate NaN
            self.nonfinite_points += 1
            self.nonfinite_streak += 1
            if self.nonfinite_streak >= NONFINITE_STREAK:
                self.nonfinite_streak = 0
                raise _Stall
            return self.penalty(W)
        self.nonfinite_streak = 0
        try:
            f, g, _ = self.raw(W)
        except SimulationDivergedError as exc:
            self.diverged += 1
            self.last_divergence = exc
            return self.penalty(W)
        return f / self.scale, g / self.scale


def _norm(g) -> float:
    """``||g||_2`` without overflow for entries near the float limit."""
    m = float(np.max(np.abs(g))) if g.size else 0.0
    if m == 0.0 or not np.isfinite(m):
        return m
    return m * float(np.linalg.norm(g / m))


def _projected_gradient(x, g, bounds) -> np.ndarray:
    if bounds is None:
        return g
    return x - np.clip(x - g, bounds.lb, bounds.ub)


def _power_of_two_scale(f, g) -> float:
    m = max(abs(f), float(np.max(np.abs(g))) if g.size else 0.0)
    if not m > SCALE_THRESHOLD:
        return 1.0
    return 2.0 ** math.floor(math.log2(m))


def _finite_at(ev: _Evaluator, x) -> bool:
    try:
        ev.raw(x)
        return True
    except SimulationDivergedError:
        return False
