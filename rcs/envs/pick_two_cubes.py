"""Language-conditioned picking: a red and a blue cube on the table, the instruction says which one to bring
to the goal point ("pick the red cube" / "pick the blue cube").

Built on :class:`rcs.envs.pick_cube.PickCubeEnv` (same arm, action modes, goal, success threshold) with a scene
holding two movable objects (``"cube_red"``, ``"cube_blue"``; the Panda's ``pick_two_cubes`` scene).

Observation: everything of pick-cube, where ``cube_position`` / ``cube_quaternion`` are the pose of the
*instructed* cube (what an object tracker asked for "the cube" of the instruction reports, and what the
scripted expert reads, so :class:`rcs.experts.pick_cube.PickCubeExpert` demonstrates this task unchanged),
plus ``red_cube_position``, ``red_cube_quaternion``, ``blue_cube_position``, ``blue_cube_quaternion``. The
recorded ``observation.environment_state`` holds all of them (:attr:`PickTwoCubesEnv.environment_state_layout`);
a policy that must *understand* the instruction must not read the ``cube_*`` entries (``rcs train
--ignore-entry``); it gets the instruction text (:attr:`instruction`, also ``info["instruction"]``), both cubes'
poses and/or images.

Success: the instructed cube's centre within ``success_threshold`` of the goal. ``info["wrong_cube_lifted"]``
reports the other cube more than 3 cm above the table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from gymnasium import spaces

from rcs.devices import SceneControl
from rcs.envs.pick_cube import PickCubeConfig, PickCubeEnv
from rcs.errors import ConfigError
from rcs.geometry import quat_from_euler_rpy

#: colour -> scene object name.
CUBES: dict[str, str] = {"red": "cube_red", "blue": "cube_blue"}


def instruction_for(colour: str) -> str:
    """The instruction text of a colour (the dataset's per-episode ``task``)."""
    return f"pick the {colour} cube"


@dataclass(frozen=True)
class PickTwoCubesConfig(PickCubeConfig):
    """Two-cube task configuration (see :class:`PickCubeConfig`).

    Attributes:
        colour: the instructed cube for every episode (``"red"`` / ``"blue"``), or ``None`` to draw it from the
            episode seed (half of the episodes each). ``reset(options={"colour": ...})`` overrides it.
        min_separation: m, least distance between the two cubes' centres at reset.
    """

    robot_config: dict[str, Any] = field(default_factory=lambda: {"scene": "pick_two_cubes"})
    colour: str | None = None
    min_separation: float = 0.08

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.colour is not None and self.colour not in CUBES:
            raise ConfigError(f"colour={self.colour!r}; known: {sorted(CUBES)} or None")


class PickTwoCubesEnv(PickCubeEnv):
    """Gymnasium env: pick the instructed one of two cubes (module docstring)."""

    config: PickTwoCubesConfig

    #: pick-cube's environment state (the instructed cube, the goal) + both cubes' poses, so a dataset holds
    #: what a policy needs to pick by instruction from object poses (it must then ignore the ``cube_*`` entries).
    environment_state_layout = PickCubeEnv.environment_state_layout + tuple(
        entry
        for colour in CUBES
        for entry in (
            (f"{colour}_cube_position", tuple(f"{colour}_{a}" for a in ("x", "y", "z"))),
            (f"{colour}_cube_quaternion", tuple(f"{colour}_{a}" for a in ("qw", "qx", "qy", "qz"))),
        )
    )

    def __init__(
        self, config: PickTwoCubesConfig | None = None, render_mode: str | None = None, **overrides: Any
    ) -> None:
        if config is None:
            config = PickTwoCubesConfig(**overrides)
            overrides = {}
        super().__init__(config, render_mode, **overrides)
        missing = [name for name in CUBES.values() if name not in self.scene.objects]
        if missing:
            raise ConfigError(
                f"robot={config.robot!r} scene objects {self.scene.objects} lack {missing}: "
                "use a two-cube scene (robot_config={'scene': 'pick_two_cubes'})"
            )
        f32 = np.float32
        extra = {}
        for colour in CUBES:
            extra[f"{colour}_cube_position"] = spaces.Box(-np.inf, np.inf, (3,), dtype=f32)
            extra[f"{colour}_cube_quaternion"] = spaces.Box(-1.0, 1.0, (4,), dtype=f32)
        self.observation_space = spaces.Dict({**self.observation_space.spaces, **extra})
        self.colour = config.colour or "red"
        self.instruction = instruction_for(self.colour)

    def _reset_task(self, options: dict) -> None:
        cfg, sc, rng = self.config, self.scene, self.np_random
        colour = options.get("colour", cfg.colour)
        if colour is None:
            colour = "red" if rng.random() < 0.5 else "blue"
        if colour not in CUBES:
            raise ConfigError(f"options['colour']={colour!r}; known: {sorted(CUBES)}")
        self.colour = colour
        self.instruction = instruction_for(colour)
        if isinstance(self.arm, SceneControl):
            placed: list[np.ndarray] = []
            for name in CUBES.values():
                for _ in range(100):
                    xy = rng.uniform(sc.cube_spawn_low, sc.cube_spawn_high)
                    if all(np.linalg.norm(xy - p) >= cfg.min_separation for p in placed):
                        break
                placed.append(xy)
                yaw = rng.uniform(-np.pi / 4, np.pi / 4)
                self.arm.set_object_pose(
                    name,
                    np.array([xy[0], xy[1], sc.table_height + sc.cube_half_size]),
                    quat_from_euler_rpy(0.0, 0.0, yaw),
                )
        self._target = rng.uniform(sc.target_low, sc.target_high)
        if isinstance(self.arm, SceneControl):
            self.arm.set_marker("target", self._target)
        self.action_mode.reset()

    def _object_observation(self) -> dict[str, np.ndarray]:
        """Both cubes' poses, plus ``cube_*`` naming the instructed one (what the expert and success use)."""
        obs: dict[str, np.ndarray] = {}
        for colour, name in CUBES.items():
            p, q = self.objects.object_pose(name)
            obs[f"{colour}_cube_position"] = p.astype(np.float32)
            obs[f"{colour}_cube_quaternion"] = q.astype(np.float32)
        obs["cube_position"] = obs[f"{self.colour}_cube_position"]
        obs["cube_quaternion"] = obs[f"{self.colour}_cube_quaternion"]
        return obs

    def _task_info(self, obs: dict) -> dict:
        info = super()._task_info(obs)
        other = "blue" if self.colour == "red" else "red"
        info["instruction"] = self.instruction
        info["wrong_cube_lifted"] = bool(
            obs[f"{other}_cube_position"][2] > self.scene.table_height + self.scene.cube_half_size + 0.03
        )
        return info

    def failure_reason(self, obs: dict, info: dict) -> str | None:
        """The episode ends early if either cube fell off the table."""
        low = self.scene.table_height - 0.05
        return "cube off the table" if min(obs["red_cube_position"][2], obs["blue_cube_position"][2]) < low else None

    def wrong_object_lifted(self, info: dict) -> bool:
        """The cube that was not asked for was lifted (``info["wrong_cube_lifted"]``)."""
        return bool(info.get("wrong_cube_lifted"))
