"""The reusable problem object: plant, policy, costs, horizon, data, and the decision vector W."""

from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import Dict, Optional, Sequence

import numpy as np

from .components import Plant, Policy, StageCost, TerminalCost, ZeroPolicy
from .sweeps import Setup, forward_segment, terminal_forward
from .types import Array
from .validation import as_float_array, check_int, check_shape

_DEFAULT_GRADIENT = None
"""Factory of the strategy a Problem built without ``gradient=`` uses; registered by
:mod:`dynopt.gradients` (the core does not import the strategy layer)."""


def set_default_gradient(factory) -> None:
    """Register ``factory() -> GradientMethod`` as the default strategy of new problems."""
    global _DEFAULT_GRADIENT
    _DEFAULT_GRADIENT = factory


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

    Parameters
    ----------
    plant : Plant
        Dynamics with ``plant.lags`` = k lags (a :class:`~dynopt.Discretized` ODE for
        continuous time).
    policy : Policy, optional
        Control law or open-loop sequence; may be omitted when the plant has no controls.
    cost : StageCost, optional
        Per-step cost ``l``.
    terminal_cost : TerminalCost, optional
        ``l_T``.
    horizon : int
        T >= 1, number of steps.
    x0 : array_like, (B, n) or (n,), or (k, B, n) for k > 1 lags
        Initial history ``x[0], x[-1], ..., x[-k+1]``; ``(n,)`` means B = 1.
    X : array_like, (T, B, nX) or (T, nX), optional
        Exogenous inputs (data, disturbances, references); ``(T, nX)`` is shared by all
        scenarios.
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
        How :meth:`value_and_grad` differentiates; default :class:`~dynopt.BPTT`.
    """

    def __init__(self, plant: Plant, policy: Optional[Policy] = None, cost: Optional[StageCost] = None,
                 terminal_cost: Optional[TerminalCost] = None, *, horizon: int, x0, X=None,
                 params: Optional[Dict[str, object]] = None, decision: Optional[Sequence[str]] = None,
                 objective: str = "min", gradient=None):
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
        if terminal_cost is not None and not isinstance(terminal_cost, TerminalCost):
            raise TypeError(f"terminal_cost: expected a dynopt.TerminalCost, got {type(terminal_cost).__name__}")
        if cost is None and terminal_cost is None:
            raise ValueError("cost: expected a stage cost, a terminal cost or both; got neither")
        self.policy, self.cost, self.terminal_cost = policy, cost, terminal_cost
        self.horizon = T = check_int("horizon", horizon, minimum=1)
        if objective not in ("min", "max"):
            raise ValueError(f"objective: expected 'min' or 'max', got {objective!r}")
        self.objective = objective

        x0a = as_float_array("x0", x0)
        self._x0_shape = x0a.shape
        if x0a.ndim == 1:
            x0a = x0a[None, :]
        if x0a.ndim == 2 and k == 1:
            x0a = x0a[None]
        if x0a.ndim != 3 or x0a.shape[0] != k or x0a.shape[2] != n:
            want = "(B, n) or (n,)" if k == 1 else "(k, B, n)"
            raise ValueError(
                f"x0: expected shape {want} with n={n}" + (f", k={k}" if k > 1 else "") + f", got {self._x0_shape}"
            )
        self.B = x0a.shape[1]
        self._x0 = x0a

        n_exog = max(plant.n_exog, policy.n_exog, getattr(cost, "n_exog", 0) or 0)
        if n_exog:
            if X is None:
                raise ValueError(f"X: the components read nX={n_exog} exogenous inputs; expected an array (T, B, nX) or (T, nX), got None")
            Xa = as_float_array("X", X)
            if Xa.ndim == 2:
                check_shape("X", Xa, (T, n_exog))
                Xa = np.broadcast_to(Xa[:, None, :], (T, self.B, n_exog))
            else:
                check_shape("X", Xa, (T, self.B, n_exog))
            self.X = Xa
        else:
            if X is not None:
                Xa = as_float_array("X", X)
                if Xa.size:
                    raise ValueError(f"X: no component reads exogenous inputs (nX=0), got an array of shape {Xa.shape}")
            self.X = None

        self._components = {"policy": policy, "plant": plant, "cost": cost, "terminal": terminal_cost}
        self._values = {}
        for name, comp in self._components.items():
            self._values[name] = np.zeros(0) if comp is None else np.asarray(comp.default_params(), dtype=np.float64)
        self._values["x0"] = x0a
        for name, value in (params or {}).items():
            if name not in BLOCKS[:4]:
                raise ValueError(f"params: unknown block {name!r}; expected one of {list(BLOCKS[:4])} (x0 is its own argument)")
            size = self._values[name].size
            arr = as_float_array(f"params[{name!r}]", value).ravel()
            check_shape(f"params[{name!r}]", arr, (size,))
            self._values[name] = arr

        if decision is None:
            decision = ("policy",)
        if isinstance(decision, str):
            decision = (decision,)
        decision = tuple(decision)
        for name in decision:
            if name not in BLOCKS:
                raise ValueError(f"decision: unknown block {name!r}; expected a subset of {list(BLOCKS)}")
            if self._values[name].size == 0:
                raise ValueError(f"decision: block {name!r} has no parameters to optimise")
        if len(set(decision)) != len(decision):
            raise ValueError(f"decision: blocks repeat in {decision}")
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
        if not (callable(getattr(gradient, "evaluate", None)) and callable(getattr(gradient, "value_and_grad", None))):
            raise TypeError(f"gradient: expected a dynopt GradientMethod such as BPTT(), got {gradient!r}")
        self.gradient = gradient
        self.counts = {"forward": 0, "backward": 0}

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
    def setup(self, W) -> Setup:
        """Resolve W into the arrays a sweep needs (see :class:`dynopt.core.sweeps.Setup`)."""
        b = self.unpack(W)
        x0 = b["x0"].reshape(self._x0.shape)
        return Setup(
            plant=self.plant, policy=self.policy, cost=self.cost, terminal=self.terminal_cost,
            theta=b["plant"], phi=b["policy"], p_cost=b["cost"], p_term=b["terminal"],
            X=self.X, hist0=tuple(x0[j] for j in range(x0.shape[0])), T=self.horizon, B=self.B,
            sign=1.0,
        )

    def simulate(self, W=None) -> Trajectory:
        """Run the forward sweep and return the :class:`Trajectory` (W defaults to ``W0``)."""
        setup = self.setup(self.W0 if W is None else W)
        self.counts["forward"] += 1
        seg = forward_segment(setup, setup.hist0, 0, setup.T, keep=True)
        term, _ = terminal_forward(setup, seg.hist[0])
        return self._trajectory(setup, seg, term)

    def _trajectory(self, setup: Setup, seg, term) -> Trajectory:
        B, T = setup.B, setup.T
        x = np.empty((T + 1, B, self.plant.n_state))
        x[0] = setup.hist0[0]
        if seg.xs:
            x[1:] = np.stack(seg.xs)
        u = np.stack(seg.us) if seg.us else np.zeros((T, B, self.plant.n_control))
        J = objective_value(seg.costs, term, B)
        return Trajectory(x=x, u=u, stage_cost=seg.costs, terminal_cost=term, objective=J)

    def value(self, W) -> float:
        """J(W) from one forward sweep, storing nothing for a backward sweep."""
        setup = self.setup(W)
        self.counts["forward"] += 1
        seg = forward_segment(setup, setup.hist0, 0, setup.T, keep=False)
        term, _ = terminal_forward(setup, seg.hist[0])
        return objective_value(seg.costs, term, setup.B)

    def value_and_grad(self, W):
        """``(J, dJ/dW)`` by the problem's gradient method (default: one BPTT sweep pair)."""
        return self.gradient.value_and_grad(self, self.check_W(W))

    def __repr__(self):
        return (f"Problem(plant={self.plant!r}, policy={self.policy!r}, horizon={self.horizon}, "
                f"B={self.B}, decision={self.decision}, n_decision={self.n_decision})")


def objective_value(costs: Array, term: Optional[Array], B: int) -> float:
    """J = (sum of stage costs + terminal costs) / B, summed in a fixed order."""
    total = costs.sum(axis=0)
    if term is not None:
        total = total + term
    return float(total.sum() / B)
