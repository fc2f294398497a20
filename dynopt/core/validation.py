"""Input checking: every user-facing array goes through here, so errors read the same."""

from __future__ import annotations

import numbers

import numpy as np

from .types import Array


def as_float_array(name: str, value, *, finite: bool = True) -> Array:
    """Convert ``value`` to a float64 array, raising ``TypeError`` if it is not numeric.

    Parameters
    ----------
    name : str
        Argument name used in error messages.
    value : array_like
        The value to convert.
    finite : bool
        If true, NaN or inf raise ``ValueError`` naming the first offending entry.
    """
    if value is None:
        raise TypeError(f"{name}: expected a numeric array, got None")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"{name}: expected a numeric array, got {type(value).__name__} ({exc})"
        ) from None
    if finite and not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(
            f"{name}: expected finite values, got {arr[tuple(bad)]} at index {tuple(int(i) for i in bad)}"
        )
    return arr


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
    """Return ``value`` as an int, raising if it is not an integer ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value}")
    return int(value)
