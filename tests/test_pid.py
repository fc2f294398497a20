"""PID/PI controllers and step-response metrics (closed forms, python-control's step_info, casadi, finite differences)."""

import numpy as np
import pytest

from dynopt.control.metrics import error_integrals, plot_responses, step_metrics


def test_first_order_closed_forms():
    # y = 1 - exp(-t/tau): rise 10-90% = tau ln 9, 2% settling = tau ln 50, no overshoot,
    # IAE = tau (1 - e^{-T/tau}) ~ tau, ISE ~ tau/2, ITAE ~ tau^2 (T = 30 tau: tails < 1e-11)
    tau, dt = 0.5, 1e-4
    t = np.arange(0.0, 15.0 + dt / 2, dt)
    y = 1.0 - np.exp(-t / tau)
    m = step_metrics(t, y, yfinal=1.0)
    assert abs(m.rise_time - tau * np.log(9)) <= dt  # read at the samples
    assert abs(m.settling_time - tau * np.log(50)) <= dt
    assert m.overshoot == 0.0 and m.undershoot == 0.0
    np.testing.assert_allclose([m.iae, m.ise, m.itae], [tau, tau / 2, tau * tau], rtol=1e-7)  # trapezoid O(dt^2)
    e = error_integrals(t, np.stack([1 - y, 2 * (1 - y)], axis=1))
    np.testing.assert_allclose(e.iae, [tau, 2 * tau], rtol=1e-7)
    np.testing.assert_allclose(e.ise, [tau / 2, 2 * tau], rtol=1e-7)


def test_second_order_overshoot_closed_form():
    # wn^2 / (s^2 + 2 zeta wn s + wn^2): overshoot = exp(-zeta pi / sqrt(1 - zeta^2)), peak at pi / wd
    zeta, wn, dt = 0.3, 2.0, 1e-4
    t = np.arange(0.0, 20.0, dt)
    wd = wn * np.sqrt(1 - zeta ** 2)
    y = 1 - np.exp(-zeta * wn * t) * (np.cos(wd * t) + zeta / np.sqrt(1 - zeta ** 2) * np.sin(wd * t))
    m = step_metrics(t, y, yfinal=1.0)
    np.testing.assert_allclose(m.overshoot, 100 * np.exp(-zeta * np.pi / np.sqrt(1 - zeta ** 2)), rtol=1e-6)
    assert abs(m.peak_time - np.pi / wd) <= dt
    # a step from y0 = 3 to 5 (the same shape scaled) gives the same percentages and times
    m2 = step_metrics(t, 3 + 2 * y, y0=3.0, yfinal=5.0)
    np.testing.assert_allclose([m2.overshoot, m2.rise_time, m2.settling_time], [m.overshoot, m.rise_time, m.settling_time],
                               rtol=1e-9)


def test_against_python_control_step_info():
    control = pytest.importorskip("control")
    sys = control.tf([1.0, 3.0], [1.0, 1.2, 4.0])  # a zero and a lightly damped pair
    t = np.linspace(0, 12, 3001)
    _, y = control.step_response(sys, t)
    ref = control.step_info(y, t)
    m = step_metrics(t, y)
    for mine, key in [(m.rise_time, "RiseTime"), (m.settling_time, "SettlingTime"), (m.overshoot, "Overshoot"),
                      (m.undershoot, "Undershoot"), (m.peak, "Peak"), (m.peak_time, "PeakTime"),
                      (m.settling_min, "SettlingMin"), (m.settling_max, "SettlingMax"),
                      (m.steady_state, "SteadyStateValue")]:
        np.testing.assert_allclose(mine, ref[key], rtol=1e-12, err_msg=key)
    ref2 = control.step_info(y, t, SettlingTimeThreshold=0.05, RiseTimeLimits=(0.05, 0.95), yfinal=0.75)
    m2 = step_metrics(t, y, yfinal=0.75, settling_threshold=0.05, rise_limits=(0.05, 0.95))
    np.testing.assert_allclose([m2.rise_time, m2.settling_time, m2.overshoot],
                               [ref2["RiseTime"], ref2["SettlingTime"], ref2["Overshoot"]], rtol=1e-12)


def test_bad_input_and_plot(tmp_path):
    t = np.linspace(0, 1, 11)
    with pytest.raises(ValueError, match="t: expected 11 sample times"):
        step_metrics(t[:-1], np.ones(11))
    with pytest.raises(ValueError, match="yfinal: expected a level different from y0"):
        step_metrics(t, np.zeros(11))
    with pytest.raises(ValueError, match="t: expected strictly increasing"):
        error_integrals(t[::-1], np.ones(11))
    pytest.importorskip("matplotlib")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    y = np.stack([1 - np.exp(-5 * t), 1 - np.exp(-2 * t)], axis=1)
    fig = plot_responses(t, y, reference=1.0, u=np.ones((10, 2)), labels=["a", "b"], u_limits=(-1, 1),
                         path=tmp_path / "r.png")
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 3
    assert (tmp_path / "r.png").stat().st_size > 1000
    plt.close(fig)
    with pytest.raises(ValueError, match="labels: expected 2 labels"):
        plot_responses(t, y, labels=["a"])
