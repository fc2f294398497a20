"""Argument checks of :func:`dynopt.optimize`: SciPy's option names, options and tolerances,
bounds in every accepted form (length, order, NaN), all before SciPy sees them."""

from __future__ import annotations

import inspect
import math
from numbers import Integral, Real
from typing import Optional

import numpy as np
import scipy.optimize

from ..core.problem import Problem

_KNOWN_OPTIONS = {
    "BFGS": {"gtol", "norm", "eps", "maxiter", "disp", "return_all", "finite_diff_rel_step", "xrtol", "c1", "c2",
             "hess_inv0", "workers"},
    "CG": {"gtol", "norm", "eps", "maxiter", "disp", "return_all", "finite_diff_rel_step", "c1", "c2", "workers"},
    "L-BFGS-B": {"disp", "maxcor", "ftol", "gtol", "eps", "maxfun", "maxiter", "iprint", "maxls",
                 "finite_diff_rel_step", "workers"},
    "Newton-CG": {"xtol", "eps", "maxiter", "disp", "return_all", "c1", "c2"},
    "trust-ncg": {"initial_trust_radius", "max_trust_radius", "eta", "gtol", "maxiter", "disp", "return_all"},
    "trust-krylov": {"inexact", "initial_trust_radius", "max_trust_radius", "eta", "gtol", "maxiter", "disp",
                     "return_all"},
    "trust-constr": {"gtol", "xtol", "barrier_tol", "sparse_jacobian", "maxiter", "verbose", "disp",
                     "initial_tr_radius", "initial_constr_penalty", "initial_barrier_parameter",
                     "initial_barrier_tolerance", "factorization_method", "finite_diff_rel_step"},
}
SECOND_ORDER = ("Newton-CG", "trust-ncg", "trust-krylov", "trust-constr")
"""Methods that get exact Hessian-vector products (``problem.hessp``) as ``hessp``."""
BOUNDED = ("L-BFGS-B", "trust-constr")
"""Options of SciPy 1.17's methods; used when the installed SciPy's signatures cannot be read."""


def scipy_option_names(method: str) -> set:
    """The options the installed SciPy's ``method`` accepts (read from its solver's signature)."""
    try:
        fn = {"BFGS": lambda: scipy.optimize._optimize._minimize_bfgs,
              "CG": lambda: scipy.optimize._optimize._minimize_cg,
              "L-BFGS-B": lambda: scipy.optimize._lbfgsb_py._minimize_lbfgsb,
              "Newton-CG": lambda: scipy.optimize._optimize._minimize_newtoncg,
              "trust-ncg": lambda: scipy.optimize._trustregion_ncg._minimize_trust_ncg,
              "trust-krylov": lambda: scipy.optimize._trustregion_krylov._minimize_trust_krylov,
              "trust-constr": lambda: scipy.optimize._trustregion_constr.minimize_trustregion_constr}[method]()
        skip = {"fun", "x0", "args", "jac", "hess", "hessp", "callback", "bounds", "constraints",
                "unknown_options"}
        params = inspect.signature(fn).parameters
        names = {p for p, v in params.items() if p not in skip and v.kind is not inspect.Parameter.VAR_KEYWORD}
        if any(v.kind is inspect.Parameter.VAR_KEYWORD for v in params.values()):  # e.g. **trust_region_options
            names |= _KNOWN_OPTIONS[method]
        return names
    except (AttributeError, TypeError, ValueError):  # private layout of another SciPy version
        return set(_KNOWN_OPTIONS[method])


def _number(name, value, *, minimum=None, strict=False, finite=True, maximum=None, strict_max=False):
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__} {value!r}")
    v = float(value)
    if math.isnan(v) or (finite and math.isinf(v)):
        raise ValueError(f"{name}: expected a finite number, got {v}")
    if minimum is not None and (v < minimum or (strict and v == minimum)):
        raise ValueError(f"{name}: expected a number {'>' if strict else '>='} {minimum}, got {v}")
    if maximum is not None and (v > maximum or (strict_max and v == maximum)):
        raise ValueError(f"{name}: expected a number {'<' if strict_max else '<='} {maximum}, got {v}")
    return v


def _integer(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name}: expected an integer >= {minimum}, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value}")
    return int(value)


def check_options(method: str, options, tol) -> dict:
    """Validate ``options`` and ``tol`` for ``method``; return the options SciPy gets.

    ``tol`` is folded into the options as :func:`scipy.optimize.minimize` does (``gtol``
    for BFGS and CG; ``ftol`` and ``gtol`` for L-BFGS-B) unless they are given.

    Raises
    ------
    TypeError
        ``options`` is not a dict, or a value has the wrong type.
    ValueError
        An option unknown to ``method``, or a value out of range (NaN, inf, negative
        tolerances, ``maxcor < 1``, ...).
    """
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise TypeError(f"options: expected a dict such as {{'maxiter': 100, 'gtol': 1e-6}}, got "
                        f"{type(options).__name__} {options!r}")
    known = scipy_option_names(method)
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"options: {unknown} are not options of {method}; expected some of {sorted(known)}")
    out = dict(options)
    for key in ("eps", "finite_diff_rel_step"):
        if key in out:
            raise ValueError(f"options[{key!r}]: a finite-difference step, not used: dynopt passes SciPy exact "
                             f"gradients (jac=True); got {out[key]!r}, remove it")
    for key in ("gtol", "ftol", "xrtol"):
        if key in out:
            out[key] = _number(f"options[{key!r}]", out[key], minimum=0.0)
    for key, low in (("maxiter", 0), ("maxfun", 1), ("maxcor", 1), ("maxls", 1)):
        if key in out:
            out[key] = _integer(f"options[{key!r}]", out[key], low)
    for key in ("c1", "c2"):
        if key in out:
            out[key] = _number(f"options[{key!r}]", out[key], minimum=0.0, strict=True, maximum=1.0, strict_max=True)
    if "c1" in out and "c2" in out and not out["c1"] < out["c2"]:
        raise ValueError(f"options['c1'], options['c2']: expected 0 < c1 < c2 < 1, got c1={out['c1']}, c2={out['c2']}")
    if "norm" in out:
        out["norm"] = _number("options['norm']", out["norm"], finite=False)
    if "xtol" in out:
        out["xtol"] = _number("options['xtol']", out["xtol"], minimum=0.0)
    if tol is not None:
        tol = _number("tol", tol, minimum=0.0)
        if method == "Newton-CG":
            out.setdefault("xtol", tol)
        else:
            out.setdefault("gtol", tol)
        if method == "L-BFGS-B":
            out.setdefault("ftol", tol)
        if method == "trust-constr":
            out.setdefault("xtol", tol)
    return out


def expand_bounds(problem: Problem, bounds) -> Optional[scipy.optimize.Bounds]:
    """Bounds in any accepted form, checked, as ``scipy.optimize.Bounds`` of length n_decision.

    Parameters
    ----------
    problem : Problem
    bounds : dict, sequence of (lo, hi) pairs, scipy.optimize.Bounds or None
        A dict maps decision blocks to ``(lo, hi)``, each a scalar or an array of the
        block's size (``None`` for unbounded); a sequence has one pair per entry of W;
        ``Bounds(lb, ub)`` takes scalars or arrays of length n_decision.

    Raises
    ------
    TypeError
        A malformed pair, or non-numeric bounds.
    ValueError
        Wrong length, NaN (refused: write ``None`` or ``±inf`` for unbounded), a lower bound
        above its upper bound, or a bound that excludes every number; messages give the
        index in W.
    """
    if bounds is None:
        return None
    n = problem.n_decision
    if isinstance(bounds, scipy.optimize.Bounds):
        lo = _bound_values("bounds.lb", bounds.lb, n, -np.inf)
        hi = _bound_values("bounds.ub", bounds.ub, n, np.inf)
    elif isinstance(bounds, dict):
        lo, hi = np.full(n, -np.inf), np.full(n, np.inf)
        slices = problem.block_slices()
        for name, pair in bounds.items():
            if name not in slices:
                raise ValueError(f"bounds: block {name!r} is not in the decision {problem.decision}")
            b_lo, b_hi = _pair(f"bounds[{name!r}]", pair)
            sl = slices[name]
            lo[sl] = _bound_values(f"bounds[{name!r}] lower", b_lo, sl.stop - sl.start, -np.inf, offset=sl.start)
            hi[sl] = _bound_values(f"bounds[{name!r}] upper", b_hi, sl.stop - sl.start, np.inf, offset=sl.start)
    elif isinstance(bounds, (str, bytes)) or not hasattr(bounds, "__len__"):
        raise TypeError(f"bounds: expected a dict of blocks, a sequence of (lo, hi) pairs or scipy.optimize.Bounds, "
                        f"got {type(bounds).__name__}")
    else:
        if len(bounds) != n:
            raise ValueError(f"bounds: expected {n} (lo, hi) pairs, one per entry of W "
                             f"({', '.join(f'{k}: {s.stop - s.start}' for k, s in problem.block_slices().items())}), "
                             f"got {len(bounds)}")
        lo, hi = np.empty(n), np.empty(n)
        for i, pair in enumerate(bounds):
            b_lo, b_hi = _pair(f"bounds[{i}]", pair)
            lo[i] = _bound_values(f"bounds[{i}] lower", b_lo, 1, -np.inf, offset=i)[0]
            hi[i] = _bound_values(f"bounds[{i}] upper", b_hi, 1, np.inf, offset=i)[0]
    bad = np.flatnonzero(lo > hi)
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"bounds: lower bound {lo[i]} exceeds upper bound {hi[i]} at W[{i}] "
                         f"({bad.size} such entries); expected lower <= upper")
    bad = np.flatnonzero((lo == np.inf) | (hi == -np.inf))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"bounds: ({lo[i]}, {hi[i]}) at W[{i}] admits no number; expected lower < inf and upper > -inf")
    return scipy.optimize.Bounds(lo, hi)


_expand_bounds = expand_bounds  # the name dynopt.control.constraints imports


def _pair(name, pair):
    if isinstance(pair, (str, bytes)):
        raise TypeError(f"{name}: expected a pair (lo, hi), got {pair!r}")
    try:
        b_lo, b_hi = pair
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected a pair (lo, hi), got {pair!r}") from None
    return b_lo, b_hi


def _bound_values(name, value, size, default, offset=0):
    if value is None:
        return np.full(size, default)
    if isinstance(value, (str, bytes, bool)) or (isinstance(value, np.ndarray) and value.dtype.kind not in "iuf"):
        raise TypeError(f"{name}: expected numbers or None, got {value!r}")
    try:
        arr = np.asarray(value, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected numbers or None, got {value!r}") from None
    if np.iscomplexobj(np.asarray(value)):
        raise TypeError(f"{name}: expected real numbers, got complex {value!r}")
    if arr.size == 1:
        arr = np.full(size, arr[0])
    elif arr.size != size:
        raise ValueError(f"{name}: expected a scalar or {size} values, got {arr.size}")
    nan = np.flatnonzero(np.isnan(arr))
    if nan.size:
        raise ValueError(f"{name}: NaN at W[{offset + int(nan[0])}]; expected a number, or None/±inf for unbounded "
                         f"(NaN bounds are refused, not dropped)")
    return arr
