"""Gradient-norm clipping."""

from __future__ import annotations

import numpy as np

from ..core.types import Array


def clip_gradient(g: Array, max_norm: float) -> Array:
    """Return ``g`` scaled so that ``||g||_2 <= max_norm`` (unchanged if already inside).

    Parameters
    ----------
    g : (n,) array
        A gradient; must be finite.
    max_norm : float
        > 0, in the units of ``g``.

    The norm is computed without overflow (entries near 1e200 are clipped correctly, not
    zeroed); a non-finite ``g`` raises ``ValueError`` instead of passing NaN on.
    """
    if isinstance(max_norm, bool) or not isinstance(max_norm, (int, float, np.integer, np.floating)):
        raise TypeError(f"max_norm: expected a positive number, got {type(max_norm).__name__} {max_norm!r}")
    if not (np.isfinite(max_norm) and max_norm > 0):
        raise ValueError(f"max_norm: expected a positive finite number, got {max_norm}")
    g = np.asarray(g, dtype=np.float64)
    if not np.isfinite(g).all():
        i = int(np.argmax(~np.isfinite(g.ravel())))
        raise ValueError(f"g: expected a finite gradient, got {g.ravel()[i]} at index {i}")
    m = float(np.max(np.abs(g))) if g.size else 0.0
    if m == 0.0:
        return g
    norm = m * float(np.linalg.norm(g / m))
    if norm > max_norm:
        return g * (max_norm / norm)
    return g
