"""Configuration of a robot server (``rcs robot --config FILE``): a YAML or JSON mapping, every key checked.

Example (``launch/robots/sim_panda.yaml``)::

    robot: sim/panda              # registered robot name
    robot_config: {scene: pick_cube}
    rate_hz: 500                  # control loop and state publishing rate
    state_endpoint: tcp://127.0.0.1:5600
    command_endpoint: tcp://127.0.0.1:5601
    cameras: [{name: front, width: 320, height: 240, fps: 5}]
    safety: {velocity_scale: 0.5}
    trajectory: {start_tolerance: 0.05}
    # optional: max_frame_bytes: 1048576 (largest frame a client may send, ZMQ_MAXMSGSIZE);
    # curve_secret: keys/robot.key_secret and allow: keys/allow.txt (CurveZMQ on both endpoints)

Unknown keys, wrong types and missing required values raise :class:`rcs.errors.ConfigError` naming the key.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rcs.errors import ConfigError

#: Default cap of one received frame on the command endpoint (bytes): a trajectory of the default
#: ``max_points`` (10,000) knots of 8 float64 values is 640,000 bytes; metadata frames are at most 64 KiB.
DEFAULT_MAX_FRAME_BYTES = 1 << 20
#: Default cap of all frames of one received command, in frames' worth (positions + velocities + times + metadata).
MESSAGE_FRAMES = 4
#: Bounds of both caps: a metadata frame may be 64 KiB; the policy protocol's tensors at most 64 MiB.
MIN_FRAME_BYTES = 64 * 1024 + 1024
MAX_FRAME_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class PublishedCameraConfig:
    """A camera whose frames the server publishes.

    Attributes:
        name: camera name (for simulated robots: the MJCF camera).
        width, height: image size (px).
        fps: publishing rate (Hz).
        backend: registered camera factory (``rcs.cameras``), called with ``robot=``, ``name=``, size.
        options: further factory options, e.g. ``{source: /dev/video0}`` for ``opencv`` (docs/hardware.md).
    """

    name: str
    width: int = 320
    height: int = 240
    fps: float = 10.0
    backend: str = "sim/mujoco"
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.options, dict):
            raise ConfigError(f"camera {self.name!r}: options={self.options!r} must be a mapping of factory options")


@dataclass(frozen=True)
class PolicyLinkConfig:
    """Connect the control loop to a policy server (``rcs serve``) through :class:`rcs.control.policy_link.PolicyLink`.

    Attributes:
        endpoint: the policy server.
        manifest: the policy manifest (JSON) whose ``schema`` the robot expects; the same file ``rcs serve``
            loads, so both sides agree by construction and a mismatch refuses to arm. An action layout that is a
            TCP pose (a :class:`rcs.control.cartesian.PoseLayout`, + gripper) is converted to joint targets with
            the arm's inverse kinematics on the robot side.
        budget_s: per-request time budget (s).
        replan_steps: policy-rate actions executed from each chunk before the next request (the request period
            is ``replan_steps * policy_dt``); default the checkpoint's ``n_action_steps`` (``config.json`` beside
            the manifest), else 1, exactly as ``rcs eval`` runs it. Watchdog timeouts not configured follow it.
        mode: command mode of the policy's actions (default the device kind's: arms ``joint_positions``,
            quadrotors ``position``); a learned flight policy writes ``motor_thrusts``. Remote trajectories and
            poses are commands of the default mode: a server whose policy runs another mode refuses them.
        target: quadrotors, flight policies (``observation.target``): the hover point (m, world); default the
            vehicle's position when the policy takes over.
        latency_compensation: flight policies: feed the policy the vehicle's state predicted at the time its action
            is expected at the motors (:class:`rcs.remote.observation.VehicleObservation`), not the state as
            measured; ``false`` feeds the measured state.
    """

    endpoint: str
    manifest: str
    budget_s: float = 0.1
    replan_steps: int | None = None
    mode: str | None = None
    target: tuple[float, float, float] | None = None
    latency_compensation: bool = True

    def __post_init__(self) -> None:
        if self.target is not None:
            try:
                target = tuple(float(v) for v in self.target)
            except (TypeError, ValueError):
                target = ()
            if len(target) != 3 or not all(math.isfinite(v) for v in target):
                raise ConfigError(f"policy.target={self.target!r} must be [x, y, z], finite (m, world)")
            object.__setattr__(self, "target", target)
        if not isinstance(self.latency_compensation, bool):
            raise ConfigError(f"policy.latency_compensation={self.latency_compensation!r} must be true or false")
        steps = self.replan_steps
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
            raise ConfigError(f"policy.replan_steps={self.replan_steps!r} must be a positive integer (policy steps)")


@dataclass(frozen=True)
class ServerConfig:
    """Everything a robot server needs (see the module docstring for a YAML example).

    Attributes:
        robot: registered robot name (``rcs list``).
        robot_config: keyword configuration of the robot factory.
        rate_hz: control rate; default the spec's control rate capped at 500 Hz.
        state_endpoint: where state, status and camera frames are published (ZeroMQ PUB, bound).
        command_endpoint: where commands are accepted (ZeroMQ ROUTER, bound).
        realtime: ask for SCHED_FIFO / mlockall for the loop thread (falls back with a warning).
        cameras: cameras to publish.
        safety: overrides of the safety filter config (arms: ``ArmSafetyConfig`` fields; quadrotors:
            ``geofence: {lower, upper}``, ``max_altitude`` (both required) and other
            ``QuadrotorSafetyConfig`` fields).
        watchdog: ``WatchdogConfig`` fields (``stop_after_s``, ``disarm_after_s``, ``fade_in_s``).
        executor: ``ExecutorConfig`` fields (``strategy``, ``max_age_s``...).
        trajectory: ``TrajectoryLimits`` fields (``start_tolerance``, ``max_duration_s``, ...) plus
            ``max_age_s`` (oldest accepted command stamp, s), ``max_future_s``, ``target_velocity_scale``
            (pose targets) and ``settle_s`` (the last point is held this long as part of the plan, default 0.5).
        start_armed: accept motion commands from the start (default: arms yes, quadrotors no).
        status_period_s: period of STATUS messages.
        policy: optional link to a policy server.
        max_frame_bytes: largest frame a client may send to the command endpoint (bytes; libzmq drops the
            connection of a peer sending a larger one before buffering it, ``ZMQ_MAXMSGSIZE``).
        max_message_bytes: largest sum of the frames of one command (bytes; 0, the default: 4 x ``max_frame_bytes``);
            a larger message is released as it is read and answered ``oversize``.
        curve_secret: the server's CurveZMQ key pair (``.key_secret`` of ``rcs keygen``); with ``allow``,
            both endpoints (commands and the state stream) accept only clients whose keys are listed.
        allow: allow-list of client public keys (text file of Z85 keys or a directory of ``.key`` files).
    """

    robot: str
    robot_config: dict[str, Any] = field(default_factory=dict)
    rate_hz: float | None = None
    state_endpoint: str = "tcp://127.0.0.1:5600"
    command_endpoint: str = "tcp://127.0.0.1:5601"
    realtime: bool = True
    cameras: tuple[PublishedCameraConfig, ...] = ()
    safety: dict[str, Any] = field(default_factory=dict)
    watchdog: dict[str, Any] = field(default_factory=dict)
    executor: dict[str, Any] = field(default_factory=dict)
    trajectory: dict[str, Any] = field(default_factory=dict)
    start_armed: bool | None = None
    status_period_s: float = 0.2
    policy: PolicyLinkConfig | None = None
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    max_message_bytes: int = 0
    curve_secret: str | None = None
    allow: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.robot, str) or not self.robot:
            raise ConfigError(f"robot={self.robot!r} must be a registered robot name (see 'rcs list')")
        if self.rate_hz is not None and not (isinstance(self.rate_hz, (int, float)) and self.rate_hz > 0):
            raise ConfigError(f"rate_hz={self.rate_hz!r} must be a positive number (Hz)")
        if not self.status_period_s > 0:
            raise ConfigError(f"status_period_s={self.status_period_s!r} must be > 0")
        for key in ("robot_config", "safety", "watchdog", "executor", "trajectory"):
            if not isinstance(getattr(self, key), dict):
                raise ConfigError(f"{key}={getattr(self, key)!r} must be a mapping")
        for key, low, high in (
            ("max_frame_bytes", MIN_FRAME_BYTES, MAX_FRAME_BYTES),
            ("max_message_bytes", self.max_frame_bytes, MESSAGE_FRAMES * MAX_FRAME_BYTES),
        ):
            value = getattr(self, key)
            if key == "max_message_bytes" and type(value) is int and value == 0:
                object.__setattr__(self, key, MESSAGE_FRAMES * self.max_frame_bytes)
                continue
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ConfigError(f"{key}={value!r} must be an integer number of bytes in [{low}, {high}]")
        for key in ("curve_secret", "allow"):
            if getattr(self, key) is not None and not isinstance(getattr(self, key), str):
                raise ConfigError(f"{key}={getattr(self, key)!r} must be a file path")
        if (self.curve_secret is None) != (self.allow is None):
            raise ConfigError(
                "curve_secret and allow go together (CURVE needs the server key pair and the allow-list of client keys)"
            )


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a mapping, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(map(str, unknown))}; accepted: {', '.join(sorted(names))}"
        )
    try:
        return cls(**data)
    except TypeError as e:
        raise ConfigError(f"{where}: {e}") from None


def server_config(data: Mapping[str, Any]) -> ServerConfig:
    """A :class:`ServerConfig` from a plain mapping (e.g. parsed YAML)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"robot server config must be a mapping, got {type(data).__name__}")
    data = dict(data)
    cams = data.get("cameras") or []
    if not isinstance(cams, list):
        raise ConfigError(f"cameras={cams!r} must be a list of mappings")
    data["cameras"] = tuple(_build(PublishedCameraConfig, c, f"cameras[{i}]") for i, c in enumerate(cams))
    if data.get("policy") is not None:
        data["policy"] = _build(PolicyLinkConfig, data["policy"], "policy")
    for key in ("robot_config", "safety", "watchdog", "executor", "trajectory"):
        if data.get(key) is None:
            data.pop(key, None)
    return _build(ServerConfig, data, "robot server config")


def load_mapping(path: str | Path) -> dict[str, Any]:
    """Read a YAML (``.yaml``/``.yml``) or JSON file holding a mapping; errors name the file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {str(p)!r} does not exist")
    text = p.read_text()
    try:
        if p.suffix in (".yaml", ".yml"):
            import yaml  # light, but only needed here

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as e:  # noqa: BLE001 yaml and json raise many types
        raise ConfigError(
            f"config file {p}: not valid {'YAML' if p.suffix in ('.yaml', '.yml') else 'JSON'}: {e}"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p}: must hold a mapping, got {type(data).__name__}")
    return data


def resolve_paths(data: dict[str, Any], base: str | Path) -> dict[str, Any]:
    """Make the file paths of a config (``policy.manifest``, ``curve_secret``, ``allow``) relative to ``base``
    (the config's directory)."""
    for key in ("curve_secret", "allow"):
        if isinstance(data.get(key), str) and not Path(data[key]).is_absolute():
            data[key] = str(Path(base) / data[key])
    policy = data.get("policy")
    if isinstance(policy, dict) and isinstance(policy.get("manifest"), str):
        manifest = Path(policy["manifest"])
        if not manifest.is_absolute():
            data["policy"] = {**policy, "manifest": str(Path(base) / manifest)}
    return data


def load_server_config(path: str | Path) -> ServerConfig:
    """Load and check a robot server config file (relative paths in it are relative to the file)."""
    try:
        return server_config(resolve_paths(load_mapping(path), Path(path).parent))
    except ConfigError as e:
        msg = str(e)
        raise ConfigError(msg if str(path) in msg else f"{path}: {msg}") from None
