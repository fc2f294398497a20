"""Shared fixtures: problems built from the model library."""

import os

import numpy as np
import pytest

# The default strategy (dynopt.Auto) starts a background C build for every CasADi-expressible
# problem it sees twice.  The suite builds hundreds of small problems: keep it on the NumPy path
# (the same exact gradient) unless a test asks for compiled sweeps; tests/test_auto.py exercises the
# automatic choice itself with Auto(compile=True).
os.environ.setdefault("DYNOPT_COMPILE", "0")


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
