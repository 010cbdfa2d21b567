"""Named reality shifts: a simulated robot made to differ from its nominal model the way a real one does.

A :class:`RealityShift` is a fixed set of robot options of one simulated robot: parameters through the one
randomization schema (:class:`rcs.spec.DomainRandomization` with ``low == high``, so every reset draws the same
value), an actuation delay (an observation-to-action latency) and camera pose offsets. Its values are the
"reality" a policy trained on the nominal simulator meets; tools that estimate them (``rcs sysid``) never read
them, and tests pin them so that a recorded figure stays reproducible.

Backends register shifts in the entry-point group ``rcs.shifts`` (``"reality-a" = "sim.mujoco.shifts:reality_a"``);
``rcs eval --shift NAME`` evaluates a policy with and without one (docs/eval.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rcs.errors import ConfigError
from rcs.registry import shifts


@dataclass(frozen=True)
class RealityShift:
    """A named, fixed deviation of one simulated robot from its nominal model.

    Attributes:
        name: the shift's registered name.
        robot: the robot (registry name) it applies to, e.g. ``"sim/panda"``.
        description: what differs, in words.
        robot_config: the robot options that make the difference (``randomization`` with fixed ranges,
            ``actuation_delay_s``, ``camera_offsets``: whatever the robot's factory accepts).
    """

    name: str
    robot: str
    description: str
    robot_config: Mapping[str, Any] = field(default_factory=dict)

    def apply(self, robot: str, robot_config: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``robot_config`` (the options a run already has) with this shift's options on top.

        Raises:
            ConfigError: ``robot`` is not the robot this shift is made for, or the run sets an option the shift
                sets too (the shift would silently replace it).
        """
        if robot != self.robot:
            raise ConfigError(f"--shift {self.name}: made for robot {self.robot!r}, not {robot!r}")
        base = dict(robot_config or {})
        clash = sorted(set(base) & set(self.robot_config))
        if clash:
            raise ConfigError(f"--shift {self.name}: sets {', '.join(clash)}, which the run sets too")
        return {**base, **plain(self.robot_config)}


def plain(value: Any) -> Any:
    """``value`` with every mapping a ``dict`` and every tuple a ``list`` (picklable, JSON-ready config)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def make_shift(name: str) -> RealityShift:
    """The registered shift ``name``; an unknown name is one :class:`rcs.errors.UnknownNameError` listing the known."""
    shift = shifts.make(name)
    if not isinstance(shift, RealityShift):
        raise ConfigError(f"reality shift {name!r}: its factory returned a {type(shift).__name__}, not a RealityShift")
    return shift
