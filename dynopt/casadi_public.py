"""The public names of dynopt's CasADi layer, gathered for ``dynopt/__init__.py``.

* :mod:`dynopt.casadi_components`: user functions written with CasADi become components
  (:class:`CasadiPlant`, :class:`CasadiODE`, :class:`CasadiPolicy`, :class:`CasadiStageCost`,
  :class:`CasadiTerminalCost`); :func:`as_casadi` turns any CasADi-expressible component into one.
* :mod:`dynopt.casadi_forms`: the symbolic one-step forms behind them and the registry.
* :mod:`dynopt.casadi_reference`: :class:`CasadiReference`, CasADi's own AD of the whole trajectory.
* :mod:`dynopt.casadi_compiled`: :class:`CompiledBPTT`, the sweeps as compiled CasADi loops.
* :mod:`dynopt.casadi_codegen`: C generation, the on-disk cache, :class:`CompilerNotFoundWarning`.
"""

from .casadi_codegen import CompilerNotFoundWarning
from .casadi_compiled import CompiledBPTT
from .casadi_components import (CasadiODE, CasadiPlant, CasadiPolicy, CasadiStageCost, CasadiTerminalCost,
                                as_casadi)
from .casadi_forms import CasadiForm, casadi_form, register_casadi_form
from .casadi_reference import CasadiReference

__all__ = ["CasadiForm", "CasadiODE", "CasadiPlant", "CasadiPolicy", "CasadiReference", "CasadiStageCost",
           "CasadiTerminalCost", "CompiledBPTT", "CompilerNotFoundWarning", "as_casadi", "casadi_form",
           "register_casadi_form"]
