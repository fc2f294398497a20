"""dynopt.casadi.scan (a recursion as one compiled C loop) and dynopt.casadi.sensitivities (value,
gradient, Hessian and score outer products of a sum over a recursion), against plain Python loops
and CasADi's own AD of the unrolled sum; the GARCH(1, 1) pass built on them against the lfilter form."""

import casadi as ca
import numpy as np
import pytest

from dynopt.casadi import scan as scan_mod
from dynopt.casadi.scan import CompiledScan
from dynopt.casadi.sensitivities import SecondOrderRecursion


def _step():
    x, z, p = ca.SX.sym("x", 2), ca.SX.sym("z", 1), ca.SX.sym("p", 2)
    xn = ca.vertcat(p[0] * x[0] + z, p[1] * ca.tanh(x[1]) + x[0] * z)
    return ca.Function("f", [x, z, p], [xn, ca.vertcat(x[0] ** 2, 0, ca.sin(x[1]))])


def test_compiled_scan_equals_a_python_loop(tmp_path):
    sc = CompiledScan(_step(), prefix="test_scan", directory=tmp_path)
    rng = np.random.default_rng(0)
    T = 500
    Z, x0, p = rng.standard_normal((T, 1)), np.array([0.3, -0.2]), np.array([0.9, 0.5])
    xT, Y = sc(x0, Z, p)
    x, rows = x0.copy(), []
    for t in range(T):
        rows.append([x[0] ** 2, 0.0, np.sin(x[1])])
        x = np.array([p[0] * x[0] + Z[t, 0], p[1] * np.tanh(x[1]) + x[0] * Z[t, 0]])
    np.testing.assert_allclose(xT, x, rtol=1e-13)
    np.testing.assert_allclose(Y, rows, rtol=1e-13, atol=1e-15)  # the structural zero is written as 0
    # reverse: t = T-1 .. 0, outputs still in row t
    xR, YR = sc(x0, Z, p, reverse=True)
    x, rows = x0.copy(), [None] * T
    for t in range(T - 1, -1, -1):
        rows[t] = [x[0] ** 2, 0.0, np.sin(x[1])]
        x = np.array([p[0] * x[0] + Z[t, 0], p[1] * np.tanh(x[1]) + x[0] * Z[t, 0]])
    np.testing.assert_allclose(xR, x, rtol=1e-13)
    np.testing.assert_allclose(YR, rows, rtol=1e-13, atol=1e-15)
    # outputs=False skips Y; a reused buffer is written in place; T = 0 returns x0
    xT2, none = sc(x0, Z, p, outputs=False)
    assert none is None and np.array_equal(xT2, xT)
    buf = np.full((T, 3), np.nan)
    assert sc(x0, Z, p, Y=buf)[1] is buf and np.array_equal(buf, Y)
    assert np.array_equal(sc(x0, np.zeros((0, 1)), p)[0], x0)
    # a second object with the same step loads the cached library
    assert CompiledScan(_step(), prefix="test_scan", directory=tmp_path).info.cached


def test_compiled_scan_names_bad_arguments(tmp_path):
    sc = CompiledScan(_step(), prefix="test_scan", directory=tmp_path)
    with pytest.raises(ValueError, match=r"Z: expected shape \(T, 1\), got \(5, 2\)"):
        sc(np.zeros(2), np.zeros((5, 2)), np.zeros(2))
    with pytest.raises(ValueError, match=r"x0: expected shape \(2,\), got \(3,\)"):
        sc(np.zeros(3), np.zeros((5, 1)), np.zeros(2))
    with pytest.raises(ValueError, match=r"p: expected shape \(2,\)"):
        sc(np.zeros(2), np.zeros((5, 1)), np.zeros(1))
    with pytest.raises(ValueError, match=r"Y: expected a writable C-contiguous float64 array of shape \(5, 3\)"):
        sc(np.zeros(2), np.zeros((5, 1)), np.zeros(2), Y=np.zeros((3, 5)))
    x, z, p = ca.SX.sym("x", 2), ca.SX.sym("z", 1), ca.SX.sym("p", 2)
    with pytest.raises(ValueError, match="step: expected a Function"):
        CompiledScan(ca.Function("g", [x], [x]), prefix="bad", directory=tmp_path)
    with pytest.raises(ValueError, match="output 0 .* must have the shape of x"):
        CompiledScan(ca.Function("g", [x, z, p], [x[0]]), prefix="bad", directory=tmp_path)
    with pytest.raises(TypeError, match="step: expected a casadi.Function, got int"):
        CompiledScan(3, prefix="bad", directory=tmp_path)
    with pytest.raises(ValueError, match="prefix"):
        CompiledScan(_step(), prefix="no spaces", directory=tmp_path)


def test_cached_scan_honours_dynopt_compile_off(monkeypatch):
    monkeypatch.setenv("DYNOPT_COMPILE", "0")
    assert scan_mod.cached_scan(("test", "off"), _step, prefix="test_off") is None
    assert scan_mod.scan_when_ready(("test", "off"), _step, prefix="test_off") is None
    assert scan_mod.scan_status(("test", "off")) == "not requested"


def _recursion():
    """x_{t+1} = (a x1 + b tanh(x2) + z0, c x1 x2 + z1), l = -(x1' - z0)^2 / (1 + x2'^2) (3 parameters)."""
    x, z, th, c = ca.SX.sym("x", 2), ca.SX.sym("z", 2), ca.SX.sym("th", 3), ca.SX.sym("c", 1)
    f = ca.Function("f", [x, z, th, c], [ca.vertcat(th[0] * x[0] + th[1] * ca.tanh(x[1]) + z[0],
                                                    th[2] * x[0] * x[1] * c[0] + z[1])])
    l = ca.Function("l", [x, z, th, c], [-(x[0] - z[0]) ** 2 / (1 + x[1] ** 2) + ca.log(1 + th[2] ** 2)])
    return f, l


def test_second_order_recursion_matches_casadi_ad_of_the_unrolled_sum(tmp_path):
    f, l = _recursion()
    rec = SecondOrderRecursion(f, l, name="test_rec")
    sc = CompiledScan(rec.step, prefix="test_rec", directory=tmp_path)
    rng = np.random.default_rng(1)
    T = 40
    Z = 0.3 * rng.standard_normal((T, 2))
    theta, c, x0 = np.array([0.5, 0.3, 0.4]), np.array([0.8]), np.array([0.1, -0.2])
    D0 = np.array([[0.1, 0.0, -0.2], [0.0, 0.3, 0.0]])  # x0 depending (linearly) on theta
    L, g, H, S, Y = rec.run(sc, rec.initial_state(x0, D0), Z, theta, c, outputs=True)
    # reference: CasADi's AD of the unrolled sum, x0 = x0 + D0 (theta - theta*)
    th = ca.SX.sym("th", 3)
    x = ca.DM(x0) + ca.DM(D0) @ (th - ca.DM(theta))
    terms = []
    for t in range(T):
        x = f(x, ca.DM(Z[t]), th, ca.DM(c))
        terms.append(l(x, ca.DM(Z[t]), th, ca.DM(c)))
    terms = ca.vertcat(*terms)
    Ls = ca.sum1(terms)
    ref = ca.Function("ref", [th], [Ls, ca.gradient(Ls, th), ca.hessian(Ls, th)[0], ca.jacobian(terms, th)])
    Lr, gr, Hr, Gr = (np.array(v, dtype=float) for v in ref(theta))
    assert L == pytest.approx(Lr.item(), rel=1e-13)
    np.testing.assert_allclose(g, gr.ravel(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(H, Hr, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(S, Gr.T @ Gr, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(Y[:, 2:], Gr, rtol=1e-11, atol=1e-14)  # per-step scores
    with pytest.raises(ValueError, match=r"D0: expected shape \(2, 3\), got \(3, 2\)"):
        rec.initial_state(x0, D0.T)
    with pytest.raises(ValueError, match="l: expected a scalar output"):
        SecondOrderRecursion(f, f)
    with pytest.raises(ValueError, match="per_step: expected 'state' or 'state\\+score'"):
        SecondOrderRecursion(f, l, per_step="scores")


def test_second_order_recursion_drops_the_second_sensitivities_that_stay_zero():
    """GARCH(1, 1): exactly the six pairs the hand derivation in garch_newton keeps (the rest, e.g.
    d2 s / d omega2, have no forcing)."""
    from dynopt.models.econometrics import garch_compiled, garch_newton
    assert [(a, b) for _, a, b in garch_compiled.recursion().kept] == list(garch_newton._PAIRS)


def _sp500(n):
    from arch.data import sp500
    px = sp500.load()["Adj Close"].to_numpy(dtype=float)
    return 100 * np.diff(np.log(px))[-n:]


def test_compiled_garch_pass_equals_the_lfilter_form_and_the_fit(monkeypatch, tmp_path):
    from dynopt.models.econometrics import GARCH, garch_compiled, garch_newton
    y = _sp500(3000)
    bc = GARCH(y)._backcast(None)
    monkeypatch.setenv("DYNOPT_COMPILE", "1")
    monkeypatch.setenv("DYNOPT_CACHE_DIR", str(tmp_path))  # (unless this process built it already)
    derivs = garch_compiled.pass_function(y, bc, block=True)
    assert derivs is not None, garch_compiled.status()
    assert garch_compiled.status() == "compiled"
    for v in ([0.05, 0.1, 0.12, 0.8], [0.03, 0.02, 0.08, 0.9]):
        llf, g, H, S = derivs(np.array(v))
        llf_r, g_r, H_r, G_r = garch_newton.derivatives(np.array(v), y, bc, scores=True)
        assert llf == pytest.approx(llf_r, rel=1e-13)
        np.testing.assert_allclose(g, g_r, rtol=1e-10, atol=1e-10 * np.abs(g_r).max())
        np.testing.assert_allclose(H, H_r, rtol=1e-11, atol=1e-12 * np.abs(H_r).max())
        np.testing.assert_allclose(S, G_r.T @ G_r, rtol=1e-11)
    # the start grid: every candidate in one compiled loop, as the lfilter log-likelihood
    grid = garch_compiled.grid_candidates()
    om, al, be = np.var(y) * (1 - grid[:, 0]), grid[:, 1], grid[:, 0] - grid[:, 1]
    llfs = garch_compiled.grid_loglikes(y, y.mean(), om, al, be, bc, block=True)
    ref = [garch_newton.loglike(np.array([y.mean(), w, a, b]), y, bc) for w, a, b in zip(om, al, be)]
    np.testing.assert_allclose(llfs, ref, rtol=1e-13)
    fast = GARCH(y).fit()  # the compiled pass (library loaded above)
    monkeypatch.setenv("DYNOPT_COMPILE", "0")
    assert garch_compiled.pass_function(y, bc) is None
    ref = GARCH(y).fit()
    assert fast.extra["path"] == "Newton, compiled pass" and ref.extra["path"] == "Newton, lfilter pass"
    assert fast.llf == pytest.approx(ref.llf, rel=1e-13)
    np.testing.assert_allclose(fast.values, ref.values, rtol=1e-9)
    np.testing.assert_allclose(fast.cov, ref.cov, rtol=1e-7)


def test_a_scan_that_cannot_be_built_is_warned_once_and_numpy_answers(monkeypatch):
    """A build failure other than a missing compiler (an unsafe cache, a compiler error) is not silent:
    one RuntimeWarning per process naming the reason; the caller gets None (its NumPy path)."""
    monkeypatch.setenv("DYNOPT_COMPILE", "1")

    def broken():
        raise RuntimeError("gcc failed on the generated code (1): boom")

    key = ("test", "broken")
    with pytest.warns(RuntimeWarning, match="could not be built .*boom.*the NumPy path answers"):
        assert scan_mod.cached_scan(key, broken, prefix="test_broken") is None
    assert scan_mod.scan_status(key).startswith("not compiled: RuntimeError")
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert scan_mod.cached_scan(key, broken, prefix="test_broken") is None  # once only


def test_stale_build_directories_are_removed(tmp_path):
    """A process that exits while gcc runs leaves a .build-* directory: removed an hour later."""
    import os
    import time
    from dynopt.casadi import codegen
    root = codegen.private_cache_dir(tmp_path)
    old, new = root / ".build-old", root / ".build-new"
    for d in (old, new):
        d.mkdir()
        (d / "x.c").write_text("int x;")
    past = time.time() - 2 * codegen.STALE_BUILD
    os.utime(old, (past, past))
    CompiledScan(_step(), prefix="test_stale", directory=tmp_path)
    assert not old.exists() and new.exists()


def test_scan_when_ready_loads_a_cached_library_at_once(monkeypatch, tmp_path):
    """In a new process (fresh registries) a library already in the disk cache is loaded by the first
    call (milliseconds), not after a background build; a missing one is built in the background."""
    monkeypatch.setenv("DYNOPT_COMPILE", "1")
    monkeypatch.setenv("DYNOPT_CACHE_DIR", str(tmp_path))
    key = ("test", "cached-at-once")
    for name in ("_SCANS", "_REASONS", "_PENDING"):
        monkeypatch.setattr(scan_mod, name, {})
    assert scan_mod.scan_when_ready(key, _step, prefix="test_cached") is None  # not cached: built behind
    built = scan_mod.wait_scan(key, timeout=120)
    assert built is not None and not built.info.cached
    for name in ("_SCANS", "_REASONS", "_PENDING"):  # "a new process"
        monkeypatch.setattr(scan_mod, name, {})
    loaded = scan_mod.scan_when_ready(key, _step, prefix="test_cached")
    assert loaded is not None and loaded.info.cached and key not in scan_mod._PENDING
    x0, Z, p = np.array([0.3, -0.2]), np.random.default_rng(1).standard_normal((50, 1)), np.array([0.9, 0.5])
    np.testing.assert_array_equal(loaded(x0, Z, p)[0], built(x0, Z, p)[0])
