"""Input checks for series, exogenous regressors and orders; errors name the argument."""

from __future__ import annotations

import numbers

import numpy as np


def check_order(name, value, minimum=0):
    """A non-negative integer order (``p``, ``q``, lags)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer >= {minimum}, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value}")
    return int(value)


def _numeric(name, value):
    if value is None:
        raise TypeError(f"{name}: expected a numeric array, got None")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}: expected a numeric array, got {type(value).__name__} ({exc})") from None
    bad = ~np.isfinite(arr)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name}: expected finite values (no NaN or inf), got {arr[idx]} at index {idx}; "
                         f"drop or impute missing observations first")
    return arr


def check_series(y, *, min_length, what="the lag order", name="y"):
    """A univariate series ``(N,)``; ``(N, 1)`` is accepted and flattened.

    ``min_length``: the shortest usable length (e.g. lag order + 2).
    """
    arr = _numeric(name, y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-d series of shape (N,), got shape {arr.shape}")
    if arr.shape[0] < min_length:
        raise ValueError(f"{name}: expected at least {min_length} observations for {what}, got {arr.shape[0]}")
    return arr


def check_multiseries(y, *, min_length, what="the lag order", name="y"):
    """A multivariate series ``(N, k)`` with k >= 1."""
    arr = _numeric(name, y)
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-d array (N, k) of k series, got shape {arr.shape}")
    if arr.shape[0] < min_length:
        raise ValueError(f"{name}: expected at least {min_length} observations for {what}, got {arr.shape[0]}")
    return arr


def check_exog(exog, n_obs, n_exog=None, name="exog"):
    """Exogenous regressors ``(N, nX)`` (``(N,)`` means nX = 1) or None -> ``(N, 0)``."""
    if exog is None:
        if n_exog:
            raise ValueError(f"{name}: the model was fitted with {n_exog} regressors; "
                             f"expected an array ({n_obs}, {n_exog}), got None")
        return np.zeros((n_obs, 0))
    arr = _numeric(name, exog)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] != n_obs or (n_exog is not None and arr.shape[1] != n_exog):
        want = f"({n_obs}, {'nX' if n_exog is None else n_exog})"
        raise ValueError(f"{name}: expected shape {want} (one row per observation of y), got {np.shape(exog)}")
    return arr
