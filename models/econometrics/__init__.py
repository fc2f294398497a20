"""Econometric time-series models fitted with exact gradients (dynopt's BPTT, linear-filter duals,
a compiled Kalman loop with CasADi's reverse mode, complex steps): AR/ARX and VAR (closed-form
least squares), ARMA (CSS and exact Kalman likelihood, missing observations), SARIMA/ARIMA,
GARCH(1,1), local level / local linear trend (exact diffuse), and a recurrent nonlinear model in
Werbos's style.  Installed as ``dynopt.models.econometrics``.

Results (:class:`FitResult`): ``params`` a labelled pandas Series, ``resid`` and forecasts on the
input's index (dates extended), ``cov_type`` chosen at fit time (:mod:`.covariance`: nonrobust,
opg, robust, r-css, none, with ``df_correction``), ``summary()`` with statsmodels' header and
Ljung-Box / Jarque-Bera / heteroskedasticity lines.
"""

from .arma import AR, ARMA, ARX
from .garch import GARCH
from .recurrent import RecurrentEconometricModel, RecurrentEconometricPlant
from .results import FitResult
from .sarima import ARIMA, SARIMA
from .unobserved import LocalLevel, LocalLinearTrend
from .var import VAR

from .var import VARResult

__all__ = ["AR", "ARIMA", "ARMA", "ARX", "SARIMA", "FitResult", "GARCH", "LocalLevel", "LocalLinearTrend",
           "RecurrentEconometricModel", "RecurrentEconometricPlant", "VAR", "VARResult"]
