"""Constructor-argument checks shared by the model library.

Every message names the argument, what was expected and what was given.  Numbers are real:
strings, bools (where a number is meant), complex values, object, datetime and ragged arrays
are refused rather than reinterpreted.
"""

from __future__ import annotations

import numbers
from typing import Optional, Sequence, Tuple

import numpy as np

from dynopt.core.validation import channel_names  # noqa: F401  (re-exported for the models)

_REAL_KINDS = "iuf"


def _describe(value) -> str:
    r = repr(value)
    return r if len(r) <= 60 else r[:57] + "..."


def real_array(name: str, value, *, finite: bool = True) -> np.ndarray:
    """``value`` as a float64 array; ``TypeError`` for non-real input (str, bool, complex,
    object, datetime, None), ``ValueError`` for ragged nesting or (with ``finite``) NaN/inf."""
    if value is None or isinstance(value, (str, bytes)):
        raise TypeError(f"{name}: expected a real numeric array, got {_describe(value)} ({type(value).__name__})")
    try:
        arr = np.asarray(value)
    except ValueError as exc:  # ragged nesting
        raise ValueError(f"{name}: expected a rectangular real numeric array, got a ragged sequence ({exc})") from None
    if arr.dtype.kind == "O":
        # only real numbers inside (a numeric string or a bool in an object array is not one)
        for item in arr.ravel():
            if isinstance(item, (bool, np.bool_)) or not isinstance(item, (numbers.Real, np.floating, np.integer)):
                raise TypeError(f"{name}: expected a real numeric array, got an object array holding "
                                f"{_describe(item)} ({type(item).__name__})")
        arr = arr.astype(np.float64)
    if arr.dtype.kind not in _REAL_KINDS:
        kind = {"b": "booleans", "c": "complex numbers", "U": "strings", "S": "bytes",
                "M": "datetimes", "m": "timedeltas"}.get(arr.dtype.kind, f"dtype {arr.dtype}")
        raise TypeError(f"{name}: expected a real numeric array, got {kind} ({_describe(value)})")
    arr = arr.astype(np.float64, copy=False)
    if finite and arr.size and not np.all(np.isfinite(arr)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise ValueError(f"{name}: expected finite values, got {arr[bad]} at index {bad}")
    return arr


def number(name: str, value, *, minimum: Optional[float] = None, strict: bool = True,
           allow_none: bool = False) -> Optional[float]:
    """A real finite scalar as float; ``minimum`` with ``strict`` means ``> minimum``, else ``>=``."""
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.ndarray)):
        raise TypeError(f"{name}: expected a real number, got {_describe(value)} ({type(value).__name__})")
    arr = real_array(name, value)
    if arr.ndim != 0:
        raise ValueError(f"{name}: expected a real number (a scalar), got an array of shape {arr.shape}")
    v = float(arr)
    if minimum is not None and (v <= minimum if strict else v < minimum):
        rel = ">" if strict else ">="
        raise ValueError(f"{name}: expected a number {rel} {minimum:g}, got {v!r}")
    return v


def positive(name: str, value) -> float:
    """A real finite number > 0."""
    return number(name, value, minimum=0.0, strict=True)


def flag(name: str, value) -> bool:
    """A bool (``True``/``False``; numpy bools accepted), nothing else."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{name}: expected True or False, got {_describe(value)} ({type(value).__name__})")


def integer(name: str, value, *, minimum: int) -> int:
    """An integer (not a bool) ``>= minimum``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer >= {minimum}, got {_describe(value)} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value}")
    return int(value)


def matrix(name: str, value, *, rows: Optional[int] = None, cols: Optional[int] = None, what: str = "") -> np.ndarray:
    """A real finite 2-D array with the given number of rows/columns (``None``: any)."""
    M = real_array(name, value)
    shown = (("n" if rows is None else rows), ("any" if cols is None else cols))
    ok = M.ndim == 2 and (rows is None or M.shape[0] == rows) and (cols is None or M.shape[1] == cols)
    if not ok:
        desc = f" ({what})" if what else ""
        raise ValueError(f"{name}: expected a 2-D array of shape ({shown[0]}, {shown[1]}){desc}, got shape {M.shape}")
    return M


def exog(n_exog, channels: Optional[Sequence[str]]) -> Tuple[int, Optional[Tuple[str, ...]]]:
    """``(n_exog, channels)`` of a component that reads exogenous inputs: ``n_exog`` defaults
    to one column per named channel."""
    names = None if channels is None else channel_names("channels", channels)
    if n_exog is None:
        n = 0 if names is None else len(names)
    else:
        n = integer("n_exog", n_exog, minimum=0)
    if names is not None and n < len(names):
        raise ValueError(f"n_exog: expected at least one column per channel (>= {len(names)} for {list(names)}), got {n}")
    return n, names
