"""Constructor validation of the model library (issues 11 item 5 and 16): every bad argument is
refused where it is given, with ValueError/TypeError naming the argument, what was expected and
what was given; nothing is reinterpreted silently.  One plain regression test per defect found.
"""

import numpy as np
import pytest

from dynopt import BPTT, RK4, Discretized, Problem
from dynopt.models import (CartPole, DoubleIntegrator, FunctionCost, LinearFeedback, LinearPlant, MLPPolicy, OpenLoop,
                           Pendulum, Quadratic, QuadraticTerminal, SwingUpCost, double_integrator)


def _raises(exc, call, *words):
    with pytest.raises(exc) as info:
        call()
    msg = str(info.value)
    for w in words:
        assert w in msg, f"{w!r} not in {msg!r}"
    return msg


# ----------------------------------------------------------------------------- OpenLoop
def test_open_loop_u0_of_the_wrong_width_is_refused():
    # issue 11: (T, 2m) was accepted silently (W doubled, half unused)
    _raises(ValueError, lambda: OpenLoop(2, 1, 5, U0=np.zeros((5, 2))), "U0", "expected", "(5, 1)", "got shape (5, 2)")


def test_open_loop_u0_of_the_wrong_length_is_refused():
    # issue 11: failed later with a bare broadcasting error
    _raises(ValueError, lambda: OpenLoop(2, 2, 5, U0=np.zeros((4, 2))), "U0", "expected", "(5, 2)", "got shape (4, 2)")
    _raises(ValueError, lambda: OpenLoop(2, 1, 5, U0=np.zeros(6)), "U0", "got shape (6,)")


def test_open_loop_u0_accepted_forms_give_the_same_sequence():
    U = np.arange(10.0).reshape(5, 2)
    a = OpenLoop(2, 2, 5, U0=U).default_params()
    b = OpenLoop(2, 2, 5, U0=U.ravel()).default_params()
    assert np.array_equal(a, U.ravel()) and np.array_equal(b, U.ravel())


def test_object_arrays_holding_strings_are_refused():
    # issue 16: object arrays holding numeric strings were parsed as numbers
    junk = np.array(["0.5", 1.0], dtype=object)
    _raises(TypeError, lambda: OpenLoop(2, 1, 2, U0=junk), "U0", "object array", "'0.5'")
    _raises(TypeError, lambda: Quadratic(junk), "Q", "object array", "'0.5'")
    _raises(TypeError, lambda: LinearFeedback(2, 1, K0=np.array([True, 1.0], dtype=object)), "K0", "object array", "True")
    ok = np.array([0.5, np.float64(1.0)], dtype=object)   # real numbers in an object array are numbers
    assert np.array_equal(OpenLoop(2, 1, 2, U0=ok).default_params(), [0.5, 1.0])


def test_open_loop_refuses_non_numbers():
    _raises(TypeError, lambda: OpenLoop(2, 1, 3, U0=["a", "b", "c"]), "U0", "expected a real numeric array", "strings")
    _raises(TypeError, lambda: OpenLoop(2, 1, 3, U0=np.ones(3) * 1j), "U0", "complex")
    _raises(TypeError, lambda: OpenLoop(2, 1, 3, U0=[True, False, True]), "U0", "booleans")
    _raises(TypeError, lambda: OpenLoop(2, 1, "3"), "horizon", "expected an integer", "'3'")
    _raises(TypeError, lambda: OpenLoop(2, 1, True), "horizon", "expected an integer", "True")
    _raises(ValueError, lambda: OpenLoop(2, 1, 0), "horizon", "expected an integer >= 1", "got 0")


# ----------------------------------------------------------------------------- LinearFeedback
def test_linear_feedback_k0_of_the_wrong_size_is_refused():
    # issue 11: K0=[1, 2, 3] for 2 states gave a bare broadcast error
    _raises(ValueError, lambda: LinearFeedback(2, 1, K0=[1.0, 2.0, 3.0]), "K0", "expected", "(1, 2)", "got shape (3,)")


def test_linear_feedback_k0_is_never_broadcast():
    # issue 11: K0=[5.0] was silently broadcast to every gain
    _raises(ValueError, lambda: LinearFeedback(2, 1, K0=[5.0]), "K0", "expected", "(1, 2)", "got shape (1,)")
    _raises(ValueError, lambda: LinearFeedback(2, 2, K0=[1.0, 2.0]), "K0", "(2, 2)", "got shape (2,)")
    _raises(ValueError, lambda: LinearFeedback(2, 2, K0=np.ones((2, 3))), "K0", "(2, 2)", "got shape (2, 3)")


def test_linear_feedback_k0_accepted_forms():
    assert np.array_equal(LinearFeedback(2, 1, K0=[3.0, 1.0]).default_params(), [3.0, 1.0])
    assert np.array_equal(LinearFeedback(2, 1, K0=[[3.0, 1.0]]).default_params(), [3.0, 1.0])
    p = LinearFeedback(2, 2, bias=True, K0=[[1.0, 2.0], [3.0, 4.0]]).default_params()
    assert np.array_equal(p, [1.0, 2.0, 3.0, 4.0, 0.0, 0.0])


def test_linear_feedback_bias_must_be_a_bool():
    # issue 16: bias="no" meant bias
    _raises(TypeError, lambda: LinearFeedback(2, 1, bias="no"), "bias", "expected True or False", "'no'")
    _raises(TypeError, lambda: LinearFeedback(2, 1, bias=1), "bias", "expected True or False", "1")


def test_linear_feedback_refuses_non_numbers_and_bad_sizes():
    _raises(TypeError, lambda: LinearFeedback(2, 1, K0=[1 + 2j, 0.0]), "K0", "complex")
    _raises(TypeError, lambda: LinearFeedback(2, 1, K0=["1", "2"]), "K0", "strings")
    _raises(ValueError, lambda: LinearFeedback(2, 1, K0=[[1.0, 2.0], [3.0]]), "K0", "ragged")
    _raises(ValueError, lambda: LinearFeedback(2, 1, K0=[np.nan, 1.0]), "K0", "finite", "nan")
    _raises(TypeError, lambda: LinearFeedback(True, 1), "n_state", "expected an integer", "True")
    _raises(ValueError, lambda: LinearFeedback(0, 1), "n_state", ">= 1", "got 0")
    _raises(TypeError, lambda: LinearFeedback(2, 1.0), "n_control", "expected an integer", "1.0")


def test_channels_are_checked():
    _raises(TypeError, lambda: LinearFeedback(2, 1, channels="ref"), "channels", "sequence of channel names", "'ref'")
    _raises(ValueError, lambda: MLPPolicy(2, 1, channels=()), "channels", "at least one")
    _raises(ValueError, lambda: MLPPolicy(2, 1, channels=("r", "r")), "channels", "distinct", "['r', 'r']")
    _raises(TypeError, lambda: MLPPolicy(2, 1, channels=("r", 3)), "channels", "non-empty strings", "3")
    _raises(ValueError, lambda: LinearFeedback(2, 1, n_exog=1, channels=("a", "b")), "n_exog", ">= 2", "got 1")
    _raises(ValueError, lambda: LinearPlant(np.eye(2), np.ones((2, 1)), channels=("d",)), "channels", "without E")


# ----------------------------------------------------------------------------- MLPPolicy
def test_mlp_repeated_angle_is_refused():
    # issue 16: angles=(0, 0) left an np.empty column unwritten (value and value_and_grad disagreed)
    _raises(ValueError, lambda: MLPPolicy(2, 1, hidden=(3,), angles=(0, 0)), "angles", "distinct", "(0, 0)")


def test_mlp_sizes_are_checked():
    _raises(ValueError, lambda: MLPPolicy(2, 1, hidden=(0,)), "hidden", ">= 1", "got 0")
    _raises(TypeError, lambda: MLPPolicy(2, 1, hidden=32), "hidden", "sequence of layer widths", "32")
    _raises(TypeError, lambda: MLPPolicy(2, 1, hidden=(2.5,)), "hidden", "expected an integer", "2.5")
    _raises(TypeError, lambda: MLPPolicy(2, 1, hidden=(True,)), "hidden", "expected an integer", "True")
    _raises(ValueError, lambda: MLPPolicy(2, 1, angles=(2,)), "angles", "[0, 2)", "got 2")
    _raises(ValueError, lambda: MLPPolicy(2, 1, angles=(-1,)), "angles", ">= 0", "got -1")
    _raises(TypeError, lambda: MLPPolicy(2, 1, angles=0), "angles", "sequence of state indices", "0")
    _raises(ValueError, lambda: MLPPolicy(2, 1, u_max=-1.0), "u_max", "> 0", "-1.0")
    _raises(TypeError, lambda: MLPPolicy(2, 1, u_max="2"), "u_max", "real number", "'2'")
    _raises(TypeError, lambda: MLPPolicy(2, 1, u_max=True), "u_max", "real number", "True")
    _raises(TypeError, lambda: MLPPolicy(2, 1, u_max=2j), "u_max", "real number", "2j")
    _raises(ValueError, lambda: MLPPolicy(2, 1, u_max=np.inf), "u_max", "finite", "inf")
    _raises(ValueError, lambda: MLPPolicy(2, 1, seed=-1), "seed", ">= 0", "-1")


def test_mlp_value_agrees_with_value_and_grad_at_the_same_w():
    """The angles=(0, 0) defect showed as value != value_and_grad; with distinct angles and an X
    channel they agree exactly (same arithmetic, fresh buffers every step)."""
    r = np.random.default_rng(0)
    pol = MLPPolicy(2, 1, hidden=(3,), angles=(0,), channels=("ref",))
    prob = Problem(Discretized(Pendulum(), RK4(0.05)), pol, SwingUpCost(0.05), horizon=6,
                   x0=r.standard_normal((3, 2)), X={"ref": r.standard_normal((6, 3, 1))}, gradient=BPTT())
    for _ in range(3):
        assert prob.value(prob.W0) == prob.value_and_grad(prob.W0)[0]


# ----------------------------------------------------------------------------- costs
def test_quadratic_scalar_weight_is_refused_with_a_message():
    # issue 16: Quadratic(0.5) raised IndexError
    _raises(ValueError, lambda: Quadratic(0.5), "Q", "expected", "(k, k) matrix or its diagonal", "scalar 0.5")
    _raises(ValueError, lambda: Quadratic(np.eye(2), 0.1), "R", "scalar 0.1")
    _raises(ValueError, lambda: QuadraticTerminal(2.0), "P", "scalar 2.0")


def test_quadratic_weights_of_bad_shape_or_type():
    _raises(ValueError, lambda: Quadratic(np.ones((2, 3))), "Q", "square", "got shape (2, 3)")
    _raises(ValueError, lambda: Quadratic([[1.0, 2.0], [0.0, 1.0]]), "Q", "symmetric", "asymmetry 2")
    _raises(ValueError, lambda: Quadratic([]), "Q", "at least one weight")
    _raises(TypeError, lambda: Quadratic("1"), "Q", "real numeric array", "'1'")
    _raises(TypeError, lambda: Quadratic([1.0 + 1j, 1.0]), "Q", "complex")
    _raises(TypeError, lambda: Quadratic([True, False]), "Q", "booleans")
    _raises(ValueError, lambda: Quadratic([1.0, 1.0], x_ref=[0.0, 0.0, 0.0]), "x_ref", "(2,)", "got (3,)")
    _raises(ValueError, lambda: Quadratic([1.0, 1.0], [0.1], u_ref=[0.0, 0.0]), "u_ref", "(1,)", "got (2,)")
    _raises(ValueError, lambda: Quadratic([1.0, 1.0], u_ref=[0.0]), "u_ref", "without a control weight R")
    _raises(TypeError, lambda: Quadratic([1.0], scale=True), "scale", "real number", "True")
    _raises(TypeError, lambda: Quadratic([1.0], scale="0.1"), "scale", "real number", "'0.1'")
    _raises(ValueError, lambda: Quadratic([1.0], scale=np.nan), "scale", "finite", "nan")


def _pendulum_loop(cost=None, terminal=None):
    return Problem(Discretized(Pendulum(), RK4(0.05)), LinearFeedback(2, 1, K0=[[3.0, 1.0]]), cost, terminal,
                   horizon=3, x0=np.zeros((2, 2)))


def test_weights_sized_for_another_plant_are_named():
    # issue 16: Q/P failed late with broadcast errors; R silently returned a number on value().
    # State weights are refused when the Problem is built, control weights at the first evaluation.
    _raises(ValueError, lambda: _pendulum_loop(Quadratic(np.eye(3), [0.1])), "cost", "plant's n=2 states",
            "built for n=3")
    prob = _pendulum_loop(Quadratic(np.eye(2), [0.1, 0.1]))
    _raises(ValueError, lambda: prob.value(prob.W0), "R", "plant's 1 controls", "(2, 2) weight")
    prob = _pendulum_loop(Quadratic(np.eye(2), [0.1, 0.1]))
    _raises(ValueError, lambda: prob.value_and_grad(prob.W0), "R", "plant's 1 controls")
    _raises(ValueError, lambda: _pendulum_loop(terminal=QuadraticTerminal(np.eye(4))), "terminal_cost",
            "plant's n=2 states", "built for n=4")


def test_swingup_cost_arguments():
    _raises(TypeError, lambda: SwingUpCost("0.1"), "dt", "real number", "'0.1'")
    _raises(ValueError, lambda: SwingUpCost(-0.1), "dt", "> 0", "-0.1")
    _raises(TypeError, lambda: SwingUpCost(0.1, w_u=1j), "w_u", "real number")
    _raises(TypeError, lambda: FunctionCost(lambda *a: 0, lambda *a: 0, n_exog="1"), "n_exog", "expected an integer")


# ----------------------------------------------------------------------------- plants
def test_plant_arguments():
    _raises(TypeError, lambda: Pendulum(l="1"), "l", "real number", "'1'")
    _raises(TypeError, lambda: Pendulum(m=True), "m", "real number", "True")
    _raises(TypeError, lambda: Pendulum(g=9.81j), "g", "real number")
    _raises(ValueError, lambda: Pendulum(l=0.0), "l", "> 0", "0.0")
    _raises(ValueError, lambda: CartPole(m_c=-1.0), "m_c", "> 0", "-1.0")
    _raises(ValueError, lambda: DoubleIntegrator(m=0), "m", "> 0")
    _raises(ValueError, lambda: double_integrator(0.0), "dt", "> 0")
    _raises(ValueError, lambda: LinearPlant([[1.0, 2.0], [3.0]], np.ones((2, 1))), "A", "ragged")
    _raises(TypeError, lambda: LinearPlant(np.eye(2) * 1j, np.ones((2, 1))), "A", "complex")
    _raises(ValueError, lambda: LinearPlant(np.ones((2, 3)), np.ones((2, 1))), "A", "(n, n)", "(2, 3)")
    _raises(ValueError, lambda: LinearPlant(np.eye(2), np.ones((3, 1))), "B", "(2, any)", "got shape (3, 1)")
    _raises(ValueError, lambda: LinearPlant(np.eye(2), np.ones(2)), "B", "2-D", "got shape (2,)")
    _raises(ValueError, lambda: LinearPlant(np.eye(2), np.ones((2, 1)), E=np.ones((3, 1))), "E", "got shape (3, 1)")
