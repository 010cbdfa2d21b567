"""The teleoperation device interface: device input -> :class:`TeleopCommand` -> env action.

A device only parses its own input (key events, HID reports, leader-arm joint readings) into a
:class:`TeleopCommand`: a Cartesian twist of the tool centre point, or absolute joint targets, plus a gripper
command and episode-control events. :class:`rcs.teleop.mapping.ActionMapper` turns commands into the action of
whatever action mode the env uses (joint/Cartesian, absolute/relative), so every device drives every mode.

Frames and units (:mod:`rcs.geometry`): twists in the arm's base frame (x forward, y left, z up), m/s and rad/s;
gripper as a normalized width (0 closed, 1 open).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np


class EpisodeEvent(str, Enum):
    """Episode controls a device can emit."""

    START = "start"  # begin recording an episode
    SAVE = "save"  # stop and save the episode
    RERECORD = "rerecord"  # discard the episode and record it again (same scene)
    DISCARD = "discard"  # discard the episode, next scene
    QUIT = "quit"  # discard the episode in progress and stop


@dataclass
class TeleopCommand:
    """What the operator asks for at one instant.

    Attributes:
        twist: (6,) ``[vx, vy, vz (m/s), wx, wy, wz (rad/s)]`` TCP velocity in the base frame, or None.
        joint_positions: (n,) absolute joint targets (rad) in the follower's joint order, or None.
        gripper: absolute gripper target (normalized width), or None to keep the current target.
        gripper_velocity: change of the gripper target (normalized width per s), for jogging.
        events: episode controls since the previous command.
    """

    twist: np.ndarray | None = None
    joint_positions: np.ndarray | None = None
    gripper: float | None = None
    gripper_velocity: float = 0.0
    events: tuple[EpisodeEvent, ...] = ()


class Teleop(ABC):
    """A teleoperation device.

    Attributes:
        realtime: True for human-driven devices: the recorder paces the loop to the wall clock.
        name: short name shown in progress lines.
        episode_controls: whether the device emits episode controls (START, SAVE...). A device that cannot (a
            leader arm, a SpaceMouse) is recorded back to back: each episode starts at its reset and runs to the
            env's time limit.
    """

    realtime: bool = True
    name: str = "teleop"
    episode_controls: bool = True

    # connect, close and reset are optional hooks, not abstract: devices without a link or episode state
    # (scripted experts, the keyboard) keep the no-op.
    def connect(self) -> None:  # noqa: B027 (optional hook, no-op by default)
        """Open the device (idempotent)."""

    def close(self) -> None:  # noqa: B027 (optional hook, no-op by default)
        """Release the device (idempotent)."""

    def __enter__(self) -> Teleop:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def reset(self, obs: dict[str, np.ndarray]) -> None:  # noqa: B027 (optional hook, no-op by default)
        """Called at the start of every episode with the first observation."""

    @abstractmethod
    def command(self, obs: dict[str, np.ndarray]) -> TeleopCommand:
        """The operator's command now (polls the device; never blocks longer than one control period)."""

    def describe(self) -> dict[str, Any]:
        """Plain-data description stored in the dataset's recording metadata."""
        return {"teleop": self.name}


class PolicyTeleop(Teleop, ABC):
    """A device that produces env actions directly (scripted experts, policies): no mapping."""

    realtime = False

    @abstractmethod
    def action(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """The env action for ``obs`` (what the dataset records as the demonstrated action)."""

    def executed(self, action: np.ndarray) -> np.ndarray:
        """The command actually sent to the robot for the recorded ``action``: the same by default. A scripted
        demonstrator may perturb it (noise injection) so the dataset shows it correcting its own errors
        while the recorded label stays the clean action."""
        return action

    def command(self, obs: dict[str, np.ndarray]) -> TeleopCommand:
        return TeleopCommand()


@dataclass
class EventLatch:
    """Collects episode events between polls (device parsers push, the loop pops)."""

    pending: list[EpisodeEvent] = field(default_factory=list)

    def push(self, event: EpisodeEvent) -> None:
        self.pending.append(event)

    def pop_all(self) -> tuple[EpisodeEvent, ...]:
        out, self.pending = tuple(self.pending), []
        return out
