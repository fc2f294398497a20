"""Input checking: every user-facing number goes through here, so errors read the same.

Numbers are real.  What is accepted and what is refused, everywhere:

* accepted: Python ``int``/``float`` (and ``Fraction``/``Decimal``), NumPy integer and
  floating scalars and arrays, and (nested) sequences of those; they become float64.
* refused with ``TypeError``: ``None``, ``str``/``bytes`` (never parsed, ``"0.1"`` is not 0.1),
  ``bool`` and boolean arrays where a number is meant (``True`` is not 1), complex values
  (never truncated to their real part), datetimes and timedeltas (never read as
  nanosecond integers), arrays of Python objects that are not all real numbers.
* refused with ``ValueError``: ragged nesting (rows of different lengths), NaN/inf unless
  the argument explicitly allows them, wrong shapes, values out of range.

Every message names the argument, what was expected and what was given.
"""

from __future__ import annotations

import decimal
import numbers
from typing import Optional

import numpy as np

from .types import Array

_REAL_KINDS = "iuf"
_KIND_NAMES = {"b": "booleans", "c": "complex numbers", "U": "strings", "S": "bytes",
               "M": "datetimes", "m": "timedeltas", "V": "structured records"}


def describe(value, limit: int = 60) -> str:
    """A short ``repr`` of ``value`` for error messages (cut to ``limit`` characters)."""
    try:
        r = repr(value)
    except Exception:  # noqa: BLE001 - a broken __repr__ must not hide the real error
        r = f"<{type(value).__name__}>"
    return r if len(r) <= limit else r[: limit - 3] + "..."


def as_float_array(name: str, value, *, finite: bool = True) -> Array:
    """Convert ``value`` to a float64 array, refusing anything that is not a real number.

    Parameters
    ----------
    name : str
        Argument name used in error messages.
    value : array_like
        Real numbers: ints, floats, NumPy integer/float scalars or arrays, nested sequences.
    finite : bool
        If true, NaN or inf raise ``ValueError`` naming the first offending entry.

    Returns
    -------
    ndarray of float64, same shape as ``value``

    Raises
    ------
    TypeError
        For ``None``, strings, bytes, bools, complex numbers, datetimes/timedeltas and
        arrays of non-numeric objects.
    ValueError
        For ragged nesting, or non-finite entries when ``finite``.
    """
    if value is None or isinstance(value, (str, bytes)):
        raise TypeError(f"{name}: expected a numeric array, got {type(value).__name__} "
                        f"{describe(value)}")
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a numeric array, got bool {value!r} "
                        f"(True/False are not read as 1/0)")
    try:
        arr = np.asarray(value)
    except ValueError as exc:  # ragged nesting (NumPy >= 1.24)
        raise ValueError(f"{name}: expected a rectangular numeric array, got a ragged sequence "
                         f"{describe(value)} ({exc})") from None
    except TypeError as exc:
        raise TypeError(f"{name}: expected a numeric array, got {type(value).__name__} "
                        f"{describe(value)} ({exc})") from None
    if arr.dtype.kind == "O":
        flat = arr.ravel()
        for item in flat:
            if isinstance(item, (bool, np.bool_)) or not isinstance(item, (numbers.Real, decimal.Decimal)):
                if isinstance(item, (list, tuple, np.ndarray)):
                    raise ValueError(f"{name}: expected a rectangular numeric array, got a ragged sequence "
                                     f"{describe(value)}")
                raise TypeError(f"{name}: expected a numeric array, got an entry "
                                f"{describe(item)} ({type(item).__name__}) in {type(value).__name__} "
                                f"{describe(value)}")
        arr = np.array(flat, dtype=np.float64).reshape(arr.shape)
    if arr.dtype.kind not in _REAL_KINDS:
        kind = _KIND_NAMES.get(arr.dtype.kind, f"dtype {arr.dtype}")
        raise TypeError(f"{name}: expected a numeric array, got {kind} "
                        f"({type(value).__name__} {describe(value)})")
    arr = np.asarray(arr, dtype=np.float64)
    if finite and arr.size and not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(
            f"{name}: expected finite values, got {arr[tuple(bad)]} at index {tuple(int(i) for i in bad)}"
        )
    return arr


def as_real(name: str, value, *, minimum: Optional[float] = None, strict: bool = False,
            maximum: Optional[float] = None, finite: bool = True) -> float:
    """A real scalar as ``float`` (0-d arrays and NumPy scalars accepted).

    ``minimum`` / ``maximum`` bound the value (``strict``: ``> minimum``, else ``>=``);
    the same refusals as :func:`as_float_array` (str, bool, complex, ... -> ``TypeError``).
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, decimal.Decimal, np.ndarray, np.generic)):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__} {describe(value)}")
    arr = as_float_array(name, value, finite=finite)
    if arr.ndim != 0:
        raise ValueError(f"{name}: expected a real number (a scalar), got an array of shape {arr.shape}")
    v = float(arr)
    if minimum is not None and (v <= minimum if strict else v < minimum):
        raise ValueError(f"{name}: expected a number {'>' if strict else '>='} {minimum:g}, got {v!r}")
    if maximum is not None and v > maximum:
        raise ValueError(f"{name}: expected a number <= {maximum:g}, got {v!r}")
    return v


def check_flag(name: str, value) -> bool:
    """``value`` as a bool: only ``True``/``False`` (NumPy bools too); ``0``, ``"no"`` etc. are refused."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{name}: expected True or False, got {type(value).__name__} {describe(value)}")


def check_shape(name: str, arr: Array, expected: tuple) -> Array:
    """Raise ``ValueError`` unless ``arr.shape == expected`` (``None`` entries match any size)."""
    ok = arr.ndim == len(expected) and all(
        e is None or e == s for e, s in zip(expected, arr.shape)
    )
    if not ok:
        shown = tuple("any" if e is None else e for e in expected)
        raise ValueError(f"{name}: expected shape {shown}, got {arr.shape}")
    return arr


def check_int(name: str, value, *, minimum: int) -> int:
    """Return ``value`` as an int, raising if it is not an integer ``>= minimum`` (bools refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer >= {minimum}, got {describe(value)}")
    if value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value}")
    return int(value)


def channel_names(name: str, channels) -> tuple:
    """A non-empty tuple of distinct, non-empty channel names (a bare string is refused: it
    would be read as its letters).

    Raises
    ------
    TypeError
        Not a sequence of non-empty strings, or a single string.
    ValueError
        Empty, or names repeat.
    """
    if isinstance(channels, (str, bytes)):
        raise TypeError(f"{name}: expected a sequence of channel names such as ({channels!r},), got the "
                        f"{type(channels).__name__} {describe(channels)}")
    try:
        out = tuple(channels)
    except TypeError:
        raise TypeError(f"{name}: expected a sequence of channel names, got {type(channels).__name__} "
                        f"{describe(channels)}") from None
    if not out:
        raise ValueError(f"{name}: expected at least one channel name, got {describe(channels)}")
    for c in out:
        if not isinstance(c, str) or not c:
            raise TypeError(f"{name}: expected non-empty strings as channel names, got {describe(c)}")
    if len(set(out)) != len(out):
        raise ValueError(f"{name}: expected distinct channel names, got {list(out)}")
    return out

