r"""Step-response metrics (rise time, overshoot, settling time, ...), error integrals
(IAE, ISE, ITAE) and a plot of responses.

The step metrics follow python-control's ``step_info`` (same definitions, read at the samples,
no interpolation), generalised to a response that starts at ``y0 != 0``: every level is taken
relative to the step ``yfinal - y0``.  The error integrals use the trapezoidal rule
(``scipy.integrate.trapezoid``) on the samples given.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

import numpy as np
from scipy.integrate import trapezoid

from ..core.validation import as_float_array

__all__ = ["StepMetrics", "ErrorIntegrals", "step_metrics", "error_integrals", "plot_responses"]


class ErrorIntegrals(NamedTuple):
    r"""Integrals of the tracking error ``e(t) = r(t) - y(t)`` over the sampled interval.

    Attributes
    ----------
    iae : float or (B,) array
        :math:`\int |e|\,dt`  (units of y times s).
    ise : float or (B,) array
        :math:`\int e^2\,dt`.
    itae : float or (B,) array
        :math:`\int (t - t_0) |e|\,dt`.
    """

    iae: object
    ise: object
    itae: object


class StepMetrics(NamedTuple):
    """Metrics of one step response (times in the unit of ``t``, percentages of the step).

    Attributes
    ----------
    rise_time : float
        From the first sample at 10% of the step to the first at 90% (``rise_limits``).
    settling_time : float
        First sample after which ``|y - yfinal| < threshold * |yfinal - y0|`` holds to the end
        (NaN if it never settles within the data).
    overshoot : float
        ``100 * max(0, peak beyond yfinal) / |step|`` [%].
    undershoot : float
        ``100 * max(0, largest excursion opposite to the step) / |step|`` [%].
    peak : float
        Largest ``|y - y0|`` (plus ``y0``: the value of y there).
    peak_time : float
    settling_min, settling_max : float
        Smallest and largest y after the rise (including yfinal).
    steady_state : float
        ``yfinal``.
    iae, ise, itae : float
        Error integrals of ``yfinal - y`` (see :class:`ErrorIntegrals`).
    """

    rise_time: float
    settling_time: float
    overshoot: float
    undershoot: float
    peak: float
    peak_time: float
    settling_min: float
    settling_max: float
    steady_state: float
    iae: float
    ise: float
    itae: float


def _time(t, length=None):
    t = as_float_array("t", t)
    if t.ndim != 1 or t.size < 2:
        raise ValueError(f"t: expected a 1-D array of at least 2 sample times, got shape {t.shape}")
    if np.any(np.diff(t) <= 0):
        raise ValueError("t: expected strictly increasing sample times")
    if length is not None and t.size != length:
        raise ValueError(f"t: expected {length} sample times (one per sample of y), got {t.size}")
    return t


def error_integrals(t, e) -> ErrorIntegrals:
    r"""IAE, ISE and ITAE of an error signal by the trapezoidal rule.

    Parameters
    ----------
    t : (N,) array
        Sample times [s], strictly increasing.
    e : (N,) or (N, B) array
        Error ``r - y`` at the samples (columns = scenarios).

    Returns
    -------
    ErrorIntegrals
        Floats for a 1-D ``e``, ``(B,)`` arrays for 2-D.
    """
    e = as_float_array("e", e)
    if e.ndim not in (1, 2):
        raise ValueError(f"e: expected shape (N,) or (N, B), got {e.shape}")
    t = _time(t, e.shape[0])
    tt = (t - t[0]).reshape((-1,) + (1,) * (e.ndim - 1))
    a = np.abs(e)
    out = (trapezoid(a, t, axis=0), trapezoid(e * e, t, axis=0), trapezoid(tt * a, t, axis=0))
    return ErrorIntegrals(*(float(v) if np.ndim(v) == 0 else v for v in out))


def step_metrics(t, y, *, y0: Optional[float] = None, yfinal: Optional[float] = None,
                 settling_threshold: float = 0.02, rise_limits: Sequence[float] = (0.1, 0.9)) -> StepMetrics:
    """Rise time, settling time, overshoot, ... of a sampled step response.

    Parameters
    ----------
    t : (N,) array
        Sample times [s].
    y : (N,) array
        Response (e.g. the speed of a motor after a setpoint step at ``t[0]``).
    y0 : float, optional
        Level before the step; default ``0`` (python-control's convention).
    yfinal : float, optional
        Steady-state level (e.g. the setpoint); default the last sample ``y[-1]``.
    settling_threshold : float
        Band around ``yfinal`` as a fraction of the step (default 2%).
    rise_limits : (lo, hi)
        Fractions of the step that define the rise time (default 10% .. 90%).

    Returns
    -------
    StepMetrics
    """
    y = as_float_array("y", y)
    if y.ndim != 1:
        raise ValueError(f"y: expected a 1-D response (N,), got shape {y.shape}; call once per response")
    t = _time(t, y.size)
    y0 = 0.0 if y0 is None else float(y0)
    yf = float(y[-1]) if yfinal is None else float(yfinal)
    lo, hi = (float(v) for v in rise_limits)
    if not 0 <= lo < hi <= 1:
        raise ValueError(f"rise_limits: expected 0 <= lo < hi <= 1, got {tuple(rise_limits)}")
    if not 0 < settling_threshold < 1:
        raise ValueError(f"settling_threshold: expected a fraction in (0, 1), got {settling_threshold}")
    step = yf - y0
    if step == 0:
        raise ValueError(f"yfinal: expected a level different from y0 = {y0} (a step), got {yf}")
    sgn = np.sign(step)
    d = sgn * (y - y0)  # progress along the step, >= 0 once moving the right way
    span = abs(step)
    i_lo = np.flatnonzero(d >= lo * span)
    i_hi = np.flatnonzero(d >= hi * span)
    rise = float(t[i_hi[0]] - t[i_lo[0]]) if i_hi.size else np.nan
    outside = np.flatnonzero(np.abs(y - yf) >= settling_threshold * span)
    settled = 0 if outside.size == 0 else outside[-1] + 1
    settling = float(t[settled]) if settled < y.size else np.nan
    after = y[i_hi[0]:] if i_hi.size else y
    over = max(0.0, 100.0 * (d.max() - span) / span)
    under = max(0.0, -100.0 * d.min() / span)
    ip = int(np.argmax(np.abs(y - y0)))
    e = error_integrals(t, yf - y)
    return StepMetrics(rise_time=rise, settling_time=settling, overshoot=float(over), undershoot=float(under),
                       peak=float(y[ip]), peak_time=float(t[ip]),
                       settling_min=float(min(after.min(), yf)), settling_max=float(max(after.max(), yf)),
                       steady_state=yf, iae=e.iae, ise=e.ise, itae=e.itae)


def plot_responses(t, y, *, reference=None, u=None, labels: Optional[Sequence[str]] = None, u_limits=None,
                   title: str = "step response", ylabel: str = "y", ulabel: str = "u", path=None):
    """Plot responses (and controls) against time with matplotlib.

    Parameters
    ----------
    t : (N,) array
        Sample times [s] of ``y`` (``u`` may have N or N - 1 samples, drawn as steps).
    y : (N,) or (N, B) array
        Responses, one column per scenario/controller.
    reference : (N,) array or float, optional
        Setpoint drawn dashed.
    u : (N,) / (N - 1,) or (N, B) / (N - 1, B) array, optional
        Controls, drawn in a second panel.
    labels : sequence of B str, optional
    u_limits : (lo, hi), optional
        Saturation limits drawn dotted on the control panel.
    path : path-like, optional
        Write a PNG there (never overwriting an existing file).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    y = as_float_array("y", y)
    y2 = y[:, None] if y.ndim == 1 else y
    t = _time(t, y2.shape[0])
    if labels is not None and len(labels) != y2.shape[1]:
        raise ValueError(f"labels: expected {y2.shape[1]} labels (one per column of y), got {len(labels)}")
    nrow = 1 if u is None else 2
    fig, axes = plt.subplots(nrow, 1, figsize=(7, 2.8 * nrow), sharex=True, squeeze=False)
    ax = axes[0, 0]
    for j in range(y2.shape[1]):
        ax.plot(t, y2[:, j], lw=1.2, label=None if labels is None else labels[j])
    if reference is not None:
        r = np.broadcast_to(as_float_array("reference", reference), t.shape)
        ax.plot(t, r, "k--", lw=0.8, label="reference")
    ax.set(ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    if labels is not None or reference is not None:
        ax.legend(loc="best", fontsize=8)
    if u is not None:
        ua = as_float_array("u", u)
        u2 = ua[:, None] if ua.ndim == 1 else ua
        if u2.shape[0] not in (t.size, t.size - 1):
            raise ValueError(f"u: expected {t.size} or {t.size - 1} samples, got {u2.shape[0]}")
        axu = axes[1, 0]
        for j in range(u2.shape[1]):
            axu.step(t[:u2.shape[0]], u2[:, j], where="post", lw=1.0)
        if u_limits is not None:
            for v in u_limits:
                axu.axhline(v, color="k", ls=":", lw=0.8)
        axu.set(ylabel=ulabel)
        axu.grid(alpha=0.3)
    axes[-1, 0].set(xlabel="time [s]")
    fig.tight_layout()
    if path is not None:
        with open(path, "xb") as fh:
            fig.savefig(fh, format="png", dpi=90)
    return fig
