"""Checks for the arguments every ``fit`` shares: ``optimizer``, ``options``, ``start_params``.

Each model's ``fit`` calls these first, before any work, so junk is refused where the user gave it
with a ``TypeError``/``ValueError`` naming the argument, the expected and the given (never SciPy's
own error from deep inside the optimiser).
"""

from __future__ import annotations

import functools
from typing import Optional, Sequence

import numpy as np

from dynopt.core.validation import as_float_array, as_real, check_flag, check_int, describe
from dynopt.optimize import scipy_option_names

OPTIMIZERS = ("BFGS", "L-BFGS-B", "CG", "Newton-CG")
"""SciPy methods the fits run (``jac=True``, exact gradients)."""



class _NotGiven:
    """The default of an argument whose mere presence selects a behaviour (``optimizer`` of the
    closed-form AR/VAR fits: given, it selects the numerical fit); ``None`` stays junk."""

    def __repr__(self):
        return "<not given>"


NOT_GIVEN = _NotGiven()

_INT_KEYS = ("maxiter", "maxfun", "maxcor", "maxls")
_NONNEG_KEYS = ("gtol", "ftol", "xtol", "xrtol")
_UNIT_KEYS = ("c1", "c2")
_FINITE_DIFFERENCE_KEYS = ("eps", "finite_diff_rel_step", "workers")


@functools.lru_cache(maxsize=None)
def _scipy_option_names(method: str) -> frozenset:
    """The options SciPy's ``minimize(method=...)`` takes (dynopt's own reading of SciPy's solver
    signatures, shared with :func:`dynopt.optimize`)."""
    return frozenset(scipy_option_names(method))


def check_optimizer(optimizer, allowed: Sequence[str] = OPTIMIZERS) -> str:
    """``optimizer`` as one of ``allowed`` (SciPy method names, exact spelling)."""
    if not isinstance(optimizer, str):
        raise TypeError(f"optimizer: expected one of {list(allowed)}, got {type(optimizer).__name__} "
                        f"{describe(optimizer)}")
    if optimizer not in allowed:
        raise ValueError(f"optimizer: expected one of {list(allowed)}, got {optimizer!r}")
    return optimizer


def check_options(options, optimizer: str = "BFGS") -> dict:
    """``options`` for ``scipy.optimize.minimize(method=optimizer)``: None (-> ``{}``) or a dict
    whose keys SciPy's ``optimizer`` takes and whose values are valid.

    Checked values: counts (``maxiter``, ``maxfun``, ``maxcor``, ``maxls``) integers >= 1;
    tolerances (``gtol``, ``ftol``, ``xtol``, ``xrtol``) finite reals >= 0; finite-difference
    settings (``eps``, ``finite_diff_rel_step``, ``workers``) refused (exact gradients: SciPy would
    ignore them);
    ``c1``, ``c2`` in (0, 1); ``norm`` a real (inf allowed); ``disp``, ``return_all`` True/False;
    ``hess_inv0`` None or a finite square array.  Returns a new dict (the caller's is not changed).
    """
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise TypeError(f"options: expected a dict of scipy.optimize options (e.g. {{'maxiter': 500}}) or None, "
                        f"got {type(options).__name__} {describe(options)}")
    known = _scipy_option_names(optimizer)
    out = {}
    for key, value in options.items():
        what = f"options[{key!r}]"
        if not isinstance(key, str):
            raise TypeError(f"options: expected option names as strings, got {type(key).__name__} {describe(key)}")
        if known is not None and key not in known:
            raise ValueError(f"options: {key!r} is not an option of optimizer {optimizer!r}; expected one of "
                             f"{sorted(known)}")
        if key in _FINITE_DIFFERENCE_KEYS:
            raise ValueError(f"{what}: a finite-difference setting, unused: the fits give SciPy exact gradients "
                             f"(jac=True); expected it left out, got {describe(value)}")
        if key in _INT_KEYS:
            value = check_int(what, value, minimum=1)
        elif key in _NONNEG_KEYS:
            value = as_real(what, value, minimum=0.0)
        elif key in _UNIT_KEYS:
            value = as_real(what, value, minimum=0.0, strict=True, maximum=1.0)
        elif key == "norm":
            value = as_real(what, value, finite=False)
        elif key in ("disp", "return_all"):
            value = check_flag(what, value)
        elif key == "hess_inv0" and value is not None:
            value = as_float_array(what, value)
            if value.ndim != 2 or value.shape[0] != value.shape[1]:
                raise ValueError(f"{what}: expected a square matrix, got shape {value.shape}")
        out[key] = value
    return out


def check_start_params(start_params, param_names: Sequence[str], *, positive: Sequence[int] = (),
                       nonnegative: Sequence[int] = (), name: str = "start_params") -> np.ndarray:
    """``start_params`` as a finite float array of shape ``(len(param_names),)``.

    ``positive`` / ``nonnegative``: indices that must be ``> 0`` / ``>= 0`` (variances, GARCH
    coefficients); a start outside the parameter space is refused, not silently moved.  ``name``:
    the argument's name in messages.
    """
    k = len(param_names)
    arr = as_float_array(name, start_params)
    if arr.shape != (k,):
        raise ValueError(f"{name}: expected shape ({k},), one value for each of {list(param_names)}, "
                         f"got shape {arr.shape} ({describe(start_params)})")
    for idx, ok, what in ((positive, lambda v: v > 0, "> 0"), (nonnegative, lambda v: v >= 0, ">= 0")):
        for i in idx:
            if not ok(arr[i]):
                raise ValueError(f"{name}: expected {param_names[i]} {what}, got {float(arr[i])!r} "
                                 f"(entry {i} of {describe(start_params)})")
    return arr


def check_fit_args(optimizer, options, start_params=None, param_names: Sequence[str] = (), *,
                   positive: Sequence[int] = (), nonnegative: Sequence[int] = ()):
    """The checks every ``fit`` runs first: ``(optimizer, options, start_params)`` from
    :func:`check_optimizer`, :func:`check_options` and (unless None) :func:`check_start_params`."""
    optimizer = check_optimizer(optimizer)
    options = check_options(options, optimizer)
    if start_params is not None:
        start_params = check_start_params(start_params, param_names, positive=positive, nonnegative=nonnegative)
    return optimizer, options, start_params


def check_start_domain(transform, start) -> np.ndarray:
    """``transform.inverse(start)`` (the unconstrained start), a start outside the transform's domain
    (non-stationary AR, GARCH alpha + beta >= 1, ...) refused naming ``start_params``."""
    try:
        return transform.inverse(np.asarray(start, dtype=np.float64))
    except ValueError as exc:
        raise ValueError(f"start_params: expected a start inside the parameter space, got {exc}") from None
