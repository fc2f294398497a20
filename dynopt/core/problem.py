"""The reusable problem object: plant, policy, costs, horizon, data, and the decision vector W."""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from math import prod
from typing import Dict, Mapping, Optional, Sequence

import numpy as np

from .components import Plant, Policy, StageCost, TerminalCost, ZeroPolicy
from .sweeps import Setup, forward_segment, objective_value, terminal_forward
from .types import Array
from .validation import as_float_array, check_int, check_shape, describe

_DEFAULT_GRADIENT = None
"""Factory of the strategy a Problem built without ``gradient=`` uses; registered by
:mod:`dynopt.gradients` (the core does not import the strategy layer)."""


def set_default_gradient(factory) -> None:
    """Register ``factory() -> GradientMethod`` as the default strategy of new problems."""
    global _DEFAULT_GRADIENT
    _DEFAULT_GRADIENT = factory


TIME_CHANNEL = "t"
"""The exogenous channel every problem provides: the step index t (0 .. T-1, as float)."""

_HESSP = None
"""``hessp(problem, W, v)`` registered by :mod:`dynopt.gradients` (core does not import it)."""


def set_hessp(fn) -> None:
    """Register the Hessian-vector product :meth:`Problem.hessp` delegates to."""
    global _HESSP
    _HESSP = fn


BLOCKS = ("policy", "plant", "cost", "terminal", "x0")
"""Names of the blocks the decision vector W can be made of, in their canonical order."""


@dataclass
class Trajectory:
    """A simulated batch of trajectories.

    Attributes
    ----------
    x : (T + 1, B, n) array
        States ``x[0] .. x[T]``.
    u : (T, B, m) array
        Controls ``u[0] .. u[T-1]``.
    stage_cost : (T, B) array
        ``l(t, x[t], u[t], X[t])`` per step and scenario (as stated, before averaging).
    terminal_cost : (B,) array or None
        ``l_T(x[T])``.
    objective : float
        ``J``: mean over the batch of the summed stage costs plus terminal cost.
    """

    x: Array
    u: Array
    stage_cost: Array
    terminal_cost: Optional[Array]
    objective: float


class Problem:
    r"""A dynamic optimization problem over a horizon of T steps and a batch of B scenarios.

    .. math::
        J(W) = \frac{1}{B}\sum_{b=1}^{B}\Big[\sum_{t=0}^{T-1} l(t, x_b[t], u_b[t], X_b[t])
               + l_T(x_b[T])\Big],\quad x_b[t+1] = f(x_b[t..t-k+1], u_b[t], X_b[t]),
        \quad u_b[t] = \pi(t, x_b[t], X_b[t])

    A problem is immutable: :meth:`replace` returns a new one with some arguments changed
    (new data, initial states, horizon, fixed parameters, strategy), so that every cache
    built for a problem (compiled sweeps, shards) stays valid for it.

    Parameters
    ----------
    plant : Plant
        Dynamics with ``plant.lags`` = k lags (a :class:`~dynopt.Discretized` ODE for
        continuous time).
    policy : Policy, optional
        Control law or open-loop sequence; may be omitted when the plant has no controls.
    cost : StageCost, optional
        Per-step cost ``l`` (at ``x[t]``, or at ``x[t+1]`` for a cost with ``timing="post"``).
    terminal_cost : TerminalCost, optional
        ``l_T``.
    horizon : int
        T >= 1, number of steps.
    x0 : array_like, (B, n) or (n,), or (k, B, n) for k > 1 lags
        Initial history ``x[0], x[-1], ..., x[-k+1]``; ``(n,)`` means B = 1.
    X : array_like or dict, optional
        Exogenous inputs (data, disturbances, references).  An array ``(T, B, nX)`` or
        ``(T, nX)`` (shared by all scenarios) is read whole by every component with
        ``n_exog > 0`` (each must read all nX columns).  A dict of named channels
        ``{name: (T, B, w) | (T, w) | (T,)}`` is read by each component through its
        ``channels`` (the named channels concatenated in that order); the channel ``"t"``
        (the step index) is always provided.
    params : dict, optional
        Values for the blocks ``"policy"``, ``"plant"``, ``"cost"``, ``"terminal"`` (flat
        vectors): fixed values for blocks outside the decision, start values inside it.
        Missing blocks take the component's ``default_params()``.
    decision : sequence of str, optional
        Which blocks W is made of, in order; default ``("policy",)``.
    objective : {"min", "max"}
        ``"max"`` states J as a utility U to maximise (Werbos's form); ``optimize`` then
        maximises it and reports U.
    gradient : GradientMethod, optional
        How :meth:`value_and_grad` differentiates; default the strategy registered by
        :mod:`dynopt.gradients`.
    shared : dict, optional
        ``{block: source}``: the component of ``block`` uses the parameter vector of
        ``source`` (same length), e.g. ``{"cost": "plant"}`` for a likelihood cost that reads
        the plant's parameters, or ``{"terminal": "cost"}`` for readout weights used by a
        stage and a terminal cost.  The gradient of ``block`` is added to ``source``'s.
    """

    _ARGS = ("plant", "policy", "cost", "terminal_cost", "horizon", "x0", "X", "params", "decision", "objective",
             "gradient", "shared")

    def __init__(self, plant: Plant, policy: Optional[Policy] = None, cost: Optional[StageCost] = None,
                 terminal_cost: Optional[TerminalCost] = None, *, horizon: int, x0, X=None,
                 params: Optional[Dict[str, object]] = None, decision: Optional[Sequence[str]] = None,
                 objective: str = "min", gradient=None, shared: Optional[Dict[str, str]] = None):
        object.__setattr__(self, "_frozen", False)
        if isinstance(params, Mapping) and not isinstance(params, dict):
            params = dict(params)
        if isinstance(shared, Mapping) and not isinstance(shared, dict):
            shared = dict(shared)
        self._given = dict(plant=plant, policy=policy, cost=cost, terminal_cost=terminal_cost, horizon=horizon,
                           x0=x0, X=X, params=dict(params or {}) if isinstance(params, dict) else params,
                           decision=decision, objective=objective, gradient=gradient, shared=shared)
        if not isinstance(plant, Plant):
            raise TypeError(f"plant: expected a dynopt.Plant, got {type(plant).__name__}")
        self.plant = plant
        n, k = plant.n_state, plant.lags
        if policy is None:
            if plant.n_control:
                raise ValueError(
                    f"policy: the plant has m={plant.n_control} controls, so a policy is needed "
                    f"(e.g. an open-loop sequence or a state feedback); got None"
                )
            policy = ZeroPolicy(n)
        if not isinstance(policy, Policy):
            raise TypeError(f"policy: expected a dynopt.Policy, got {type(policy).__name__}")
        if policy.n_control != plant.n_control:
            raise ValueError(
                f"policy: expected {plant.n_control} controls (the plant's m), got a policy with {policy.n_control}"
            )
        if policy.n_state != n and not isinstance(policy, ZeroPolicy):
            raise ValueError(f"policy: expected a policy of n={n} states (the plant's), got n={policy.n_state}")
        if cost is not None and not isinstance(cost, StageCost):
            raise TypeError(f"cost: expected a dynopt.StageCost, got {type(cost).__name__}")
        if cost is not None and getattr(cost, "timing", "pre") not in ("pre", "post"):
            raise ValueError(f"cost.timing: expected 'pre' or 'post', got {cost.timing!r}")
        if terminal_cost is not None and not isinstance(terminal_cost, TerminalCost):
            raise TypeError(f"terminal_cost: expected a dynopt.TerminalCost, got {type(terminal_cost).__name__}")
        if cost is None and terminal_cost is None:
            raise ValueError("cost: expected a stage cost, a terminal cost or both; got neither")
        for label, comp in (("cost", cost), ("terminal_cost", terminal_cost)):
            nc = getattr(comp, "n_state", None)
            if comp is not None and isinstance(nc, int) and not isinstance(nc, bool) and nc != n:
                raise ValueError(f"{label}: expected a {type(comp).__name__} for the plant's n={n} states, got one "
                                 f"built for n={nc}")
        self.policy, self.cost, self.terminal_cost = policy, cost, terminal_cost
        self.horizon = T = check_int("horizon", horizon, minimum=1)
        if not isinstance(objective, str) or objective not in ("min", "max"):
            raise ValueError(f"objective: expected 'min' or 'max', got {objective!r}")
        self.objective = objective

        x0a = as_float_array("x0", x0).copy()  # the problem owns its data
        self._x0_shape = x0a.shape
        if x0a.ndim == 1:
            x0a = x0a[None, :]
        if x0a.ndim == 2 and k == 1:
            x0a = x0a[None]
        if x0a.ndim != 3 or x0a.shape[0] != k or x0a.shape[2] != n or x0a.shape[1] == 0:
            want = "(B, n) or (n,)" if k == 1 else "(k, B, n)"
            raise ValueError(
                f"x0: expected shape {want} with n={n}" + (f", k={k}" if k > 1 else "")
                + (" and B >= 1 scenarios" if x0a.ndim == 3 and x0a.shape[1] == 0 else "") + f", got {self._x0_shape}"
            )
        self.B = x0a.shape[1]
        self._x0 = _frozen_array(x0a)

        self._components = {"policy": policy, "plant": plant, "cost": cost, "terminal": terminal_cost}
        self.X, self._X = self._resolve_X(X, T)

        self._values = {}
        for name, comp in self._components.items():
            self._values[name] = np.zeros(0) if comp is None else np.asarray(comp.default_params(), dtype=np.float64)
        self._values["x0"] = self._x0
        if params is not None and not isinstance(params, dict):
            raise TypeError(f"params: expected a dict of blocks {list(BLOCKS[:4])}, got {type(params).__name__}")
        for name, value in (params or {}).items():
            if not isinstance(name, str) or name not in BLOCKS[:4]:
                raise ValueError(f"params: unknown block {name!r}; expected one of {list(BLOCKS[:4])} (x0 is its own argument)")
            size = self._values[name].size
            arr = as_float_array(f"params[{name!r}]", value).ravel().copy()
            check_shape(f"params[{name!r}]", arr, (size,))
            self._values[name] = arr
        for name in BLOCKS[:4]:
            self._values[name] = _frozen_array(self._values[name])

        if decision is None:
            decision = ("policy",)
        if isinstance(decision, str):
            decision = (decision,)
        if isinstance(decision, (Mapping, set, frozenset)):
            raise TypeError(f"decision: expected an ordered sequence of block names from {list(BLOCKS)} (its order is "
                            f"the layout of W), got a {type(decision).__name__} {decision!r}")
        try:
            decision = tuple(decision)
        except TypeError:
            raise TypeError(f"decision: expected a sequence of block names from {list(BLOCKS)}, got {decision!r}") from None
        if not decision:
            raise ValueError(f"decision: expected at least one block from {list(BLOCKS)}, got an empty sequence")
        for name in decision:
            if not isinstance(name, str):
                raise TypeError(f"decision: expected block names (str) from {list(BLOCKS)}, got {name!r} "
                                f"({type(name).__name__})")
            if name not in BLOCKS:
                raise ValueError(f"decision: unknown block {name!r}; expected a subset of {list(BLOCKS)}")
            if self._values[name].size == 0:
                raise ValueError(f"decision: block {name!r} has no parameters to optimise")
        if len(set(decision)) != len(decision):
            raise ValueError(f"decision: blocks repeat in {decision}")

        if shared is not None and not isinstance(shared, dict):
            raise TypeError(f"shared: expected a dict {{block: source}} of blocks from {list(BLOCKS[:4])}, "
                            f"got {type(shared).__name__} {shared!r}")
        shared = dict(shared or {})
        for blk, src in shared.items():
            if (not isinstance(blk, str) or not isinstance(src, str) or blk not in BLOCKS[:4]
                    or src not in BLOCKS[:4] or blk == src):
                raise ValueError(f"shared: expected {{block: source}} with two different blocks of {list(BLOCKS[:4])}, "
                                 f"got {{{blk!r}: {src!r}}}")
            if self._components[blk] is None or self._components[src] is None:
                raise ValueError(f"shared: {{{blk!r}: {src!r}}} names a block without a component")
            if self._values[blk].size != self._values[src].size:
                raise ValueError(f"shared: block {blk!r} has {self._values[blk].size} parameters, its source {src!r} "
                                 f"{self._values[src].size}; a shared block needs the same length")
            if blk in decision:
                raise ValueError(f"shared: block {blk!r} takes its values from {src!r}, so it cannot be in the "
                                 f"decision; put {src!r} there")
            if src in shared:
                raise ValueError(f"shared: source {src!r} is itself shared; chains are not allowed")
            if params and blk in params:
                raise ValueError(f"params: block {blk!r} is shared from {src!r}; give the values for {src!r}")
        self.shared = MappingProxyType(shared)
        self.decision = decision
        self._slices, off = {}, 0
        for name in decision:
            size = self._values[name].size
            self._slices[name] = slice(off, off + size)
            off += size
        self.n_decision = off

        if gradient is None:
            if _DEFAULT_GRADIENT is None:
                raise RuntimeError("no default gradient strategy registered: import dynopt (not dynopt.core alone)")
            gradient = _DEFAULT_GRADIENT()
        if isinstance(gradient, type):
            raise TypeError(f"gradient: expected a GradientMethod instance such as BPTT(), got the class "
                            f"{gradient.__name__}; call it: {gradient.__name__}()")
        if not (callable(getattr(gradient, "evaluate", None)) and callable(getattr(gradient, "value_and_grad", None))):
            raise TypeError(f"gradient: expected a dynopt GradientMethod such as BPTT(), got {gradient!r}")
        self.gradient = gradient
        self.counts = {"forward": 0, "backward": 0}
        self._given.update(x0=self._x0.reshape(self._x0_shape), X=self._given_X(X), params=None)
        self._frozen = True

    # ----------------------------------------------------------------- immutability
    def __setattr__(self, name, value):
        if getattr(self, "_frozen", False):
            raise AttributeError(
                f"Problem is immutable: cannot set {name!r}; use problem.replace({name}=...) to get a new problem "
                f"(caches such as compiled sweeps and shards are keyed on the problem they were built for)")
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        raise AttributeError(f"Problem is immutable: cannot delete {name!r}")

    def replace(self, **changes) -> "Problem":
        """A new problem with some constructor arguments changed, e.g. ``replace(X=new_data)``.

        Accepts every constructor argument (``plant``, ``policy``, ``cost``,
        ``terminal_cost``, ``horizon``, ``x0``, ``X``, ``params``, ``decision``, ``objective``,
        ``gradient``, ``shared``).  ``params`` updates the blocks it names and keeps the
        others' current values.  The strategy object is kept unless ``gradient`` is given
        (its caches are keyed per problem, so sharing it is safe).
        """
        unknown = set(changes) - set(self._ARGS)
        if unknown:
            raise TypeError(f"replace: unknown arguments {sorted(unknown)}; expected some of {list(self._ARGS)}")
        args = dict(self._given)
        args["gradient"] = self.gradient
        args["params"] = {name: self._values[name] for name in BLOCKS[:4]
                          if self._components[name] is not None and name not in self.shared}
        if "params" in changes:
            merged = {name: self._values[name] for name in BLOCKS[:4] if self._components[name] is not None
                      and name not in self.shared}
            new = changes.pop("params")
            if isinstance(new, Mapping) and not isinstance(new, dict):
                new = dict(new)
            if new is not None and not isinstance(new, dict):
                raise TypeError(f"params: expected a dict of blocks {list(BLOCKS[:4])}, got {type(new).__name__}")
            merged.update(new or {})
            args["params"] = merged
        args.update(changes)
        return Problem(args.pop("plant"), args.pop("policy"), args.pop("cost"), args.pop("terminal_cost"), **args)

    def __reduce__(self):
        args = dict(self._given)
        args["gradient"] = self.gradient
        args["params"] = {name: np.array(self._values[name]) for name in BLOCKS[:4]
                          if self._components[name] is not None and name not in self.shared}
        return (_rebuild, (args,))

    # ----------------------------------------------------------------- exogenous inputs
    def _resolve_X(self, X, T):
        """Per-component exogenous inputs ``{"plant"|"policy"|"cost": (T, B, w) or None}``."""
        readers = {name: comp for name, comp in self._components.items()
                   if name != "terminal" and comp is not None and int(getattr(comp, "n_exog", 0) or 0) > 0}
        per = {"plant": None, "policy": None, "cost": None}
        declared = {c for comp in readers.values() for c in (getattr(comp, "channels", None) or ())}
        if X is None and declared and declared <= {TIME_CHANNEL}:
            X = {}
        if isinstance(X, dict) and TIME_CHANNEL in declared and TIME_CHANNEL not in X:
            X = dict(X)
            X[TIME_CHANNEL] = np.arange(T, dtype=np.float64)
        if not readers:
            if X is not None:
                if isinstance(X, dict):
                    if X:
                        raise ValueError(f"X: no component reads exogenous inputs (nX=0), got channels {sorted(X)}")
                else:
                    Xa = as_float_array("X", X)
                    if Xa.size:
                        raise ValueError(f"X: no component reads exogenous inputs (nX=0), got an array of shape {Xa.shape}")
            return None, per
        if X is None:
            need = {name: int(c.n_exog) for name, c in readers.items()}
            if len(set(need.values())) == 1:
                raise ValueError(f"X: the components read nX={next(iter(need.values()))} exogenous inputs; expected an "
                                 f"array (T, B, nX) or (T, nX), or a dict of named channels, got None")
            raise ValueError(f"X: the components read exogenous inputs {need} (columns per component); expected a "
                             f"dict of named channels, got None")
        if isinstance(X, dict):
            chans = {}
            for key, val in X.items():
                if not isinstance(key, str):
                    raise TypeError(f"X: channel names must be str, got {key!r}")
                a = as_float_array(f"X[{key!r}]", val).copy()
                if a.ndim == 1:
                    a = a[:, None]
                if a.ndim == 2:
                    check_shape(f"X[{key!r}]", a, (T, None))
                    a = np.broadcast_to(a[:, None, :], (T, self.B, a.shape[1]))
                else:
                    check_shape(f"X[{key!r}]", a, (T, self.B, None))
                chans[key] = _frozen_array(a)
            for name, comp in readers.items():
                names = getattr(comp, "channels", None)
                if not names:
                    raise ValueError(f"X: given as named channels {sorted(chans)}, so the {name} "
                                     f"({type(comp).__name__}, n_exog={comp.n_exog}) must declare which it reads "
                                     f"(its `channels`); it declares none")
                missing = [c for c in names if c not in chans]
                if missing:
                    raise ValueError(f"X: the {name} ({type(comp).__name__}) reads channels {list(names)}; "
                                     f"missing {missing}, given {sorted(chans)}")
                a = np.concatenate([chans[c] for c in names], axis=2) if len(names) > 1 else chans[names[0]]
                if a.shape[2] != comp.n_exog:
                    raise ValueError(f"X: the {name} ({type(comp).__name__}) reads n_exog={comp.n_exog} columns, "
                                     f"its channels {list(names)} have {a.shape[2]}")
                per[name] = _frozen_array(np.ascontiguousarray(a))
            return MappingProxyType(chans), per
        Xa = as_float_array("X", X).copy()
        widths = {int(c.n_exog) for c in readers.values()}
        if len(widths) > 1:
            need = {name: int(c.n_exog) for name, c in readers.items()}
            raise ValueError(f"X: the components read different numbers of exogenous columns {need}; give X as a dict "
                             f"of named channels and set each component's `channels` (dynopt never hands a component "
                             f"'the first columns' of a shared array)")
        nX = widths.pop()
        if Xa.ndim == 2:
            check_shape("X", Xa, (T, nX))
            Xa = np.broadcast_to(Xa[:, None, :], (T, self.B, nX))
        else:
            check_shape("X", Xa, (T, self.B, nX))
        Xa = _frozen_array(Xa)
        for name, comp in readers.items():
            if getattr(comp, "channels", None):
                raise ValueError(f"X: the {name} ({type(comp).__name__}) reads named channels "
                                 f"{list(comp.channels)}; give X as a dict of those channels")
            per[name] = Xa
        return Xa, per

    def _given_X(self, X):
        """The exogenous inputs as given (shared channels unbroadcast), from the problem's own copies."""
        if self.X is None:
            return None
        if isinstance(self.X, MappingProxyType):
            return {c: (a[:, 0, :] if np.ndim(X[c]) < 3 else a) for c, a in self.X.items()
                    if c in X and c != TIME_CHANNEL}
        return self.X[:, 0, :] if np.ndim(X) == 2 else self.X

    def scenarios(self, b0: int, b1: int) -> "Problem":
        """The scenarios ``b0:b1`` as a problem of their own (rows of ``x0`` and of ``X``; same
        components, horizon, parameters, decision and strategy)."""
        b0 = check_int("b0", b0, minimum=0)
        b1 = check_int("b1", b1, minimum=b0 + 1)
        if b1 > self.B:
            raise ValueError(f"b1: expected at most B={self.B}, got {b1}")
        k, n = self.plant.lags, self.plant.n_state
        x0 = np.asarray(self._x0)[:, b0:b1, :]
        x0 = x0[0] if k == 1 else x0
        X = self._given["X"]
        if isinstance(X, dict):
            X = {c: (a[:, b0:b1, :] if a.ndim == 3 else a) for c, a in X.items()}
        elif X is not None and np.ndim(X) == 3:
            X = X[:, b0:b1, :]
        return self.replace(x0=x0, X=X)

    def exog(self, component: str) -> Optional[Array]:
        """The exogenous inputs ``(T, B, w)`` that ``component`` (``"plant"``, ``"policy"``,
        ``"cost"``) reads, or ``None``.

        Raises
        ------
        TypeError, ValueError
            If ``component`` is not one of those names (the terminal cost reads no X).
        """
        if not isinstance(component, str):
            raise TypeError(f"component: expected one of {sorted(self._X)}, got {type(component).__name__} "
                            f"{describe(component)}")
        if component not in self._X:
            raise ValueError(f"component: expected one of {sorted(self._X)}, got {component!r}")
        return self._X[component]
    # ----------------------------------------------------------------- packing
    @property
    def W0(self) -> Array:
        """The decision vector ``(n_decision,)`` built from the start values."""
        return np.concatenate([self._values[name].ravel() for name in self.decision])

    def check_W(self, W) -> Array:
        """Validate a decision vector: float64, shape ``(n_decision,)``, finite."""
        Wa = as_float_array("W", W)
        if Wa.shape != (self.n_decision,):
            layout = ", ".join(f"{n}: {self._values[n].size}" for n in self.decision)
            raise ValueError(f"W: expected shape ({self.n_decision},) ({layout}), got {Wa.shape}")
        return Wa

    def unpack(self, W) -> Dict[str, Array]:
        """All blocks as arrays, those in the decision taken from ``W``.

        ``"x0"`` comes back in the shape the user gave; the others as flat vectors.
        """
        W = self.check_W(W)
        out = {}
        for name in BLOCKS:
            if name in self._slices:
                out[name] = W[self._slices[name]].reshape(self._values[name].shape)
            else:
                out[name] = self._values[name]
        for blk, src in self.shared.items():
            out[blk] = out[src]
        out["x0"] = out["x0"].reshape(self._x0_shape)
        return out

    def named(self, W) -> Dict[str, Dict[str, Array]]:
        """The decision blocks of ``W`` split into each component's named parameter arrays.

        For example ``problem.named(W)["policy"]["W1"]``; ``"x0"`` maps to the array itself.
        """
        blocks = self.unpack(W)
        out = {}
        for name in self.decision:
            if name == "x0":
                out[name] = blocks[name]
            else:
                out[name] = self._components[name].unflatten(blocks[name])
        return out

    def pack(self, **blocks) -> Array:
        """Build W from named blocks (flat vectors or ``x0``-shaped arrays); others from start values."""
        unknown = set(blocks) - set(self.decision)
        if unknown:
            raise ValueError(f"pack: blocks {sorted(unknown)} are not in the decision {self.decision}")
        parts = []
        for name in self.decision:
            if name in blocks:
                arr = as_float_array(name, blocks[name]).ravel()
                check_shape(name, arr, (self._values[name].size,))
            else:
                arr = self._values[name].ravel()
            parts.append(arr)
        return np.concatenate(parts)

    def block_slices(self) -> Dict[str, slice]:
        """Where each decision block lives in W."""
        return dict(self._slices)

    def sub_blocks(self) -> Dict[str, slice]:
        """Slices of W for every named parameter array, e.g. ``"policy.W1"``, ``"x0"``."""
        out = {}
        for name in self.decision:
            sl = self._slices[name]
            comp = self._components.get(name)
            if name == "x0" or comp is None or not comp.param_spec:
                out[name] = sl
                continue
            off = sl.start
            for sub, shape in comp.param_spec:
                size = prod(shape)
                out[f"{name}.{sub}"] = slice(off, off + size)
                off += size
        return out

    # ----------------------------------------------------------------- evaluation
    def needs_grad(self, block: str) -> bool:
        """Whether the parameter adjoint of ``block`` is needed (it is in the decision, or
        shared into a block that is)."""
        return block in self._slices or self.shared.get(block) in self._slices

    def setup(self, W, *, per_step: bool = False) -> Setup:
        """Resolve W into what a sweep needs (see :class:`dynopt.core.sweeps.Setup`): each
        component's bound parameters (``bind``, once per evaluation), its exogenous inputs and
        the initial history.  ``per_step``: parameter adjoints are wanted from every step's
        dual (components defer nothing; for observers such as the diagnostics)."""
        b = self.unpack(W)
        x0 = b["x0"].reshape(self._x0.shape)
        bound = {}
        for name, comp in self._components.items():
            need = self.needs_grad(name)
            bound[name] = None if comp is None else comp.bind(b[name], grad="per_step" if (need and per_step) else need)
        return Setup(
            plant=self.plant, policy=self.policy, cost=self.cost, terminal=self.terminal_cost,
            theta=bound["plant"], phi=bound["policy"], p_cost=bound["cost"], p_term=bound["terminal"],
            X_plant=self._X["plant"], X_policy=self._X["policy"], X_cost=self._X["cost"],
            hist0=tuple(x0[j] for j in range(x0.shape[0])), T=self.horizon, B=self.B,
        )

    def gradient_from(self, grads, window) -> Array:
        """Pack a backward sweep's parameter adjoints and initial-history adjoint into ``dJ/dW``.

        ``grads`` has ``theta, phi, p_cost, p_term`` accumulators (shared blocks are added
        into their sources); ``window`` is the adjoint window at ``t = 0``:
        ``[lam[0], lam[-1], ..., lam[-k+1], ...]``.
        """
        acc = {"policy": grads.phi, "plant": grads.theta, "cost": grads.p_cost, "terminal": grads.p_term}
        for blk, src in self.shared.items():
            acc[src] = acc[src] + acc[blk]
        parts = []
        for name in self.decision:
            if name == "x0":
                k, B, n = self.plant.lags, self.B, self.plant.n_state
                lam = np.zeros((k, B, n))
                for j in range(k):
                    if window[j] is not None:
                        lam[j] = window[j]
                parts.append(lam.ravel())
            else:
                parts.append(acc[name])
        return np.concatenate(parts)

    def simulate(self, W=None) -> Trajectory:
        """Run the forward sweep and return the :class:`Trajectory` (W defaults to ``W0``)."""
        W = self.check_W(self.W0 if W is None else W)
        self.counts["forward"] += 1
        setup = self.setup(W)
        seg = forward_segment(setup, setup.hist0, 0, setup.T, keep=True)
        term, _ = terminal_forward(setup, seg.hist[0])
        return self.trajectory(setup, seg, term)

    def trajectory(self, setup: Setup, seg, term) -> Trajectory:
        """Assemble a :class:`Trajectory` from a full-horizon forward segment."""
        B, T = setup.B, setup.T
        x = np.empty((T + 1, B, self.plant.n_state))
        x[0] = setup.hist0[0]
        if seg.xs:
            x[1:] = np.stack(seg.xs)
        u = np.stack(seg.us) if seg.us else np.zeros((T, B, self.plant.n_control))
        J = objective_value(seg.costs, term, B)
        return Trajectory(x=x, u=u, stage_cost=seg.costs, terminal_cost=term, objective=J)

    def value(self, W) -> float:
        """J(W) from one forward sweep of the problem's strategy, storing nothing for a backward sweep.

        Raises
        ------
        SimulationDivergedError
            Naming the step and component where a value (or the summed objective) turned non-finite.
        """
        return self.gradient.value(self, self.check_W(W))

    def value_and_grad(self, W):
        """``(J, dJ/dW)`` by the problem's gradient method (default: one BPTT sweep pair)."""
        return self.gradient.value_and_grad(self, self.check_W(W))

    def hessp(self, W, v):
        """The Hessian-vector product ``(d^2 J / dW^2) v`` at W, ``(n_decision,)`` (SciPy's name).

        Exact (forward mode over the adjoint sweep) when every component has a CasADi form; a
        central difference of the exact gradient otherwise (warned once).  See
        :func:`dynopt.gradients.hessian.hessp`.
        """
        if _HESSP is None:
            raise RuntimeError("no Hessian-vector product registered: import dynopt (not dynopt.core alone)")
        return _HESSP(self, self.check_W(W), v)

    def __repr__(self):
        return (f"Problem(plant={self.plant!r}, policy={self.policy!r}, horizon={self.horizon}, "
                f"B={self.B}, decision={self.decision}, n_decision={self.n_decision})")


def _frozen_array(a) -> Array:
    """A read-only view (the problem's data cannot be edited in place)."""
    a = np.asarray(a)
    v = a.view()
    v.flags.writeable = False
    return v


def _rebuild(args: dict) -> "Problem":
    return Problem(args.pop("plant"), args.pop("policy"), args.pop("cost"), args.pop("terminal_cost"), **args)
