"""Fit ARMA(2, 1) models to the yearly sunspot numbers (1700-2008) and print summary tables.

Series:     SUNACTIVITY, statsmodels' sunspots data set (ships inside statsmodels, no network),
            as a pandas Series on a yearly PeriodIndex (results keep the dates)
Model:      y_t = mu + u_t,  u_t = phi_1 u_{t-1} + phi_2 u_{t-2} + e_t + theta_1 e_{t-1},  e_t ~ N(0, sigma2)
Parameters: const (mu), ar.L1, ar.L2, ma.L1, sigma2 (units: sunspot number, sigma2 its square)
Objectives: exact Gaussian likelihood (Kalman filter, BPTT through the filter) and conditional
            sum of squares (lfilter and its time-reversed dual); BFGS on exact gradients.
            Standard errors: observed information (exact fit), R's CSS convention (CSS fit).

Run: python examples/fit_arma_real_series.py
"""

import pandas as pd
import statsmodels.api as sm

from dynopt.models.econometrics import ARMA


def main():
    data = sm.datasets.sunspots.load_pandas().data
    y = pd.Series(data["SUNACTIVITY"].to_numpy(dtype=float), name="SUNACTIVITY",
                  index=pd.period_range("1700", periods=len(data), freq="Y"))
    model = ARMA(y, 2, 1, trend="c")
    exact = model.fit("mle")
    css = model.fit("css", cov_type="r-css")
    print(exact.summary())
    print()
    print(css.summary())
    fc = exact.forecast(5)
    print("\nforecasts 2009-2013 (exact-likelihood fit), 95% intervals:")
    for year, row in fc.iterrows():
        print(f"  {year}: {row['mean']:8.2f}   [{row['lower']:8.2f}, {row['upper']:8.2f}]")
    return exact, css


if __name__ == "__main__":
    main()
