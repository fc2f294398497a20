"""Gradient checks: dynopt's gradient against independent references, per named block of W."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional

import numpy as np

from ..gradients.base import FiniteDifferences, GradientMethod
from ..core.problem import Problem
from ..core.types import Array
from ..core.validation import as_real, check_flag, describe


@dataclass
class BlockError:
    """Disagreement of one reference with the checked gradient on one block of W.

    ``max_abs = max_i |g_i - r_i|``; ``max_rel = max_abs / max(max_i |r_i|, tiny)``: the error
    relative to the block's scale, which stays meaningful when single entries are ~0.
    """

    block: str
    reference: str
    max_abs: float
    max_rel: float


@dataclass
class GradientCheck:
    """Result of :func:`check_gradient`.

    Attributes
    ----------
    J : float
        Objective at W.
    gradients : dict of str -> (n_decision,) array
        ``"checked"`` (the problem's own method) and one entry per reference.
    rows : list of BlockError
        One row per (named block, reference).
    """

    J: float
    method: str
    gradients: Dict[str, Array]
    rows: List[BlockError] = field(default_factory=list)

    def max_rel_error(self, reference: Optional[str] = None) -> float:
        """Largest relative error over all blocks (of one reference, or of all)."""
        errs = [r.max_rel for r in self.rows if reference is None or r.reference == reference]
        return max(errs) if errs else 0.0

    def summary(self) -> str:
        """A plain-text table: block, reference, max abs error, max rel error."""
        refs = [k for k in self.gradients if k != "checked"]
        lines = [f"gradient check of {self.method} at J = {self.J:.12g}",
                 f"{'block':<18}{'size':>6}" + "".join(f"{r + ' abs':>20}{r + ' rel':>20}" for r in refs)]
        blocks = list(dict.fromkeys(r.block for r in self.rows))
        for b in blocks:
            cells = {r.reference: r for r in self.rows if r.block == b}
            size = self._sizes.get(b, 0)
            lines.append(f"{b:<18}{size:>6}" + "".join(
                f"{cells[r].max_abs:>20.3e}{cells[r].max_rel:>20.3e}" for r in refs))
        return "\n".join(lines)

    __str__ = summary


def _references(problem: Problem, include_casadi: bool, fd: FiniteDifferences) -> Dict[str, GradientMethod]:
    refs: Dict[str, GradientMethod] = {}
    if include_casadi:
        try:
            from ..casadi.reference import CasadiReference, supports
        except ImportError:
            supports = None
        if supports is not None and supports(problem):
            refs["casadi"] = CasadiReference()
    refs["fd"] = fd
    return refs


def check_gradient(problem: Problem, W=None, *, references: Optional[Dict[str, GradientMethod]] = None,
                   fd_step: Optional[float] = None, casadi: bool = True) -> GradientCheck:
    """Compare the problem's gradient with independent references, block by block.

    Parameters
    ----------
    problem : Problem
    W : (n_decision,) array, optional
        Default ``problem.W0``.
    references : dict of name -> GradientMethod, optional
        Non-empty, names other than ``"checked"``.  Default: CasADi's reverse AD over the
        whole unrolled trajectory (when every component
        has a CasADi form) and central finite differences (``"fd"``).
    fd_step : float, optional
        Step (> 0) of the default finite differences (default per entry, see
        :class:`FiniteDifferences`); with ``references`` given, set it there instead.
    casadi : bool
        Include the CasADi column when available (``True``/``False`` only).

    Raises
    ------
    TypeError, ValueError
        For a wrong argument, naming it.

    Returns
    -------
    GradientCheck
        ``str(result)`` prints the table; ``result.max_rel_error("fd")`` etc.
    """
    if not isinstance(problem, Problem):
        raise TypeError(f"problem: expected a dynopt.Problem, got {type(problem).__name__} {describe(problem)}")
    W = problem.check_W(problem.W0 if W is None else W)
    casadi = check_flag("casadi", casadi)
    if fd_step is not None:
        fd_step = as_real("fd_step", fd_step, minimum=0.0, strict=True)
    if references is None:
        references = _references(problem, casadi, FiniteDifferences(fd_step))
    else:
        if fd_step is not None:
            raise ValueError(f"fd_step: applies to the default references only; with references= given, set the "
                             f"step on your FiniteDifferences(step=...), got fd_step={fd_step!r}")
        if not isinstance(references, Mapping):
            raise TypeError(f"references: expected a dict {{name: GradientMethod}}, got "
                            f"{type(references).__name__} {describe(references)}")
        if not references:
            raise ValueError("references: expected at least one reference {name: GradientMethod}, got an empty dict")
        for name, method in references.items():
            if not isinstance(name, str) or name == "checked":
                raise ValueError(f"references: expected names (str, not 'checked'), got {name!r}")
            if not isinstance(method, GradientMethod):
                raise TypeError(f"references[{name!r}]: expected a GradientMethod instance, got "
                                f"{type(method).__name__} {describe(method)}")
    J, g = problem.value_and_grad(W)
    grads = {"checked": g}
    for name, method in references.items():
        _, grads[name], _ = method.evaluate(problem, W)
    result = GradientCheck(J=J, method=repr(problem.gradient), gradients=grads)
    blocks = problem.sub_blocks()
    result._sizes = {b: sl.stop - sl.start for b, sl in blocks.items()}
    for b, sl in blocks.items():
        for name in references:
            r = grads[name][sl]
            d = np.abs(g[sl] - r)
            scale = max(float(np.abs(r).max()), np.finfo(float).tiny)
            result.rows.append(BlockError(b, name, float(d.max()), float(d.max()) / scale))
    return result
