r"""A nonlinear exothermic continuous stirred-tank reactor (CSTR), written only with CasADi.

This is the model of a user's own plant: there is no NumPy version and no hand-written dual;
dynopt derives the dual from the CasADi expression (:class:`dynopt.casadi.components.CasadiODE`).

A first-order irreversible exothermic reaction A -> B in a cooled, perfectly mixed tank
(Seborg, Edgar, Mellichamp & Doyle, *Process Dynamics and Control*, CSTR example; the classic
parameter set, also in Marlin's *Process Control*):

.. math::
    \dot C_A = \frac{q}{V}(C_{Af} - C_A) - k_0 e^{-E/(R T)} C_A

    \dot T = \frac{q}{V}(T_f + d - T) + \frac{-\Delta H}{\rho C_p} k_0 e^{-E/(R T)} C_A
             + \frac{UA}{V \rho C_p}(T_c - T)

Units (time in **minutes**, so ``dt`` of the integrator is in min):

=========  ==========================================  ==============  ============
symbol     meaning                                     unit            default
=========  ==========================================  ==============  ============
``C_A``    state 0: concentration of A                 mol/L
``T``      state 1: reactor temperature                K
``T_c``    control: coolant temperature                K
``d``      exogenous input (optional): feed            K
           temperature disturbance
``q``      volumetric flow                             L/min           100
``V``      volume                                      L               100
``C_Af``   feed concentration                          mol/L           1
``T_f``    feed temperature                            K               350
``k0``     pre-exponential factor                      1/min           7.2e10
``E_R``    activation energy over gas constant E/R     K               8750
``dH``     heat of reaction (negative: exothermic)     J/mol           -5e4
``rho``    density                                     g/L             1000
``C_p``    heat capacity                               J/(g K)         0.239
``UA``     heat transfer coefficient times area        J/(min K)       5e4
=========  ==========================================  ==============  ============

At ``T_c = 300 K`` the reactor has a steady state near ``C_A = 0.5 mol/L``, ``T = 350 K``
(:func:`steady_state` computes it exactly).  That steady state is open-loop unstable
(linearisation eigenvalues -0.45 and +2.83 1/min: the classic thermal runaway); proportional
feedback ``T_c = 300 K - 5 (T - T_s)`` stabilises it (eigenvalues -4.0 +- 1.8j 1/min).
"""

from __future__ import annotations

from typing import Optional, Tuple

import casadi as ca
import numpy as np

from dynopt.casadi.components import CasadiODE

DEFAULTS = dict(q=100.0, V=100.0, C_Af=1.0, T_f=350.0, k0=7.2e10, E_R=8750.0, dH=-5.0e4, rho=1000.0,
                C_p=0.239, UA=5.0e4)
"""Default parameters (units in the module docstring)."""


def cstr_rhs(x, u, p, d=0.0):
    r"""``(dC_A/dt [mol/(L min)], dT/dt [K/min])`` for state ``x = (C_A, T)``, coolant ``u = (T_c,)``.

    ``p`` is a dict of the named parameters (CasADi symbols or numbers), ``d`` a feed temperature
    offset [K].
    """
    CA, T, Tc = x[0], x[1], u[0]
    rate = p["k0"] * ca.exp(-p["E_R"] / T) * CA          # mol/(L min)
    dilution = p["q"] / p["V"]                           # 1/min
    rho_cp = p["rho"] * p["C_p"]                         # J/(L K)
    dCA = dilution * (p["C_Af"] - CA) - rate
    dT = dilution * (p["T_f"] + d - T) + (-p["dH"] / rho_cp) * rate + p["UA"] / (p["V"] * rho_cp) * (Tc - T)
    return ca.vertcat(dCA, dT)


class CSTR(CasadiODE):
    """The exothermic CSTR as a CasADi ODE: state ``(C_A [mol/L], T [K])``, control ``T_c [K]``.

    Parameters
    ----------
    feed_disturbance : bool
        If true the plant reads one exogenous input ``X[t] = d`` [K] added to the feed temperature.
    **params : float
        Overrides of :data:`DEFAULTS` (the plant block of W, in that order).

    Wrap it with ``Discretized(CSTR(), RK4(dt))`` or ``CSTR().discretize(RK4(dt))``; ``dt`` in
    minutes (0.05 min resolves the fastest mode, ~3 1/min, well inside RK4's stability region).
    """

    def __init__(self, feed_disturbance: bool = False, **params):
        unknown = set(params) - set(DEFAULTS)
        if unknown:
            raise TypeError(f"CSTR: unknown parameters {sorted(unknown)}; expected some of {list(DEFAULTS)}")
        values = {**DEFAULTS, **params}
        self.feed_disturbance = bool(feed_disturbance)
        if self.feed_disturbance:
            def cstr(x, u, X, p):
                return cstr_rhs(x, u, p, X[0])
        else:
            def cstr(x, u, p):
                return cstr_rhs(x, u, p)
        super().__init__(cstr, n_state=2, n_control=1, n_exog=int(self.feed_disturbance), params=values)

    def __repr__(self):
        return f"CSTR(feed_disturbance={self.feed_disturbance})"


def steady_state(T_c: float = 300.0, guess: Tuple[float, float] = (0.5, 350.0), params: Optional[dict] = None):
    """The steady state ``(C_A [mol/L], T [K])`` at coolant temperature ``T_c`` [K] near ``guess``.

    Solved with CasADi's Newton root finder on the same expression as the ODE.
    """
    p = {**DEFAULTS, **(params or {})}
    x = ca.SX.sym("x", 2)
    F = ca.Function("cstr_ss", [x], [cstr_rhs(x, [float(T_c)], p)])
    solve = ca.rootfinder("cstr_ss_newton", "newton", F)
    return np.asarray(solve(np.asarray(guess, dtype=float))).ravel()
