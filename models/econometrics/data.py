"""Input checks for series, exogenous regressors and orders; errors name the argument.

Accepted: numbers as NumPy arrays, lists, pandas Series/DataFrames (their index and column names are
kept, see :class:`SeriesInfo`).  Refused with ``TypeError``: strings, booleans, complex numbers,
datetimes/timedeltas, object arrays that are not all numbers, DataFrame columns that are not numeric.
Refused with ``ValueError``: NaN/inf, wrong shapes, series too short for the model (the message
names the minimum length).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np


def check_order(name, value, minimum=0):
    """A non-negative integer order (``p``, ``q``, lags)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer >= {minimum}, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value}")
    if value > 10 ** 6:
        raise ValueError(f"{name}: expected an integer <= 1000000, got {value}")
    return int(value)


def _refuse_dtype(name, dtype, where=""):
    kind = np.dtype(dtype).kind
    what = {"M": "datetimes", "m": "timedeltas", "b": "booleans", "c": "complex numbers", "U": "strings",
            "S": "bytes", "V": "raw records"}.get(kind)
    if what:
        raise TypeError(f"{name}: expected real numbers, got {what} (dtype {np.dtype(dtype)}){where}; "
                        f"pass the numeric values (dates belong in the index)")


def _numeric(name, value, allow_nan=False):
    if value is None:
        raise TypeError(f"{name}: expected a numeric array, got None")
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name}: expected a numeric array, got {type(value).__name__} {value!r}")
    if hasattr(value, "dtypes") and hasattr(value, "columns"):  # DataFrame: name the bad column
        for col, dt in zip(value.columns, value.dtypes):
            if not (np.dtype(dt).kind in "iuf" if isinstance(dt, np.dtype) else str(dt).lower().startswith(
                    ("int", "uint", "float"))):
                raise TypeError(f"{name}: expected numeric columns, got column {col!r} of dtype {dt}")
    elif hasattr(value, "dtype") and not isinstance(getattr(value, "dtype"), np.dtype):
        pass  # pandas extension dtypes (nullable Int64/Float64): converted below
    elif hasattr(value, "dtype"):
        _refuse_dtype(name, value.dtype)
    raw = np.asarray(value)
    if raw.dtype.kind == "O":
        flat = raw.ravel()
        bad = [v for v in flat if isinstance(v, (bool, np.bool_, str, bytes, complex, np.complexfloating))
               or not isinstance(v, (numbers.Real, type(None)))]
        if bad:
            raise TypeError(f"{name}: expected real numbers, got {type(bad[0]).__name__} {bad[0]!r} in an object array")
    else:
        _refuse_dtype(name, raw.dtype)
    try:
        arr = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}: expected a numeric array, got {type(value).__name__} ({exc})") from None
    bad = ~np.isfinite(arr) & ~(np.isnan(arr) if allow_nan else False)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name}: expected finite values (no NaN or inf), got {arr[idx]} at index {idx}; "
                         f"drop or impute missing observations first")
    return arr


@dataclass(frozen=True)
class SeriesInfo:
    """What pandas input carried: the row index (or None for arrays) and the series name(s).

    ``index`` labels rows of ``y``; results (residuals, forecasts) carry it, and forecasts extend
    it (:func:`forecast_index`).
    """

    index: Optional[object]
    names: Sequence[str]


def series_info(y, default="y") -> SeriesInfo:
    """Index and names of ``y`` (pandas Series/DataFrame) or ``(None, [default...])``."""
    index = getattr(y, "index", None)
    if hasattr(y, "columns"):
        names = [str(c) for c in y.columns]
    elif getattr(y, "name", None) is not None and index is not None:
        names = [str(y.name)]
    else:
        ncol = np.shape(y)[1] if np.ndim(y) == 2 else 1
        names = [default] if ncol == 1 else [f"{default}{j + 1}" for j in range(ncol)]
    return SeriesInfo(index, names)


def forecast_index(info: SeriesInfo, n_obs: int, steps: int):
    """The index of ``steps`` forecasts after the sample: dates extended at the index's frequency,
    integer positions continued otherwise (``RangeIndex(n_obs, n_obs + steps)`` for arrays)."""
    import pandas as pd
    idx = info.index
    if isinstance(idx, pd.PeriodIndex):
        return pd.period_range(idx[-1] + 1, periods=steps, freq=idx.freq)
    if isinstance(idx, pd.DatetimeIndex):
        freq = idx.freq or (pd.infer_freq(idx) if len(idx) >= 3 else None)
        if freq is not None:
            return pd.date_range(idx[-1], periods=steps + 1, freq=freq)[1:]
    if isinstance(idx, pd.RangeIndex):
        return pd.RangeIndex(idx.stop, idx.stop + steps * idx.step, idx.step)
    return pd.RangeIndex(n_obs, n_obs + steps)


def label(info: SeriesInfo, values, start: int = 0, name=None):
    """``values`` (rows ``start..`` of the sample) as a pandas Series/DataFrame on ``info.index``,
    or the plain array when the input had no index."""
    if info.index is None:
        return values
    import pandas as pd
    idx = info.index[start:start + len(values)]
    if np.ndim(values) == 2:
        return pd.DataFrame(values, index=idx, columns=list(info.names))
    return pd.Series(values, index=idx, name=name)


def check_series(y, *, min_length, what="the lag order", name="y", allow_nan=False):
    """A univariate series ``(N,)``; ``(N, 1)`` is accepted and flattened.

    ``min_length``: the shortest usable length (e.g. more observations than parameters);
    ``allow_nan``: NaN marks a missing observation (counted out of the length).
    """
    dt = getattr(y, "dtype", None)
    if allow_nan and hasattr(y, "to_numpy") and not hasattr(y, "columns") and dt is not None and \
            not isinstance(dt, np.dtype) and str(dt).lower().startswith(("int", "uint", "float")):
        try:  # pandas nullable Int64/Float64: <NA> -> NaN
            y = y.to_numpy(dtype=float, na_value=np.nan)
        except (TypeError, ValueError):
            pass
    arr = _numeric(name, y, allow_nan)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-d series of shape (N,), got shape {arr.shape}")
    n = int(np.sum(~np.isnan(arr))) if allow_nan else arr.shape[0]
    if n < min_length:
        raise ValueError(f"{name}: expected at least {min_length} observations for {what}, got {n}")
    return arr


def check_not_constant(y, name="y"):
    """``ValueError`` for a constant series (no variance to model)."""
    y = np.asarray(y)[~np.isnan(y)]
    if y.size and np.ptp(y) == 0:
        raise ValueError(f"{name}: the series is constant (every value {float(y.flat[0])!r}); its innovation variance "
                         f"would be 0 and the likelihood unbounded; expected a series that varies")


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


def check_full_rank(Z, names, name="exog", G=None):
    """``ValueError`` naming the columns of a regressor matrix that are collinear (or constant).

    Tested on the Gram matrix scaled to a unit diagonal (cheap for long series): an eigenvalue
    below ``1e-10`` marks a column that is a combination of the others to ~1e-5 relative.
    """
    k = Z.shape[1]
    if k == 0:
        return
    G = Z.T @ Z if G is None else G
    d = np.sqrt(np.diag(G))
    if np.all(d > 0) and np.linalg.eigvalsh(G / np.outer(d, d))[0] > 1e-10:
        return
    for j in range(1, k + 1):  # the first column that is a combination of the ones before it
        Gj = G[:j, :j]
        dj = np.sqrt(np.diag(Gj))
        if dj[-1] == 0 or np.linalg.eigvalsh(Gj / np.outer(dj, dj))[0] <= 1e-10:
            rank = np.linalg.matrix_rank(Z)
            raise ValueError(f"{name}: the regressors are collinear (rank {rank} of {k}): column "
                             f"{names[j - 1]!r} is a linear combination of {list(names[:j - 1])}; "
                             f"expected linearly independent regressors (drop it, or the constant)")


def least_squares(Z, Y, G=None):
    """``argmin ||Y - Z B||`` for full-rank ``Z (n, k)`` (checked by :func:`check_full_rank`): the
    normal equations by Cholesky (one pass over the data, the fastest for long series), refined by
    one step of iterative refinement on the residual (accuracy of a QR solve for these
    well-conditioned problems)."""
    from scipy.linalg import cho_factor, cho_solve
    c = cho_factor(Z.T @ Z if G is None else G)
    ZtY = Z.T @ Y
    B = cho_solve(c, ZtY)
    # refinement: Z'(Y - Z B) = Z'Y - G B (no second pass over the data)
    return B + cho_solve(c, ZtY - (Z.T @ Z if G is None else G) @ B)
