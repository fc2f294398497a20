"""System identification: fit a plant's parameters and initial states to measured records.

Front door :func:`identify` (weighted nonlinear least squares, exact Jacobian from CasADi's
forward sensitivities, standard errors, fit statistics, a plot); data as :class:`Experiment`.
This package builds on dynopt's public API and CasADi forms only (it never imports the model
library).
"""

from .data import Experiment
from .fit import IdentificationResult, identify
from .transforms import Transform

__all__ = ["Experiment", "IdentificationResult", "Transform", "identify"]
