"""Measured experiments for system identification: outputs, inputs, missing samples."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..core.types import Array

__all__ = ["Experiment"]


def _numeric(name: str, value, *, allow_nan: bool) -> Array:
    if value is None:
        raise TypeError(f"{name}: expected a numeric array, got None")
    try:
        a = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}: expected a numeric array, got {type(value).__name__} ({exc})") from None
    bad = np.isinf(a) if allow_nan else ~np.isfinite(a)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name}: expected finite values{' (NaN marks a missing sample)' if allow_nan else ''}, "
                         f"got {a[idx]} at index {idx}")
    return a


@dataclass(frozen=True, init=False)
class Experiment:
    r"""One measured record: outputs ``y[i]`` of the states ``x[i]``, ``i = 0..N``, under inputs ``u[i]``.

    The plant steps ``x[i+1] = f(x[i], u[i], X[i]; theta)`` and the sensor reads ``y[i] = h(x[i])``
    plus noise, so ``y`` has one more row than ``u``.

    Parameters
    ----------
    y : (N + 1, ny) array, or (N + 1,) for one output
        Measured outputs [units of h]; NaN marks a missing sample.
    u : (N, m) array, or (N,) for one input, optional
        Controls held over each step (needed when the plant has controls).
    X : (N, nX) array, optional
        Exogenous inputs of the plant, if it reads any.
    x0 : (n,) array, optional
        Initial state: the fixed value, or the start value when initial states are fitted.
    mask : (N + 1, ny) bool array, optional
        True where a sample was taken.  Without it NaN means "missing"; with it NaN is allowed
        only where the mask is False (a NaN inside the mask raises).
    name : str, optional
        Used in parameter names and plots.
    """

    y: Array
    u: Optional[Array]
    X: Optional[Array]
    x0: Optional[Array]
    mask: Array
    name: str

    def __init__(self, y, u=None, X=None, x0=None, mask=None, name: Optional[str] = None):
        ya = _numeric("y", y, allow_nan=True)
        if ya.ndim == 1:
            ya = ya[:, None]
        if ya.ndim != 2 or ya.shape[0] < 2:
            raise ValueError(f"y: expected shape (N + 1, ny) with N >= 1 steps, got {np.shape(y)}")
        if mask is None:
            m = ~np.isnan(ya)
        else:
            m = np.asarray(mask)
            if m.dtype != bool:
                raise TypeError(f"mask: expected a bool array (True = sampled), got dtype {m.dtype}")
            if m.ndim == 1:
                m = m[:, None]
            if m.shape != ya.shape:
                raise ValueError(f"mask: expected the shape of y {ya.shape}, got {m.shape}")
            inside = np.isnan(ya) & m
            if inside.any():
                i, j = (int(v) for v in np.argwhere(inside)[0])
                raise ValueError(f"y: NaN at sample {i}, output {j} where the declared mask says it was measured "
                                 f"({int(inside.sum())} such entries); set mask[{i}, {j}] = False or fix the data")
        if not m.any():
            raise ValueError("y: expected at least one measured sample, got none (all NaN or masked out)")
        N = ya.shape[0] - 1
        ua = None
        if u is not None:
            ua = _numeric("u", u, allow_nan=False)
            if ua.ndim == 1:
                ua = ua[:, None]
            if ua.ndim != 2 or ua.shape[0] != N:
                raise ValueError(f"u: expected {N} rows (one per step between the {N + 1} samples of y), "
                                 f"got shape {np.shape(u)}")
        Xa = None
        if X is not None:
            Xa = _numeric("X", X, allow_nan=False)
            if Xa.ndim == 1:
                Xa = Xa[:, None]
            if Xa.ndim != 2 or Xa.shape[0] != N:
                raise ValueError(f"X: expected {N} rows (one per step between the {N + 1} samples of y), "
                                 f"got shape {np.shape(X)}")
        x0a = None if x0 is None else _numeric("x0", x0, allow_nan=False).ravel()
        for k, v in dict(y=ya, u=ua, X=Xa, x0=x0a, mask=m, name=name).items():
            if isinstance(v, np.ndarray):
                v = v.copy()
                v.flags.writeable = False
            object.__setattr__(self, k, v)

    @property
    def N(self) -> int:
        """Number of steps (samples minus one)."""
        return self.y.shape[0] - 1

    def check(self, index: int, n: int, m: int, nX: int, ny: int) -> None:
        """Raise ``ValueError`` unless the widths agree with the plant (n, m, nX) and the measurement map (ny)."""
        who = f"experiments[{index}]" + (f" ({self.name})" if self.name else "")
        if self.y.shape[1] != ny:
            raise ValueError(f"{who}.y: expected {ny} columns (the outputs of the measurement map h), "
                             f"got {self.y.shape[1]}")
        if m and self.u is None:
            raise ValueError(f"{who}.u: the plant has {m} controls; expected an ({self.N}, {m}) input record, got None")
        if self.u is not None and self.u.shape[1] != m:
            raise ValueError(f"{who}.u: expected {m} columns (the plant's controls), got {self.u.shape[1]}")
        if nX and self.X is None:
            raise ValueError(f"{who}.X: the plant reads {nX} exogenous inputs; expected ({self.N}, {nX}), got None")
        if self.X is not None and self.X.shape[1] != nX:
            raise ValueError(f"{who}.X: expected {nX} columns (the plant's exogenous inputs), got {self.X.shape[1]}")
        if self.x0 is not None and self.x0.shape != (n,):
            raise ValueError(f"{who}.x0: expected shape ({n},) (the plant's state), got {self.x0.shape}")
