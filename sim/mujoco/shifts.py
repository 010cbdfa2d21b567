"""Reality shifts of the simulated robots (:mod:`rcs.shifts`), registered under ``rcs.shifts``.

The values are the hidden "reality" of the shifted-reality benchmark (docs/eval.md): tests pin them, and
``rcs sysid`` estimates them from logs without reading this file.
"""

from __future__ import annotations

from types import MappingProxyType

from rcs.shifts import RealityShift

REALITY_A = RealityShift(
    name="reality-a",
    robot="sim/panda",
    description=(
        "pick-cube Panda: sliding friction x0.6 on every surface, the cube 2x heavier, arm servo stiffness x0.5 "
        "and damping x1.5 on top (a softer, more damped drive), commands applied 120 ms late (12 control ticks at "
        "100 Hz, 2.4 policy steps: a slow link or a remote policy), the front camera 1 cm to the side and pitched "
        "1.1 deg"
    ),
    robot_config=MappingProxyType(
        {
            "randomization": {
                "friction": (0.6, 0.6),
                "actuator_gain": (0.5, 0.5),
                "extra": {"object_mass": (2.0, 2.0), "actuator_damping": (1.5, 1.5)},
            },
            "actuation_delay_s": 0.12,
            "camera_offsets": {"front": (0.0, 0.01, 0.0, 0.0, 0.02, 0.0)},
        }
    ),
)


def reality_a() -> RealityShift:
    """Entry point ``rcs.shifts`` ``"reality-a"``."""
    return REALITY_A
