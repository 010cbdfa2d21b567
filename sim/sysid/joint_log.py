"""A robot's joint log as system identification reads it: measured joint positions and the joint targets sent,
frame by frame, per episode, from a LeRobot dataset in the run-log layout (:mod:`rcs.deploy.run_log`).

Frame ``k`` holds the state measured at tick ``k`` (``observation.state``: joints + gripper) and the command the
loop wrote at tick ``k - 1`` (``action``: joint targets + gripper), so replaying ``action[k]`` for one period from
state ``k - 1`` predicts state ``k``. The log's ``fps`` is the replay period: a log taken at the control loop's
rate replays every command; a slower log replays each logged command held for a whole frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rcs.errors import ConfigError
from rcs.recording.features import ACTION, STATE
from rcs.spec import ArmSpec


@dataclass(frozen=True)
class JointLog:
    """Episodes of measured joints and sent targets.

    Attributes:
        fps: frames per second (Hz) of the log.
        joint_names: the arm's joints, in the columns' order.
        states: per episode (T, n) measured joint positions (rad).
        commands: per episode (T, n + 1) joint targets (rad) and gripper (normalized width) of each frame.
        robot: the robot named by the log (``meta/info.json``'s ``robot_type``), when it names one.
    """

    fps: int
    joint_names: tuple[str, ...]
    states: tuple[np.ndarray, ...]
    commands: tuple[np.ndarray, ...]
    robot: str | None = None

    @property
    def frames(self) -> int:
        return sum(len(s) for s in self.states)


def read_joint_log(root: str | Path, spec: ArmSpec, max_episodes: int | None = None) -> JointLog:
    """The joint log in the LeRobot dataset at ``root``, checked against the arm ``spec`` (its joints, in order).

    Raises:
        ConfigError: a missing folder, a dataset without the run-log features, or one from another robot (other
            joint names), each in one line naming the file or the field.
    """
    path = Path(root)
    info = path / "meta" / "info.json"
    if not info.is_file():
        raise ConfigError(f"--log={path}: not a LeRobot dataset (no {info})")
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset(f"local/{path.name}", root=path)
    features = ds.meta.features
    for key in (STATE, ACTION):
        if key not in features:
            raise ConfigError(f"--log={path}: no {key!r} feature (a run log of rcs deploy or of rcs sysid --collect)")
    names = tuple(features[STATE]["names"] or ())
    expected = (*spec.joint_names, "gripper")
    if names != expected:
        raise ConfigError(
            f"--log={path}: {STATE} names {list(names)} are not {spec.name}'s joints {list(expected)}: a log of another robot"
        )
    command_names = tuple(features[ACTION]["names"] or ())
    if command_names != expected:
        raise ConfigError(
            f"--log={path}: {ACTION} names {list(command_names)}, expected joint targets {list(expected)}"
        )
    frames = ds.hf_dataset.with_format("numpy")
    episode = np.asarray(frames["episode_index"]).reshape(-1)
    state = np.stack(frames[STATE]).astype(np.float64)
    action = np.stack(frames[ACTION]).astype(np.float64)
    n = spec.dof
    states, commands = [], []
    for e in sorted(set(episode.tolist()))[: max_episodes or None]:
        rows = episode == e
        if rows.sum() >= 2:
            states.append(state[rows, :n])
            commands.append(action[rows])
    if not states:
        raise ConfigError(f"--log={path}: no episode with 2 frames or more")
    return JointLog(int(ds.meta.fps), spec.joint_names, tuple(states), tuple(commands), ds.meta.robot_type)
