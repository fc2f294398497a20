"""The public names of dynopt's CasADi layer, gathered for ``dynopt/__init__.py``.

* :mod:`dynopt.casadi.components`: user functions written with CasADi become components
  (:class:`CasadiPlant`, :class:`CasadiODE`, :class:`CasadiPolicy`, :class:`CasadiStageCost`,
  :class:`CasadiTerminalCost`); :func:`as_casadi` turns any CasADi-expressible component into one.
* :mod:`dynopt.casadi.forms`: the symbolic one-step forms behind them and the registry.
* :mod:`dynopt.casadi.reference`: :class:`CasadiReference`, CasADi's own AD of the whole trajectory.
* :mod:`dynopt.casadi.compiled`: :class:`CompiledBPTT`, the sweeps as compiled CasADi loops.
* :mod:`dynopt.casadi.codegen`: C generation, the on-disk cache, :class:`CompilerNotFoundWarning`.
* :mod:`dynopt.casadi.scan`: :class:`CompiledScan`, any CasADi step function run over time as one C
  loop on NumPy buffers.
* :mod:`dynopt.casadi.sensitivities`: :class:`SecondOrderRecursion`, the value, gradient, Hessian and
  score outer product of a sum over a recursion with a few parameters, in one such loop.
"""

from .codegen import CompilerNotFoundWarning, UnsafeCacheError
from .compiled import CompiledBPTT
from .components import (CasadiODE, CasadiPlant, CasadiPolicy, CasadiStageCost, CasadiTerminalCost,
                                as_casadi)
from .forms import CasadiForm, casadi_form, register_casadi_form
from .reference import CasadiReference
from .scan import CompiledScan
from .sensitivities import SecondOrderRecursion

__all__ = ["CasadiForm", "CasadiODE", "CasadiPlant", "CasadiPolicy", "CasadiReference", "CasadiStageCost",
           "CasadiTerminalCost", "CompiledBPTT", "CompiledScan", "CompilerNotFoundWarning", "SecondOrderRecursion", "UnsafeCacheError",
           "as_casadi", "casadi_form", "register_casadi_form"]
