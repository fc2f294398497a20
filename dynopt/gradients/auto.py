r"""The default strategy: the fastest exact path for each problem, picked by measurement.

:class:`Auto` starts every problem on the NumPy sweeps (:class:`~dynopt.BPTT`), which need no
build.  When every component has a CasADi form and the problem is evaluated again (from the
``min_calls``-th evaluation on, default the second, and once it has cost ``compile_after``
seconds of NumPy time, default 0: a one-off ``value_and_grad`` never waits on, or pays for, a
compiler), it builds
the compiled sweeps of :class:`~dynopt.CompiledBPTT` (C code, gcc, the private disk cache of
:mod:`dynopt.casadi.codegen`) in a background thread and keeps answering with NumPy meanwhile.
Once the library is loaded it times both paths on the same W and keeps the faster one (ties go
to NumPy): compiled loops win for small batches and scalar recursions, where NumPy's
per-step overhead dominates; NumPy wins for BLAS-heavy batches.  Compiled sweeps come in two
forms (:class:`~dynopt.CompiledBPTT`'s ``loop``): the compiled scans (two plain C loops, fastest,
gcc time grows with the batch) and the tower (built in about a second).  Small scans are built
directly; where the scans would take gcc several seconds, the tower is built first and answers,
then the scans are built in the background and replace it if they are faster.

Both paths compute the same exact gradient (they agree to ~1e-13 relative; see
``tests/test_auto.py``), so the choice never changes an answer beyond rounding.  What was
picked is in every evaluation's ``stats["path"]`` (``"numpy"`` or ``"compiled"``) and in
:meth:`Auto.describe`.  ``DYNOPT_COMPILE=0`` in the environment (or ``Auto(compile=False)``)
keeps every problem on NumPy; an explicit ``gradient=`` always wins over the default.
"""

from __future__ import annotations

import shutil
import threading
import time
import weakref
from concurrent import futures
from concurrent.futures import Future
from typing import Optional

import numpy as np

from ..core.background import compile_allowed, submit as _submit
from ..core.validation import check_int
from ..errors import SimulationDivergedError
from .base import BPTT, Evaluation, GradientMethod


class _Choice:
    """What :class:`Auto` knows about one problem."""

    def __init__(self):
        self.path = "numpy"            # the path answering now
        self.reason = "no compiled build yet"
        self.calls = 0
        self.numpy_seconds = 0.0       # NumPy time spent on this problem so far
        self.numpy_time: Optional[float] = None   # last per-call NumPy time
        self.compiled_time: Optional[float] = None
        self.future: Optional[Future] = None
        self.compiled = None           # the CompiledBPTT strategy once loaded
        self.build: dict = {}
        self.settled = False
        self.tiers: Optional[list] = None  # compiled loops to build, in order ("auto", "tower", "scan")
        self.tier = 0
        self.lock = threading.Lock()       # one thread at a time starts or finishes a build
        self.est: Optional[int] = None     # estimated size of the scans (SX instructions)


class Auto(GradientMethod):
    """Pick the fastest exact gradient path per problem (see the module docstring).

    Parameters
    ----------
    compile : bool, optional
        Allow compiled sweeps; default: unless ``DYNOPT_COMPILE=0``.
    compile_after : float
        NumPy seconds a problem must have cost before a background build starts (default 0).
    min_calls : int
        The evaluation at which a background build may start (default 2: a one-off
        ``value_and_grad`` never starts a compiler; an optimisation starts it at its second call).
    cache_dir : path, optional
        Where compiled libraries are cached (default ``$DYNOPT_CACHE_DIR`` or ``~/.cache/dynopt``).
    """

    def __init__(self, *, compile: Optional[bool] = None, compile_after: float = 0.0, min_calls: int = 2,
                 cache_dir=None):
        if compile is None:
            compile = compile_allowed()
        self.compile = bool(compile)
        if not (isinstance(compile_after, (int, float)) and not isinstance(compile_after, bool)
                and np.isfinite(compile_after) and compile_after >= 0):
            raise ValueError(f"compile_after: expected a number of seconds >= 0, got {compile_after!r}")
        self.compile_after = float(compile_after)
        self.min_calls = check_int("min_calls", min_calls, minimum=1)
        self.cache_dir = cache_dir
        self._numpy = BPTT()
        self._choices: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ choice
    def _choice(self, problem) -> _Choice:
        with self._lock:
            ch = self._choices.get(problem)
            if ch is None:
                ch = self._choices[problem] = _Choice()
                if not self.compile:
                    ch.reason, ch.settled = "compiled sweeps disabled (Auto(compile=False) or DYNOPT_COMPILE=0)", True
                elif shutil.which("gcc") is None:
                    ch.reason, ch.settled = "no C compiler (gcc) on PATH", True
                else:
                    from ..casadi.forms import problem_forms  # the CasADi layer is loaded on first use
                    forms = problem_forms(problem)
                    if forms is None:
                        missing = [name for name, comp in (("plant", problem.plant), ("policy", problem.policy),
                                                           ("cost", problem.cost),
                                                           ("terminal", problem.terminal_cost))
                                   if comp is not None and _form(comp) is None]
                        ch.reason = f"NumPy-only component(s) without a CasADi form: {', '.join(missing)}"
                        ch.settled = True
            return ch

    def _start_build(self, problem, ch: _Choice) -> None:
        from ..casadi.compiled import CompiledBPTT
        from ..casadi.scan_sweeps import FAST_BUILD_INSTRUCTIONS, SMALL_INSTRUCTIONS, estimate_instructions, fits

        if ch.tiers is None:
            # scans are fastest where they fit, but a large one takes seconds of gcc: the tower (built
            # in a second) answers meanwhile, then the scans replace it if they are faster.  Small scans
            # are built directly ("auto": the tower if gcc refuses them)
            est = estimate_instructions(problem)
            ch.tiers = (["tower"] if not fits(problem) else ["auto"] if est <= FAST_BUILD_INSTRUCTIONS
                        else ["tower", "scan"])
            ch.est = est
        loop = ch.tiers[ch.tier]
        strategy = CompiledBPTT(codegen=True, cache_dir=self.cache_dir, loop=loop)
        ch.reason = (f"compiled build running in the background ({loop})" if ch.path == "numpy" else
                     f"{ch.reason}; building the compiled {loop} in the background")

        def build():
            built = strategy.build(problem)
            return strategy, built

        small = loop in ("tower", "auto") or (ch.est is not None and ch.est <= SMALL_INSTRUCTIONS)
        ch.future = _submit(build, lane="small" if small and ch.tier == 0 else "large")

    def _finish_build(self, problem, ch: _Choice, W) -> None:
        last = ch.tier + 1 >= len(ch.tiers)
        try:
            strategy, built = ch.future.result()
        except Exception as exc:  # noqa: BLE001 - any build failure leaves the current path in charge
            ch.reason = f"compiled build failed ({type(exc).__name__}: {exc}); {ch.path} kept"
            self._next_tier(ch, last)
            return
        record = dict(getattr(built, "record", {}) or {})
        if not record.get("compiled", False):
            ch.reason = f"compiled build fell back to CasADi's VM; {ch.path} kept"
            self._next_tier(ch, last)
            return
        # time the candidate against the path in use on the same W (best of two each; the first
        # compiled call warms buffers); NumPy is timed once
        try:
            with np.errstate(all="ignore"):
                strategy._evaluate(problem, W)
                t_c = min(_timed(strategy._evaluate, problem, W) for _ in range(2))
                if ch.numpy_time is None or ch.compiled is None:
                    ch.numpy_time = min(_timed(self._numpy._evaluate, problem, W) for _ in range(2))
                if ch.compiled is not None:
                    ch.compiled_time = min(_timed(ch.compiled._evaluate, problem, W) for _ in range(2))
        except SimulationDivergedError:
            return  # not a point to time at: decide at the next evaluation
        best = ch.numpy_time if ch.compiled is None else min(ch.numpy_time, ch.compiled_time)
        loop = record.get("loop", "")
        if t_c < 0.9 * best:
            ch.path, ch.compiled, ch.compiled_time, ch.build = "compiled", strategy, t_c, record
            ch.reason = f"compiled sweeps ({loop}) {t_c * 1e3:.3g} ms vs NumPy {ch.numpy_time * 1e3:.3g} ms per gradient"
        elif ch.compiled is None:
            ch.reason = f"NumPy {ch.numpy_time * 1e3:.3g} ms vs compiled ({loop}) {t_c * 1e3:.3g} ms per gradient"
        else:
            ch.reason += f"; compiled {loop} {t_c * 1e3:.3g} ms not faster"
        self._next_tier(ch, last)

    @staticmethod
    def _next_tier(ch: _Choice, last: bool) -> None:
        if last:
            ch.settled = True
        else:
            ch.tier += 1
            ch.future = None  # the next _step starts it

    def _step(self, problem, W) -> _Choice:
        ch = self._choice(problem)
        ch.calls += 1
        # build transitions by one thread at a time; the others answer with the path in use
        if not ch.settled and ch.lock.acquire(blocking=False):
            try:
                if ch.future is None:
                    if ch.tier > 0 or (ch.calls >= self.min_calls and ch.numpy_seconds >= self.compile_after):
                        self._start_build(problem, ch)
                elif ch.future.done():
                    self._finish_build(problem, ch, W)
            finally:
                ch.lock.release()
        return ch

    # ------------------------------------------------------------------ the strategy
    def _evaluate(self, problem, W):
        ch = self._step(problem, W)
        if ch.path == "compiled":
            ev = ch.compiled._evaluate(problem, W)
            return Evaluation(ev[0], ev[1], ev[2], dict(ev.stats, path="compiled"))
        t0 = time.perf_counter()
        ev = self._numpy._evaluate(problem, W)
        ch.numpy_seconds += time.perf_counter() - t0
        return Evaluation(ev[0], ev[1], ev[2], dict(ev.stats, path="numpy"))

    def _value(self, problem, W):
        ch = self._choice(problem)
        if ch.path == "compiled":
            J, stats = ch.compiled._value(problem, W)
            return J, dict(stats, path="compiled")
        return super()._value(problem, W)

    def wait(self, problem, W=None, timeout: Optional[float] = None) -> str:
        """Start (if needed) and wait for the compiled build of ``problem``, then time both paths
        at ``W`` (default ``problem.W0``) and choose; returns the path now in use.  For
        benchmarks and tests; ordinary use never waits."""
        ch = self._choice(problem)
        W = problem.check_W(problem.W0 if W is None else W)
        with ch.lock:
            while not ch.settled:
                if ch.future is None:
                    self._start_build(problem, ch)
                if not futures.wait([ch.future], timeout).done:
                    raise TimeoutError(f"Auto.wait: the compiled build did not finish within timeout={timeout} s")
                tier = ch.tier
                self._finish_build(problem, ch, W)  # a failed build moves on to the next tier
                if ch.tier == tier and not ch.settled:
                    break  # W could not be timed (diverged): decide later
        return ch.path

    def describe(self, problem) -> str:
        """Which path answers for ``problem`` and why."""
        ch = self._choices.get(problem)
        if ch is None:
            return "numpy (not evaluated yet)"
        return f"{ch.path} ({ch.reason})"

    def __reduce__(self):  # a fresh strategy on the other side (choices are per process)
        return (_make_auto, (self.compile, self.compile_after, self.min_calls, self.cache_dir))

    def __repr__(self):
        return f"Auto(compile={self.compile})"


def _make_auto(compile, compile_after, min_calls, cache_dir):
    return Auto(compile=compile, compile_after=compile_after, min_calls=min_calls, cache_dir=cache_dir)


def _form(component):
    from ..casadi.forms import casadi_form
    return casadi_form(component)


def _timed(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0
