"""Baseline for ``rcs bench hw``: lerobot's own SO-101 follower loop over the same (emulated) bus.

lerobot's recording loop calls ``robot.get_observation()`` (a sync read of every servo's present position) and
``robot.send_action(action)`` (a sync write of the goal positions) once per frame. This runs exactly that, unpaced,
with lerobot's ``SO101Follower`` class on the port and calibration the rcs driver uses, and reports the rate the
pair sustains: the ceiling of lerobot's own loop on this bus, to compare with the rcs driver's ``max_rate_hz``
(which reads positions and velocities and runs the safety pipeline too).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any


def loop_rate(robot_config: dict[str, Any], seconds: float) -> dict[str, Any]:
    """Ticks per second of ``get_observation`` + ``send_action`` (holding the current pose) for ``seconds``.

    ``robot_config``: the rcs ``hw/so101`` options (``port``, ``arm_id``, ``calibration_dir``).
    """
    from lerobot.robots.so_follower import SO101Follower, SO101FollowerConfig

    config = SO101FollowerConfig(
        port=robot_config["port"],
        id=robot_config.get("arm_id"),
        calibration_dir=Path(robot_config["calibration_dir"]) if robot_config.get("calibration_dir") else None,
        use_degrees=True,
    )
    robot = SO101Follower(config)
    robot.connect(calibrate=False)
    try:
        ticks, t0 = 0, time.monotonic()
        while time.monotonic() - t0 < seconds:
            obs = robot.get_observation()
            robot.send_action({k: v for k, v in obs.items() if k.endswith(".pos")})
            ticks += 1
        wall = time.monotonic() - t0
    finally:
        robot.disconnect()
    return {
        "ticks": ticks,
        "achieved_rate_hz": round(ticks / wall, 1),
        "per_tick": "sync read positions + sync write goals",
    }
