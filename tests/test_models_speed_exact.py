"""The model library's fast NumPy duals stay exact (issue 10 item 2).

Every model binds its parameters once per evaluation, skips parameter adjoints nobody needs
(``bind(grad=False)``) and defers the ones that are needed to one product over all steps
(``param_grad``).  Each configuration below is checked, at the same W, against

* CasADi's reverse AD over the whole unrolled trajectory (:class:`dynopt.CasadiReference`,
  no dynopt dual involved) to 1e-10 relative to the largest gradient entry;
* the same models with ``bind`` disabled (the per-step, non-deferred duals) to 1e-12;
* :class:`dynopt.CheckpointedBPTT` (budget 3: vjp per segment, the deferred sums are
  accumulated across segments and recomputations) and :class:`dynopt.TruncatedBPTT` with
  ``h >= T`` (plant/policy duals called several times per step) to 1e-12;
* central finite differences (truncation ~1e-10, so 1e-6 block-relative).

Tolerances: both exact methods round independently through T Jacobian products; observed
agreement is 1e-15..1e-14, so 1e-10 leaves 1e4 of margin while a wrong or missing dual term
is off by O(1).  The same-arithmetic comparisons differ only by summation order (1e-12).
"""

import numpy as np
import pytest

import dynopt
import dynopt.models.linear as linear_mod
from dynopt import RK4, BPTT, CheckpointedBPTT, Component, Discretized, Euler, Problem, TruncatedBPTT
from dynopt.models import (CartPole, DoubleIntegrator, LinearFeedback, LinearPlant, MLPPolicy, OpenLoop, Pendulum,
                           Quadratic, QuadraticTerminal, SwingUpCost)

CASADI_RTOL = 1e-10
SAME_RTOL = 1e-12
FD_RTOL = 1e-6
T = 12


def _rel(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def _x0(seed, B, n, k=1):
    x = 0.4 * np.random.default_rng(seed).standard_normal((k, B, n))
    return x[0] if k == 1 else x


def _lag2_exog():
    r = np.random.default_rng(3)
    A = [0.6 * np.linalg.qr(r.standard_normal((3, 3)))[0], 0.3 * np.linalg.qr(r.standard_normal((3, 3)))[0]]
    return LinearPlant(A, r.standard_normal((3, 2)), E=r.standard_normal((3, 1)), channels=("load",))


def _channels(B, widths, seed=5):
    r = np.random.default_rng(seed)
    return {name: 0.3 * r.standard_normal((T, B, w)) for name, w in widths.items()}


# name -> factory(decision) returning a Problem
MODELS = {
    "pendulum-rk4-mlp-angles-swingup": lambda d: Problem(
        Discretized(Pendulum(b=0.3), RK4(0.05)), MLPPolicy(2, 1, (6, 5), u_max=2.0, angles=(0,), seed=1),
        SwingUpCost(0.05), QuadraticTerminal([1.0, 0.5]), horizon=T, x0=_x0(1, 3, 2), decision=d),
    "cartpole-rk4-mlp-quadratic": lambda d: Problem(
        Discretized(CartPole(), RK4(0.02)), MLPPolicy(4, 1, (5,), u_max=10.0, angles=(1,)),
        Quadratic([1.0, 5.0, 0.1, 0.1], [0.001], x_ref=[0.1, 0.0, 0.0, 0.0]), QuadraticTerminal(np.eye(4)),
        horizon=T, x0=_x0(2, 2, 4), decision=d),
    "double-integrator-euler-feedback-full-weights": lambda d: Problem(
        Discretized(DoubleIntegrator(m=2.0), Euler(0.1)), LinearFeedback(2, 1, bias=True, K0=[[1.0, 1.5]]),
        Quadratic([[2.0, 0.3], [0.3, 1.0]], [[0.2]], x_ref=[0.5, 0.0], u_ref=[0.1], scale=0.1),
        QuadraticTerminal([[3.0, 0.5], [0.5, 1.0]], x_ref=[0.5, 0.0]),
        horizon=T, x0=_x0(3, 3, 2), params={"policy": [1.0, 1.5, 0.2]}, decision=d),
    "linear-lag2-exog-feedback-reference": lambda d: Problem(
        _lag2_exog(), LinearFeedback(3, 2, K0=0.1 * np.ones((2, 3)), channels=("ref",)),
        Quadratic(np.eye(3), [0.1, 0.2]), QuadraticTerminal(np.eye(3)), horizon=T, x0=_x0(4, 3, 3, k=2),
        X=_channels(3, {"load": 1, "ref": 1}), params={"policy": np.r_[0.1 * np.ones(6), 0.5, -0.3]}, decision=d),
    "linear-openloop": lambda d: Problem(
        LinearPlant(0.9 * np.eye(2) + 0.05, [[0.0], [1.0]]), OpenLoop(2, 1, T, U0=np.sin(np.arange(T))),
        Quadratic(np.eye(2), [0.1]), QuadraticTerminal(np.eye(2)), horizon=T, x0=_x0(5, 2, 2), decision=d),
    "pendulum-rk4-mlp-reference-channel": lambda d: Problem(
        Discretized(Pendulum(), RK4(0.05)),
        MLPPolicy(2, 1, (5,), u_max=2.0, angles=(0,), channels=("ref",), seed=2),
        Quadratic([1.0, 0.1], [0.01]), horizon=T, x0=_x0(6, 3, 2), X=_channels(3, {"ref": 1}), decision=d),
    "linear-mlp-two-channels-no-squash": lambda d: Problem(
        LinearPlant(0.9 * np.eye(2), [[0.0], [0.5]]), MLPPolicy(2, 1, (4, 3), channels=("ref", "ff"), seed=3),
        Quadratic(np.eye(2), [0.1]), horizon=T, x0=_x0(7, 3, 2), X=_channels(3, {"ref": 1, "ff": 1}), decision=d),
}

# models without a CasADi form: checked against the unfused duals, the other strategies and FD
NUMPY_ONLY = {
    "linear-openloop-reference-feedforward": lambda d: Problem(
        LinearPlant(0.9 * np.eye(2) + 0.05, [[0.0], [1.0]]),
        OpenLoop(2, 1, T, U0=np.sin(np.arange(T)), channels=("ref",)),
        Quadratic(np.eye(2), [0.1]), QuadraticTerminal(np.eye(2)), horizon=T, x0=_x0(8, 3, 2),
        X=_channels(3, {"ref": 1}), params={"policy": np.r_[np.sin(np.arange(T)), 0.7]}, decision=d),
}

DECISIONS = {
    "all": ("policy", "plant", "x0"),
    "plant-fixed": ("policy", "x0"),
    "policy-fixed": ("plant", "x0"),
}


def _no_bind(prob):
    """The same problem with every component's bind disabled: forward receives the flat
    parameter vector and the duals return per-step parameter adjoints (nothing deferred)."""
    comps = [prob.plant, prob.policy, prob.cost, prob.terminal_cost]
    for c in comps:
        if c is not None:
            c.bind = lambda params, grad, _c=c: Component.bind(_c, params, grad=grad)
            if isinstance(c, Discretized):
                c.ode.bind = None
    return prob


@pytest.mark.parametrize("decision", sorted(DECISIONS))
@pytest.mark.parametrize("name", sorted(MODELS))
def test_fast_duals_match_casadi_and_unfused_duals(name, decision):
    prob = MODELS[name](DECISIONS[decision]).replace(gradient=BPTT())
    W = prob.W0 + 0.01 * np.random.default_rng(0).standard_normal(prob.n_decision)
    J, g = prob.value_and_grad(W)
    assert prob.value(W) == pytest.approx(J, rel=1e-14)
    # CasADi's own reverse AD of the unrolled trajectory
    Jc, gc = prob.replace(gradient=dynopt.CasadiReference()).value_and_grad(W)
    assert abs(J - Jc) <= 1e-12 * abs(Jc)
    assert _rel(g, gc) < CASADI_RTOL
    # the per-step duals (bind disabled): same arithmetic, nothing deferred or skipped
    J0, g0 = _no_bind(MODELS[name](DECISIONS[decision])).replace(gradient=BPTT()).value_and_grad(W)
    assert J0 == pytest.approx(J, rel=1e-14)
    assert _rel(g, g0) < SAME_RTOL
    # segment-wise and several-duals-per-step strategies accumulate the deferred sums exactly
    for method in (CheckpointedBPTT(budget=3), TruncatedBPTT(h=T), TruncatedBPTT(h=T + 5)):
        Jm, gm = prob.replace(gradient=method).value_and_grad(W)
        assert Jm == pytest.approx(J, rel=1e-13)
        assert _rel(gm, g) < SAME_RTOL, repr(method)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_fast_duals_match_finite_differences(name):
    prob = MODELS[name](DECISIONS["all"]).replace(gradient=BPTT())
    report = dynopt.check_gradient(prob, casadi=False)
    assert report.max_rel_error("fd") < FD_RTOL, str(report)


def test_deferred_products_flush_in_chunks(monkeypatch):
    """With a flush every step or few steps (partial products formed many times per sweep) the deferred
    adjoints equal the single-product ones: the chunking bounds memory without changing sums."""
    make = MODELS["linear-lag2-exog-feedback-reference"]
    W = make(DECISIONS["all"]).W0
    _, g_one = make(DECISIONS["all"]).replace(gradient=BPTT()).value_and_grad(W)
    monkeypatch.setattr(linear_mod, "FLUSH_ELEMENTS", 7)
    _, g_chunk = make(DECISIONS["all"]).replace(gradient=BPTT()).value_and_grad(W)
    assert _rel(g_chunk, g_one) < SAME_RTOL
    make = MODELS["pendulum-rk4-mlp-angles-swingup"]
    W = make(DECISIONS["all"]).W0
    monkeypatch.setattr(linear_mod, "FLUSH_ELEMENTS", 10 ** 9)
    _, g_one = make(DECISIONS["all"]).replace(gradient=BPTT()).value_and_grad(W)
    monkeypatch.setattr(linear_mod, "FLUSH_ELEMENTS", 5)
    _, g_chunk = make(DECISIONS["all"]).replace(gradient=BPTT()).value_and_grad(W)
    assert _rel(g_chunk, g_one) < SAME_RTOL


def test_bound_parameters_are_reused_across_evaluations_without_leaking():
    """Two evaluations at different W give the gradients of two fresh problems: nothing deferred
    in one evaluation leaks into the next (each bind starts empty, param_grad empties it)."""
    make = MODELS["pendulum-rk4-mlp-angles-swingup"]
    prob = make(DECISIONS["all"]).replace(gradient=BPTT())
    W1 = prob.W0
    W2 = prob.W0 + 0.05
    prob.value_and_grad(W1)
    _, g2 = prob.value_and_grad(W2)
    _, g2_fresh = make(DECISIONS["all"]).replace(gradient=BPTT()).value_and_grad(W2)
    assert np.array_equal(g2, g2_fresh)


def test_grad_false_forms_no_parameter_adjoint():
    """bind(grad=False): the duals return None for the parameters (the work is skipped), and the
    state/control adjoints are those of grad=True."""
    r = np.random.default_rng(0)
    x, lam = r.standard_normal((4, 2)), r.standard_normal((4, 2))
    u = r.standard_normal((4, 1))
    for comp in (Pendulum(), DoubleIntegrator()):
        _, c_off = comp.forward(x, u, None, comp.bind(comp.default_params(), grad=False))
        _, c_on = comp.forward(x, u, None, comp.default_params())
        xb0, ub0, th0 = comp.vjp(c_off, lam)
        xb1, ub1, th1 = comp.vjp(c_on, lam)
        assert th0 is None and th1 is not None
        assert np.array_equal(xb0, xb1) and np.array_equal(ub0, ub1)
    cp = CartPole()
    x4, lam4 = r.standard_normal((4, 4)), r.standard_normal((4, 4))
    _, c_off = cp.forward(x4, u, None, cp.bind(cp.default_params(), grad=False))
    _, c_on = cp.forward(x4, u, None, cp.default_params())
    (xb0, ub0, th0), (xb1, ub1, th1) = cp.vjp(c_off, lam4), cp.vjp(c_on, lam4)
    assert th0 is None and th1.shape == (4,) and np.array_equal(xb0, xb1) and np.array_equal(ub0, ub1)
    pol = MLPPolicy(2, 1, (3,), u_max=1.0, angles=(0,))
    ub = r.standard_normal((4, 1))
    _, c_off = pol.forward(0, x, None, pol.bind(pol.default_params(), grad=False))
    _, c_on = pol.forward(0, x, None, pol.default_params())
    (xp0, ph0), (xp1, ph1) = pol.vjp(c_off, ub), pol.vjp(c_on, ub)
    assert ph0 is None and ph1.shape == (pol.n_params,) and np.array_equal(xp0, xp1)


def test_per_step_binding_defers_nothing():
    """bind(grad="per_step") (dynopt.diagnose watches every step's parameter adjoint): every vjp
    returns its own parameter adjoint, equal to the unbound dual's, and param_grad adds nothing."""
    r = np.random.default_rng(1)
    x, lam, ub = r.standard_normal((4, 2)), r.standard_normal((4, 2)), r.standard_normal((4, 1))
    u = r.standard_normal((4, 1))
    pend = Pendulum()
    b = pend.bind(pend.default_params(), grad="per_step")
    (_, _, th_b), (_, _, th_raw) = (pend.vjp(pend.forward(x, u, None, p)[1], lam)
                                    for p in (b, pend.default_params()))
    assert np.array_equal(th_b, th_raw) and pend.param_grad(b) is None
    lin = LinearPlant(np.eye(2) * 0.9, [[0.0], [1.0]])
    b = lin.bind(lin.default_params(), grad="per_step")
    g_b = lin.vjp(lin.forward((x,), u, None, b)[1], lam)[2]
    g_raw = lin.vjp(lin.forward((x,), u, None, lin.default_params())[1], lam)[2]
    assert np.array_equal(g_b, g_raw) and lin.param_grad(b) is None
    for pol in (MLPPolicy(2, 1, (3,), u_max=1.0, angles=(0,)), LinearFeedback(2, 1, bias=True, K0=[1.0, 0.5])):
        b = pol.bind(pol.default_params(), grad="per_step")
        g_b = pol.vjp(pol.forward(0, x, None, b)[1], ub)[1]
        g_raw = pol.vjp(pol.forward(0, x, None, pol.default_params())[1], ub)[1]
        assert np.array_equal(g_b, g_raw) and pol.param_grad(b) is None


@pytest.mark.parametrize("decision", sorted(DECISIONS))
@pytest.mark.parametrize("name", sorted(NUMPY_ONLY))
def test_numpy_only_models_match_unfused_duals_strategies_and_fd(name, decision):
    prob = NUMPY_ONLY[name](DECISIONS[decision]).replace(gradient=BPTT())
    assert not dynopt.casadi.reference.supports(prob)
    W = prob.W0 + 0.01 * np.random.default_rng(0).standard_normal(prob.n_decision)
    J, g = prob.value_and_grad(W)
    J0, g0 = _no_bind(NUMPY_ONLY[name](DECISIONS[decision])).replace(gradient=BPTT()).value_and_grad(W)
    assert J0 == pytest.approx(J, rel=1e-14) and _rel(g, g0) < SAME_RTOL
    for method in (CheckpointedBPTT(budget=3), TruncatedBPTT(h=T)):
        assert _rel(prob.replace(gradient=method).value_and_grad(W)[1], g) < SAME_RTOL, repr(method)
    report = dynopt.check_gradient(prob, W, casadi=False)
    assert report.max_rel_error("fd") < FD_RTOL, str(report)
