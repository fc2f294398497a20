"""Exceptions raised by dynopt.  Every one pickles and unpickles (it can cross a process pool)."""

from __future__ import annotations

from typing import Optional


class SimulationDivergedError(FloatingPointError):
    """A simulation or its backward sweep produced NaN or inf.

    Attributes
    ----------
    step : int or None
        Time step ``t`` (0-based) at which the first non-finite value appeared (``T`` for the
        terminal cost); ``None`` when it could not be located.
    component : str
        Which map produced it: ``"policy"``, ``"stage cost"``, ``"plant"``, ``"terminal cost"``
        (forward sweep), ``"objective sum"`` (per-step costs finite, their sum overflowed), or
        the duals ``"plant dual"``, ``"policy dual"``, ``"stage cost dual"``,
        ``"terminal cost dual"`` (backward sweep), or ``"gradient"`` (not located).
    scenario : int or None
        Batch index ``b`` of the first affected scenario.
    index : int or None
        Entry inside the output (state, control or adjoint entry), ``None`` for costs.
    value : float or None
        The offending value.
    """

    def __init__(self, step: Optional[int], component: str, scenario: Optional[int] = None, index=None,
                 value=None):
        self.step = None if step is None else int(step)
        self.component = component
        self.scenario = None if scenario is None else int(scenario)
        self.index = None if index is None else int(index)
        self.value = None if value is None else float(value)
        super().__init__(self._message())

    def _message(self) -> str:
        where = []
        if self.step is not None:
            where.append(f"step t={self.step}")
        if self.index is not None:
            where.append(f"entry {self.index}")
        if self.scenario is not None:
            where.append(f"scenario b={self.scenario}")
        at = f" at {', '.join(where)}" if where else ""
        fix = ("reduce the step size, the horizon or the parameter magnitudes, or check the model for a "
               "singularity")
        if self.component == "objective sum":
            return (f"simulation diverged: every per-step cost is finite but their sum overflowed to "
                    f"{self.value}{at}; rescale the cost (weights, units) or shorten the horizon")
        if self.component.endswith("dual") or self.component == "gradient":
            return (f"gradient diverged: the backward sweep ({self.component}) produced a non-finite adjoint "
                    f"({self.value}){at} although the simulation is finite; adjoints grow backwards through "
                    f"an unstable or exploding closed loop: {fix}, or use dynopt.diagnose to see the growth")
        return (f"simulation diverged: the {self.component} produced a non-finite value ({self.value}){at}; "
                f"{fix}")

    def __reduce__(self):
        return (type(self), (self.step, self.component, self.scenario, self.index, self.value))

