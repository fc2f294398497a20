"""Every built-in model's CasADi form against its NumPy form (hand-written duals).

Both forms evaluate the same arithmetic in float64, in a slightly different order (e.g. the
pendulum's g/l is formed once in NumPy, per expression in CasADi), so they differ by a few
ulps per step; over the short horizons here that stays below 1e-12 relative on trajectories.
Gradients pass through T Jacobian products on each side, each rounding independently: 1e-10
relative to the largest entry of the gradient leaves a margin of ~1e4 over the observed
1e-15..1e-14, while a wrong dual would be off by O(1).
"""

import numpy as np
import pytest

from dynopt import RK4, Discretized, Euler, Problem
from dynopt.casadi.components import CasadiODE, CasadiPlant, as_casadi
from dynopt.casadi.forms import casadi_form
from dynopt.models import (CartPole, DoubleIntegrator, LinearFeedback, LinearPlant, MLPPolicy, OpenLoop, Pendulum,
                           Quadratic, QuadraticTerminal, SwingUpCost, double_integrator)

TRAJ_RTOL = 1e-12
GRAD_RTOL = 1e-10


def _rel(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def _lag2():
    r = np.random.default_rng(3)
    A = [0.6 * np.linalg.qr(r.standard_normal((3, 3)))[0], 0.3 * np.linalg.qr(r.standard_normal((3, 3)))[0]]
    return LinearPlant(A, r.standard_normal((3, 2)), E=r.standard_normal((3, 1)))


# name -> (numpy plant, policy, cost, terminal, x0 shape, needs X)
PLANTS = {
    "pendulum-rk4": lambda: (Discretized(Pendulum(b=0.3), RK4(0.05)),
                             MLPPolicy(2, 1, (6,), u_max=2.0, angles=(0,)), SwingUpCost(0.05), None, (3, 2)),
    "cartpole-rk4": lambda: (Discretized(CartPole(), RK4(0.02)), MLPPolicy(4, 1, (5,), u_max=10.0, angles=(1,)),
                             Quadratic([1.0, 5.0, 0.1, 0.1], [0.001]), QuadraticTerminal(np.eye(4)), (2, 4)),
    "double-integrator-euler": lambda: (Discretized(DoubleIntegrator(m=2.0), Euler(0.1)),
                                        LinearFeedback(2, 1, bias=True, K0=[[1.0, 1.5]]), Quadratic([1.0, 0.1], [0.1]),
                                        QuadraticTerminal(np.diag([2.0, 1.0])), (3, 2)),
    "linear-zoh-double-integrator": lambda: (double_integrator(0.1), LinearFeedback(2, 1, K0=[[1.0, 1.5]]),
                                             Quadratic([1.0, 0.1], [0.1]), None, (4, 2)),
    "linear-lag2-exog": lambda: (_lag2(), LinearFeedback(3, 2, K0=0.1 * np.ones((2, 3))),
                                 Quadratic(np.eye(3), [0.1, 0.2]), QuadraticTerminal(np.eye(3)), (2, 3, 3)),
}


def _problem(plant, policy, cost, term, shape, *, T=25):
    r = np.random.default_rng(11)
    x0 = 0.4 * r.standard_normal(shape)
    B = shape[-2]
    X = 0.1 * r.standard_normal((T, B, plant.n_exog)) if plant.n_exog else None
    return Problem(plant, policy, cost, term, horizon=T, x0=x0, X=X, decision=("policy", "plant", "x0"))


@pytest.mark.parametrize("name", sorted(PLANTS))
@pytest.mark.parametrize("casadi_parts", ["plant", "all"])
def test_casadi_form_matches_numpy(name, casadi_parts):
    plant, policy, cost, term, shape = PLANTS[name]()
    ref = _problem(plant, policy, cost, term, shape)
    if casadi_parts == "plant":
        parts = (as_casadi(plant), policy, cost, term)
    else:
        parts = tuple(None if c is None else as_casadi(c) for c in (plant, policy, cost, term))
    cas = _problem(*parts, shape)
    assert isinstance(cas.plant, CasadiPlant)
    W = ref.W0
    np.testing.assert_array_equal(W, cas.W0)  # same parameter layout and defaults
    a, b = ref.simulate(W), cas.simulate(W)
    assert _rel(b.x, a.x) < TRAJ_RTOL
    assert _rel(b.u, a.u) < TRAJ_RTOL
    assert abs(b.objective - a.objective) < TRAJ_RTOL * abs(a.objective)
    (Ja, ga), (Jb, gb) = ref.value_and_grad(W), cas.value_and_grad(W)
    for blk, sl in ref.sub_blocks().items():
        assert _rel(gb[sl], ga[sl]) < GRAD_RTOL, blk


@pytest.mark.parametrize("ode_cls,n,m", [(Pendulum, 2, 1), (CartPole, 4, 1), (DoubleIntegrator, 2, 1)])
@pytest.mark.parametrize("integ", [Euler(0.03), RK4(0.03)])
def test_casadi_ode_through_numpy_integrators(ode_cls, n, m, integ):
    """Discretized(CasADi ODE, Euler/RK4) through dynopt's NumPy integrator = the fused CasADi step."""
    ode = ode_cls()
    cas_ode = as_casadi(ode)
    assert isinstance(cas_ode, CasadiODE)
    pol = LinearFeedback(n, m, K0=0.5 * np.ones((m, n)))
    cost = Quadratic(np.ones(n), np.ones(m))
    probs = [_problem(Discretized(o, integ), pol, cost, None, (3, n), T=15) for o in (ode, cas_ode)]
    probs.append(_problem(cas_ode.discretize(integ), pol, cost, None, (3, n), T=15))
    W = probs[0].W0
    ref = probs[0].value_and_grad(W)
    for p in probs[1:]:
        J, g = p.value_and_grad(W)
        assert abs(J - ref[0]) < TRAJ_RTOL * abs(ref[0])
        assert _rel(g, ref[1]) < GRAD_RTOL


def test_open_loop_has_a_sliced_form():
    form = casadi_form(OpenLoop(2, 1, horizon=4))
    assert form.kind == "policy" and form.step_slice == 1
    with pytest.raises(TypeError, match="open-loop"):
        as_casadi(OpenLoop(2, 1, horizon=4))


@pytest.mark.parametrize("name", sorted(PLANTS))
def test_scalar_and_batched_forms_agree(name):
    """Each built-in form has a scalar SX Function (used through map(B)) and a batched MX
    variant (matrix operations): both must be the NumPy model."""
    from dataclasses import replace

    from dynopt.casadi.components import CasadiPolicy, CasadiStageCost, CasadiTerminalCost

    plant, policy, cost, term, shape = PLANTS[name]()
    ref = _problem(plant, policy, cost, term, shape)
    classes = (CasadiPlant, CasadiPolicy, CasadiStageCost, CasadiTerminalCost)
    parts = []
    for comp, cls in zip((plant, policy, cost, term), classes):
        if comp is None:
            parts.append(None)
            continue
        form = casadi_form(comp)
        assert form.batched is not None
        kw = dict(param_spec=comp.param_spec, defaults=comp.default_params())
        if cls is CasadiPlant:
            kw["n_exog"] = comp.n_exog
        parts.append(cls.from_form(replace(form, batched=None), **kw))
    scalar = _problem(*parts, shape)
    (Ja, ga), (Jb, gb) = ref.value_and_grad(ref.W0), scalar.value_and_grad(ref.W0)
    assert abs(Jb - Ja) <= TRAJ_RTOL * abs(Ja)
    assert _rel(gb, ga) < GRAD_RTOL
