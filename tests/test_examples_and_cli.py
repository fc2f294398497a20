"""Examples run headless with short settings; the CLI demo saves without overwriting."""

import json

import numpy as np
import pytest

from dynopt.cli import main as cli_main

def test_example_lqr_gain_finds_the_dare_gain(load_example):
    K, K_lqr = load_example("lqr_gain").main()
    assert np.abs(K - K_lqr).max() / np.abs(K_lqr).max() < 1e-4


def test_example_open_loop_keeps_limits_and_arrives(load_example):
    res = load_example("open_loop_bounded").main()
    U = res.params["policy"]["U"]
    assert np.abs(U).max() <= 0.3 and np.isclose(np.abs(U), 0.3).sum() > 0
    assert abs(res.trajectory.x[-1, 0, 0] - 1.0) < 0.01


def test_example_engineering_script_reaches_setpoint(load_example):
    res = load_example("engineering_script").main(horizon=300)
    assert np.all(np.abs(res.trajectory.x[-1, :, 0] - 5.0) < 0.3)


def test_example_pendulum_quick_lowers_the_cost(load_example):
    res = load_example("pendulum_swingup").main(quick=True)
    assert res.fun < res.cost_history[0]


def test_cli_demo_saves_and_never_overwrites(tmp_path, capsys):
    args = ["demo", "pendulum", "--out", str(tmp_path), "--batch", "3", "--horizon", "20", "--maxiter", "3",
            "--no-progress"]
    assert cli_main(args) == 0
    out = capsys.readouterr().out
    assert "cost before" in out and "cost after" in out
    meta = json.loads((tmp_path / "pendulum.json").read_text())
    assert meta["iterations"] == 3 and meta["cost_after"] <= meta["cost_before"]
    data = np.load(tmp_path / "pendulum.npz")
    assert data["states"].shape == (21, 3, 2)
    assert (tmp_path / "pendulum.png").stat().st_size > 1000
    first = (tmp_path / "pendulum.npz").read_bytes()
    assert cli_main(args + ["--seed", "2"]) == 0
    assert (tmp_path / "pendulum-1.npz").exists() and (tmp_path / "pendulum-1.json").exists()
    assert (tmp_path / "pendulum.npz").read_bytes() == first


def test_cli_rejects_bad_arguments(tmp_path):
    with pytest.raises(SystemExit):
        cli_main(["demo", "pendulum", "--out", str(tmp_path), "--batch", "0"])
    with pytest.raises(SystemExit):
        cli_main(["demo", "rocket"])
