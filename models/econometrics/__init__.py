"""Econometric time-series models fitted with exact gradients (dynopt's BPTT and linear-filter
duals): AR/ARX, ARMA (CSS and exact Kalman likelihood), VAR, GARCH(1,1), and a recurrent
nonlinear model in Werbos's style.  Installed as ``dynopt.models.econometrics``.
"""

from .arma import AR, ARMA, ARX
from .garch import GARCH
from .recurrent import RecurrentEconometricModel, RecurrentEconometricPlant
from .results import FitResult
from .sarima import ARIMA, SARIMA
from .unobserved import LocalLevel, LocalLinearTrend
from .var import VAR

__all__ = ["AR", "ARIMA", "ARMA", "ARX", "SARIMA", "FitResult", "GARCH", "LocalLevel", "LocalLinearTrend", "RecurrentEconometricModel", "RecurrentEconometricPlant", "VAR"]
