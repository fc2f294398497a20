"""dynopt: exact gradients of costs summed over simulated dynamic systems, by BPTT.

Front doors: :class:`Problem`, :func:`optimize`, :func:`check_gradient`.

Layout (each arrow points down; nothing imports upwards):

* :mod:`dynopt.core`: the component contract, :class:`Problem`, the sweeps, integrators;
* :mod:`dynopt.gradients`: the strategies (:class:`BPTT`, :class:`CheckpointedBPTT`, ...);
* :mod:`dynopt.casadi`: CasADi components, compiled sweeps, the whole-trajectory reference;
* :mod:`dynopt.parallel`: sharding, multi-start and map_fit over executors;
* :mod:`dynopt.analysis`: gradient checks and diagnostics;
* :mod:`dynopt.optimize`, :mod:`dynopt.results`, :mod:`dynopt.cli`: the front end.
"""

from .core.components import Component, Plant, Policy, SliceGrad, StageCost, TerminalCost, ZeroPolicy
from .core.integrators import ODE, RK4, Discretized, Euler, IntegralCost, Integrator
from .core.problem import Problem, Trajectory
from .errors import SimulationDivergedError
from .gradients import (Auto, BPTT, Evaluation, HessianFallbackWarning, gauss_newton_hessp, hessp, hessp_function, CheckpointedBPTT, FiniteDifferences, GradientMethod, TruncatedBPTT, clip_gradient,
                        truncation_error)
from .analysis import Covariance, DiagnosticReport, GradientCheck, check_gradient, covariance, diagnose
from .optimize import OptimizeResult, optimize
from .parallel import ExecutorFailure, Sharded, map_fit, multistart, sharded_value_and_grad
from .casadi import (CasadiODE, CasadiPlant, CasadiPolicy, CasadiReference, CasadiStageCost, CasadiTerminalCost,
                     CompiledBPTT, CompilerNotFoundWarning, UnsafeCacheError, as_casadi)

from . import sysid
from .sysid import Experiment, identify
from .control import c2d, dlqr, finite_horizon_lqr, lqr, receding_horizon, step_metrics

__version__ = "0.1.0"

__all__ = [
    "Auto", "BPTT", "Evaluation", "Component", "GradientCheck", "OptimizeResult", "check_gradient", "clip_gradient", "optimize", "Discretized", "Euler", "FiniteDifferences", "GradientMethod",
    "IntegralCost", "Integrator", "ODE", "Plant", "Policy", "Problem", "RK4", "SimulationDivergedError", "SliceGrad",
    "StageCost", "TerminalCost", "Trajectory", "ZeroPolicy",
    "ExecutorFailure", "Sharded", "map_fit", "multistart", "sharded_value_and_grad",
    "CheckpointedBPTT", "DiagnosticReport", "TruncatedBPTT", "diagnose", "truncation_error",
    "CasadiODE", "CasadiPlant", "CasadiPolicy", "CasadiReference", "CasadiStageCost", "CasadiTerminalCost",
    "CompiledBPTT", "CompilerNotFoundWarning", "UnsafeCacheError", "as_casadi",
    "Covariance", "Experiment", "HessianFallbackWarning", "covariance", "gauss_newton_hessp", "hessp", "hessp_function",
    "identify", "sysid",
    "c2d", "dlqr", "finite_horizon_lqr", "lqr", "receding_horizon", "step_metrics",
]
