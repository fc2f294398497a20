"""Checks and analysis on top of the sweeps: gradient checks, gradient-flow diagnostics."""

from .check import GradientCheck, check_gradient
from .diagnostics import DiagnosticReport, diagnose

__all__ = ["DiagnosticReport", "GradientCheck", "check_gradient", "diagnose"]
