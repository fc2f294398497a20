"""Checks and analysis on top of the sweeps: gradient checks, gradient-flow diagnostics."""

from .check import GradientCheck, check_gradient
from .covariance import Covariance, covariance, covariance_matrix
from .diagnostics import DiagnosticReport, diagnose

__all__ = ["Covariance", "DiagnosticReport", "covariance", "covariance_matrix", "GradientCheck", "check_gradient", "diagnose"]
