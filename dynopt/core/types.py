"""Shared type aliases and array-layout conventions.

Layout, decided once for the whole library:

* per-step arrays are batch first: a state is ``(B, n)``, a control ``(B, m)``,
  an exogenous input ``(B, nX)``, a per-step cost ``(B,)``;
* trajectories are time first: states ``(T + 1, B, n)``, controls ``(T, B, m)``,
  exogenous inputs ``(T, B, nX)``, stage costs ``(T, B)``;
* parameters travel as flat float64 vectors; a component's ``param_spec`` names the
  blocks inside it (C order).
"""

from __future__ import annotations

from typing import Any, Sequence, Tuple

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]
"""A float64 NumPy array."""

Batch = Array
"""A per-step, batch-first array: ``(B, n)``, ``(B, m)``, ``(B, nX)`` or ``(B,)``."""

History = Tuple[Array, ...]
"""The k most recent states, newest first: ``(x[t], x[t-1], ..., x[t-k+1])``, each ``(B, n)``."""

Context = Any
"""Whatever a component's ``forward`` saves for its ``vjp`` (opaque to the engine)."""

ParamSpec = Sequence[Tuple[str, Tuple[int, ...]]]
"""Ordered ``(name, shape)`` pairs describing a flat parameter vector."""
