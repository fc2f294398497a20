r"""Local level and local linear trend models (unobserved components) with exact diffuse
initialisation and missing observations.

    y_t     = mu_t + eps_t,                   eps_t  ~ N(0, sigma2.irregular)
    mu_t+1  = mu_t (+ beta_t) + eta_t,        eta_t  ~ N(0, sigma2.level)
    beta_t+1 = beta_t + zeta_t                zeta_t ~ N(0, sigma2.trend)     (local linear trend)

The initial state is diffuse; the likelihood is the exact diffuse log-likelihood of Koopman and
Durbin (2000, J. Time Series Analysis 21) in its univariate form: while the diffuse part of the
covariance ``P_inf`` is non-zero the contribution of ``y_t`` is ``-1/2 (log 2 pi + log F_inf)``,
afterwards the usual ``-1/2 (log 2 pi + log F_t + v_t^2 / F_t)``.  Missing observations (NaN)
contribute nothing and skip the update (prediction only); forecasts are predictions over missing
values at the end.  This is statsmodels' ``UnobservedComponents(level="llevel"/"lltrend")`` with
its exact diffuse initialisation.

Speed.  Local level: the scalar Riccati recursion is a Moebius map, solved in closed form, so each
run of observed values is filtered by a few NumPy calls with no step-by-step loop
(:func:`_level_run`); the fit maximises the profile likelihood in its one ratio
``q = sigma2.level / sigma2.irregular`` by a safeguarded secant method on the exact derivative
(:func:`_maximise_scalar`, ~7 filters on Nile), and the scores, gradient and Hessian at the estimate
follow from the same filter in closed form (:meth:`LocalLevel._level_estimate`).  Local linear
trend: the filter runs step by step only until its covariance reaches the steady state (and no
observation is missing afterwards); the rest is one :func:`scipy.signal.lfilter` call on the
steady-state innovations form ``det(I - T L) y_t = det(I - (T - K Z) L) v_t``.  Every operation is
complex-safe, so the gradient of the log-likelihood in the (2 or 3) variances is the complex step,
exact to rounding.  The local linear trend's fit: Newton steps on the exact Hessian of the profile
likelihood in the two log variance ratios, from one compiled pass over the data per step
(:mod:`.unobserved_compiled`: the filter after the diffuse period with its forward sensitivities;
~10 passes on Nile), which also gives the exact Hessian and scores for the covariance; while that
pass is built in the background, with ``DYNOPT_COMPILE=0`` or without a compiler, BFGS on the
complex-step gradients of the NumPy filter (the same optimum to BFGS's tolerance).
"""

from __future__ import annotations

import cmath
import math

import numpy as np
from scipy.optimize import OptimizeResult
from scipy.signal import lfilter, lfiltic

from . import unobserved_compiled as _uc
from .covariance import check_cov_type, cov_matrix
from .data import _numeric, check_order, label, series_info
from .fitargs import NOT_GIVEN, check_fit_args
from .results import HESSIAN_REL_STEP, FitResult, forecast_frame, gaussian_interval, hessian_from_gradient, \
    minimize_transformed, warn_not_converged
from .transforms import Transform

LOG2PI = np.log(2 * np.pi)
STEADY_TOL = 1e-13
_CS = 1e-30
SHORT_RUN = 24
"""Runs of observed values shorter than this go through the local level filter step by step (the
closed form's fixed cost, a few NumPy calls, is more than ~24 scalar steps)."""
SHORT_TAIL = 64
"""A steady-state tail shorter than this stays in the closed form (same numbers to rounding)."""
SHORT_HEAD = 128
"""Runs up to this long before the steady state take the powers and cumulative-sum forms of the
recursions (no ``lfilter`` call); longer ones ``lfilter`` (rounding error growing more slowly)."""
_ONE = np.ones(1)


class LocalLevel:
    """Local level (``trend=False``) or local linear trend (``trend=True``) model.

    Parameters
    ----------
    y : (N,) array or pandas Series
        NaN marks a missing observation; at least ``2 + 3 (trend)`` observed values.
    trend : bool
        Add a stochastic slope (local linear trend).

    Parameters (statsmodels' names): ``sigma2.irregular``, ``sigma2.level`` (, ``sigma2.trend``).
    """

    def __init__(self, y, *, trend: bool = False):
        if not isinstance(trend, (bool, np.bool_)):
            raise TypeError(f"trend: expected True or False, got {type(trend).__name__} {trend!r}")
        self.info = series_info(y)
        raw = np.asarray(y.to_numpy(dtype=float, na_value=np.nan) if hasattr(y, "to_numpy") else y)
        arr = _numeric_allow_nan("y", raw)
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim != 1:
            raise ValueError(f"y: expected a 1-d series of shape (N,), got shape {arr.shape}")
        self.trend = bool(trend)
        self.m = 2 if trend else 1
        k = self.m + 1
        nobs = int(np.sum(~np.isnan(arr)))
        self.name = "local linear trend" if trend else "local level"
        if nobs < self.m + k + 1:
            raise ValueError(f"y: expected at least {self.m + k + 1} observed values for a {self.name} model "
                             f"({self.m} diffuse, {k} parameters), got {nobs}")
        obs = arr[~np.isnan(arr)]
        if np.ptp(obs) == 0:
            raise ValueError(f"y: the series is constant (every value {float(obs[0])!r}); expected a series "
                             f"that varies")
        if trend:  # a straight line is predicted exactly after the diffuse steps: unbounded likelihood
            t = np.nonzero(~np.isnan(arr))[0].astype(float)
            Z = np.column_stack([np.ones_like(t), t])
            e = obs - Z @ np.linalg.lstsq(Z, obs, rcond=None)[0]
            if np.sqrt(e @ e) <= 1e-12 * np.sqrt(obs @ obs):
                raise ValueError("y: the observed values lie on a straight line; a local linear trend predicts "
                                 "them exactly (the irregular variance would be 0 and the likelihood "
                                 "unbounded); expected a series that deviates from a line")
        self.y = arr
        self.nobs_observed = nobs
        self.param_names = ["sigma2.irregular", "sigma2.level"] + (["sigma2.trend"] if trend else [])
        self.T = np.array([[1.0, 1.0], [0.0, 1.0]]) if trend else np.ones((1, 1))
        gaps = np.nonzero(np.isnan(arr))[0]
        self._last_nan = int(gaps[-1]) + 1 if gaps.size else 0  # observations from here on are all present
        self._yl = arr.tolist()
        # the local level filter's layout: first observed value (the diffuse step) and the runs of
        # observed values after it as (start, stop)
        observed = ~np.isnan(arr)
        self._first = int(np.argmax(observed))
        after = observed.copy()
        after[:self._first + 1] = False
        edges = np.flatnonzero(np.diff(np.r_[0, after.astype(np.int8), 0]))
        self._runs = list(zip(edges[::2].tolist(), edges[1::2].tolist()))
        self._after_first = after if gaps.size else slice(self._first + 1, None)  # non-diffuse observations

    # ------------------------------------------------------------------ the filter
    def filter(self, params, *, steady=True):
        """Run the exact diffuse Kalman filter at natural ``params`` (complex-safe).

        Returns a dict: ``llf_obs (N,)`` (0 where missing; ``-1/2 (log 2 pi + log F_inf)`` at
        diffuse steps), ``v (N,)`` innovations (NaN where missing), ``F (N,)``, ``diffuse (N,)
        bool``, the final prediction ``a (m,)``, ``P (m, m)`` and ``switch``, the step from which
        the filter stopped running step by step.  The local level runs in closed form
        (:func:`_level_run`; ``steady=False`` runs it step by step instead); the local linear
        trend's step-by-step part runs on Python scalars (the 2x2 algebra written out), the fastest
        form for this small state; :meth:`filter_reference` is the same filter in NumPy matrix form
        (the tests check they agree).
        """
        params = np.asarray(params)
        return self._filter_level(params, steady) if not self.trend else self._filter_scalar(params, steady)

    def filter_reference(self, params, *, steady=True):
        """:meth:`filter` written with NumPy matrices (generic in the state dimension)."""
        params = np.asarray(params)
        dt = np.result_type(params, float)
        H = params[0]
        Q = np.diag(params[1:]).astype(dt)
        T, y, N, m = self.T, self.y, len(self.y), self.m
        a = np.zeros(m, dtype=dt)
        Pinf = np.eye(m)
        Pst = np.zeros((m, m), dtype=dt)
        llf = np.zeros(N, dtype=dt)
        v = np.full(N, np.nan, dtype=dt)
        F = np.full(N, np.nan, dtype=dt)
        diffuse = np.zeros(N, bool)
        P_prev, t_switch, run = None, N, 0
        for t in range(N):
            if steady and t >= self._last_nan and not Pinf.any() and P_prev is not None and \
                    np.abs((Pst - P_prev).real).max() <= STEADY_TOL * np.abs(Pst.real).max():
                run += 1
                if run > m:
                    t_switch = t
                    break
            else:
                run = 0
            P_prev = Pst
            yt = y[t]
            if not np.isnan(yt):
                vt = yt - a[0]
                Fi = Pinf[0, 0]
                Fs = Pst[0, 0] + H
                Ms = Pst[:, 0]
                if Fi > 1e-10:
                    Mi = Pinf[:, 0]
                    K0 = Mi / Fi
                    a = a + K0 * vt
                    Pst = Pst + np.outer(K0, K0) * Fs - np.outer(K0, Ms) - np.outer(Ms, K0)
                    Pinf = Pinf - np.outer(K0, Mi)
                    Pinf[np.abs(Pinf) < 1e-12] = 0.0
                    llf[t] = -0.5 * (LOG2PI + np.log(Fi))
                    diffuse[t] = True
                    F[t] = Fi
                else:
                    K = Ms / Fs
                    a = a + K * vt
                    Pst = Pst - np.outer(K, Ms)
                    llf[t] = -0.5 * (LOG2PI + np.log(Fs) + vt * vt / Fs)
                    F[t] = Fs
                v[t] = vt
            a = T @ a
            Pst = T @ Pst @ T.T + Q
            Pinf = T @ Pinf @ T.T
        if t_switch < N:  # steady state: innovations form, one lfilter over the rest
            Fs = Pst[0, 0] + H
            K = T @ Pst[:, 0] / Fs
            L = T.copy().astype(dt)
            L[:, 0] = L[:, 0] - K
            b = _charpoly(T)
            den = _charpoly(L)
            past_v = v[t_switch - 1::-1][:m]
            past_y = y[t_switch - 1::-1][:m]
            zi = lfiltic(b, den, past_v, past_y)  # SciPy's own (the fast filter computes it by hand)
            vt = lfilter(b, den, y[t_switch:], zi=zi)[0]
            v[t_switch:] = vt
            F[t_switch:] = Fs
            llf[t_switch:] = -0.5 * (LOG2PI + np.log(Fs) + vt * vt / Fs)
            # final prediction: run the steady recursion's state from the innovations
            a_end = a
            for s in range(t_switch, N):
                a_end = T @ a_end + K * v[s]
            a = a_end
        return {"llf_obs": llf, "v": v, "F": F, "diffuse": diffuse, "a": a, "P": Pst, "switch": t_switch}

    def _filter_level(self, params, steady):
        """The local level filter (state dimension 1): each run of observed values after the diffuse
        step in closed form (:func:`_level_run`), gaps by prediction only.  ``steady=False``, a
        zero or extreme variance (outside 1e-150 .. 1e150, or their ratio) or runs shorter than
        :data:`SHORT_RUN` take the step-by-step recursion."""
        dt = np.result_type(params, float)
        conv = complex if np.iscomplexobj(params) else float
        H, q = conv(params[0]), conv(params[1])
        if not steady or not (1e-150 < H.real < 1e150 and 1e-150 < q.real < 1e150
                              and 1e-150 < q.real / H.real < 1e150):
            return self._filter_level_loop(params, steady)  # zero or extreme variances: step by step
        y, N, t0 = self.y, len(self.y), self._first
        v = np.full(N, np.nan, dtype=dt)
        F = np.full(N, np.nan, dtype=dt)
        diffuse = np.zeros(N, bool)
        diffuse[t0] = True  # F_inf = 1, K0 = 1: a = y, P* = H (Koopman-Durbin, univariate)
        v[t0], F[t0] = y[t0], 1.0
        llf = np.zeros(N, dtype=dt)
        llf[t0] = -0.5 * LOG2PI
        log = cmath.log if conv is complex else math.log
        a, p, t = y[t0], H + q, t0 + 1
        for start, stop in self._runs:
            p = p + (start - t) * q  # missing values: prediction only
            if stop - start >= SHORT_RUN:
                a, p = _level_run(y[start:stop], a, p, H, q, v[start:stop], F[start:stop], llf[start:stop])
            else:
                for j in range(start, stop):
                    Ft = p + H
                    vj = y[j] - a
                    v[j], F[j], llf[j] = vj, Ft, -0.5 * (LOG2PI + log(Ft) + vj * vj / Ft)
                    a, p = a + p / Ft * vj, p * H / Ft + q
            t = stop
        p = p + (N - t) * q
        return {"llf_obs": llf, "v": v, "F": F, "diffuse": diffuse, "a": np.array([a], dtype=dt),
                "P": np.array([[p]], dtype=dt), "switch": t0 + 1}

    def _filter_level_loop(self, params, steady):
        """The local level filter on Python scalars, step by step (the reference for :func:`_level_run`)."""
        dt = np.result_type(params, float)
        cplx = np.iscomplexobj(params)
        conv = complex if cplx else float
        log = cmath.log if cplx else math.log
        H, q = conv(params[0]), conv(params[1])
        yl, N = self._yl, len(self.y)
        llf, v, F = [], [], []  # grown step by step; the steady tail is filled in arrays
        diffuse = np.zeros(N, bool)
        a, p, is_diffuse = 0.0, 0.0, True
        prev, run, t_switch, last_nan, tol = math.inf, 0, N, self._last_nan, STEADY_TOL
        for t in range(N):
            if steady and not is_diffuse and t >= last_nan:
                if abs((p - prev).real) <= tol * abs(p.real):
                    run += 1
                    if run > 1:
                        t_switch = t
                        break
                else:
                    run = 0
            prev = p
            yt = yl[t]
            if yt == yt:
                vt = yt - a
                if is_diffuse:  # F_inf = 1, K0 = 1: a = y, P* = H (Koopman-Durbin, univariate)
                    a, p, is_diffuse = yt, H, False
                    llf.append(-0.5 * LOG2PI)
                    F.append(1.0)
                    diffuse[t] = True
                else:
                    Ft = p + H
                    k = p / Ft
                    a = a + k * vt
                    p = p - k * p
                    llf.append(-0.5 * (LOG2PI + log(Ft) + vt * vt / Ft))
                    F.append(Ft)
                v.append(vt)
            else:
                llf.append(0.0)
                F.append(math.nan)
                v.append(math.nan)
            p = p + q
        n_loop = len(llf)
        out = [np.empty(N, dtype=dt) for _ in range(3)]
        for arr, part in zip(out, (llf, v, F)):
            arr[:n_loop] = part
        llf, v, F = out
        Pst = np.array([[p]], dtype=dt)
        av = np.array([a], dtype=dt)
        if t_switch < N:
            av, v, F, llf = self._steady_tail(t_switch, av, Pst, H, v, F, llf, dt)
        return {"llf_obs": llf, "v": v, "F": F, "diffuse": diffuse, "a": av, "P": Pst, "switch": t_switch}

    def _filter_scalar(self, params, steady):
        dt = np.result_type(params, float)
        cplx = np.iscomplexobj(params)
        conv = complex if cplx else float
        H = conv(params[0])
        q1 = conv(params[1])
        q2 = conv(params[2]) if self.trend else 0.0
        N, m, tr = len(self.y), self.m, self.trend
        yl = self._yl
        log = cmath.log if cplx else math.log
        llf = np.zeros(N, dtype=dt)
        v = np.full(N, np.nan, dtype=dt)
        F = np.full(N, np.nan, dtype=dt)
        diffuse = np.zeros(N, bool)
        # state a = (a0, a1); P* = [[p00, p01], [p01, p11]]; P_inf = [[i00, i01], [i01, i11]]
        a0 = a1 = 0.0
        p00 = p01 = p11 = 0.0
        i00, i01, i11 = 1.0, 0.0, (1.0 if tr else 0.0)
        prev0 = prev1 = np.inf
        t_switch, run, last_nan = N, 0, self._last_nan
        for t in range(N):
            if steady and t >= last_nan and i00 == 0.0 and i11 == 0.0:
                if abs((p00 - prev0).real) <= STEADY_TOL * abs(p00.real) and \
                        abs((p11 - prev1).real) <= STEADY_TOL * (abs(p11.real) + abs(p00.real)):
                    run += 1
                    if run > m:
                        t_switch = t
                        break
                else:
                    run = 0
            prev0, prev1 = p00, p11
            yt = yl[t]
            if yt == yt:  # observed
                vt = yt - a0
                Fi = i00
                Fs = p00 + H
                if Fi.real > 1e-10 if isinstance(Fi, complex) else Fi > 1e-10:
                    k0, k1 = 1.0, i01 / Fi          # K0 = M_inf / F_inf, M_inf = (i00, i01)
                    ms0, ms1 = p00, p01
                    a0, a1 = a0 + k0 * vt, a1 + k1 * vt
                    p00 = p00 + k0 * k0 * Fs - 2 * k0 * ms0
                    p01 = p01 + k0 * k1 * Fs - k0 * ms1 - ms0 * k1
                    p11 = p11 + k1 * k1 * Fs - 2 * k1 * ms1
                    i00, i01, i11 = 0.0, 0.0, i11 - k1 * i01
                    if abs(i11) < 1e-12:
                        i11 = 0.0
                    llf[t] = -0.5 * (LOG2PI + log(Fi))
                    diffuse[t] = True
                    F[t] = Fi
                else:
                    k0, k1 = p00 / Fs, p01 / Fs
                    a0, a1 = a0 + k0 * vt, a1 + k1 * vt
                    p00, p01, p11 = p00 - k0 * p00, p01 - k0 * p01, p11 - k1 * p01
                    llf[t] = -0.5 * (LOG2PI + log(Fs) + vt * vt / Fs)
                    F[t] = Fs
                v[t] = vt
            if tr:  # T = [[1, 1], [0, 1]]
                a0 = a0 + a1
                p00, p01, p11 = p00 + 2 * p01 + p11 + q1, p01 + p11, p11 + q2
                i00, i01 = i00 + 2 * i01 + i11, i01 + i11
            else:
                p00 = p00 + q1
        Pst = np.array([[p00, p01], [p01, p11]], dtype=dt)[:m, :m]
        a = np.array([a0, a1], dtype=dt)[:m]
        if t_switch < N:
            a, v, F, llf = self._steady_tail(t_switch, a, Pst, H, v, F, llf, dt)
        return {"llf_obs": llf, "v": v, "F": F, "diffuse": diffuse, "a": a, "P": Pst, "switch": t_switch}

    def _steady_tail(self, t_switch, a, Pst, H, v, F, llf, dt):
        T, y, N, m = self.T, self.y, len(self.y), self.m
        Fs = Pst[0, 0] + H
        K = T @ Pst[:, 0] / Fs
        L = T.copy().astype(dt)
        L[:, 0] = L[:, 0] - K
        b, den = _charpoly(T), _charpoly(L)
        zi = _initial_conditions(b, den, v[t_switch - 1::-1][:m], y[t_switch - 1::-1][:m])
        vt = lfilter(b, den, y[t_switch:], zi=zi)[0]
        v[t_switch:] = vt
        F[t_switch:] = Fs
        llf[t_switch:] = -0.5 * (LOG2PI + np.log(Fs) + vt * vt / Fs)
        # final prediction a_N = T^n a + sum_s T^(N-1-s) K v_s, with T^j = [[1, j], [0, 1]] (or 1)
        n = N - t_switch
        if m == 1:
            a = a + K * np.sum(vt)
        else:
            j = np.arange(n - 1, -1, -1)
            a = np.array([a[0] + n * a[1] + np.sum(vt * (K[0] + j * K[1])), a[1] + K[1] * np.sum(vt)])
        return a, v, F, llf

    def loglike(self, params):
        """Exact diffuse log-likelihood at natural ``params``."""
        return float(np.sum(self.filter(np.asarray(params, dtype=np.float64))["llf_obs"]).real)

    def loglike_and_grad(self, params):
        """``(llf, d llf / d params)``: the gradient by the complex step (exact to rounding)."""
        params = np.asarray(params, dtype=np.float64)
        g = np.empty(len(params))
        for j in range(len(params)):
            z = params.astype(np.complex128)
            z[j] += 1j * _CS
            total = np.sum(self.filter(z)["llf_obs"])
            g[j] = total.imag / _CS
            if j == 0:  # Re f(x + ih) = f(x) - h^2 f''/2 + ...: the value itself at h = 1e-30
                llf = float(total.real)
        return llf, g

    def _profile(self, ratios):
        """Profile log-likelihood in ``ratios = params[1:] / params[0]`` and its complex-step gradient."""
        def prof(r):
            f = self.filter(np.r_[1.0, r])
            keep = ~f["diffuse"] & ~np.isnan(f["v"])
            n = int(keep.sum())
            S = np.sum(f["v"][keep] ** 2 / f["F"][keep])
            return -0.5 * n * (LOG2PI + 1 + np.log(S / n)) - 0.5 * np.sum(np.log(f["F"][keep])) \
                + np.sum(f["llf_obs"][f["diffuse"]])
        ratios = np.asarray(ratios, dtype=np.float64)
        g = np.empty(len(ratios))
        for j in range(len(ratios)):
            z = ratios.astype(np.complex128)
            z[j] += 1j * _CS
            total = prof(z)
            g[j] = total.imag / _CS
            if j == 0:  # the real part is the value (error h^2 = 1e-60)
                value = float(total.real)
        return value, g

    def _level_terms(self, q, h):
        """The local level's concentrated likelihood from one filter at ``(1, q + i h)``.

        Returns ``(value, dvalue/dq, S, dS/dq, Lambda, dLambda/dq, v, F)``: the profile
        log-likelihood (the scale ``sigma2.irregular = S / n`` concentrated out), ``S = sum v^2 / F``
        and ``Lambda = sum log F`` over the ``n`` non-diffuse observations, with their complex-step
        derivatives (``h > 0``, exact to rounding), and the complex innovations ``v (n,)`` and their
        variances ``F (n,)`` at unit irregular variance (imaginary parts: ``h`` times the
        derivatives).
        """
        t0, N, z = self._first, len(self.y), complex(q, h)
        if self._runs == [(t0 + 1, N)] and N - t0 - 1 >= SHORT_RUN:  # no gap: the one run directly
            v, F, llf = (np.empty(N - t0 - 1, dtype=complex) for _ in range(3))
            _level_run(self.y[t0 + 1:], self.y[t0], 1.0 + z, 1.0, z, v, F, llf)
        else:
            f = self.filter(np.array([1.0, z]))
            keep = self._after_first
            v, F, llf = f["v"][keep], f["F"][keep], f["llf_obs"][keep]
        n = len(v)
        S = np.sum(v * v / F)
        Lam = -2.0 * np.sum(llf) - n * LOG2PI - S  # llf = -(log 2 pi + log F + v^2 / F) / 2
        value = -0.5 * n * (LOG2PI + 1.0 + cmath.log(S / n)) - 0.5 * Lam - 0.5 * LOG2PI
        return value.real, value.imag / h, S.real, S.imag / h, Lam.real, Lam.imag / h, v, F

    def _level_estimate(self, q, terms, cov_type):
        """Estimate, value, gradient, scores and covariance of the local level at the ratio ``q``
        (natural parameters ``(S / n, q S / n)``) from :meth:`_level_terms` at ``q`` (``terms``),
        on this model's data.

        With ``H = sigma2.irregular``, ``l_t = -(log 2 pi + log H + log F_t + v_t^2 / (H F_t)) / 2``
        (``v_t, F_t`` at unit ``H``, functions of ``q`` only), so the scores in ``(H, q)`` are
        closed forms in ``v, F`` and their complex-step ``q``-derivatives, mapped to
        ``(sigma2.irregular, sigma2.level) = (H, H q)`` by the chain rule; the Hessian needs
        ``S''`` and ``Lambda''``: central differences of their exact derivatives at
        ``q (1 +- eps^(1/3))`` (two more filters, only for ``nonrobust``/``robust``).
        Returns ``(values (2,), llf, grad (2,), scores (n, 2), cov (2, 2), v (n,), F (n,))``.
        """
        value, _, S, dS, _, dLam, v, F = terms
        h = _level_step(q)
        n = len(v)
        H = S / n
        vr, Fr, dv, dF = v.real, F.real, v.imag / h, F.imag / h
        l_H = -0.5 * (1.0 / H - vr * vr / (H * H * Fr))
        l_q = -0.5 * (dF / Fr + (2.0 * vr * dv * Fr - vr * vr * dF) / (H * Fr * Fr))
        G = np.column_stack([l_H - (q / H) * l_q, l_q / H])
        L_q = -0.5 * dLam - 0.5 * dS / H  # = d value / dq; d llf / dH = 0 at H = S / n
        grad = np.array([-(q / H) * L_q, L_q / H])
        C = np.full((2, 2), np.nan)
        if cov_type != "none":
            hess = None
            if cov_type != "opg":
                step = HESSIAN_REL_STEP * q
                up, dn = self._level_terms(q + step, _level_step(q + step)), \
                    self._level_terms(q - step, _level_step(q - step))
                d2S, d2Lam = (up[3] - dn[3]) / (2 * step), (up[5] - dn[5]) / (2 * step)
                M = np.array([[-0.5 * n / (H * H), 0.5 * dS / (H * H)],
                              [0.5 * dS / (H * H), -0.5 * d2Lam - 0.5 * d2S / H]])
                J = np.array([[1.0, 0.0], [-q / H, 1.0 / H]])  # d(H, q) / d(sigma2.irregular, sigma2.level)
                hess = J.T @ M @ J + L_q * np.array([[2.0 * q / (H * H), -1.0 / (H * H)], [-1.0 / (H * H), 0.0]])
            C = cov_matrix(cov_type, hessian=hess, scores=G if cov_type != "nonrobust" else None)
        return np.array([H, q * H]), value, grad, G, C, vr, Fr

    def loglikeobs(self, params):
        return self.filter(params)["llf_obs"]

    def start_params(self):
        """Half the variance of the observed first differences to each disturbance."""
        d = np.diff(self.y)
        v = np.nanvar(d) if np.isfinite(d).sum() > 1 else np.nanvar(self.y)
        return np.full(self.m + 1, max(v, 1e-12) / (self.m + 1))

    # ------------------------------------------------------------------ fitting
    def fit(self, *, cov_type: str = "nonrobust", start_params=None, optimizer=NOT_GIVEN, options=None):
        """Maximum likelihood with the irregular variance concentrated out (statsmodels'
        ``concentrate_scale``), on ``y / std(y)``, mapped back.

        ``optimizer`` not given (default): for the local level (one free ratio
        ``q = sigma2.level / sigma2.irregular``) and no ``options``, the safeguarded secant method
        on the exact derivative of the profile log-likelihood in ``log q`` (:func:`_maximise_scalar`;
        falls back to BFGS if it does not converge); for the local linear trend, Newton steps on the
        exact Hessian of the profile log-likelihood in the log ratios from the compiled pass
        (:func:`.unobserved_compiled.maximise_newton`; BFGS if it does not converge), or, while the
        pass is not available, BFGS on complex-step gradients over the log-ratios (``extra["path"]``
        says which ran).  A SciPy method name (``"BFGS"``, ``"L-BFGS-B"``, ``"CG"``, ``"Newton-CG"``)
        runs that method.  ``cov_type``: ``"nonrobust"`` (observed information), ``"opg"``
        (statsmodels' default), ``"robust"``, ``"none"``.
        """
        cov_type = check_cov_type(cov_type, ("nonrobust", "opg", "robust", "none"))
        scalar = optimizer is NOT_GIVEN and options is None and not self.trend
        newton = optimizer is NOT_GIVEN and options is None and self.trend
        optimizer, options, start_params = check_fit_args("BFGS" if optimizer is NOT_GIVEN else optimizer, options,
                                                          start_params, self.param_names,
                                                          positive=range(len(self.param_names)))
        sc = float(np.std(self.y if self.nobs_observed == len(self.y) else self.y[~np.isnan(self.y)]))
        m = self if sc == 1.0 else self._scaled(1.0 / sc)
        # the ratios of start_params() (equal variances) are ones
        ratios = np.ones(self.m) if start_params is None else start_params[1:] / start_params[0]
        n_eff = self.nobs_observed - self.m
        res = None
        compiled = _compiled_pass(m) if self.trend else None
        if compiled is not None and newton:
            u, res = _uc.maximise_newton(compiled, np.log(ratios))
            est, how = np.exp(u), "Newton"
            if not res.success:
                res = None
        if scalar:
            q, terms, res = _maximise_scalar(m, float(ratios[0]), n_eff)
            if not res.success:
                res = None
        if res is None:
            # the profile likelihood in the ratios q = sigma2.level / sigma2.irregular (...), whose
            # maximiser is the maximiser of the full likelihood
            def objective(ratios):
                if compiled is not None:  # the compiled pass: value and exact gradient in log ratios
                    llf, g_u, _, _ = compiled.profile(np.log(ratios))
                    return -llf, -g_u / ratios
                llf, g = m._profile(ratios)
                return -llf, -g

            est, res = minimize_transformed(objective, Transform([("var", self.m)]), ratios,
                                            method=optimizer, options=options, scale=n_eff)
            how = optimizer
            if not self.trend:
                q = float(est[0])
                terms = m._level_terms(q, _level_step(q))
        warn_not_converged(res, f"{self.name} fit")
        if not self.trend:
            values_s, llf_s, g_s, _, C, v, F = m._level_estimate(q, terms, cov_type)
            resid = np.full(len(self.y), np.nan)
            resid[self._first] = m.y[self._first]
            resid[self._after_first] = v
            std = v / np.sqrt(values_s[0] * F)
        elif compiled is not None:
            values_s, llf_s, g_s, C, resid, std = _uc.estimate(compiled, est, cov_type)
        else:
            values_s, llf_s, g_s, C, resid, std = m._generic_estimate(est, n_eff, cov_type)
        out = FitResult(self, list(self.param_names), values_s * sc ** 2, float(llf_s - n_eff * np.log(sc)),
                        self.nobs_observed, C * sc ** 2 * sc ** 2, g_s / sc ** 2, label(self.info, resid * sc, 0, "resid"), res,
                        "mle", cov_type=cov_type, std_resid=std)
        out.extra["k_diffuse"] = self.m  # statsmodels counts the diffuse states in AIC/BIC
        if self.trend:
            out.extra["path"] = how + (", compiled pass" if compiled is not None else ", NumPy filter")
        return out

    def _generic_estimate(self, est, n_eff, cov_type):
        """Natural estimate, value, gradient, covariance, residuals and standardised residuals at
        the ratios ``est`` (any model; the local level has the faster :meth:`_level_estimate`)."""
        f = self.filter(np.r_[1.0, est])
        keep = ~f["diffuse"] & ~np.isnan(f["v"])
        s2 = float(np.sum((f["v"][keep] ** 2 / f["F"][keep]).real)) / n_eff
        values_s = np.r_[1.0, est] * s2
        k = len(values_s)
        # one complex-step filter per parameter gives the scores, their sum the gradient, the first
        # one's real part the value, innovations and their variances (Re f(x + ih) = f(x) + O(h^2))
        obs = ~np.isnan(self.y)
        fs = []
        for j in range(k):
            z = values_s.astype(np.complex128)
            z[j] += 1j * _CS
            fs.append(self.filter(z))
        G = np.stack([fj["llf_obs"][obs].imag / _CS for fj in fs], axis=1)
        llf_s, g_s = float(np.sum(fs[0]["llf_obs"]).real), G.sum(axis=0)
        if cov_type == "none":
            C = np.full((k, k), np.nan)
        else:
            H = hessian_from_gradient(lambda x: self.loglike_and_grad(x)[1], values_s, floor=1e-3) \
                if cov_type != "opg" else None
            C = cov_matrix(cov_type, hessian=H, scores=G if cov_type != "nonrobust" else None)
        f = fs[0]
        keep = ~f["diffuse"] & ~np.isnan(f["v"])
        std = f["v"][keep].real / np.sqrt(f["F"][keep].real)
        return values_s, llf_s, g_s, C, f["v"].real, std

    def _scaled(self, c):
        """This model on ``c * y`` (the layout shared, no checks repeated)."""
        out = object.__new__(LocalLevel)
        out.__dict__.update(self.__dict__)
        out.y = self.y * c
        out._yl = out.y.tolist()
        return out

    def forecast(self, result, steps, *, alpha=0.05):
        """Forecasts of ``y`` (level, plus slope for the trend model) with intervals: DataFrame
        (``mean``, ``se``, ``lower``, ``upper``) indexed after the sample."""
        steps = check_order("steps", steps, 1)
        v = np.asarray(result.values, dtype=np.float64)
        f = self.filter(v)
        a, P = f["a"].real, f["P"].real
        Q = np.diag(v[1:])
        mean, var = np.empty(steps), np.empty(steps)
        for h in range(steps):
            mean[h] = a[0]
            var[h] = P[0, 0] + v[0]
            a = self.T @ a
            P = self.T @ P @ self.T.T + Q
        se = np.sqrt(var)
        lo, hi = gaussian_interval(mean, se, alpha)
        return forecast_frame(self.info, len(self.y), mean=mean, se=se, lower=lo, upper=hi)

    def simulate(self, params, nsimulations, *, rng=None, level0=0.0, slope0=0.0):
        """Simulate ``(nsimulations,)`` observations from ``level0`` (and ``slope0``)."""
        n = check_order("nsimulations", nsimulations, 1)
        v = np.asarray(params, dtype=np.float64)
        rng = np.random.default_rng(rng)
        slope = slope0 + (np.cumsum(rng.standard_normal(n) * np.sqrt(v[2])) if self.trend else np.zeros(n))
        level = level0 + np.cumsum(np.r_[0.0, slope[:-1]] + rng.standard_normal(n) * np.sqrt(v[1]))
        return level + rng.standard_normal(n) * np.sqrt(v[0])


def _compiled_pass(model):
    """The local linear trend's compiled pass on ``model.y`` (:mod:`.unobserved_compiled`), or None while
    it is built in the background, with ``DYNOPT_COMPILE=0`` or without a compiler (the NumPy filter
    answers)."""
    return _uc.pass_for(model.y)


def LocalLinearTrend(y) -> LocalLevel:
    """:class:`LocalLevel` with a stochastic slope."""
    return LocalLevel(y, trend=True)


def _maximise_scalar(model, q0, n, *, gtol=1e-9, maxiter=100):
    """Maximise the local level's profile log-likelihood over ``u = log q`` from ``q0``.

    The secant method on the exact derivative ``g(u)`` (complex step, :meth:`LocalLevel._level_terms`)
    with safeguards: the first step is one unit uphill; where the secant slope is not negative
    (the profile is convex there) or two steps in a row cut ``|g|`` by less than a factor 0.3 (a
    flat tail) the step doubles the last one uphill (an optimum at ``q -> 0`` or ``q -> inf`` is
    approached as BFGS approaches it, with a vanishing gradient); once ``g`` has
    changed sign the iterate stays inside the bracket (bisection when the secant leaves it).
    Stops when ``|g| / n < gtol`` (BFGS's test on the per-observation gradient, tighter).

    Returns ``(q, terms at q, OptimizeResult)``; ``success`` False after ``maxiter`` evaluations or
    a non-finite value (the caller then runs BFGS).
    """
    lo, hi = -math.inf, math.inf  # g(lo) > 0 > g(hi): the maximum lies between
    u = math.log(q0)
    terms = model._level_terms(q0, _level_step(q0))
    f, g = terms[0], terms[1] * q0
    u_prev = g_prev = None
    slow = 0  # consecutive steps that kept the sign of g and less than a factor 0.3 of its size
    nfev, success, message = 1, False, "maximum number of evaluations reached"
    while nfev < maxiter:
        if not (math.isfinite(f) and math.isfinite(g)):
            message = "non-finite log-likelihood"
            break
        if abs(g) / n < gtol:
            success, message = True, "gradient below gtol"
            break
        if g > 0:
            lo = max(lo, u)
        else:
            hi = min(hi, u)
        if hi - lo <= 4.0 * np.finfo(float).eps * max(1.0, abs(u)):  # the bracket has collapsed on the maximum
            success, message = True, "bracket collapsed to rounding around the maximum"
            break
        slope = (g - g_prev) / (u - u_prev) if u_prev is not None and u != u_prev else 0.0
        slow = slow + 1 if u_prev is not None and (g > 0) == (g_prev > 0) and abs(g) > 0.3 * abs(g_prev) else 0
        if slope < 0 and slow < 2:
            step = -g / slope
        else:
            step = math.copysign(1.0 if u_prev is None else 2.0 * abs(u - u_prev), g)
        u_new = u + step
        if not lo < u_new < hi:
            u_new = 0.5 * (lo + hi)
        if abs(u_new) > 700.0:
            message = "the ratio sigma2.level / sigma2.irregular left [exp(-700), exp(700)]"
            break
        q = math.exp(u_new)
        terms_new = model._level_terms(q, _level_step(q))
        nfev += 1
        u_prev, g_prev = u, g
        u, terms = u_new, terms_new
        f, g = terms[0], terms[1] * q
    res = OptimizeResult(x=np.array([u]), success=success, status=0 if success else 1, message=message,
                         nit=nfev - 1, nfev=nfev, fun=-f / n, jac=np.array([-g / n]))
    return math.exp(u), terms, res


def _level_step(q):
    """The complex step in the local level's ratio ``q`` (relative, so tiny ``q`` keep their
    precision; ``h^2`` terms stay below rounding)."""
    return _CS * max(q, 1e-280)


def _level_run(y, a0, p0, H, q, v, F, llf):
    r"""The local level Kalman filter over a run of observed values in closed form (complex-safe).

    The predicted variance follows the Riccati map ``p -> p H / (p + H) + q``, a Moebius map with
    fixed points ``p_hi = (q + s) / 2`` and ``p_lo = -q H / p_hi`` (``s = sqrt(q^2 + 4 q H)``):
    ``r_t = (p_t - p_hi) / (p_t - p_lo) = r_0 kappa^t`` with ``kappa = (H + p_lo) / (H + p_hi)``
    in (0, 1).  With ``d_t = 1 - r_t`` (from ``d_{t+1} = (1 - kappa) + kappa d_t``, a sum of positive
    terms), ``p_t = s / d_t + p_lo`` and the gain's complement ``H / F_t = phi d_t / d_{t+1}``
    (``phi = H / (H + p_hi)``), so ``b_t = a_t d_t`` obeys the constant-coefficient recursion
    ``b_{t+1} = phi b_t + K_t d_{t+1} y_t``: two :func:`scipy.signal.lfilter` calls replace the
    step-by-step filter (or, cheaper for short runs, powers of ``kappa`` and ``phi`` and one
    cumulative sum).  Once ``|r_t|`` is below 2^-60 the filter is in its steady state
    (``d_t = 1`` to rounding) and the rest is one constant-gain ``lfilter``.

    Parameters
    ----------
    y : (n,) array
        The run (no NaN).
    a0, p0 : scalar
        Predicted level and its variance before ``y[0]`` (``p0 >= p_hi``, as after the diffuse step
        or a gap).
    H, q : scalar
        Irregular and level variances (real parts > 0).
    v, F, llf : (n,) arrays
        Filled in place with the innovations, their variances and the log-likelihood contributions.

    Returns
    -------
    a, p : scalar
        Predicted level and variance after ``y[-1]``.
    """
    n = len(y)
    s = q ** 0.5 * (q + 4.0 * H) ** 0.5  # sqrt(q^2 + 4 q H) without squaring q (overflow, underflow)
    p_hi = 0.5 * (q + s)
    p_lo = -q * H / p_hi
    den = H + p_hi
    kappa = (H + p_lo) / den
    phi = H / den
    d0 = s / (p0 - p_lo)
    r0 = abs((1.0 - d0).real)
    kr = abs(kappa.real)
    head = min(n, max(1, int(math.log(2.0 ** -60 / r0) / math.log(kr)) + 1)) if r0 > 0.0 and 0.0 < kr < 1.0 else n
    if n - head < SHORT_TAIL:  # a short steady tail costs more apart than in the closed form
        head = n
    powers = np.arange(1.0, head + 1.0)
    if head <= SHORT_HEAD and r0 < 0.9:  # d_t = 1 - r_0 kappa^t loses at most log10(1 / (1 - r_0)) = 1 digit
        d = 1.0 - (1.0 - d0) * kappa ** powers  # d_1 .. d_head
    else:
        d = lfilter(_ONE, [1.0, -kappa], np.full(head, s / den), zi=[kappa * d0])[0]
    p = np.empty(head, dtype=d.dtype)
    p[0] = d0
    p[1:] = d[:-1]
    p = s / p + p_lo
    Fh = F[:head]
    Fh[:] = p + H
    u = p / Fh * d * y[:head]
    pr = abs(phi.real)
    if head <= SHORT_HEAD and pr > 0.0 and head * math.log(pr) > -300.0:  # (phi^-t far from overflow)
        # b_t = phi^t (b_0 + sum_{s < t} u_s phi^-(s + 1)): the rounding of the sum, times phi^t, is
        # about sum_s |u_s| phi^(t - s - 1) eps, as in the recursion
        ph = phi ** powers
        b = ph * (a0 * d0 + np.cumsum(u / ph))  # b_1 .. b_head
    else:
        b = lfilter(_ONE, [1.0, -phi], u, zi=[phi * a0 * d0])[0]
    vh = v[:head]
    vh[0] = y[0] - a0
    vh[1:] = y[1:head] - b[:-1] / d[:-1]
    llf[:head] = -0.5 * (LOG2PI + np.log(Fh) + vh * vh / Fh)
    a_end, p_end = b[-1] / d[-1], s / d[-1] + p_lo
    if head == n:
        return a_end, p_end
    # steady state: a_{t+1} = phi a_t + (1 - phi) y_t, F_t = p_end + H
    tail = lfilter([1.0 - phi], [1.0, -phi], y[head:], zi=[phi * a_end])[0]
    vt = v[head:]
    vt[0] = y[head] - a_end
    vt[1:] = y[head + 1:] - tail[:-1]
    Fs = p_end + H
    F[head:] = Fs
    llf[head:] = (-0.5 * (LOG2PI + (cmath.log(Fs) if isinstance(Fs, complex) else math.log(Fs)))) - \
        (0.5 / Fs) * (vt * vt)
    return tail[-1], p_end


def _initial_conditions(b, a, out_past, in_past):
    """``scipy.signal.lfiltic(b, a, out_past, in_past)`` (most recent first) for ``a[0] = 1``, without
    its overhead: ``zi[m] = sum_{i > m} b_i x[-(i - m)] - a_i y[-(i - m)]``."""
    n = len(a) - 1
    return np.array([sum(b[i] * in_past[i - m - 1] - a[i] * out_past[i - m - 1] for i in range(m + 1, n + 1))
                     for m in range(n)])


def _charpoly(A):
    """``det(I - A L)`` coefficients in powers of L for a 1x1 or 2x2 matrix (complex-safe)."""
    if A.shape == (1, 1):
        return np.array([1.0, -A[0, 0]])
    return np.array([1.0, -(A[0, 0] + A[1, 1]), A[0, 0] * A[1, 1] - A[0, 1] * A[1, 0]])


def _numeric_allow_nan(name, raw):
    """As :func:`.data._numeric` but NaN (a missing observation) allowed; inf refused."""
    arr = _numeric(name, np.where(np.isnan(np.asarray(raw, dtype=float)), 0.0, raw)
                   if np.asarray(raw).dtype.kind in "fiu" else raw)
    out = np.asarray(raw, dtype=np.float64)
    return np.where(np.isnan(out), np.nan, arr)
