"""Shared fixtures: problems built from the model library."""

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

# The default strategy (dynopt.Auto) starts a background C build for every CasADi-expressible
# problem it sees twice.  The suite builds hundreds of small problems: keep it on the NumPy path
# (the same exact gradient) unless a test asks for compiled sweeps; tests/test_auto.py exercises the
# automatic choice itself with Auto(compile=True).
os.environ.setdefault("DYNOPT_COMPILE", "0")


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load_example(name):
    """Import ``examples/<name>.py`` as a module (its ``main`` is not run)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def load_example():
    """``load_example(name)``: the module of ``examples/<name>.py``, for tests that run examples headless."""
    return _load_example


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
