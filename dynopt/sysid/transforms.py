r"""Parameter transforms: the solver works on ``z`` (unconstrained), the plant reads ``p = g(z)``.

``"log"``: ``p = exp(z)`` keeps a parameter positive without bounds; ``"identity"``: ``p = z``.
A custom transform is a pair ``(to_internal, from_internal)`` of callables that accept NumPy
arrays and CasADi symbols (``from_internal`` is differentiated by CasADi); it must be
invertible at the start value (checked: ``from_internal(to_internal(p0)) == p0``).
Standard errors map back by the delta method, ``Cov(p) = D Cov(z) D`` with ``D = dp/dz``.
"""

from __future__ import annotations

from typing import Callable, Tuple

import casadi as ca
import numpy as np

__all__ = ["Transform", "make_transform"]


class Transform:
    """An elementwise bijection between natural values ``p`` and internal values ``z``."""

    def __init__(self, name: str, to_internal: Callable, from_internal: Callable):
        self.name, self.to_internal, self.from_internal = name, to_internal, from_internal

    def derivative(self, z: np.ndarray) -> np.ndarray:
        """``dp/dz`` elementwise at ``z``, by CasADi (elementwise: the diagonal of the Jacobian)."""
        z = np.asarray(z, float).ravel()
        cache = self.__dict__.setdefault("_dg", {})
        if z.size not in cache:
            s = ca.SX.sym("z", z.size)
            cache[z.size] = ca.Function("dg", [s], [ca.densify(ca.diag(ca.jacobian(self.from_internal(s), s)))])
        return cache[z.size](z).full().ravel()

    def __repr__(self):
        return f"Transform({self.name!r})"


def _log_to(p):
    return np.log(p) if isinstance(p, np.ndarray) else ca.log(p)


def _exp(z):
    return np.exp(z) if isinstance(z, np.ndarray) else ca.exp(z)


BUILTIN = {"identity": (lambda p: p, lambda z: z), "log": (_log_to, _exp)}


def make_transform(label: str, spec, start: np.ndarray) -> Tuple[Transform, np.ndarray]:
    """Build the transform named by ``spec`` for the parameter ``label`` and return it with the
    internal start value ``z0``.

    Raises
    ------
    ValueError
        If the transform is not invertible at the start value (e.g. ``"log"`` of p <= 0).
    TypeError
        If ``spec`` is neither a known name nor a pair of callables.
    """
    start = np.asarray(start, float)
    if isinstance(spec, str):
        if spec not in BUILTIN:
            raise ValueError(f"transform[{label!r}]: expected one of {sorted(BUILTIN)} or a pair (to_internal, "
                             f"from_internal), got {spec!r}")
        if spec == "log" and not (start > 0).all():
            bad = start[~(start > 0)]
            raise ValueError(f"transform[{label!r}]: 'log' is not invertible at the start value {bad.tolist()} "
                             f"(needs p > 0); give a positive start value or use bounds instead")
        t = Transform(spec, *BUILTIN[spec])
    elif isinstance(spec, tuple) and len(spec) == 2 and all(callable(f) for f in spec):
        t = Transform("custom", *spec)
    else:
        raise TypeError(f"transform[{label!r}]: expected 'log', 'identity' or a pair (to_internal, from_internal) "
                        f"of callables, got {spec!r}")
    with np.errstate(all="ignore"):
        z0 = np.asarray(t.to_internal(start.copy()), float).reshape(start.shape)
        back = np.asarray(t.from_internal(z0.copy()), float).reshape(start.shape)
    if not (np.isfinite(z0).all() and np.allclose(back, start, rtol=1e-8, atol=1e-12)):
        raise ValueError(f"transform[{label!r}]: not invertible at the start value: from_internal(to_internal(p0)) "
                         f"= {back.ravel().tolist()} for p0 = {start.ravel().tolist()} (internal {z0.ravel().tolist()})")
    d = t.derivative(z0.ravel())
    if not (np.isfinite(d).all() and (d != 0).all()):
        raise ValueError(f"transform[{label!r}]: not invertible at the start value: dp/dz = {d.tolist()} "
                         f"(needs a finite non-zero derivative)")
    return t, z0
