"""How a pick-cube episode of the residual's env ends, and the cube drops that decide most failures.

On a shifted robot the base lifts the cube, lets it go while carrying it, and runs out of time grasping it again
(docs/sim2real.md); an evaluation therefore counts four outcomes (:data:`OUTCOMES`): ``success``; ``failure``
(the robot path ended the episode, e.g. a safety fault); ``timeout_after_a_drop`` (time ran out after a lifted
cube fell back onto the table at least once, :class:`CubeDrops`); any other ``timeout``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: how an evaluation episode ends, in the order reports list them
OUTCOMES = ("success", "timeout_after_a_drop", "timeout", "failure")


class CubeDrops:
    """Counts how often a lifted cube fell back to the height it rested at when the episode began.

    The cube is *lifted* once its centre is :attr:`LIFTED_M` above its resting height, and *dropped* when a lifted
    cube is back within :attr:`ON_TABLE_M` of it (z up, m, world frame).
    """

    LIFTED_M = 0.03
    ON_TABLE_M = 0.005

    def __init__(self, rest_z: float) -> None:
        """``rest_z``: the cube centre's height when the episode began (m)."""
        self.rest_z = float(rest_z)
        self.lifted = False
        self.count = 0

    def update(self, cube_z: float) -> int:
        """The drops so far after the cube's centre reached ``cube_z`` (m)."""
        if cube_z > self.rest_z + self.LIFTED_M:
            self.lifted = True
        elif self.lifted and cube_z < self.rest_z + self.ON_TABLE_M:
            self.lifted, self.count = False, self.count + 1
        return self.count


def episode_outcome(success: bool, info: Mapping[str, Any]) -> str:
    """One of :data:`OUTCOMES` for an episode that ended with ``success`` and the env's last ``info``
    (``failure``: the robot path's reason or ``None``; ``cube_drops``: :class:`CubeDrops` count)."""
    if success:
        return "success"
    if info.get("failure") is not None:
        return "failure"
    return "timeout_after_a_drop" if info.get("cube_drops", 0) else "timeout"
