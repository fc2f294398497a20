"""dynopt: exact gradients of costs summed over simulated dynamic systems, by BPTT.

Front doors: :class:`Problem`, :func:`optimize`, :func:`check_gradient`.
"""

from .components import Component, Plant, Policy, SliceGrad, StageCost, TerminalCost, ZeroPolicy
from .check import GradientCheck, check_gradient
from .clipping import clip_gradient
from .errors import SimulationDivergedError
from .gradients import BPTT, FiniteDifferences, GradientMethod
from .integrators import ODE, RK4, Discretized, Euler, Integrator
from .optimize import OptimizeResult, optimize
from .problem import Problem, Trajectory
from .distributed import ExecutorFailure, Sharded, map_fit, sharded_value_and_grad
from .multistart import multistart
from .checkpoint import CheckpointedBPTT
from .truncated import TruncatedBPTT, truncation_error
from .diagnostics import DiagnosticReport, diagnose
from .casadi_public import CasadiODE, CasadiPlant, CasadiPolicy, CasadiReference, CasadiStageCost, CasadiTerminalCost, CompiledBPTT, CompilerNotFoundWarning, as_casadi  # noqa: E501

__version__ = "0.1.0"

__all__ = [
    "BPTT", "Component", "GradientCheck", "OptimizeResult", "check_gradient", "clip_gradient", "optimize", "Discretized", "Euler", "FiniteDifferences", "GradientMethod",
    "Integrator", "ODE", "Plant", "Policy", "Problem", "RK4", "SimulationDivergedError", "SliceGrad",
    "StageCost", "TerminalCost", "Trajectory", "ZeroPolicy",
    "ExecutorFailure", "Sharded", "map_fit", "multistart", "sharded_value_and_grad",
    "CheckpointedBPTT", "DiagnosticReport", "TruncatedBPTT", "diagnose", "truncation_error",
    "CasadiODE", "CasadiPlant", "CasadiPolicy", "CasadiReference", "CasadiStageCost", "CasadiTerminalCost",
    "CompiledBPTT", "CompilerNotFoundWarning", "as_casadi",
]
