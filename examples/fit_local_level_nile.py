"""Local level model of the Nile's annual flow (1871-1970) with two years blanked out, and an
ARIMA(1,1,1) with drift for log CPI: exact diffuse likelihood, missing values, dated forecasts.

Series:     Nile volume at Aswan (10^8 m^3), statsmodels' nile data set; log US CPI x 100,
            statsmodels' macrodata (both ship inside statsmodels, no network)
Models:     y_t = mu_t + eps_t, mu_t+1 = mu_t + eta_t (local level, exact diffuse mu_1);
            (1 - phi L)(1 - L) cpi_t = drift (1 - phi) + (1 + theta L) e_t
Parameters: sigma2.irregular, sigma2.level ((10^8 m^3)^2); drift, ar.L1, ma.L1, sigma2
Estimation: exact Gaussian likelihood, BFGS on exact (complex-step / Kalman-adjoint) gradients;
            standard errors by the outer product of gradients (statsmodels' default)

Run: python examples/fit_local_level_nile.py
"""

import numpy as np
import pandas as pd
import statsmodels.api as sm

from dynopt.models.econometrics import ARIMA, LocalLevel


def main():
    nile = sm.datasets.nile.load_pandas().data
    y = pd.Series(nile["volume"].to_numpy(dtype=float), name="volume",
                  index=pd.period_range("1871", periods=len(nile), freq="Y"))
    y.iloc[[40, 41]] = np.nan  # 1911-1912 missing: the filter predicts through them
    level = LocalLevel(y).fit(cov_type="opg")
    print(level.summary())
    print("\nlevel forecasts with 95% intervals:")
    print(level.forecast(3).round(1).to_string())

    macro = sm.datasets.macrodata.load_pandas().data
    cpi = pd.Series(np.log(macro["cpi"].to_numpy(dtype=float)) * 100, name="log CPI x 100",
                    index=pd.period_range("1959Q1", periods=len(macro), freq="Q"))
    arima = ARIMA(cpi, (1, 1, 1), trend="t").fit(cov_type="opg")
    print()
    print(arima.summary())
    print("\nCPI forecasts (levels, integrated back) with 95% intervals:")
    print(arima.forecast(4).round(2).to_string())
    return level, arima


if __name__ == "__main__":
    main()
