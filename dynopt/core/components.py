r"""The component contract: a forward map and its dual (vector-Jacobian product).

Every piece the engine chains (plant, policy, stage cost, terminal cost) is a component
with

* ``forward(...) -> (output, ctx)``: batched over a leading scenario axis ``B`` with no
  Python loop over scenarios; ``ctx`` is whatever the dual needs later;
* ``vjp(ctx, output_bar) -> adjoints``: Werbos's *dual subroutine*.  Given
  :math:`\bar y = \partial J / \partial y` it returns :math:`(\partial y/\partial v)^T \bar y`
  for each input ``v`` and, for the parameters, that product **summed over the batch**.

A ``None`` adjoint means "does not depend on this input" and saves work.

Per evaluation the engine first calls ``bind(params, grad=...)`` on each component: the
component may parse its flat parameter vector once (instead of at every step) and learn
whether its parameter adjoint is needed at all (``grad=False`` when its block is neither in
the decision nor shared into it; its ``vjp`` may then return ``None`` for the parameters).
Whatever ``bind`` returns is what ``forward`` receives as its parameter argument.  A
component may also defer its parameter adjoint (accumulate per-step pieces in the bound
object and form one product over all steps): ``param_grad(bound)`` is called once after the
backward sweep and its result is added to the per-step ones.  When an observer needs each
step's parameter adjoint (``dynopt.diagnose``), ``bind`` receives ``grad="per_step"``: the
component must then return its parameter adjoint from every ``vjp`` and defer nothing.

Exogenous inputs: a component with ``n_exog > 0`` reads ``X[t]`` of width ``n_exog``.  When
the problem's ``X`` is a dict of named channels, the component's ``channels`` (names, in
order) say which ones it reads, concatenated; with a plain array every reading component
must read all of its columns.

Parameters are flat float64 vectors; ``param_spec`` (ordered ``(name, shape)`` pairs) names
the blocks inside them so that results read back as named arrays.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from math import prod
from typing import Dict, NamedTuple, Optional, Tuple

import numpy as np

from .types import Array, Batch, Context, History, ParamSpec
from .validation import as_float_array, check_shape


class SliceGrad(NamedTuple):
    """A parameter adjoint that is non-zero only on ``where``: lets a component that reads one
    slice of its parameters per step (an open-loop sequence) avoid a full-length vector."""

    where: slice
    value: Array


def add_param_grad(target: Array, g) -> None:
    """Add a parameter adjoint (full vector or :class:`SliceGrad`) into ``target`` in place."""
    if isinstance(g, SliceGrad):
        target[g.where] += g.value
    else:
        target += g


def add_adjoint(a, b):
    """Sum of two adjoints where ``None`` stands for zero (returns ``None`` only if both are)."""
    if a is None:
        return b
    if b is None:
        return a
    return a + b


class Component(ABC):
    """Base class holding the parameter layout shared by all components.

    Subclasses set ``param_spec`` (a tuple of ``(name, shape)``) and may override
    :meth:`default_params`.
    """

    param_spec: ParamSpec = ()
    channels: Optional[Tuple[str, ...]] = None
    """Names of the exogenous channels read (concatenated in this order), or ``None``."""

    def bind(self, params: Array, *, grad: bool):
        """Prepare the parameters for one evaluation (default: the flat vector itself).

        Parameters
        ----------
        params : (n_params,) array
        grad : bool or "per_step"
            Whether this component's parameter adjoint is needed in this evaluation;
            ``"per_step"``: needed from every ``vjp`` call (no deferral to :meth:`param_grad`).

        Returns
        -------
        object
            Passed to :meth:`forward` as the parameter argument (and reachable from ``vjp``
            through the context the component saves).
        """
        return params

    def param_grad(self, bound) -> Optional[Array]:
        """Parameter adjoint ``(n_params,)`` deferred by the component into ``bound`` during the
        backward sweep (one product over all steps), or ``None`` (default: nothing deferred)."""
        return None

    @property
    def n_params(self) -> int:
        """Length of the flat parameter vector."""
        return sum(prod(shape) for _, shape in self.param_spec)

    def default_params(self) -> Array:
        """Parameter vector used when the user gives none (zeros unless overridden)."""
        return np.zeros(self.n_params)

    def unflatten(self, params) -> Dict[str, Array]:
        """Split a flat parameter vector ``(n_params,)`` into named arrays (views, C order)."""
        params = np.asarray(params, dtype=np.float64)
        check_shape(f"{type(self).__name__} parameters", params, (self.n_params,))
        out, offset = {}, 0
        for name, shape in self.param_spec:
            size = prod(shape)
            out[name] = params[offset:offset + size].reshape(shape)
            offset += size
        return out

    def flatten(self, **blocks) -> Array:
        """Inverse of :meth:`unflatten`: named arrays to a flat vector ``(n_params,)``."""
        names = [n for n, _ in self.param_spec]
        unknown = set(blocks) - set(names)
        if unknown:
            raise TypeError(f"{type(self).__name__}.flatten: unknown blocks {sorted(unknown)}; expected {names}")
        parts = []
        for name, shape in self.param_spec:
            if name not in blocks:
                raise TypeError(f"{type(self).__name__}.flatten: missing block {name!r}")
            arr = as_float_array(name, blocks[name])
            parts.append(check_shape(name, arr, tuple(shape)).ravel())
        return np.concatenate(parts) if parts else np.zeros(0)


class Plant(Component):
    r"""Discrete-time dynamics with ``lags`` = k time lags.

    .. math:: x[t+1] = f(x[t], x[t-1], \dots, x[t-k+1], u[t], X[t]; \theta)

    Attributes
    ----------
    n_state, n_control, n_exog : int
        Sizes n, m and nX.
    lags : int
        k >= 1, the number of past states ``f`` reads.
    """

    n_state: int
    n_control: int = 0
    n_exog: int = 0
    lags: int = 1

    @abstractmethod
    def forward(self, hist: History, u: Batch, X: Optional[Batch], theta: Array) -> Tuple[Batch, Context]:
        """One step.

        Parameters
        ----------
        hist : tuple of k arrays, each (B, n)
            ``(x[t], x[t-1], ..., x[t-k+1])``, newest first.
        u : (B, m) array
        X : (B, nX) array or None
        theta : (n_params,) array

        Returns
        -------
        x_next : (B, n) array
        ctx : object saved for :meth:`vjp`
        """

    @abstractmethod
    def vjp(self, ctx: Context, x_next_bar: Batch) -> Tuple[Tuple[Optional[Batch], ...], Optional[Batch], Array]:
        """Dual of :meth:`forward`.

        Returns
        -------
        hist_bar : tuple of k arrays (B, n) or None
        u_bar : (B, m) array or None
        theta_bar : (n_params,) array, summed over the batch
        """


class Policy(Component):
    r"""A control law :math:`u[t] = \pi(t, x[t], X[t]; \phi)`.

    Open-loop control sequences are policies that ignore ``x`` and read ``t``.
    """

    n_state: int
    n_control: int
    n_exog: int = 0

    @abstractmethod
    def forward(self, t: int, x: Batch, X: Optional[Batch], phi: Array) -> Tuple[Batch, Context]:
        """Return ``u[t]`` of shape (B, m) and a context."""

    @abstractmethod
    def vjp(self, ctx: Context, u_bar: Batch) -> Tuple[Optional[Batch], Array]:
        """Return ``(x_bar (B, n) or None, phi_bar)``; ``phi_bar`` is ``(n_params,)`` or a
        :class:`SliceGrad`."""


class StageCost(Component):
    r"""Per-step cost :math:`l(t, x, u[t], X[t]; p)`, one value per scenario.

    ``timing = "pre"`` (default): ``x = x[t]``, the state the control acts on.
    ``timing = "post"``: ``x = x[t+1]``, the state *after* the step, so a fit of the state to
    data ``y[t+1]`` is one stage cost (no terminal cost, no skipping t = 0).  The engine
    evaluates a post-step cost after the plant and routes its state adjoint into
    ``lambda[t+1]``.
    """

    timing: str = "pre"

    @abstractmethod
    def forward(self, t: int, x: Batch, u: Batch, X: Optional[Batch], p: Array) -> Tuple[Array, Context]:
        """Return the cost ``(B,)`` and a context."""

    @abstractmethod
    def vjp(self, ctx: Context, c_bar: Array) -> Tuple[Optional[Batch], Optional[Batch], Array]:
        """Given ``c_bar (B,)`` return ``(x_bar (B, n), u_bar (B, m), p_bar (n_params,))``."""


class TerminalCost(Component):
    r"""Terminal cost :math:`l_T(x[T]; p)`, one value per scenario."""

    @abstractmethod
    def forward(self, x: Batch, p: Array) -> Tuple[Array, Context]:
        """Return the cost ``(B,)`` and a context."""

    @abstractmethod
    def vjp(self, ctx: Context, c_bar: Array) -> Tuple[Optional[Batch], Array]:
        """Given ``c_bar (B,)`` return ``(x_bar (B, n), p_bar (n_params,))``."""


class ZeroPolicy(Policy):
    """The empty policy for plants without controls (``m = 0``), e.g. econometric recursions."""

    def __init__(self, n_state: int):
        self.n_state = n_state
        self.n_control = 0

    def forward(self, t, x, X, phi):
        return np.zeros((x.shape[0], 0)), None

    def vjp(self, ctx, u_bar):
        return None, np.zeros(0)
