r"""CasADi front end: write a plant (policy, cost) once with CasADi operations, get its dual.

A user function written with ``casadi`` operations on SX or MX symbols becomes a dynopt
component.  dynopt traces it once at construction into a CasADi ``Function`` of one scenario
and one step, builds the dual with CasADi's reverse mode (``Function.reverse(1)``), and
evaluates both batched over the scenario axis: **one** CasADi call per step per component,
the scenarios being the columns of a ``Function.map(B)`` (never a call per scenario), made
through CasADi's buffer interface straight from and into the NumPy arrays.
The components honour dynopt's contract, so they mix freely with NumPy components.

Signatures of the user functions (``[X]`` only when ``n_exog > 0``):

==========================  ===================================  ==============
class                       user function                        returns
==========================  ===================================  ==============
:class:`CasadiPlant`        ``f(x, u, [X,] p)``                   (n, 1)
:class:`CasadiODE`          ``f(x, u, [X,] p)`` (dx/dt)           (n, 1)
:class:`CasadiPolicy`       ``f(x, [X,] p)``                      (m, 1)
:class:`CasadiStageCost`    ``f(x, u, [X,] p)``                   scalar
:class:`CasadiTerminalCost` ``f(x, p)``                           scalar
==========================  ===================================  ==============

``X`` is the component's exogenous input (n_exog, 1).  ``channels=("ref", "t")`` makes it the
named channels of the problem's dict ``X`` concatenated in that order; ``"t"`` is the step
index, which every problem provides, so a CasADi component can depend on time.

``x`` is an (n, 1) symbol; for a plant with ``lags = k > 1`` it is a tuple
``(x[t], x[t-1], ..., x[t-k+1])`` of k such symbols, newest first.  ``p`` is a dict of
named symbols when ``params`` is a dict (scalars 1x1, vectors (k, 1), matrices (r, c) filled
from the row-major flat vector), a flat (n_params, 1) symbol when ``params`` is an array, and
an empty (0, 1) symbol when the component has no parameters.

Bad functions are rejected at construction with a ``TypeError``/``ValueError`` naming the
function: wrong output shape, NumPy calls on symbols, Python ``float``/``if`` on symbols, and
piecewise-constant operations (``floor``, ``ceil``, ``sign``, ``fmod``, ``remainder``) whose
derivative is zero wherever it exists, so that a gradient would silently ignore them.
"""

from __future__ import annotations

import inspect
import math
import threading
import warnings
from math import prod
from typing import Callable, Optional, Tuple

import casadi as ca
import numpy as np

from .forms import CasadiForm, batched_pair, casadi_form, discretize_form
from ..core.components import Plant, Policy, StageCost, TerminalCost
from ..core.integrators import ODE, Discretized
from ..core.validation import as_float_array, check_int, describe, channel_names

_NUMPY_ON_CASADI = "numpy function was called on a casadi value"
_PIECEWISE_CONSTANT = {getattr(ca, f"OP_{n}"): n.lower() for n in ("FLOOR", "CEIL", "SIGN", "FMOD", "REMAINDER")
                       if hasattr(ca, f"OP_{n}")}


# --------------------------------------------------------------------------- parameters
def _param_layout(params) -> Tuple[tuple, np.ndarray, bool]:
    """``(param_spec, defaults, named)`` from ``None``, a dict of defaults or a flat array."""
    if params is None:
        return (), np.zeros(0), False
    if isinstance(params, dict):
        spec, parts = [], []
        for key, value in params.items():
            if not isinstance(key, str) or not key.isidentifier():
                raise TypeError(f"params: expected identifier names as keys, got {key!r}")
            arr = as_float_array(f"params[{key!r}]", value)
            if arr.ndim > 2:
                raise ValueError(f"params[{key!r}]: expected a scalar, vector or matrix, got shape {arr.shape}")
            spec.append((key, arr.shape))
            parts.append(arr.ravel())
        return tuple(spec), (np.concatenate(parts) if parts else np.zeros(0)), True
    arr = as_float_array("params", params)
    if arr.ndim != 1:
        raise ValueError(f"params: expected a dict of named defaults or a flat vector, got shape {arr.shape}")
    return (("p", arr.shape),), arr.copy(), False


def _split_params(p, spec, named):
    """Symbolic views of the flat parameter symbol ``p`` as the user function sees them."""
    if not named:
        return p
    out, off = {}, 0
    for key, shape in spec:
        size = prod(shape)
        block = p[off:off + size]
        if len(shape) == 2:
            block = ca.reshape(block, shape[1], shape[0]).T  # row-major flat -> (r, c)
        out[key] = block
        off += size
    return out


# --------------------------------------------------------------------------- tracing
def _fname(fn) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def trace(fn: Callable, *, role: str, args, arg_names, call_args, out_shape, name: str,
          call_labels: Optional[str] = None) -> ca.Function:
    """Trace ``fn(*call_args)`` into a CasADi Function of ``args`` and validate it.

    Parameters
    ----------
    fn : callable
        The user function.
    role : str
        What it is for, used in messages (``"plant"``, ``"policy"``, ...).
    args : list of SX/MX symbols
        The Function's inputs (column vectors).
    call_args : tuple
        What ``fn`` receives (symbols, tuples of symbols, dicts of views).
    out_shape : (int, int)
        Required output shape.
    call_labels : str, optional
        The expected argument list, e.g. ``"(x, u, p)"``, for the arity check.

    Raises
    ------
    TypeError
        ``fn`` is not callable, fails on symbols, calls NumPy on symbols, or returns a
        non-CasADi value.
    ValueError
        Wrong output shape, a NaN constant, or a piecewise-constant operation.
    """
    label = f"{role} function {_fname(fn)!r}"
    if not callable(fn):
        raise TypeError(f"{role}: expected a callable f written with casadi operations, got {type(fn).__name__} "
                        f"{describe(fn)}")
    S = type(args[0]) if args else ca.SX
    if call_labels is not None:
        try:
            inspect.signature(fn).bind(*call_args)
        except TypeError:
            raise TypeError(f"{label} must accept {call_labels}, got the signature {inspect.signature(fn)}") from None
        except ValueError:  # builtins without a signature: let the call decide
            pass
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            out = fn(*call_args)
        except Exception as exc:  # any failure on symbols is the user function's
            raise TypeError(
                f"{label} could not be evaluated on CasADi {S.__name__} symbols: {type(exc).__name__}: {exc}. "
                f"Write it with casadi operations (ca.sin, ca.exp, ca.vertcat, ca.if_else, ...), not NumPy/math "
                f"calls, Python `if` or float() on symbols") from exc
    others = []
    for w in caught:
        if _NUMPY_ON_CASADI in str(w.message):
            raise TypeError(
                f"{label} calls a NumPy function on a CasADi symbol; use the casadi equivalent "
                f"(ca.sin, ca.exp, ca.mtimes, ca.sum1, ...) so the result is exact and differentiable")
        others.append(w)
    for w in others:  # pass through the user's own warnings
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if isinstance(out, (list, tuple)):
        try:
            out = ca.vertcat(*out)
        except Exception as exc:
            raise TypeError(f"{label} returned a {type(out).__name__} that casadi.vertcat cannot join: {exc}") from exc
    if isinstance(out, np.ndarray) and out.dtype == object:
        raise TypeError(
            f"{label} returned a NumPy array of CasADi expressions (shape {out.shape}); "
            f"build the output with ca.vertcat(...) instead of np.array(...)")
    if isinstance(out, (int, float, np.floating, np.integer)) or (isinstance(out, np.ndarray) and out.dtype != object):
        out = S(np.atleast_2d(np.asarray(out, dtype=float)).reshape(-1, 1) if np.ndim(out) else float(out))
    elif isinstance(out, ca.DM):
        out = S(out)
    if not isinstance(out, (ca.SX, ca.MX)):
        raise TypeError(f"{label} returned {type(out).__name__}; expected a casadi SX/MX expression of shape {out_shape}")
    if type(out) is not S:
        raise TypeError(f"{label} returned a casadi {type(out).__name__} expression but was traced with {S.__name__} "
                        f"symbols; pass sym={type(out).__name__!r}")
    if out.shape != tuple(out_shape):
        hint = " (a column: use ca.vertcat(...))" if out_shape[1] == 1 and out.shape == (1, out_shape[0]) else ""
        raise ValueError(f"{label} returned shape {out.shape}; expected {tuple(out_shape)}{hint}")
    try:
        F = ca.Function(name, list(args), [out], list(arg_names), ["out"])
    except Exception as exc:
        raise ValueError(f"{label}: casadi could not build a Function of (" + ", ".join(arg_names) +
                         f"): {exc}. Does it use symbols created outside the function?") from exc
    _check_differentiable(F, label)
    return F


def _check_differentiable(F: ca.Function, label: str) -> None:
    """Reject NaN constants and piecewise-constant operations (inspected on the SX graph)."""
    G = F
    if not F.is_a("SXFunction"):
        try:
            G = F.expand()
        except Exception:  # MX with no SX expansion (e.g. calls to external code): nothing to inspect
            return
    for k in range(G.n_instructions()):
        op = G.instruction_id(k)
        if op == ca.OP_CONST and math.isnan(G.instruction_constant(k)):
            raise ValueError(
                f"{label} contains a NaN constant: float() or a NumPy/math call on a CasADi symbol gives nan; "
                f"use casadi operations throughout")
        if op in _PIECEWISE_CONSTANT:
            raise ValueError(
                f"{label} is not differentiable: it uses {_PIECEWISE_CONSTANT[op]}(), whose derivative is zero "
                f"where it exists and undefined at its jumps, so the gradient would silently ignore that "
                f"dependence; replace it by a smooth expression (e.g. tanh for sign)")


def _symbols(S, sizes, names):
    return [S.sym(nm, sz) for nm, sz in zip(names, sizes)]


# --------------------------------------------------------------------------- pickling
def _portable_form(form):
    """``form`` if plain ``pickle`` can serialise it, else the same form without its ``batched``
    builder (a closure; batches then use ``function.map(B)``: same values, slower)."""
    if getattr(form, "batched", None) is None:
        return form
    import pickle
    try:
        pickle.dumps(form.batched)
    except Exception:
        import dataclasses
        return dataclasses.replace(form, batched=None)
    return form


# --------------------------------------------------------------------------- batched evaluation
class BatchedFunction:
    """Evaluate a form (one-scenario CasADi Function) and its reverse-mode dual over a batch.

    Parameters
    ----------
    form : CasadiForm
        One output; inputs are column vectors.
    shared : sequence of int
        Inputs that are the same for every scenario (parameters): broadcast in the forward
        map, their adjoints summed over the batch in the dual map.
    adjoint_of : sequence of int
        Inputs whose adjoints the dual returns (in this order).

    Calls take and return batch-first NumPy arrays: per-scenario inputs ``(B, size)``, shared
    inputs ``(size,)``.  Every call is one evaluation of the form's batched Function or of its
    ``Function.map(B)`` (:func:`dynopt.casadi.forms.batched_pair`).
    """

    def __init__(self, form, shared, adjoint_of):
        if isinstance(form, ca.Function):
            form = CasadiForm("plant", form)
        self.form = form
        self.F = form.function
        self.shared = tuple(shared)
        self.adjoint_of = tuple(adjoint_of)
        self._maps = {}
        self._local = threading.local()

    def __getstate__(self):
        # Per-thread CasADi buffers and the per-B maps are caches rebuilt on first use; the
        # thread-local storage cannot be pickled (plain ``pickle`` of a Problem needs this).
        state = self.__dict__.copy()
        state["_maps"] = {}
        del state["_local"]
        state["form"] = _portable_form(self.form)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._local = threading.local()

    def _map(self, B):
        try:
            return self._maps[B]
        except KeyError:
            self._maps[B] = batched_pair(self.form, B, self.shared, self.adjoint_of)
            return self._maps[B]

    def _buffers(self, B):
        # CasADi's buffer interface evaluates straight from/into NumPy memory (~10x less call
        # overhead than Function.call); one set per thread, since a buffer is mutable state.
        cache = self._local.__dict__.setdefault("buffers", {})
        try:
            return cache[B]
        except KeyError:
            fwd, vjp = self._map(B)
            cache[B] = (fwd.buffer(), vjp.buffer())
            return cache[B]

    def _args(self, inputs, B):
        # A dense casadi (rows, B) matrix is column-major: the same memory as a C-contiguous
        # NumPy (B, rows) array, so batch-first arrays go in without a transpose.
        out = []
        for i, a in enumerate(inputs):
            rows = self.F.size1_in(i)
            if a is None:
                a = np.zeros(rows if i in self.shared else (B, rows))
            elif i not in self.shared and a.shape[1] != rows:
                a = a[:, :rows]  # X wider than this component reads
            out.append(np.ascontiguousarray(a, dtype=np.float64))
        return out

    def forward(self, inputs, B):
        """``F`` on every scenario; returns ``(B, n_out)``."""
        (buf, run), _ = self._buffers(B)
        args = self._args(inputs, B)
        for i, a in enumerate(args):
            buf.set_arg(i, memoryview(a))
        out = np.empty((B, self.F.size1_out(0)))
        buf.set_res(0, memoryview(out))
        run()
        return out

    def vjp(self, inputs, out_bar, B):
        """Adjoints of ``adjoint_of`` for ``out_bar (B, n_out)``: per-scenario ones ``(B, size)``,
        shared ones ``(size,)`` summed over the batch."""
        _, (buf, run) = self._buffers(B)
        args = self._args(inputs, B) + [np.ascontiguousarray(out_bar, dtype=np.float64)]
        for i, a in enumerate(args):
            buf.set_arg(i, memoryview(a))
        outs = []
        for j, i in enumerate(self.adjoint_of):
            size = self.F.size1_in(i)
            outs.append(np.empty(size) if i in self.shared else np.empty((B, size)))
            buf.set_res(j, memoryview(outs[-1]))
        run()
        return outs


# --------------------------------------------------------------------------- components
def _channels(channels):
    """Validate a ``channels=`` argument (see :class:`dynopt.Problem`; ``"t"`` is the step index the
    problem provides); ``None`` for a component that reads a plain array."""
    return None if channels is None else channel_names("channels", channels)


class _CasadiComponent:
    """Shared construction: parameter layout, tracing, the form and the batched evaluator."""

    _role = ""

    def _init_params(self, params):
        self.param_spec, self._defaults, self._named = _param_layout(params)

    def default_params(self):
        return self._defaults.copy()

    @property
    def function(self) -> ca.Function:
        """The traced one-scenario, one-step CasADi Function (see :mod:`dynopt.casadi.forms`)."""
        return self._form.function

    def casadi_form(self) -> CasadiForm:
        """This component's :class:`~dynopt.casadi.forms.CasadiForm`."""
        return self._form

    @staticmethod
    def _sym(sym):
        if sym not in ("SX", "MX"):
            raise ValueError(f"sym: expected 'SX' or 'MX', got {sym!r}")
        return ca.SX if sym == "SX" else ca.MX

    def __getstate__(self):
        state = self.__dict__.copy()
        if "_form" in state:
            state["_form"] = _portable_form(state["_form"])
        return state

    def __repr__(self):
        return f"{type(self).__name__}({self._form.function.name()!r})"


def _sizes(n_state, n_control, n_exog, *, control_min=0):
    return (check_int("n_state", n_state, minimum=1), check_int("n_control", n_control, minimum=control_min),
            check_int("n_exog", n_exog, minimum=0))


class CasadiPlant(_CasadiComponent, Plant):
    r"""A discrete-time plant ``x[t+1] = f(x[t], ..., x[t-k+1], u[t], X[t]; p)`` written with CasADi.

    Parameters
    ----------
    f : callable ``f(x, u, [X,] p) -> (n, 1)``
        See the module docstring for the arguments; for ``lags > 1`` ``x`` is a tuple of k symbols.
    n_state, n_control, n_exog : int
        n, m and nX.
    lags : int
        k >= 1.
    params : dict or array_like, optional
        Defaults of the plant block of W (named when a dict).
    sym : {"SX", "MX"}
        Symbol type used to trace ``f`` (SX: scalar graph, fastest for small plants).
    name : str, optional
        Name of the CasADi Function (default the function's name).
    """

    _role = "plant"

    def __init__(self, f: Callable, *, n_state: int, n_control: int = 0, n_exog: int = 0, lags: int = 1,
                 params=None, sym: str = "SX", name: Optional[str] = None, channels=None):
        self.channels = _channels(channels)
        self.n_state, self.n_control, self.n_exog = _sizes(n_state, n_control, n_exog)
        self.lags = check_int("lags", lags, minimum=1)
        self._init_params(params)
        S = self._sym(sym)
        n, k = self.n_state, self.lags
        hist = _symbols(S, [n] * k, [f"x{j}" for j in range(k)])
        u, X, p = S.sym("u", self.n_control), S.sym("X", self.n_exog), S.sym("p", self.n_params)
        xa = hist[0] if k == 1 else tuple(hist)
        pa = _split_params(p, self.param_spec, self._named)
        call = (xa, u, X, pa) if self.n_exog else (xa, u, pa)
        xl = "x" if k == 1 else f"x (a tuple of {k} states)"
        labels = f"({xl}, u, X, p)" if self.n_exog else f"({xl}, u, p)"
        F = trace(f, role="plant", call_labels=labels, args=hist + [u, X, p], arg_names=[f"x{j}" for j in range(k)] + ["u", "X", "p"],
                  call_args=call, out_shape=(n, 1), name=_function_name(name, f, "plant"))
        self._set_form(CasadiForm("plant", F))

    @classmethod
    def from_form(cls, form: CasadiForm, *, param_spec, defaults, n_exog: Optional[int] = None) -> "CasadiPlant":
        """A plant around an existing plant form (no tracing), e.g. a fused RK4 step."""
        self = cls.__new__(cls)
        F = form.function
        self.lags = F.n_in() - 3
        self.n_state, self.n_control = F.size1_in(0), F.size1_in(self.lags)
        self.n_exog = F.size1_in(self.lags + 1) if n_exog is None else n_exog
        self.param_spec, self._defaults, self._named = tuple(param_spec), np.asarray(defaults, float).copy(), False
        self._set_form(form)
        return self

    def _set_form(self, form):
        self._form = form
        k = self.lags
        self._batched = BatchedFunction(form, shared=[k + 2], adjoint_of=list(range(k + 1)) + [k + 2])

    def forward(self, hist, u, X, theta):
        B = hist[0].shape[0]
        inputs = list(hist) + [u, X, theta]
        return self._batched.forward(inputs, B), (inputs, B)

    def vjp(self, ctx, x_next_bar):
        inputs, B = ctx
        bars = self._batched.vjp(inputs, x_next_bar, B)
        k = self.lags
        return tuple(bars[:k]), (bars[k] if self.n_control else None), bars[k + 1]


class CasadiODE(_CasadiComponent, ODE):
    r"""A continuous-time right-hand side ``dx/dt = f(x, u, [X,] p)`` written with CasADi.

    Wrap it as ``Discretized(ode, RK4(dt))`` (four batched CasADi calls per step, through
    dynopt's NumPy RK4) or :meth:`discretize` (one fused CasADi call per step); both are the
    same discrete map.  Parameters as :class:`CasadiPlant` (no ``lags``).
    """

    _role = "ODE"

    def __init__(self, f: Callable, *, n_state: int, n_control: int = 0, n_exog: int = 0, params=None,
                 sym: str = "SX", name: Optional[str] = None, channels=None):
        self.channels = _channels(channels)
        self.n_state, self.n_control, self.n_exog = _sizes(n_state, n_control, n_exog)
        self._init_params(params)
        S = self._sym(sym)
        x, u, X, p = S.sym("x", self.n_state), S.sym("u", self.n_control), S.sym("X", self.n_exog), S.sym("p", self.n_params)
        pa = _split_params(p, self.param_spec, self._named)
        call = (x, u, X, pa) if self.n_exog else (x, u, pa)
        F = trace(f, role="ODE", call_labels="(x, u, X, p)" if self.n_exog else "(x, u, p)", args=[x, u, X, p], arg_names=["x", "u", "X", "p"], call_args=call,
                  out_shape=(self.n_state, 1), name=_function_name(name, f, "ode"))
        self._set_form(CasadiForm("ode", F))

    @classmethod
    def from_form(cls, form: CasadiForm, *, param_spec, defaults) -> "CasadiODE":
        """An ODE around an existing ODE form (no tracing)."""
        self = cls.__new__(cls)
        F = form.function
        self.n_state, self.n_control, self.n_exog = F.size1_in(0), F.size1_in(1), F.size1_in(2)
        self.param_spec, self._defaults, self._named = tuple(param_spec), np.asarray(defaults, float).copy(), False
        self._set_form(form)
        return self

    def _set_form(self, form):
        self._form = form
        self._batched = BatchedFunction(form, shared=[3], adjoint_of=[0, 1, 3])

    def forward(self, x, u, X, theta):
        B = x.shape[0]
        inputs = [x, u, X, theta]
        return self._batched.forward(inputs, B), (inputs, B)

    def vjp(self, ctx, xdot_bar):
        inputs, B = ctx
        xb, ub, pb = self._batched.vjp(inputs, xdot_bar, B)
        return xb, (ub if self.n_control else None), pb

    def discretize(self, integrator) -> CasadiPlant:
        """One fused CasADi plant for ``Discretized(self, integrator)`` (Euler or RK4)."""
        form = discretize_form(self._form, integrator)
        plant = CasadiPlant.from_form(form, param_spec=self.param_spec, defaults=self._defaults)
        plant.channels = self.channels
        return plant


class CasadiPolicy(_CasadiComponent, Policy):
    r"""A control law ``u[t] = f(x[t], [X[t],] p)`` written with CasADi (time-invariant).

    Parameters as :class:`CasadiPlant`; the output is (m, 1).
    """

    _role = "policy"

    def __init__(self, f: Callable, *, n_state: int, n_control: int, n_exog: int = 0, params=None,
                 sym: str = "SX", name: Optional[str] = None, channels=None):
        self.channels = _channels(channels)
        self.n_state, self.n_control, self.n_exog = _sizes(n_state, n_control, n_exog, control_min=1)
        self._init_params(params)
        S = self._sym(sym)
        x, X, p = S.sym("x", self.n_state), S.sym("X", self.n_exog), S.sym("p", self.n_params)
        pa = _split_params(p, self.param_spec, self._named)
        call = (x, X, pa) if self.n_exog else (x, pa)
        F = trace(f, role="policy", call_labels="(x, X, p)" if self.n_exog else "(x, p)", args=[x, X, p], arg_names=["x", "X", "p"], call_args=call,
                  out_shape=(self.n_control, 1), name=_function_name(name, f, "policy"))
        self._set_form(CasadiForm("policy", F))

    @classmethod
    def from_form(cls, form: CasadiForm, *, param_spec, defaults) -> "CasadiPolicy":
        """A policy around an existing (time-invariant) policy form."""
        if form.step_slice:
            raise ValueError("form: open-loop (step_slice > 0) forms are not time-invariant policies")
        self = cls.__new__(cls)
        F = form.function
        self.n_state, self.n_exog, self.n_control = F.size1_in(0), F.size1_in(1), F.size1_out(0)
        self.param_spec, self._defaults, self._named = tuple(param_spec), np.asarray(defaults, float).copy(), False
        self._set_form(form)
        return self

    def _set_form(self, form):
        self._form = form
        self._batched = BatchedFunction(form, shared=[2], adjoint_of=[0, 2])

    def forward(self, t, x, X, phi):
        B = x.shape[0]
        inputs = [x, X, phi]
        return self._batched.forward(inputs, B), (inputs, B)

    def vjp(self, ctx, u_bar):
        inputs, B = ctx
        xb, pb = self._batched.vjp(inputs, u_bar, B)
        return xb, pb


class CasadiStageCost(_CasadiComponent, StageCost):
    r"""A per-step cost ``l = f(x[t], u[t], [X[t],] p)`` (a scalar) written with CasADi."""

    _role = "stage cost"

    def __init__(self, f: Callable, *, n_state: int, n_control: int = 0, n_exog: int = 0, params=None,
                 sym: str = "SX", name: Optional[str] = None, channels=None):
        self.channels = _channels(channels)
        self.n_state, self.n_control, self.n_exog = _sizes(n_state, n_control, n_exog)
        self._init_params(params)
        S = self._sym(sym)
        x, u, X, p = S.sym("x", self.n_state), S.sym("u", self.n_control), S.sym("X", self.n_exog), S.sym("p", self.n_params)
        pa = _split_params(p, self.param_spec, self._named)
        call = (x, u, X, pa) if self.n_exog else (x, u, pa)
        F = trace(f, role="stage cost", call_labels="(x, u, X, p)" if self.n_exog else "(x, u, p)", args=[x, u, X, p], arg_names=["x", "u", "X", "p"], call_args=call,
                  out_shape=(1, 1), name=_function_name(name, f, "cost"))
        self._set_form(CasadiForm("cost", F))

    @classmethod
    def from_form(cls, form: CasadiForm, *, param_spec, defaults) -> "CasadiStageCost":
        """A stage cost around an existing cost form."""
        self = cls.__new__(cls)
        F = form.function
        self.n_state, self.n_control, self.n_exog = F.size1_in(0), F.size1_in(1), F.size1_in(2)
        self.param_spec, self._defaults, self._named = tuple(param_spec), np.asarray(defaults, float).copy(), False
        self._set_form(form)
        return self

    def _set_form(self, form):
        self._form = form
        self._batched = BatchedFunction(form, shared=[3], adjoint_of=[0, 1, 3])

    def forward(self, t, x, u, X, p):
        B = x.shape[0]
        inputs = [x, u, X, p]
        return self._batched.forward(inputs, B)[:, 0], (inputs, B)

    def vjp(self, ctx, c_bar):
        inputs, B = ctx
        xb, ub, pb = self._batched.vjp(inputs, c_bar[:, None], B)
        return xb, (ub if self.n_control else None), pb


class CasadiTerminalCost(_CasadiComponent, TerminalCost):
    r"""A terminal cost ``l_T = f(x[T], p)`` (a scalar) written with CasADi."""

    _role = "terminal cost"

    def __init__(self, f: Callable, *, n_state: int, params=None, sym: str = "SX", name: Optional[str] = None):
        self.n_state = check_int("n_state", n_state, minimum=1)
        self._init_params(params)
        S = self._sym(sym)
        x, p = S.sym("x", self.n_state), S.sym("p", self.n_params)
        pa = _split_params(p, self.param_spec, self._named)
        F = trace(f, role="terminal cost", call_labels="(x, p)", args=[x, p], arg_names=["x", "p"], call_args=(x, pa),
                  out_shape=(1, 1), name=_function_name(name, f, "terminal"))
        self._set_form(CasadiForm("terminal", F))

    @classmethod
    def from_form(cls, form: CasadiForm, *, param_spec, defaults) -> "CasadiTerminalCost":
        """A terminal cost around an existing terminal form."""
        self = cls.__new__(cls)
        self.n_state = form.function.size1_in(0)
        self.param_spec, self._defaults, self._named = tuple(param_spec), np.asarray(defaults, float).copy(), False
        self._set_form(form)
        return self

    def _set_form(self, form):
        self._form = form
        self._batched = BatchedFunction(form, shared=[1], adjoint_of=[0, 1])

    def forward(self, x, p):
        B = x.shape[0]
        return self._batched.forward([x, p], B)[:, 0], ([x, p], B)

    def vjp(self, ctx, c_bar):
        inputs, B = ctx
        xb, pb = self._batched.vjp(inputs, c_bar[:, None], B)
        return xb, pb


def _function_name(name, f, default) -> str:
    """The CasADi Function name: ``name`` checked, or one derived from ``f`` when None."""
    if name is None:
        return _safe_name(f, default)
    if not isinstance(name, str):
        raise TypeError(f"name: expected a str (a CasADi Function name) or None, got {type(name).__name__} "
                        f"{describe(name)}")
    if not ca.Function.check_name(name):
        raise ValueError(f"name: expected a valid CasADi Function name (a letter, then letters, digits and single "
                         f"underscores; not 'null', 'jac' or 'hess'), got {name!r}")
    return name


def _safe_name(f, default):
    """A valid CasADi Function name from the user function's name (``<lambda>`` -> ``plant_lambda``)."""
    import re
    nm = re.sub(r"_+", "_", re.sub(r"[^0-9A-Za-z_]", "_", getattr(f, "__name__", ""))).strip("_")
    if not nm or not nm[0].isalpha() or nm in ("null", "jac", "hess"):
        nm = f"{default}_{nm}" if nm else default
    return nm


_CLASSES = {"plant": CasadiPlant, "ode": CasadiODE, "policy": CasadiPolicy, "cost": CasadiStageCost,
            "terminal": CasadiTerminalCost}


def as_casadi(component):
    """The CasADi component equivalent to any CasADi-expressible component.

    A NumPy model with a registered form (e.g. ``dynopt.models.Pendulum``) or a
    ``Discretized`` of one becomes a :class:`CasadiODE` / fused :class:`CasadiPlant` with the
    same parameter layout and defaults, evaluated through CasADi.  CasADi components are
    returned unchanged.

    Raises
    ------
    TypeError
        If the component has no CasADi form, or is an open-loop sequence (not a time-invariant
        policy).
    """
    if isinstance(component, _CasadiComponent):
        return component
    form = casadi_form(component)
    if form is None:
        raise TypeError(f"component: {component!r} has no CasADi form; write it with dynopt.casadi.components "
                        f"or register one with dynopt.casadi.forms.register_casadi_form")
    if form.kind == "policy" and form.step_slice:
        raise TypeError(f"component: {component!r} is an open-loop sequence, not a CasADi policy of (x, X, p)")
    kw = dict(param_spec=component.param_spec, defaults=component.default_params())
    if isinstance(component, Discretized) or form.kind == "plant":
        return CasadiPlant.from_form(form, n_exog=component.n_exog, **kw)
    return _CLASSES[form.kind].from_form(form, **kw)
