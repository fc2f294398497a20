"""Control engineering on top of the engine: LQR and Riccati tools, constraints, shooting,
controllers' metrics and receding-horizon (MPC) loops.  Built on dynopt's public API; never
imports the model library."""

from .lqr import Discretization, FiniteHorizonLQR, LQRResult, c2d, dlqr, finite_horizon_lqr, is_stabilizable, lqr
from .metrics import ErrorIntegrals, StepMetrics, error_integrals, plot_responses, step_metrics
from .constraints import (ConstrainedProblem, ConstrainedResult, ConstraintFunction, PathConstraint, StateConstraint,
                          TerminalConstraint, solve)
from .mpc import MPCResult, receding_horizon
from .shooting import FeedbackPlusOpenLoop, MultipleShooting, OpenLoopHold

__all__ = ["ConstrainedProblem", "ConstrainedResult", "ConstraintFunction", "FeedbackPlusOpenLoop", "MultipleShooting",
           "OpenLoopHold", "PathConstraint", "StateConstraint", "TerminalConstraint", "solve", "Discretization", "ErrorIntegrals", "FiniteHorizonLQR", "LQRResult", "MPCResult", "StepMetrics", "c2d",
           "dlqr", "error_integrals", "finite_horizon_lqr", "is_stabilizable", "lqr", "plot_responses",
           "receding_horizon", "step_metrics"]
