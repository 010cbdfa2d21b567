"""The simulator parameters ``rcs sysid`` fits, and how each becomes a simulated arm's robot option.

Scales multiply the nominal model (:class:`rcs.spec.DomainRandomization` with ``low == high``): they are searched
on a log scale. The actuation delay is in seconds of simulated time (:mod:`sim.mujoco.actuation_delay`), resolved
to the physics step (2 ms).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Parameter:
    """One fitted parameter: its search range, nominal value and scale.

    Attributes:
        name: the robot option's name (a randomization scale or ``actuation_delay_s``).
        low, high: search bounds.
        nominal: the nominal model's value (where the search starts).
        log: searched on a log scale (multiplicative scales).
        unit: for reports.
    """

    name: str
    low: float
    high: float
    nominal: float
    log: bool
    unit: str

    def to_unit(self, value: float) -> float:
        """``value`` mapped to [0, 1] over the search range."""
        if self.log:
            return (math.log(value) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return (value - self.low) / (self.high - self.low)

    def from_unit(self, u: float) -> float:
        """The value at ``u`` in [0, 1] (clipped into the range)."""
        u = min(1.0, max(0.0, float(u)))
        if self.log:
            return math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        return self.low + u * (self.high - self.low)


#: what an arm's joint log identifies: servo stiffness (with damping), damping alone, and the command latency
ARM_PARAMETERS: tuple[Parameter, ...] = (
    Parameter("actuator_gain", 0.3, 3.0, 1.0, log=True, unit="x nominal stiffness and damping"),
    Parameter("actuator_damping", 0.3, 3.0, 1.0, log=True, unit="x nominal damping, on top"),
    Parameter("actuation_delay_s", 0.0, 0.2, 0.0, log=False, unit="s"),
)

#: what a joint log cannot identify (no object is measured in it), reported as such
NOT_IDENTIFIED = {
    "friction": "contact friction: the log measures no object, so nothing slides in it",
    "object_mass": "the cube's mass: no object is carried or measured in the log",
}


def robot_config_of(values: dict[str, float]) -> dict[str, Any]:
    """The simulated arm's robot options for fitted ``values`` (name -> value of :data:`ARM_PARAMETERS`)."""
    g, d = values["actuator_gain"], values["actuator_damping"]
    return {
        "randomization": {"actuator_gain": [g, g], "extra": {"actuator_damping": [d, d]}},
        "actuation_delay_s": values["actuation_delay_s"],
    }
