"""PID/PI controllers and step-response metrics against closed forms, python-control's
step_info and forced_response, casadi's AD and finite differences."""

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
    np.testing.assert_allclose([m2.overshoot, m2.rise_time, m2.settling_time],
                               [m.overshoot, m.rise_time, m.settling_time], rtol=1e-9)


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


# ----------------------------------------------------------------------------- PID / PI controllers
import casadi as ca  # noqa: E402

import dynopt  # noqa: E402
from dynopt.control.lqr import c2d  # noqa: E402
from dynopt.models import LinearPlant, Quadratic  # noqa: E402
from dynopt.models.controllers import PID, ControllerStatePlant, PlantStateCost, TrackingCost, pid_problem  # noqa: E402

# DC motor speed (CTMS "DC Motor Speed" values): J=0.01 kg m^2, b=0.1 N m s, K=0.01, R=1 ohm, L=0.5 H;
# state (omega [rad/s], i [A]), input voltage [V]; sampled with a zero-order hold at 10 ms.
DT = 0.01
AC = np.array([[-0.1 / 0.01, 0.01 / 0.01], [-0.01 / 0.5, -1.0 / 0.5]])
BC = np.array([[0.0], [1.0 / 0.5]])
AD, BD = c2d(AC, BC, DT)
X0S = [[0.0, 0.0], [0.5, 0.0]]


def _casadi_loop(aw, deriv, T, r, Tf, lim, w_u):
    """The same loop written independently with casadi SX, unrolled; returns J and dJ/dgains."""
    names = ["Kp", "Ki"] + (["Kd"] if deriv else []) + (["Kb"] if aw == "back-calculation" else [])
    g = ca.SX.sym("g", len(names))
    G = {k: g[i] for i, k in enumerate(names)}
    Kp, Ki, Kd, Kb = G["Kp"], G["Ki"], G.get("Kd", 0), G.get("Kb", 0)
    a = 1 - np.exp(-DT / Tf)
    lo, hi = lim
    J = 0
    for x0 in X0S:
        x, I, yf = ca.DM(x0), 0, x0[0]
        for _ in range(T):
            y = x[0]
            e = r - y
            P = Kp * e
            D = -Kd / Tf * (y - yf) if deriv else 0
            v = P + I + D
            u = ca.fmin(ca.fmax(v, lo), hi)
            J += DT * (e * e + w_u * u * u)
            if aw == "back-calculation":
                I = I + Ki * DT * e + Kb * DT * (u - v)
            elif aw == "clamping":
                I = ca.fmin(ca.fmax(I + Ki * DT * e, ca.fmin(lo - P - D, 0)), ca.fmax(hi - P - D, 0))
            else:
                I = I + Ki * DT * e
            if deriv:
                yf = yf + a * (y - yf)
            x = ca.mtimes(ca.DM(AD), x) + ca.DM(BD) * u
    J = J / len(X0S)
    return ca.Function("J", [g], [J, ca.gradient(J, g)])


@pytest.mark.parametrize("deriv", [False, True], ids=["PI", "PID"])
@pytest.mark.parametrize("aw", ["back-calculation", "clamping", "none"])
def test_pid_gradient_matches_casadi_through_saturation(aw, deriv):
    gains = dict(Kp=60.0, Ki=200.0 if aw != "none" else 20.0)
    gains.update({"Kd": 0.5} if deriv else {})
    gains.update({"Kb": 5.0} if aw == "back-calculation" else {})
    pid = PID(2, 0, DT, derivative=deriv, Tf=0.02 if deriv else None, u_limits=(-12, 12), anti_windup=aw, gains=gains)
    prob = pid_problem(LinearPlant(AD, BD), pid, 1.0, horizon=120, x0=np.array(X0S), w_u=1e-4)
    J, g = prob.value_and_grad(prob.W0)
    u = prob.simulate(prob.W0).u[:, :, 0]
    assert 0.05 < np.mean(np.abs(u) >= 12) < 1.0  # the limits are active part of the time
    Jc, gc = _casadi_loop(aw, deriv, 120, 1.0, 0.02, (-12, 12), 1e-4)(prob.W0)
    np.testing.assert_allclose(J, float(Jc), rtol=1e-12)
    np.testing.assert_allclose(g, np.array(gc).ravel(), rtol=1e-10, atol=1e-12 * np.abs(g).max())


def test_pid_gradient_matches_finite_differences_unsaturated():
    # away from the kinks of the clip (limits never reached) central differences are accurate
    pid = PID(2, 0, DT, derivative=True, Tf=0.03, u_limits=(-1e3, 1e3), anti_windup="back-calculation",
              gains=dict(Kp=20.0, Ki=40.0, Kd=0.2, Kb=2.0))
    prob = pid_problem(LinearPlant(AD, BD), pid, 1.0, horizon=150, x0=np.array(X0S), w_u=1e-3)
    chk = dynopt.check_gradient(prob, prob.W0, casadi=False)
    assert chk.max_rel_error() < 1e-7


def test_plant_state_cost_lifts_a_plain_cost():
    pid = PID(2, 0, DT, u_limits=(-12, 12), anti_windup="clamping", gains=dict(Kp=30.0, Ki=50.0))
    prob = pid_problem(LinearPlant(AD, BD), pid, 1.0, horizon=50, x0=np.array(X0S),
                       cost=PlantStateCost(Quadratic([1.0, 0.0], [1e-3], x_ref=[1.0, 0.0]), 2, 1))
    traj = prob.simulate()
    x, u = traj.x[:-1, :, :2], traj.u[:, :, :1]
    ref = np.mean(np.sum((x[..., 0] - 1.0) ** 2 + 1e-3 * u[..., 0] ** 2, axis=0))
    np.testing.assert_allclose(traj.objective, ref, rtol=1e-13)
    assert dynopt.check_gradient(prob, prob.W0, casadi=False).max_rel_error() < 1e-6


def test_pid_bad_input():
    with pytest.raises(ValueError, match="u_limits: anti_windup='back-calculation' needs output saturation limits"):
        PID(2, 0, DT, anti_windup="back-calculation")
    with pytest.raises(ValueError, match="u_limits: anti_windup='clamping' needs output saturation limits"):
        PID(2, 0, DT, anti_windup="clamping")
    with pytest.raises(ValueError, match=r"u_limits: expected \(lo, hi\) with lo < hi, got \(5.0, -5.0\)"):
        PID(2, 0, DT, u_limits=(5, -5))
    with pytest.raises(ValueError, match="anti_windup: expected one of"):
        PID(2, 0, DT, u_limits=(-1, 1), anti_windup="conditional")
    with pytest.raises(ValueError, match=r"gains: unknown gain 'Kb'; this controller has \['Kp', 'Ki'\]"):
        PID(2, 0, DT, gains={"Kb": 1.0})
    with pytest.raises(ValueError, match="output: expected a state index in"):
        PID(2, 5, DT)


# ----------------------------------------------------------------------------- DC motor example
def test_dc_motor_example_pi_against_python_control(tmp_path, load_example):
    control = pytest.importorskip("control")
    pytest.importorskip("matplotlib")
    ex = load_example("dc_motor_pi")
    out = ex.main(quick=True, plot_path=tmp_path / "dc.png")
    res = out["result"]
    assert res.fun < 0.8 * res.cost_history[0] and (tmp_path / "dc.png").stat().st_size > 5000
    # the LQI gain of python-control equals dynopt.control.lqr.dlqr on the augmented system
    Ad, Bd = c2d(ex.A_C, ex.B_C, ex.DT)
    Aa = np.block([[Ad, np.zeros((2, 1))], [ex.C, np.eye(1)]])
    Ba = np.vstack([Bd, [[0.0]]])
    from dynopt.control.lqr import dlqr
    np.testing.assert_allclose(out["K_lqi"], dlqr(Aa, Ba, np.diag([1.0, 0.0, 50.0]), [[1e-4]]).K, rtol=1e-9)
    # with the tuned gains and a step small enough to stay unsaturated, dynopt's PI loop is the
    # linear closed loop: compare with control.forced_response and control.step_info
    g = out["gains"]
    pid = PID(2, 0, ex.DT, u_limits=(-12, 12), anti_windup="back-calculation", gains=g)
    T, r = 300, 0.1
    prob = pid_problem(LinearPlant(Ad, Bd), pid, r, horizon=T, x0=np.zeros(2))
    traj = prob.simulate()
    assert np.abs(traj.u[:, 0, 0]).max() < 12  # unsaturated: back-calculation inactive
    Kp, Ki, dt = g["Kp"], g["Ki"], ex.DT
    Acl = np.block([[Ad - Kp * Bd @ ex.C, Bd], [-Ki * dt * ex.C, np.eye(1)]])
    Bcl = np.vstack([Kp * Bd, [[Ki * dt]]])
    sys_cl = control.ss(Acl, Bcl, np.hstack([ex.C, [[0.0]]]), [[0.0]], dt)
    t = np.arange(T + 1) * dt
    resp = control.forced_response(sys_cl, T=t, U=np.full(T + 1, r))
    np.testing.assert_allclose(traj.x[:, 0, 0], resp.outputs, rtol=1e-10, atol=1e-13)
    info = control.step_info(sys_cl, T=t)
    m = step_metrics(t, traj.x[:, 0, 0] / r, yfinal=float(control.dcgain(sys_cl)))
    for mine, key in [(m.rise_time, "RiseTime"), (m.settling_time, "SettlingTime"), (m.overshoot, "Overshoot"),
                      (m.peak_time, "PeakTime")]:
        np.testing.assert_allclose(mine, info[key], rtol=1e-9, err_msg=key)
    # under saturation the anti-windup PI settles and the LQI without anti-windup overshoots more
    assert out["pi"].overshoot < out["lqi"].overshoot


def test_pid_loop_with_a_load_disturbance_channel():
    # X as named channels: the plant reads "load" (a torque step on the motor), the PI and the
    # tracking cost read "reference"; the integrator removes the load's steady-state error
    E = c2d(AC, np.array([[-1.0 / 0.01], [0.0]]), DT).Bd  # load torque [N m] on J
    plant = LinearPlant(AD, np.hstack([BD]), E=E, channels=("load",))
    pid = PID(2, 0, DT, u_limits=(-12, 12), anti_windup="clamping", channels=("reference",),
              gains=dict(Kp=40.0, Ki=60.0))
    loop = ControllerStatePlant(plant, pid.n_memory, channels=("load",))
    cost = TrackingCost([1.0, 0.0, 0.0], DT, w_u=1e-4, channels=("reference",))
    T = 700
    load = np.where(np.arange(T) >= 300, 0.01, 0.0)
    prob = dynopt.Problem(loop, pid, cost, horizon=T, x0=pid.initial_state(np.zeros((1, 2))),
                          X={"load": load, "reference": np.ones(T)})
    traj = prob.simulate()
    w = traj.x[:, 0, 0]
    assert abs(w[-1] - 1.0) < 1e-3 and w[300:360].min() < w[300] - 0.005  # pulled down, then recovered
    # the same loop by hand (independent of the component code)
    x, I, ys = np.zeros(2), 0.0, []
    for t in range(T):
        e = 1.0 - x[0]
        P = 40.0 * e
        u = min(max(P + I, -12.0), 12.0)
        I = min(max(I + 60.0 * DT * e, min(-12.0 - P, 0.0)), max(12.0 - P, 0.0))
        x = AD @ x + BD[:, 0] * u + E[:, 0] * load[t]
        ys.append(x[0])
    np.testing.assert_allclose(traj.x[1:, 0, 0], ys, rtol=1e-12, atol=1e-14)
    assert dynopt.check_gradient(prob, prob.W0, casadi=False).max_rel_error() < 1e-5
