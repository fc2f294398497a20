"""Exceptions raised by dynopt."""

from __future__ import annotations


class SimulationDivergedError(FloatingPointError):
    """A rollout produced NaN or inf.

    Attributes
    ----------
    step : int
        Time step ``t`` (0-based) at which the first non-finite value appeared.
    component : str
        ``"policy"``, ``"stage cost"``, ``"plant"`` or ``"terminal cost"``: which map produced it.
    scenario : int
        Batch index ``b`` of the first affected scenario.
    index : int or None
        Component index inside the output (state or control entry), ``None`` for costs.
    """

    def __init__(self, step: int, component: str, scenario: int, index=None, value=None):
        self.step = int(step)
        self.component = component
        self.scenario = int(scenario)
        self.index = None if index is None else int(index)
        where = f"output entry {self.index}, " if self.index is not None else ""
        super().__init__(
            f"simulation diverged: the {component} produced a non-finite value ({value}) at "
            f"step t={self.step} ({where}scenario b={self.scenario}); reduce the step size, "
            f"the horizon or the parameter magnitudes, or check the model for a singularity"
        )
