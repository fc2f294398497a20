"""How to differentiate: the gradient strategies (one template in :mod:`.base`)."""

from .auto import Auto
from .base import BPTT, Evaluation, FiniteDifferences, GradientMethod
from .checkpointed import CheckpointedBPTT
from .clipping import clip_gradient
from .truncated import TruncatedBPTT, truncation_error
from ..core.problem import set_default_gradient

set_default_gradient(Auto)

__all__ = ["Auto", "BPTT", "Evaluation", "CheckpointedBPTT", "FiniteDifferences", "GradientMethod", "TruncatedBPTT", "clip_gradient",
           "truncation_error"]
