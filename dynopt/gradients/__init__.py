"""How to differentiate: the gradient strategies (one template in :mod:`.base`)."""

from .auto import Auto
from .base import BPTT, Evaluation, FiniteDifferences, GradientMethod
from .checkpointed import CheckpointedBPTT
from .clipping import clip_gradient
from .truncated import TruncatedBPTT, truncation_error
from .hessian import HessianFallbackWarning, gauss_newton_hessp, hessian, hessp, hessp_function, value_grad_hessp
from ..core.problem import set_default_gradient, set_hessp

set_default_gradient(Auto)
set_hessp(hessp)

__all__ = ["Auto", "BPTT", "Evaluation", "HessianFallbackWarning", "gauss_newton_hessp", "hessian", "hessp",
           "hessp_function", "value_grad_hessp", "CheckpointedBPTT", "FiniteDifferences", "GradientMethod", "TruncatedBPTT", "clip_gradient",
           "truncation_error"]
