"""Gradient-norm clipping."""

from __future__ import annotations

import numpy as np

from ..core.types import Array


def clip_gradient(g: Array, max_norm: float) -> Array:
    """Return ``g`` scaled so that ``||g||_2 <= max_norm`` (unchanged if already inside)."""
    norm = float(np.linalg.norm(g))
    if norm > max_norm:
        return g * (max_norm / norm)
    return g
