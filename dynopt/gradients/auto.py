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
per-step overhead dominates; NumPy wins for BLAS-heavy batches.

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

        strategy = CompiledBPTT(codegen=True, cache_dir=self.cache_dir)
        ch.reason = "compiled build running in the background"

        def build():
            built = strategy.build(problem)
            return strategy, built

        ch.future = _submit(build)

    def _finish_build(self, problem, ch: _Choice, W) -> None:
        try:
            strategy, built = ch.future.result()
        except Exception as exc:  # noqa: BLE001 - any build failure leaves the NumPy path in charge
            ch.reason, ch.settled = f"compiled build failed ({type(exc).__name__}: {exc}); NumPy kept", True
            return
        ch.build = dict(getattr(built, "record", {}) or {})
        if not ch.build.get("compiled", False):
            ch.reason, ch.settled = "compiled build fell back to CasADi's VM; NumPy kept", True
            return
        # time both paths on the same W (best of two each; the first compiled call warms buffers)
        try:
            with np.errstate(all="ignore"):
                strategy._evaluate(problem, W)
                t_c = min(_timed(strategy._evaluate, problem, W) for _ in range(2))
                t_n = min(_timed(self._numpy._evaluate, problem, W) for _ in range(2))
        except SimulationDivergedError:
            return  # not a point to time at: decide at the next evaluation
        ch.compiled_time, ch.numpy_time = t_c, t_n
        if t_c < 0.9 * t_n:
            ch.path, ch.compiled = "compiled", strategy
            ch.reason = f"compiled sweeps {t_c * 1e3:.3g} ms vs NumPy {t_n * 1e3:.3g} ms per gradient"
        else:
            ch.reason = f"NumPy {t_n * 1e3:.3g} ms vs compiled {t_c * 1e3:.3g} ms per gradient"
        ch.settled = True

    def _step(self, problem, W) -> _Choice:
        ch = self._choice(problem)
        ch.calls += 1
        if not ch.settled:
            if ch.future is None:
                if ch.calls >= self.min_calls and ch.numpy_seconds >= self.compile_after:
                    self._start_build(problem, ch)
            elif ch.future.done():
                self._finish_build(problem, ch, W)
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
        if ch.settled:
            return ch.path
        if ch.future is None:
            self._start_build(problem, ch)
        ch.future.result(timeout)
        self._finish_build(problem, ch, problem.check_W(problem.W0 if W is None else W))
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
