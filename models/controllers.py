r"""Controllers with internal state (PI, PID) as a composition of engine components.

The engine's :class:`~dynopt.Policy` is a static map ``u = pi(t, x, X)``.  A controller with
memory (an integrator, a derivative filter) is built from two pieces:

* :class:`ControllerStatePlant` wraps any lag-1 plant and appends q controller states ``c`` to
  its state: ``z = (x, c)``, ``z+ = (f(x, u, X), c + dc)``.  Its control vector is
  ``(u, dc)``: the plant input and the increment of the controller states;
* a :class:`StatefulPolicy` (here :class:`PID`) reads ``z`` and the exogenous inputs (the
  reference) and returns ``(u, dc)``.

Every update therefore runs inside the forward sweep and BPTT differentiates it exactly, and
the gains are the ``"policy"`` block of W (the anti-windup gain included).  Costs written for
the plant's own state are lifted with :class:`PlantStateCost`; :class:`TrackingCost` is the
integral squared error ``dt * sum (r - y)^2`` (+ control effort).

Exogenous inputs: the controller and the tracking cost read the reference ``r`` (units of the
measured output ``y = C x``) from column ``ref_index`` of the X they receive.  For a plant
without exogenous inputs X is just ``r`` (:func:`pid_problem` builds it).  A plant with its own
inputs (disturbances) and a reference need X as a dict of named channels, each component
declaring what it reads (``channels=``), e.g. ``ControllerStatePlant(plant, q,
channels=("load",))``, ``PID(..., channels=("reference",))``.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np

from dynopt import Plant, Policy, Problem, StageCost
from dynopt.core.validation import as_float_array, as_real, check_flag, check_int, check_shape, describe

from ._checks import channel_names

__all__ = ["ControllerStatePlant", "StatefulPolicy", "PID", "PlantStateCost", "TrackingCost", "pid_problem"]

_ANTI_WINDUP = ("none", "back-calculation", "clamping")


def _output_vector(output, n: int) -> np.ndarray:
    """``C`` (n,) from ``output``: a state index (int) or a real (n,) vector."""
    if isinstance(output, (int, np.integer)) and not isinstance(output, (bool, np.bool_)):
        if not 0 <= output < n:
            raise ValueError(f"output: expected a state index in [0, {n}) or a (n,) vector C, got {output}")
        C = np.zeros(n)
        C[int(output)] = 1.0
        return C
    C = _row("output", output)
    if C.shape != (n,):
        raise ValueError(f"output: expected a state index in [0, {n}) or a vector C of shape ({n},), "
                         f"got shape {C.shape}")
    return C


def _limits(u_limits) -> tuple:
    """``(lo, hi)`` real finite numbers with ``lo < hi`` (each entry checked: ``True`` is not 1)."""
    if isinstance(u_limits, (str, bytes)) or not isinstance(u_limits, (Sequence, np.ndarray)):
        raise TypeError(f"u_limits: expected a pair (lo, hi) of real numbers, got {type(u_limits).__name__} "
                        f"{describe(u_limits)}")
    if np.ndim(u_limits) != 1 or len(u_limits) != 2:
        raise ValueError(f"u_limits: expected a pair (lo, hi) of real numbers, got {describe(u_limits)}")
    lo, hi = (as_real(f"u_limits[{i}]", v) for i, v in enumerate(u_limits))
    if not lo < hi:
        raise ValueError(f"u_limits: expected (lo, hi) with lo < hi, got {(lo, hi)}")
    return lo, hi


def _row(name: str, value) -> np.ndarray:
    """A real finite non-empty vector (n,); a one-row matrix (1, n) is taken as its row."""
    C = as_float_array(name, value)
    if C.ndim == 2 and C.shape[0] == 1:
        C = C[0]
    if C.ndim != 1 or C.size == 0:
        raise ValueError(f"{name}: expected a non-empty vector C of shape (n,) or (1, n), got shape {C.shape}")
    return C


class ControllerStatePlant(Plant):
    r"""A plant with q controller states appended: ``z = (x, c)``, ``z+ = (f(x, u), c + dc)``.

    Parameters
    ----------
    plant : Plant
        Any lag-1 plant with ``m`` controls and ``nX`` exogenous inputs.
    n_memory : int
        q >= 1, the controller's states.
    channels : tuple of str, optional
        Named X channels the wrapped plant reads (when X is a dict of channels).

    The control vector is ``(u (m), dc (q))``; the wrapped plant receives the X the loop
    plant receives.  The plant block of W is the wrapped plant's.
    """

    def __init__(self, plant: Plant, n_memory: int, channels: Optional[Sequence[str]] = None):
        if not isinstance(plant, Plant):
            raise TypeError(f"plant: expected a dynopt.Plant, got {type(plant).__name__}")
        if plant.lags != 1:
            raise ValueError(f"plant: expected a lag-1 plant, got lags={plant.lags}")
        n_memory = check_int("n_memory", n_memory, minimum=1)
        self.inner = plant
        self.n_plant, self.m_plant, self.n_memory = plant.n_state, plant.n_control, n_memory
        self.n_state = plant.n_state + self.n_memory
        self.n_control = plant.n_control + self.n_memory
        self.n_exog = plant.n_exog
        self.param_spec = plant.param_spec
        if channels is not None:
            self.channels = channel_names("channels", channels)

    def default_params(self):
        return self.inner.default_params()

    def bind(self, params, *, grad: bool):
        return self.inner.bind(params, grad=grad)

    def param_grad(self, bound):
        return self.inner.param_grad(bound)

    def forward(self, hist, u, X, theta):
        z = hist[0]
        n, m = self.n_plant, self.m_plant
        x_next, ctx = self.inner.forward((z[:, :n],), u[:, :m], X if self.inner.n_exog else None, theta)
        out = np.empty_like(z)
        out[:, :n] = x_next
        np.add(z[:, n:], u[:, m:], out=out[:, n:])
        return out, ctx

    def vjp(self, ctx, zb):
        n, m = self.n_plant, self.m_plant
        hist_bar, u_bar, th_bar = self.inner.vjp(ctx, zb[:, :n])
        z_bar = np.empty_like(zb)
        z_bar[:, :n] = 0.0 if hist_bar[0] is None else hist_bar[0]
        z_bar[:, n:] = zb[:, n:]
        ue_bar = np.empty((zb.shape[0], self.n_control))
        ue_bar[:, :m] = 0.0 if u_bar is None else u_bar
        ue_bar[:, m:] = zb[:, n:]
        return (z_bar,), ue_bar, th_bar

    def __repr__(self):
        return f"ControllerStatePlant({self.inner!r}, n_memory={self.n_memory})"


class StatefulPolicy(Policy):
    """A controller with q internal states, for a :class:`ControllerStatePlant`.

    ``forward(t, z, X, phi)`` reads ``z = (x, c)`` ``(B, n + q)`` and returns ``(u, dc)``
    concatenated ``(B, m + q)``; ``vjp`` returns the adjoint of ``z`` and of ``phi``.
    """


class PID(StatefulPolicy):
    r"""Discrete PI / PID controller with output saturation and anti-windup.

    At each step (sampling period ``dt``), with ``y = C x`` and the reference ``r = X[:, ref]``:

    .. math::
        e = r - y,\quad P = K_p e,\quad D = -\frac{K_d}{T_f}(y - y_f),\quad
        v = P + I + D,\quad u = \mathrm{sat}(v) = \min(\max(v, u_{lo}), u_{hi})

    Controller states ``c = (I, y_f)`` (``y_f`` only with a derivative):
    ``y_f+ = y_f + a (y - y_f)``, ``a = 1 - exp(-dt/T_f)`` (derivative on the measurement,
    filtered: no kick on setpoint steps; :math:`D(s) = -K_d s / (T_f s + 1)\,y`), and the
    integrator (in units of u)

    * ``"none"``: ``I+ = I + K_i dt e``;
    * ``"back-calculation"``: ``I+ = I + K_i dt e + K_b dt (u - v)`` (Astrom & Hagglund,
      *Advanced PID Control*, 2006, sec. 3.5); ``K_b`` is a tuned gain [1/s];
    * ``"clamping"``: ``I+ = clip(I + K_i dt e, min(u_lo - P - D, 0), max(u_hi - P - D, 0))``,
      integration stops where it would push ``v`` further beyond a limit.  It is written as an
      exact clip of continuous functions (not a switch on a saturation flag, and not smoothed),
      so J stays continuous in the gains, piecewise smooth, and its BPTT gradient is exact
      wherever J is differentiable; a switched "conditional integration" would make J jump and
      break line searches, and a smoothed one would differentiate a controller nobody runs.

    Saturation is the exact clip as well (the controller as implemented in a drive); where the
    output is saturated the gradient through that step is zero, as it is for the real loop.

    Parameters
    ----------
    n_plant : int
        n, the plant's state size.
    output : (n,) array or int
        ``C`` with ``y = C x``, or the index of the measured state.
    dt : float
        Sampling period [s].
    derivative : bool
        PID (True) or PI (False).
    Tf : float, optional
        Derivative filter time constant [s]; default ``dt`` (required > 0 with a derivative).
    u_limits : (lo, hi), optional
        Output saturation; required for any anti-windup.
    anti_windup : {"none", "back-calculation", "clamping"}
    ref_index : int
        Column of the X this controller receives that holds the reference (default 0).
    channels : tuple of str, optional
        Named X channels it reads (when X is a dict of channels), e.g. ``("reference",)``.
    gains : dict, optional
        Start values ``Kp, Ki, Kd, Kb`` (default Kp = Ki = 1, Kd = 0, Kb = 1).

    The policy block is ``Kp, Ki`` (``, Kd``) (``, Kb``).
    """

    def __init__(self, n_plant: int, output, dt: float, *, derivative: bool = False, Tf: Optional[float] = None,
                 u_limits: Optional[Sequence[float]] = None, anti_windup: str = "none", ref_index: int = 0,
                 channels: Optional[Sequence[str]] = None, gains: Optional[dict] = None):
        n = check_int("n_plant", n_plant, minimum=1)
        self.C = _output_vector(output, n)
        self.dt = as_real("dt", dt, minimum=0.0, strict=True)
        if not isinstance(anti_windup, str):
            raise TypeError(f"anti_windup: expected one of {list(_ANTI_WINDUP)}, got {type(anti_windup).__name__} "
                            f"{describe(anti_windup)}")
        if anti_windup not in _ANTI_WINDUP:
            raise ValueError(f"anti_windup: expected one of {list(_ANTI_WINDUP)}, got {anti_windup!r}")
        if u_limits is None:
            if anti_windup != "none":
                raise ValueError(f"u_limits: anti_windup={anti_windup!r} needs output saturation limits (lo, hi); "
                                 f"got None")
            self.u_limits = None
        else:
            self.u_limits = _limits(u_limits)
        self.anti_windup = anti_windup
        self.derivative = check_flag("derivative", derivative)
        if self.derivative:
            Tf = self.dt if Tf is None else as_real("Tf", Tf, minimum=0.0, strict=True)
            self.Tf, self.a = Tf, 1.0 - np.exp(-self.dt / Tf)
        elif Tf is not None:
            raise ValueError("Tf: a derivative filter needs derivative=True; got Tf without a derivative")
        else:
            self.Tf = self.a = None
        self.ref_index = check_int("ref_index", ref_index, minimum=0)
        self.n_exog = self.ref_index + 1
        if channels is not None:
            self.channels = channel_names("channels", channels)
        self.n_plant = n
        self.n_memory = 2 if self.derivative else 1
        self.n_state = n + self.n_memory
        self.n_control = 1 + self.n_memory
        names = ["Kp", "Ki"] + (["Kd"] if self.derivative else [])
        names += ["Kb"] if anti_windup == "back-calculation" else []
        self.param_spec = tuple((k, ()) for k in names)
        start = {"Kp": 1.0, "Ki": 1.0, "Kd": 0.0, "Kb": 1.0}
        if gains is not None and not isinstance(gains, Mapping):
            raise TypeError(f"gains: expected a dict of start values such as {{'Kp': 2.0}}, "
                            f"got {type(gains).__name__} {describe(gains)}")
        for k, v in (gains or {}).items():
            if k not in names:
                raise ValueError(f"gains: unknown gain {k!r}; this controller has {names}")
            start[k] = as_real(f"gains[{k!r}]", v)
        self._start = np.array([start[k] for k in names])

    def default_params(self):
        return self._start.copy()

    def initial_state(self, x0, integrator=0.0):
        """Augmented initial states ``z0 = (x0, I0, y_f0 = C x0)`` of shape ``(B, n + q)``.

        Parameters
        ----------
        x0 : (B, n) or (n,) array
            Plant states.
        integrator : float or (B,) array
            ``I0`` in units of u (e.g. the control that held the previous operating point).
        """
        x0 = as_float_array("x0", x0)
        x0 = x0[None] if x0.ndim == 1 else x0
        check_shape("x0", x0, (None, self.n_plant))
        z = np.empty((x0.shape[0], self.n_state))
        z[:, :self.n_plant] = x0
        z[:, self.n_plant] = integrator
        if self.derivative:
            z[:, self.n_plant + 1] = x0 @ self.C
        return z

    def _gains(self, phi):
        g = dict(zip((k for k, _ in self.param_spec), phi.tolist()))
        return g["Kp"], g["Ki"], g.get("Kd", 0.0), g.get("Kb", 0.0)

    def forward(self, t, z, X, phi):
        n = self.n_plant
        Kp, Ki, Kd, Kb = self._gains(phi)
        y = z[:, :n] @ self.C
        e = X[:, self.ref_index] - y
        I = z[:, n]
        P = Kp * e
        if self.derivative:
            yf = z[:, n + 1]
            D = (-Kd / self.Tf) * (y - yf)
        else:
            yf, D = None, 0.0
        v = P + I + D
        if self.u_limits is None:
            u, inside = v, None
        else:
            lo, hi = self.u_limits
            u = np.clip(v, lo, hi)
            inside = (v > lo) & (v < hi)
        out = np.empty((z.shape[0], self.n_control))
        out[:, 0] = u
        dt = self.dt
        clamp = None
        if self.anti_windup == "back-calculation":
            out[:, 1] = Ki * dt * e + Kb * dt * (u - v)
        elif self.anti_windup == "clamping":
            lo, hi = self.u_limits
            tent = I + Ki * dt * e
            PD = P + D
            i_hi, i_lo = np.maximum(hi - PD, 0.0), np.minimum(lo - PD, 0.0)
            Inew = np.minimum(np.maximum(tent, i_lo), i_hi)
            # which branch set Inew: 0 = the tentative value, +1 = upper limit, -1 = lower limit
            branch = np.where(tent > i_hi, 1, np.where(tent < i_lo, -1, 0))
            clamp = (branch, hi - PD > 0.0, lo - PD < 0.0)
            out[:, 1] = Inew - I
        else:
            out[:, 1] = Ki * dt * e
        if self.derivative:
            out[:, 2] = self.a * (y - yf)
        return out, (z, e, y, yf, v, u, inside, clamp, (Kp, Ki, Kd, Kb))

    def vjp(self, ctx, ub):
        z, e, y, yf, v, u, inside, clamp, (Kp, Ki, Kd, Kb) = ctx
        n, dt = self.n_plant, self.dt
        names = [k for k, _ in self.param_spec]
        g = dict.fromkeys(names, 0.0)
        u_bar = ub[:, 0]
        dI_bar = ub[:, 1]
        v_bar = u_bar if inside is None else u_bar * inside
        e_bar = np.zeros_like(e)
        I_bar = np.zeros_like(e)
        PD_bar = np.zeros_like(e)
        if self.anti_windup == "back-calculation":
            e_bar += (Ki * dt) * dI_bar
            g["Ki"] += dt * np.dot(e, dI_bar)
            g["Kb"] += dt * np.dot(u - v, dI_bar)
            v_bar = v_bar + (Kb * dt) * dI_bar * (inside - 1.0)  # d(u - v)/dv = inside - 1
        elif self.anti_windup == "clamping":
            branch, hi_on, lo_on = clamp
            free = branch == 0
            I_bar -= dI_bar  # dI = Inew - I
            t_bar = dI_bar * free
            I_bar += t_bar
            e_bar += (Ki * dt) * t_bar
            g["Ki"] += dt * np.dot(e, t_bar)
            PD_bar -= dI_bar * (((branch == 1) & hi_on) | ((branch == -1) & lo_on))
        else:
            e_bar += (Ki * dt) * dI_bar
            g["Ki"] += dt * np.dot(e, dI_bar)
        # v = P + I + D
        I_bar += v_bar
        P_bar = v_bar + PD_bar
        D_bar = v_bar + PD_bar
        g["Kp"] += np.dot(e, P_bar)
        e_bar += Kp * P_bar
        y_bar = -e_bar
        z_bar = np.zeros_like(z)
        z_bar[:, n] = I_bar
        if self.derivative:
            yf_bar_in = ub[:, 2]
            g["Kd"] += -np.dot(y - yf, D_bar) / self.Tf
            c = Kd / self.Tf
            y_bar = y_bar - c * D_bar + self.a * yf_bar_in
            z_bar[:, n + 1] = c * D_bar - self.a * yf_bar_in
        z_bar[:, :n] = y_bar[:, None] * self.C
        return z_bar, np.array([g[k] for k in names])

    def __repr__(self):
        kind = "PID" if self.derivative else "PI"
        return f"PID({kind}, dt={self.dt}, u_limits={self.u_limits}, anti_windup={self.anti_windup!r})"


class PlantStateCost(StageCost):
    """Lift a stage cost written for the plant's state ``x`` (n) and control ``u`` (m) to the
    augmented loop (``z = (x, c)``, control ``(u, dc)``): ``l(t, z, (u, dc), X) = cost(t, x, u, X)``."""

    def __init__(self, cost: StageCost, n_plant: int, m_plant: int):
        if not isinstance(cost, StageCost):
            raise TypeError(f"cost: expected a dynopt.StageCost, got {type(cost).__name__}")
        self.cost = cost
        self.n = check_int("n_plant", n_plant, minimum=1)
        self.m = check_int("m_plant", m_plant, minimum=0)
        nc = getattr(cost, "n_state", None)
        if isinstance(nc, int) and not isinstance(nc, bool) and nc != self.n:
            raise ValueError(f"n_plant: expected the n={nc} states the cost was built for, got {self.n}")
        self.param_spec = cost.param_spec
        self.n_exog = getattr(cost, "n_exog", 0)

    def default_params(self):
        return self.cost.default_params()

    def bind(self, params, *, grad: bool):
        return self.cost.bind(params, grad=grad)

    def param_grad(self, bound):
        return self.cost.param_grad(bound)

    def forward(self, t, z, u, X, p):
        c, ctx = self.cost.forward(t, z[:, :self.n], u[:, :self.m], X, p)
        return c, (ctx, z.shape, u.shape)

    def vjp(self, ctx, c_bar):
        inner, zs, us = ctx
        xb, ub, pb = self.cost.vjp(inner, c_bar)
        z_bar = np.zeros(zs)
        u_bar = np.zeros(us)
        if xb is not None:
            z_bar[:, :self.n] = xb
        if ub is not None:
            u_bar[:, :self.m] = ub
        return z_bar, u_bar, pb


class TrackingCost(StageCost):
    r"""Integral squared tracking error plus control effort:
    ``l = dt * (w_e (r - C x)^2 + w_u (u - u_ref)^2)`` with ``r = X[:, ref_index]``.

    Parameters
    ----------
    output : (n,) array
        ``C`` over the state this cost sees (for a loop built by :func:`pid_problem`, the plant
        state padded with zeros for the controller states).
    dt : float
        Sampling period [s] (the sum approximates the integral, ISE).
    w_e, w_u : float
        Weights of the squared error and of the squared control ``u = u_full[:, u_index]``.
    """

    def __init__(self, output, dt: float, *, w_e: float = 1.0, w_u: float = 0.0, u_ref: float = 0.0,
                 ref_index: int = 0, u_index: int = 0, channels: Optional[Sequence[str]] = None):
        self.C = _row("output", output)
        self.n_state = self.C.size  # Problem refuses a plant of another size, naming ``cost``
        self.dt = as_real("dt", dt, minimum=0.0, strict=True)
        self.w_e = as_real("w_e", w_e, minimum=0.0)
        self.w_u = as_real("w_u", w_u, minimum=0.0)
        self.u_ref = as_real("u_ref", u_ref)
        self.ref_index = check_int("ref_index", ref_index, minimum=0)
        self.u_index = check_int("u_index", u_index, minimum=0)
        self.n_exog = self.ref_index + 1
        if channels is not None:
            self.channels = channel_names("channels", channels)

    def forward(self, t, x, u, X, p):
        if x.shape[1] != self.n_state:
            raise ValueError(f"output: expected a C for the plant's {x.shape[1]} states, got one of "
                             f"{self.n_state} entries")
        if self.u_index >= u.shape[1]:
            raise ValueError(f"u_index: expected a control index in [0, {u.shape[1]}), got {self.u_index}")
        e = X[:, self.ref_index] - x @ self.C
        du = u[:, self.u_index] - self.u_ref
        return self.dt * (self.w_e * e * e + self.w_u * du * du), (e, du, u.shape)

    def vjp(self, ctx, c_bar):
        e, du, us = ctx
        s = self.dt * c_bar
        x_bar = (-2.0 * self.w_e * s * e)[:, None] * self.C
        u_bar = np.zeros(us)
        u_bar[:, self.u_index] = 2.0 * self.w_u * s * du
        return x_bar, u_bar, np.zeros(0)


def pid_problem(plant: Plant, controller: PID, reference, *, horizon: int, x0, cost: Optional[StageCost] = None,
                w_e: float = 1.0, w_u: float = 0.0, **problem_kw) -> Problem:
    """A :class:`~dynopt.Problem` for tuning ``controller`` on ``plant`` (gains = the policy block).

    Parameters
    ----------
    plant : Plant
        Lag-1 plant with one control and no exogenous inputs of its own (for one with
        disturbances build the Problem with X as a dict of channels, see the module docstring).
    controller : PID
    reference : float, (T,) array or (T, B) array
        Setpoint ``r[t]`` in units of the output ``y = C x``; it is X (one column).
    horizon : int
        T.
    x0 : (B, n) or (n,) array
        Plant initial states (controller states start at ``I = 0``, ``y_f = C x0``).
    cost : StageCost, optional
        Cost on the augmented loop; default :class:`TrackingCost` with ``w_e``, ``w_u`` (ISE
        plus control effort).
    **problem_kw
        Passed to :class:`~dynopt.Problem` (``terminal_cost``, ``params``, ``decision``, ...).
    """
    if not isinstance(plant, Plant):
        raise TypeError(f"plant: expected a dynopt.Plant, got {type(plant).__name__} {describe(plant)}")
    if not isinstance(controller, PID):
        raise TypeError(f"controller: expected a dynopt.models.PID, got {type(controller).__name__}")
    if plant.n_control != 1:
        raise ValueError(f"plant: expected a plant with one control (a SISO loop), got m={plant.n_control}")
    if plant.n_exog:
        raise ValueError(f"plant: expected a plant without exogenous inputs (X is the reference), "
                         f"got nX={plant.n_exog}; "
                         f"build the Problem with X as a dict of named channels instead")
    if controller.n_plant != plant.n_state:
        raise ValueError(f"controller: expected a PID for n={plant.n_state} plant states, "
                         f"got n_plant={controller.n_plant}")
    if controller.ref_index != 0:
        raise ValueError(f"controller: expected ref_index=0 (X is the reference alone), got {controller.ref_index}")
    z0 = controller.initial_state(x0)
    B, T = z0.shape[0], check_int("horizon", horizon, minimum=1)
    r = as_float_array("reference", reference)
    if r.ndim == 0:
        r = np.full((T, 1), float(r))
    elif r.ndim == 1:
        r = check_shape("reference", r, (T,))[:, None]
    else:
        r = check_shape("reference", r, (T, B))[:, :, None]
    loop = ControllerStatePlant(plant, controller.n_memory)
    if cost is None:
        C = np.concatenate([controller.C, np.zeros(controller.n_memory)])
        cost = TrackingCost(C, controller.dt, w_e=w_e, w_u=w_u)
    return Problem(loop, controller, cost, horizon=T, x0=z0, X=r, **problem_kw)
