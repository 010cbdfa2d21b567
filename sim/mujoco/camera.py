"""A MuJoCo camera as an :class:`rcs.devices.Camera`: rendered offscreen from the robot's simulation."""

from __future__ import annotations

from typing import Any

import numpy as np

from rcs.devices import Camera
from rcs.errors import ConfigError
from rcs.spec import CameraSpec
from rcs.types import CameraFrame
from sim.mujoco.simulation import MujocoSimulation, now


class MujocoCamera(Camera):
    """Renders the named MJCF camera of ``simulation`` at the spec's resolution.

    The field of view comes from the MJCF camera (``fovy``), so intrinsics match the rendered image.
    """

    def __init__(self, simulation: MujocoSimulation, spec: CameraSpec) -> None:
        cid = simulation.camera_id(spec.name)
        fovy = float(np.deg2rad(simulation.model.cam_fovy[cid]))
        super().__init__(CameraSpec(spec.name, spec.width, spec.height, spec.fps, fovy))
        self.simulation = simulation
        self._count = 0

    def _connect(self) -> None:
        self._count = 0

    def _close(self) -> None:
        pass

    def _read(self) -> CameraFrame:
        image = self.simulation.render(self.spec.name, self.spec.width, self.spec.height)
        self._count += 1
        return CameraFrame(
            timestamp=now(),
            image=image,
            intrinsics=self.intrinsics,
            extrinsics=self.simulation.camera_pose_world(self.spec.name),
            frame_index=self._count - 1,
        )


def make_camera(robot: Any, name: str, width: int = 640, height: int = 480, fps: float = 30.0) -> MujocoCamera:
    """Registry factory ``"sim/mujoco"``: a camera of a simulated robot's scene, by MJCF camera name."""
    simulation = getattr(robot, "simulation", None)
    if not isinstance(simulation, MujocoSimulation):
        raise ConfigError(f"robot={type(robot).__name__}: 'sim/mujoco' cameras need a MuJoCo-simulated robot")
    return MujocoCamera(simulation, CameraSpec(name, int(width), int(height), float(fps)))
