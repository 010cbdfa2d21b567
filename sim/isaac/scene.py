"""The pick-cube scene's static table, floor and movable cube, read from our scene MJCF (never typed in twice).

World frame as in the MuJoCo scene (REP-103, m): the robot base at the origin, the table top at z = 0. The
table legs are left out (under the table top, out of the arm's reach) and so is the visual-only target marker
(its position is kept by the arm; Isaac renders nothing here).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rcs.errors import ConfigError


@dataclass(frozen=True)
class Box:
    """A box: centre ``pos`` (3,) m and ``half_size`` (3,) m in the world frame (axis-aligned), ``friction``
    (sliding coefficient, 1), ``mass`` (kg; 0 = static)."""

    pos: tuple[float, float, float]
    half_size: tuple[float, float, float]
    friction: float
    mass: float = 0.0


@dataclass(frozen=True)
class PickCubeScene:
    """What the Isaac scene needs of the MuJoCo pick-cube scene.

    Attributes:
        table: the table top (static).
        floor_z: m, height of the floor plane.
        cube: the movable cube at its keyframe ``"home"`` pose.
        target: m, position of the target marker at the keyframe.
    """

    table: Box
    floor_z: float
    cube: Box
    target: tuple[float, float, float]


def read_pick_cube_scene(scene_mjcf: Path, keyframe: str = "home") -> PickCubeScene:
    """Read the geoms ``"table"`` (box), ``"floor"`` (plane) and body/geom ``"cube"`` (box, free joint) and the
    mocap body ``"target"`` of ``scene_mjcf`` at ``keyframe``.

    Raises:
        ConfigError: the file does not load or lacks one of those (the message names the file and the element).
    """
    import mujoco

    try:
        m = mujoco.MjModel.from_xml_path(str(scene_mjcf))
    except (ValueError, FileNotFoundError) as e:
        raise ConfigError(f"{scene_mjcf}: does not load in MuJoCo: {str(e).splitlines()[0]}") from None
    d = mujoco.MjData(m)
    kid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_KEY, keyframe)
    if kid < 0:
        raise ConfigError(f"{scene_mjcf}: no keyframe {keyframe!r}")
    mujoco.mj_resetDataKeyframe(m, d, kid)
    mujoco.mj_forward(m, d)

    def geom(name: str, kind: int) -> int:
        gid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, name)
        if gid < 0 or int(m.geom_type[gid]) != int(kind):
            raise ConfigError(f"{scene_mjcf}: needs a geom {name!r} of type {mujoco.mjtGeom(kind).name}")
        return gid

    table = geom("table", mujoco.mjtGeom.mjGEOM_BOX)
    floor = geom("floor", mujoco.mjtGeom.mjGEOM_PLANE)
    cube = geom("cube", mujoco.mjtGeom.mjGEOM_BOX)
    for gid in (table, cube):
        if not np.allclose(d.geom_xmat[gid], np.eye(3).ravel(), atol=1e-9):
            raise ConfigError(f"{scene_mjcf}: geom {m.geom(gid).name!r} must be axis-aligned at {keyframe!r}")
    bid = int(m.geom_bodyid[cube])
    tid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "target")
    if tid < 0 or m.body_mocapid[tid] < 0:
        raise ConfigError(f"{scene_mjcf}: needs a mocap body 'target'")

    def vec(a: np.ndarray) -> tuple[float, float, float]:
        return (float(a[0]), float(a[1]), float(a[2]))

    return PickCubeScene(
        table=Box(vec(d.geom_xpos[table]), vec(m.geom_size[table]), float(m.geom_friction[table][0])),
        floor_z=float(d.geom_xpos[floor][2]),
        cube=Box(vec(d.xpos[bid]), vec(m.geom_size[cube]), float(m.geom_friction[cube][0]), float(m.body_mass[bid])),
        target=vec(d.mocap_pos[m.body_mocapid[tid]]),
    )
