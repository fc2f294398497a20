"""dynopt's model library, installed as ``dynopt.models``: plants, policies and costs.

Built on dynopt's public API only; every model has a hand-written NumPy dual.
"""

from .controllers import PID, ControllerStatePlant, PlantStateCost, StatefulPolicy, TrackingCost, pid_problem
from .costs import FunctionCost, Quadratic, QuadraticTerminal, SwingUpCost
from .linear import LinearPlant, double_integrator
from .mechanics import CartPole, DoubleIntegrator, Pendulum
from .policies import MLPPolicy, LinearFeedback, OpenLoop
from .casadi_models import cartpole_rhs, double_integrator_rhs, pendulum_rhs  # registers CasADi forms

__all__ = [
    "CartPole", "DoubleIntegrator", "FunctionCost", "LinearFeedback", "LinearPlant", "MLPPolicy",
    "OpenLoop", "Pendulum", "Quadratic", "QuadraticTerminal", "SwingUpCost", "double_integrator",
    "cartpole_rhs", "double_integrator_rhs", "pendulum_rhs",
    "PID", "ControllerStatePlant", "PlantStateCost", "StatefulPolicy", "TrackingCost", "pid_problem",
]
