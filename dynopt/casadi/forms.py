r"""CasADi forms of components: the symbolic one-step function behind a component.

A component is *CasADi-expressible* when :func:`casadi_form` returns a :class:`CasadiForm`
for it.  The form is one CasADi ``Function`` for **one scenario and one step**, with
column vectors for every argument and the same parameter vector (flat, C order, as named
by the component's ``param_spec``) as the NumPy component:

============  ==========================================  =====================
kind          inputs                                      output
============  ==========================================  =====================
``plant``     ``x[t], x[t-1], ..., x[t-k+1], u, X, p``    ``x[t+1]`` (n, 1)
``ode``       ``x, u, X, p``                              ``dx/dt`` (n, 1)
``policy``    ``x, X, p``                                 ``u`` (m, 1)
``cost``      ``x, u, X, p``                              ``l`` (1, 1)
``terminal``  ``x, p``                                    ``l_T`` (1, 1)
============  ==========================================  =====================

``X`` is always present (``(0, 1)`` when the component reads no exogenous inputs) so that
every form of a kind has the same signature.  A policy form with ``step_slice = m > 0`` is an
open-loop sequence: its parameter vector is ``(T m,)`` and step ``t`` reads the slice
``p[t m:(t + 1) m]`` (the form's ``p`` input is that slice).

Where a form comes from (first match wins):

1. the component's own ``casadi_form()`` method (CasADi components of
   :mod:`dynopt.casadi.components`);
2. :class:`~dynopt.Discretized` of an ODE with a form and an :class:`~dynopt.Euler` or
   :class:`~dynopt.RK4` integrator (the integrator written symbolically, so the form is the
   discrete map actually simulated);
3. :class:`~dynopt.ZeroPolicy`;
4. a builder registered for the component's class with :func:`register_casadi_form` (the
   model library registers CasADi forms of its NumPy models in ``dynopt.models.casadi_models``).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Sequence, Tuple

import casadi as ca

from ..core.components import ZeroPolicy
from ..core.integrators import RK4, Discretized, Euler

KINDS = ("plant", "ode", "policy", "cost", "terminal")


@dataclass(frozen=True)
class CasadiForm:
    """The symbolic one-step function of a component (see the module docstring for the layout).

    Attributes
    ----------
    kind : str
        One of ``"plant"``, ``"ode"``, ``"policy"``, ``"cost"``, ``"terminal"``.
    function : casadi.Function
        SX or MX function of one scenario and one step.
    step_slice : int
        Policies only: ``m > 0`` for an open-loop sequence read one slice per step, else 0.
    batched : callable ``B -> casadi.Function``, optional
        The same map for B scenarios at once, written with matrix operations (columns =
        scenarios): per-scenario inputs and the output have B columns, parameter inputs one.
        Without it, batches use ``function.map(B)``; with it, CasADi's VM runs matrix kernels
        instead of B scalar evaluations (several times faster for an MLP).
    """

    kind: str
    function: ca.Function
    step_slice: int = 0
    batched: Optional[Callable[[int], ca.Function]] = field(default=None, compare=False)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind: expected one of {KINDS}, got {self.kind!r}")
        if not isinstance(self.function, ca.Function):
            raise TypeError(f"function: expected a casadi.Function, got {type(self.function).__name__}")

    @property
    def is_sx(self) -> bool:
        """True when the function is an SX function (scalar graph, cheap to inline)."""
        return self.function.is_a("SXFunction")


_REGISTRY: Dict[type, Callable[[object], CasadiForm]] = {}
_CACHE: "weakref.WeakKeyDictionary[object, CasadiForm]" = weakref.WeakKeyDictionary()


def register_casadi_form(cls: type, builder: Callable[[object], CasadiForm]) -> None:
    """Declare how to build the :class:`CasadiForm` of every instance of ``cls``.

    Parameters
    ----------
    cls : type
        A component class (matched exactly or through subclassing).
    builder : callable ``component -> CasadiForm``
    """
    if not isinstance(cls, type):
        raise TypeError(f"cls: expected a class, got {cls!r}")
    if not callable(builder):
        raise TypeError(f"builder: expected a callable component -> CasadiForm, got {builder!r}")
    _REGISTRY[cls] = builder


def casadi_form(component) -> Optional[CasadiForm]:
    """The :class:`CasadiForm` of ``component``, or ``None`` if it has none.

    Forms are cached per component object (components are treated as immutable).
    """
    if component is None:
        return None
    try:
        return _CACHE[component]
    except (KeyError, TypeError):
        pass
    form = _build(component)
    if form is not None:
        try:
            _CACHE[component] = form
        except TypeError:  # not weak-referenceable: just don't cache
            pass
    return form


def _build(component) -> Optional[CasadiForm]:
    own = getattr(component, "casadi_form", None)
    if callable(own):
        return own()
    if isinstance(component, Discretized):
        ode = casadi_form(component.ode)
        if ode is None or type(component.integrator) not in (Euler, RK4):
            return None
        return discretize_form(ode, component.integrator, n_exog=component.n_exog)
    if isinstance(component, ZeroPolicy):
        x, X, p = ca.SX.sym("x", component.n_state), ca.SX.sym("X", 0), ca.SX.sym("p", 0)
        return CasadiForm("policy", ca.Function("zero_policy", [x, X, p], [ca.SX(0, 1)], ["x", "X", "p"], ["u"]))
    for cls in type(component).__mro__:
        if cls in _REGISTRY:
            return _REGISTRY[cls](component)
    return None


def sym_like(*functions: ca.Function):
    """``casadi.SX`` when every function is an SX function, else ``casadi.MX``."""
    return ca.SX if all(f.is_a("SXFunction") for f in functions) else ca.MX


def discretize_form(ode: CasadiForm, integrator, *, n_exog: Optional[int] = None) -> CasadiForm:
    """The plant form of one Euler or RK4 step of an ODE form (control held over the step).

    The same arithmetic as :class:`~dynopt.Euler` / :class:`~dynopt.RK4`, written with
    symbols, so NumPy and CasADi forms of a discretized plant are the same map.
    """
    if ode.kind != "ode":
        raise ValueError(f"ode: expected a form of kind 'ode', got {ode.kind!r}")
    g = ode.function
    S = sym_like(g)
    x, u, X, p = (S.sym(nm, g.size1_in(i)) for i, nm in enumerate(("x", "u", "X", "p")))
    if type(integrator) not in (Euler, RK4):
        raise TypeError(f"integrator: expected dynopt.Euler or dynopt.RK4, got {integrator!r}")
    xn = _substeps(g, integrator, x, u, X, p)
    name = f"{g.name()}_{type(integrator).__name__.lower()}"
    batched = None
    if ode.batched is not None:
        def batched(B, _ode=ode.batched, _integrator=integrator, _name=name):
            return _discretized_batched(_ode(B), _integrator, f"{_name}_b{B}")
    return CasadiForm("plant", ca.Function(name, [x, u, X, p], [xn], ["x0", "u", "X", "p"], ["x_next"]),
                      batched=batched)


def _substeps(g, integrator, x, u, X, p):
    """``integrator.substeps`` Euler or RK4 sub-steps of size ``h = dt / substeps`` of ``g`` (the
    same arithmetic, in the same order, as :class:`~dynopt.Euler` / :class:`~dynopt.RK4`)."""
    h = integrator.h
    for _ in range(integrator.substeps):
        if type(integrator) is Euler:
            x = x + h * g(x, u, X, p)
        else:
            k1 = g(x, u, X, p)
            k2 = g(x + (0.5 * h) * k1, u, X, p)
            k3 = g(x + (0.5 * h) * k2, u, X, p)
            k4 = g(x + h * k3, u, X, p)
            x = x + (h / 6.0) * (k1 + 2.0 * (k2 + k3) + k4)
    return x


def _discretized_batched(G: ca.Function, integrator, name: str) -> ca.Function:
    """The Euler/RK4 step of a batched ODE Function ``G(x (n, B), u, X, p)``."""
    ins = [ca.MX.sym(G.name_in(i), G.size1_in(i), G.size2_in(i)) for i in range(4)]
    x, u, X, p = ins
    xn = _substeps(G, integrator, x, u, X, p)
    return ca.Function(name, ins, [xn], ["x0", "u", "X", "p"], ["x_next"])


def problem_forms(problem) -> Optional[Dict[str, Optional[CasadiForm]]]:
    """Forms of the plant, policy, cost and terminal cost of a problem, or ``None`` if any
    present component lacks one."""
    out = {}
    for name, comp in (("plant", problem.plant), ("policy", problem.policy),
                       ("cost", problem.cost), ("terminal", problem.terminal_cost)):
        if comp is None:
            out[name] = None
            continue
        form = casadi_form(comp)
        if form is None:
            return None
        out[name] = form
    return out


def batched_pair(form: CasadiForm, B: int, shared: Sequence[int], adjoint_of: Sequence[int],
                 tag: str = "") -> Tuple[ca.Function, ca.Function]:
    """Forward and dual Functions of a form over B scenarios (columns), dense outputs.

    ``fwd(inputs) -> (rows, B)``; ``vjp(inputs, out_bar (rows, B)) -> adjoints of adjoint_of``,
    per-scenario adjoints ``(size, B)``, adjoints of ``shared`` inputs (parameters) summed over
    the batch ``(size, 1)``.  The dual is CasADi's reverse mode (``Function.reverse(1)``) of
    the form's batched Function if it has one, else of the one-scenario Function mapped with
    ``map(B)`` (parameter adjoints reduced by the map).  Outputs are densified: structurally
    zero entries are explicit zeros.
    """
    F = form.function
    name = f"{tag or F.name()}"
    shared, adjoint_of = list(shared), list(adjoint_of)
    if form.batched is not None:
        G = form.batched(B)
        ins = [ca.MX.sym(G.name_in(i), G.size1_in(i), G.size2_in(i)) for i in range(G.n_in())]
        y = G(*ins)
        ybar = ca.MX.sym("out_bar", G.size1_out(0), G.size2_out(0))
        bars = G.reverse(1)(*ins, y, ybar)
        fwd = ca.Function(f"{name}_fwd_b{B}", ins, [ca.densify(y)])
        vjp = ca.Function(f"{name}_vjp_b{B}", ins + [ybar], [ca.densify(bars[i]) for i in adjoint_of])
        return fwd, vjp
    S = ca.SX if F.is_a("SXFunction") else ca.MX
    ins = [S.sym(F.name_in(i), F.size1_in(i), F.size2_in(i)) for i in range(F.n_in())]
    y = F(*ins)
    ybar = S.sym("out_bar", F.size1_out(0), F.size2_out(0))
    bars = F.reverse(1)(*ins, y, ybar)
    one = ca.Function(f"{name}_one", ins, [ca.densify(y)])
    one_vjp = ca.Function(f"{name}_vjp_one", ins + [ybar], [ca.densify(bars[i]) for i in adjoint_of])
    fwd = one.map(f"{name}_fwd_m{B}", "serial", B, shared, [])
    red_out = [j for j, i in enumerate(adjoint_of) if i in shared]
    vjp = one_vjp.map(f"{name}_vjp_m{B}", "serial", B, shared, red_out)
    return fwd, vjp


def batched_forward(form: CasadiForm, B: int, shared: Sequence[int]) -> ca.Function:
    """The form over B scenarios (columns): its batched Function or ``map(B)``."""
    if form.batched is not None:
        return form.batched(B)
    return form.function.map(f"{form.function.name()}_map{B}", "serial", B, list(shared), [])
