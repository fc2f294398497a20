r"""A recursion over time as one compiled C loop, called on NumPy arrays without copies.

    x_{t+1}, y_t = f(x_t, z_t, p)        t = 0, ..., T - 1

CasADi generates the C code of the step ``f`` (straight-line SX code); a fixed driver loop
(:data:`DRIVER`, below: pointer arithmetic over the rows of ``Z`` and ``Y`` and two state
buffers swapped each step) is appended to the same file and compiled with it through dynopt's
private cache (:func:`.codegen.compile_functions`: mode 0700, SHA-256 records, build lock).
:class:`CompiledScan` calls the driver through ``ctypes`` on the caller's own NumPy buffers.

Why not CasADi's own ``mapaccum`` / ``fold``: their generated code copies the state through nested
maps and keeps the trajectory in a work vector (~45 ns per step on top of the step itself), and a
call from Python converts every NumPy argument to a ``DM`` (~60 ns per element): for the
20000-step GARCH(1, 1) derivative pass that was 1.1 ms + 5 ms against 0.35 ms here.

The step must take three dense column vectors ``(x (nx,), z (nz,), p (np,))`` and return
``x_next (nx,)`` and optionally ``y (ny,)``; MX steps are expanded to SX.  Outputs are densified
(structural zeros written as zeros).  ``Z`` is ``(T, nz)`` C-contiguous, so step ``t`` reads row
``t``; ``Y`` is ``(T, ny)``.
"""

from __future__ import annotations

import ctypes
import os
import threading
import warnings
from typing import Optional, Tuple

import casadi as ca
import numpy as np


DRIVER = r"""
/* dynopt.casadi.scan driver: x <- {prefix}_step(x, z_t, p) for t < T (t = T-1 .. 0 if reverse),
   y_t written to row t of Y (unless Y is NULL). */
#include <string.h>
CASADI_SYMBOL_EXPORT int {prefix}_scan(casadi_int T, const casadi_real* x0, const casadi_real* Z,
                                       const casadi_real* p, casadi_real* xT, casadi_real* Y,
                                       casadi_real* w, casadi_int* iw, casadi_int reverse) {{
  const casadi_real* arg[{sz_arg}];
  casadi_real* res[{sz_res}];
  casadi_real *xa = w, *xb = w + {nx}, *ws = w + 2 * {nx}, *tmp;
  casadi_int i, t;
  memset(arg, 0, sizeof(arg));
  memset(res, 0, sizeof(res));
  memcpy(xa, x0, {nx} * sizeof(casadi_real));
  arg[2] = p;
  for (i = 0; i < T; ++i) {{
    t = reverse ? T - 1 - i : i;
    arg[0] = xa;
    arg[1] = Z + t * {nz};
    res[0] = xb;
    {set_y}
    if ({prefix}_step(arg, res, iw, ws, 0)) return 1;
    tmp = xa; xa = xb; xb = tmp;
  }}
  memcpy(xT, xa, {nx} * sizeof(casadi_real));
  return 0;
}}
CASADI_SYMBOL_EXPORT casadi_int {prefix}_scan_work(void) {{ return 2 * {nx} + {sz_w}; }}
CASADI_SYMBOL_EXPORT casadi_int {prefix}_scan_iwork(void) {{ return {sz_iw}; }}
"""
"""The driver loop appended to CasADi's generated code (formatted per step function)."""

_P = ctypes.c_void_p

FLAGS = ("-O3", "-march=native", "-fno-semantic-interposition", "--param", "max-inline-insns-single=100000",
         "--param", "max-inline-insns-auto=100000", "--param", "large-function-growth=100000",
         "--param", "inline-unit-growth=100000")
"""Default gcc flags: the step (an exported function, of any size) is inlined into the driver loop
(``-fno-semantic-interposition`` allows it in ``-fPIC`` code; the ``--param`` lift the size limits):
about 30% less time per step than a call (GARCH(1, 1) derivative pass, N = 20000: 0.35 vs 0.51 ms)."""


def _dense_sx_step(step: ca.Function, name: str) -> ca.Function:
    """``step`` as an SX Function named ``name`` with dense column-vector inputs and outputs."""
    if not isinstance(step, ca.Function):
        raise TypeError(f"step: expected a casadi.Function, got {type(step).__name__}")
    if step.n_in() != 3 or step.n_out() not in (1, 2):
        raise ValueError(f"step: expected a Function (x, z, p) -> (x_next[, y]), got {step.n_in()} inputs and "
                         f"{step.n_out()} outputs")
    for i, what in enumerate(("x", "z", "p")):
        sp = step.sparsity_in(i)
        if sp.size2() != 1 or not sp.is_dense():
            raise ValueError(f"step: input {i} ({what}) must be a dense column vector, got {sp.size1()}x{sp.size2()}"
                             f"{'' if sp.is_dense() else ' sparse'}")
    if step.sparsity_out(0).shape != step.sparsity_in(0).shape:
        raise ValueError(f"step: output 0 (x_next) must have the shape of x {step.sparsity_in(0).shape}, got "
                         f"{step.sparsity_out(0).shape}")
    if step.n_out() == 2 and step.sparsity_out(1).size2() != 1:
        raise ValueError(f"step: output 1 (y) must be a column vector, got shape {step.sparsity_out(1).shape}")
    f = step.expand() if step.is_a("MXFunction") else step
    syms = [ca.SX.sym(w, f.size1_in(i)) for i, w in enumerate(("x", "z", "p"))]
    outs = f(*syms)
    outs = [ca.densify(o) for o in (outs if isinstance(outs, (list, tuple)) else [outs])]
    outs = ca.cse(outs)  # common subexpressions once (derivative graphs repeat them)
    return ca.Function(name, syms, outs, ["x", "z", "p"], ["x_next", "y"][:len(outs)])


class CompiledScan:
    """``x_{t+1}, y_t = step(x_t, z_t, p)`` for ``t < T`` as one compiled loop.

    Parameters
    ----------
    step : casadi.Function
        ``(x (nx,), z (nz,), p (np,)) -> (x_next (nx,)[, y (ny,)])``, dense column vectors (SX, or MX
        that expands to SX).
    prefix : str
        C symbol prefix and cache file name (letters, digits, underscores).
    flags : sequence of str
        Compiler flags (default :data:`FLAGS`; with ``-march=native`` the cache key includes the CPU).
    directory : path, optional
        Cache directory (default :func:`.codegen.cache_dir`).
    cached_only : bool
        Only load a library already in the cache (raise :class:`.codegen.NotCached` otherwise).

    Raises
    ------
    CompilerNotFound
        If gcc is not on ``PATH`` and the library is not cached yet.
    UnsafeCacheError
        If the cache could be written by someone else (nothing is loaded).

    Notes
    -----
    Building compiles C (~0.3-1 s once per machine for a small step; later processes load the
    cached library in milliseconds).  Calls are thread-safe (each thread has its own work arrays).
    """

    def __init__(self, step: ca.Function, *, prefix: str, flags=None, directory=None, cached_only: bool = False):
        from .codegen import _check_prefix, compile_functions
        _check_prefix(prefix)
        f = _dense_sx_step(step, f"{prefix}_step")
        self.nx, self.nz, self.np_ = f.size1_in(0), f.size1_in(1), f.size1_in(2)
        self.ny = f.size1_out(1) if f.n_out() == 2 else 0
        set_y = f"res[1] = Y ? Y + t * {self.ny} : 0;" if self.ny else ""
        source = DRIVER.format(prefix=prefix, nx=self.nx, nz=self.nz, sz_arg=max(f.sz_arg(), 3),
                               sz_res=max(f.sz_res(), 2), sz_w=f.sz_w(), sz_iw=max(f.sz_iw(), 1), set_y=set_y)
        lib, self.info = compile_functions([f], prefix=prefix, flags=tuple(FLAGS if flags is None else flags),
                                           directory=directory, extra_source=source, as_library=True,
                                           cached_only=cached_only)
        self._fn = getattr(lib, f"{prefix}_scan")
        self._fn.restype = ctypes.c_int
        self._fn.argtypes = [ctypes.c_longlong, _P, _P, _P, _P, _P, _P, _P, ctypes.c_longlong]
        self._nw = int(ctypes.CFUNCTYPE(ctypes.c_longlong)((f"{prefix}_scan_work", lib))())
        self._niw = int(ctypes.CFUNCTYPE(ctypes.c_longlong)((f"{prefix}_scan_iwork", lib))())
        self._lib = lib
        self._local = threading.local()

    def __call__(self, x0, Z, p, *, outputs: bool = True, Y: Optional[np.ndarray] = None, reverse: bool = False
                 ) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """Run the loop.

        Parameters
        ----------
        x0 : (nx,) array
            State before step 0.
        Z : (T, nz) array
            Per-step inputs, row ``t`` for step ``t`` (copied only if not float64 C-contiguous).
        p : (np,) array
            Constant inputs.
        outputs : bool
            Whether to return the per-step outputs ``y`` (when the step has them).
        Y : (T, ny) float64 C-contiguous array, optional
            Where to write them (reused buffer); allocated when None.
        reverse : bool
            Run ``t = T - 1, ..., 0`` (an adjoint sweep); ``y_t`` still goes to row ``t``.

        Returns
        -------
        xT : (nx,) array
            State after the last step.
        Y : (T, ny) array or None
        """
        x0 = self._vector("x0", x0, self.nx)
        p = self._vector("p", p, self.np_)
        if not (type(Z) is np.ndarray and Z.dtype == np.float64 and Z.flags.c_contiguous):
            Z = np.ascontiguousarray(Z, dtype=np.float64)
        if Z.ndim != 2 or Z.shape[1] != self.nz:
            raise ValueError(f"Z: expected shape (T, {self.nz}), got {Z.shape}")
        T = Z.shape[0]
        if outputs and self.ny:
            if Y is None:
                Y = np.empty((T, self.ny))
            elif not (isinstance(Y, np.ndarray) and Y.shape == (T, self.ny) and Y.dtype == np.float64
                      and Y.flags.c_contiguous and Y.flags.writeable):
                raise ValueError(f"Y: expected a writable C-contiguous float64 array of shape ({T}, {self.ny}), got "
                                 f"{getattr(Y, 'shape', type(Y).__name__)}")
        else:
            Y = None
        xT = np.empty(self.nx)
        w, iw = self._work()
        if self._fn(T, x0.ctypes.data, Z.ctypes.data, p.ctypes.data, xT.ctypes.data,
                    None if Y is None else Y.ctypes.data, w, iw, 1 if reverse else 0):
            raise RuntimeError("the compiled step reported an error")  # generated SX code never does
        return xT, Y

    def _work(self):
        """This thread's work arrays' addresses (allocated once per thread: calls are thread-safe)."""
        local = self._local
        got = getattr(local, "work", None)
        if got is None:
            w, iw = np.empty(self._nw), np.zeros(self._niw, dtype=np.int64)
            got = local.work = (w.ctypes.data, iw.ctypes.data, w, iw)  # the arrays keep the memory alive
        return got[0], got[1]

    @staticmethod
    def _vector(name, v, n):
        if not (type(v) is np.ndarray and v.dtype == np.float64 and v.flags.c_contiguous):
            v = np.ascontiguousarray(v, dtype=np.float64)
        if v.shape != (n,):
            raise ValueError(f"{name}: expected shape ({n},), got {v.shape}")
        return v


_SCANS = {}     # key -> CompiledScan or None (could not be built; the reason in _REASONS)
_REASONS = {}
_PENDING = {}
_WARNED = set()
_SCANS_LOCK = threading.Lock()


def cached_scan(key, build, *, prefix: str, flags=None) -> Optional[CompiledScan]:
    """The process-wide :class:`CompiledScan` for ``key``: ``build()`` makes its step Function the
    first time (then compiled, or loaded from the disk cache).  Returns None when compiled code is
    switched off (``DYNOPT_COMPILE=0``) or could not be built (no compiler, compiler error: the
    reason is kept, see :func:`scan_status`): callers keep their NumPy path, which computes the same
    numbers.  Blocking; :func:`scan_when_ready` is the non-blocking form."""
    from ..core.background import compile_allowed
    if not compile_allowed():
        return None
    _build(key, build, prefix, flags)
    return _report(key)


def _build(key, build, prefix, flags) -> None:
    """Build (or load) the scan of ``key`` once per process and record it, or why it failed."""
    with _SCANS_LOCK:
        if key in _SCANS:
            return
    try:
        scan, reason = CompiledScan(build(), prefix=prefix, flags=flags), "compiled"
    except Exception as exc:  # noqa: BLE001 - warned once by _report (unless no compiler); NumPy answers
        scan, reason = None, f"not compiled: {type(exc).__name__}: {exc}"
    with _SCANS_LOCK:
        if key not in _SCANS:
            _SCANS[key], _REASONS[key] = scan, reason


def _report(key) -> Optional[CompiledScan]:
    """The scan of ``key``; a build that failed for another reason than a missing compiler (an unsafe
    cache, a compiler error) is warned about once per process, from the caller's thread."""
    scan, reason = _SCANS.get(key), _REASONS.get(key, "")
    if scan is None and reason and "CompilerNotFound" not in reason and key not in _WARNED:
        _WARNED.add(key)
        warnings.warn(f"dynopt: the compiled loop {key!r} could not be built ({reason[len('not compiled: '):]}); "
                      f"the NumPy path answers instead (same numbers, slower)", RuntimeWarning, stacklevel=3)
    return scan


def scan_when_ready(key, build, *, prefix: str, flags=None, lane: str = "small") -> Optional[CompiledScan]:
    """Non-blocking :func:`cached_scan`: the scan if it is ready or in the disk cache (loaded at once,
    milliseconds), otherwise None while it is built in the background
    (:func:`dynopt.core.background.submit` in ``lane``)."""
    from ..core.background import compile_allowed, submit
    if not compile_allowed():
        return None
    with _SCANS_LOCK:
        done = key in _SCANS
        if not done and key in _PENDING:
            return None
    if done:
        return _report(key)
    # a library already in the disk cache loads in milliseconds: no background build needed
    from .codegen import NotCached
    try:
        scan = CompiledScan(build(), prefix=prefix, flags=flags, cached_only=True)
    except NotCached:
        scan = None
    except Exception:  # noqa: BLE001 - the background build below meets (and records) the same failure
        scan = None
    with _SCANS_LOCK:
        if scan is not None and key not in _SCANS:
            _SCANS[key], _REASONS[key] = scan, "compiled"
        if key in _PENDING or key in _SCANS:
            return _SCANS.get(key)
        _PENDING[key] = submit(lambda: _build(key, build, prefix, flags), lane=lane)
    return None


def _after_fork_in_child():  # builds running in the parent never finish in a forked child
    global _SCANS_LOCK
    _SCANS_LOCK = threading.Lock()
    _PENDING.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def wait_scan(key, timeout: Optional[float] = None) -> Optional[CompiledScan]:
    """Wait for the background build of ``key`` started by :func:`scan_when_ready` (if any) and
    return its scan (None if it could not be built or none was started)."""
    fut = _PENDING.get(key)
    if fut is not None:
        fut.result(timeout)
    return _SCANS.get(key)


def scan_status(key) -> str:
    """``"compiled"``, ``"building"``, ``"not compiled: <reason>"`` or ``"not requested"``."""
    with _SCANS_LOCK:
        if key in _REASONS:
            return _REASONS[key]
        return "building" if key in _PENDING else "not requested"
