"""A robot server's live stream in rerun: measured and commanded joints, the TCP, cameras, the watchdog stage,
safety interventions and the control loop's lateness.

The view is a process of its own (``rcs view``, or ``rcs robot --view``) that subscribes to what the robot server
publishes anyway (STATE every tick, STATUS every ``status_period_s``, camera frames; docs/ros2.md "Robot
channel"), so it adds nothing to the control loop: no logging call, no lock, no allocation in the loop thread.
If the viewer process falls behind, ZeroMQ drops messages at its receive high-water mark, never the robot.

Entities (timeline ``tick``: the loop tick; ``robot_time``: the host monotonic capture time, s):

- ``robot/joints/<joint>/measured`` and ``.../commanded`` (rad), ``robot/gripper/measured|commanded``
  (normalized width), ``robot/tcp`` (3D point, m, base frame);
- ``camera/<name>`` (RGB image);
- ``robot/stage`` (text, on change), ``loop/lateness_us/p99`` and ``loop/missed_ticks``,
  ``safety/interventions/<reason>`` (counts since start).

rerun is imported only here (lazily by ``rcs view``): the light core never pulls it in.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from rcs.errors import ConfigError
from rcs.remote.client import RobotClient
from rcs.remote.wire import TOPIC_CAMERA, TOPIC_STATE, TOPIC_STATUS, RobotMessage

log = logging.getLogger(__name__)

#: where a rerun viewer listens by default (``rerun`` started without arguments).
DEFAULT_VIEWER_URL = "rerun+http://127.0.0.1:9876/proxy"
APPLICATION_ID = "rcs"
#: s at most spent, once stopped, logging what had already arrived (bounded: a stop must not hang on a flood;
#: below rcs.viewer.process.STOP_TIMEOUT_S, after which the view is killed)
DRAIN_S = 5.0


def viewer_listening(url: str = DEFAULT_VIEWER_URL, timeout_s: float = 0.2) -> bool:
    """Whether something accepts TCP connections at ``url``'s host and port (a running rerun viewer)."""
    parsed = urlparse(url.replace("rerun+http", "http", 1))
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 9876), timeout=timeout_s):
            return True
    except OSError:
        return False


def open_recording(save: str | Path | None, connect: str | None) -> tuple[Any, str]:
    """A rerun recording stream and where it goes: ``save`` (an ``.rrd`` file), else ``connect`` (a viewer
    URL), else the default viewer if one is listening, else ``outputs/view/rcs-<time>.rrd``."""
    import rerun as rr

    rec = rr.RecordingStream(APPLICATION_ID)
    if save is None and connect is None and viewer_listening():
        connect = DEFAULT_VIEWER_URL
    if save is None and connect is not None:
        rec.connect_grpc(connect)
        return rec, connect
    path = Path(save) if save is not None else Path("outputs/view") / time.strftime("rcs-%Y%m%d-%H%M%S.rrd")
    if path.suffix != ".rrd":
        raise ConfigError(f"--save={str(path)!r}: a rerun recording file ends in .rrd")
    path.parent.mkdir(parents=True, exist_ok=True)
    rec.save(str(path))
    return rec, str(path)


class RobotView:
    """Logs one robot server's stream into ``recording`` (see the module docstring).

    Args:
        client: a :class:`RobotClient` subscribed to ``state``, ``status`` and ``camera/``.
        description: the server's DESCRIBE reply (joint names, command layout).
        recording: a ``rerun.RecordingStream``.
    """

    def __init__(self, client: RobotClient, description: Mapping[str, Any], recording: Any) -> None:
        import rerun as rr

        self._rr = rr
        self.client, self.rec = client, recording
        self.joints: list[str] = list(description.get("joint_names") or [])
        self.states = self.statuses = self.images = 0
        self._stage: str | None = None

    def run(self, stop: threading.Event, duration_s: float | None = None) -> None:
        """Log until ``stop`` is set (or ``duration_s`` passed), then what had already arrived by then: a view that
        falls behind (its first logs are slow, the machine is busy) still records a short run to its end."""
        end = None if duration_s is None else time.monotonic() + duration_s
        while not stop.is_set() and (end is None or time.monotonic() < end):
            got = self.client.receive(timeout_s=0.2)
            if got is not None:
                self._log(*got)
        drain_end = time.monotonic() + DRAIN_S
        while time.monotonic() < drain_end:
            got = self.client.receive(timeout_s=0.0)
            if got is None:
                break
            self._log(*got)

    def _log(self, topic: bytes, message: RobotMessage) -> None:
        self._time(message)
        if topic == TOPIC_STATE:
            self._state(message)
        elif topic == TOPIC_STATUS:
            self._status(message.meta)
        elif topic.startswith(TOPIC_CAMERA):
            self._camera(topic[len(TOPIC_CAMERA) :].decode(errors="replace"), message)

    def _time(self, message: RobotMessage) -> None:
        self.rec.set_time("tick", sequence=int(message.header.tick))
        self.rec.set_time("robot_time", duration=float(message.header.capture_time))

    def _scalar(self, path: str, value: float) -> None:
        self.rec.log(path, self._rr.Scalars([float(value)]))

    def _state(self, message: RobotMessage) -> None:
        rr, t = self._rr, message.tensors
        self.states += 1
        if "joint_positions" in t:
            measured = np.asarray(t["joint_positions"], dtype=np.float64)
            names = self.joints or [f"joint{i + 1}" for i in range(len(measured))]
            for name, q in zip(names, measured, strict=False):
                self._scalar(f"robot/joints/{name}/measured", q)
            if "gripper" in t:
                self._scalar("robot/gripper/measured", float(np.asarray(t["gripper"]).reshape(-1)[0]))
            command = t.get("command")
            if command is not None and message.meta.get("command_mode") == "joint_positions":
                command = np.asarray(command, dtype=np.float64)
                for name, q in zip(names, command, strict=False):
                    self._scalar(f"robot/joints/{name}/commanded", q)
                if len(command) > len(names):
                    self._scalar("robot/gripper/commanded", command[len(names)])
            if "tcp_position" in t:
                self.rec.log("robot/tcp", rr.Points3D([np.asarray(t["tcp_position"], dtype=np.float64)]))
        elif "position" in t:  # a quadrotor
            self.rec.log("robot/position", rr.Points3D([np.asarray(t["position"], dtype=np.float64)]))
        stage = message.meta.get("stage")
        if stage != self._stage:
            self._stage = stage
            self.rec.log("robot/stage", rr.TextLog(f"stage: {stage}"))

    def _status(self, status: Mapping[str, Any]) -> None:
        self.statuses += 1
        loop = status.get("loop") or {}
        lateness = loop.get("lateness_us") or {}
        if "p99" in lateness:
            self._scalar("loop/lateness_us/p99", lateness["p99"])
        if "missed_ticks" in loop:
            self._scalar("loop/missed_ticks", loop["missed_ticks"])
        for reason, count in (status.get("safety_interventions") or {}).items():
            self._scalar(f"safety/interventions/{reason}", count)

    def _camera(self, name: str, message: RobotMessage) -> None:
        image = message.tensors.get("image")
        if image is not None:
            self.images += 1
            self.rec.log(f"camera/{name}", self._rr.Image(np.asarray(image)))
