"""Output folders checked before any training (issue 11 item 3, helper for the CLI) and
gradient clipping that neither overflows nor passes NaN on."""

import numpy as np
import pytest

import dynopt
from dynopt.results import check_writable, save_result


def test_check_writable_creates_and_probes(tmp_path):
    out = check_writable(tmp_path / "a" / "b")
    assert out.is_dir() and list(out.iterdir()) == []  # the probe file is gone
    paths = save_result(out, "run", {"x": np.arange(3.0)}, {"ok": True})
    assert np.array_equal(np.load(paths["npz"])["x"], np.arange(3.0))


def test_check_writable_refuses_with_the_argument_and_the_reason(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ValueError, match=r"--out: expected a directory, got '.*file', which exists and is not a"):
        check_writable(blocker, "--out")
    with pytest.raises(PermissionError, match=r"--out: cannot write results to '.*file/sub' \((NotADirectoryError|"
                                              r"FileExistsError)"):
        check_writable(blocker / "sub", "--out")
    with pytest.raises(TypeError, match="out: expected a directory path, got int 3"):
        check_writable(3)


def test_clip_gradient_is_exact_for_huge_entries():
    g = np.array([3e250, 4e250])        # ||g|| = 5e250; g @ g overflows
    c = dynopt.clip_gradient(g, 10.0)
    assert c == pytest.approx([6.0, 8.0], rel=1e-15)
    assert np.array_equal(dynopt.clip_gradient(np.array([0.3, 0.4]), 1.0), [0.3, 0.4])


def test_clip_gradient_refuses_bad_input():
    with pytest.raises(ValueError, match=r"g: expected a finite gradient, got nan at index 1"):
        dynopt.clip_gradient(np.array([1.0, np.nan]), 1.0)
    with pytest.raises(ValueError, match="max_norm: expected a positive finite number, got 0"):
        dynopt.clip_gradient(np.ones(2), 0)
    with pytest.raises(TypeError, match="max_norm: expected a positive number, got str"):
        dynopt.clip_gradient(np.ones(2), "1")
