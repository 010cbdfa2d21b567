"""Binding the control loop to a device: executor -> watchdog -> safety filter -> robot, every tick.

:class:`PolicyTask` is the :class:`rcs.control.loop.ControlTask` that runs a policy's action chunks on a
robot: the chunk executor gives the action for the tick, the watchdog decides between it and a fallback
(hold, controlled stop, disarm/land), the safety filter bounds the command, and what was actually commanded
is fed back so the next chunk splices onto it. :func:`make_policy_task` builds it for an arm or a quadrotor
from the device's spec; :data:`DEVICE_KINDS` holds what differs between device kinds, as data.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from rcs.control.chunking import ChunkExecutor, ExecutorConfig, limits_of_safety_filter
from rcs.devices import Arm, Quadrotor
from rcs.errors import ActionError, ConfigError
from rcs.safety.arm import ArmSafetyConfig, ArmSafetyFilter
from rcs.safety.base import SafetyFilter
from rcs.safety.quadrotor import QuadrotorSafetyConfig, QuadrotorSafetyFilter
from rcs.safety.watchdog import (
    ArmFallback,
    CommandHistory,
    EStop,
    Fallback,
    QuadrotorFallback,
    Stage,
    Watchdog,
    WatchdogConfig,
    fade,
)
from rcs.spec import WorkspaceBox
from rcs.types import Command, command_vector_of_arm

log = logging.getLogger(__name__)


class DeviceIO(Protocol):
    """Reads a device and writes :class:`Command` objects to it."""

    def read(self) -> Any:
        """The device's current state (``ArmState`` / ``QuadrotorState``)."""

    def write(self, command: Command) -> None:
        """Send a filtered command to the device."""


class ArmIO:
    """``"joint_positions"`` commands (joints, then gripper if present) to an :class:`rcs.devices.Arm`."""

    def __init__(self, robot: Arm) -> None:
        self.robot = robot
        self.dof = robot.spec.dof
        self.has_gripper = robot.spec.gripper is not None

    def read(self) -> Any:
        """The arm's :class:`rcs.types.ArmState`."""
        return self.robot.read()

    def write(self, command: Command) -> None:
        """Joint targets (rad) and, if present, the normalized gripper width."""
        v = command.values
        self.robot.command_joint_positions(v[: self.dof])
        if self.has_gripper:
            self.robot.command_gripper(float(v[self.dof]))


class QuadrotorIO:
    """Every quadrotor command mode (and ``"disarm"``) to an :class:`rcs.devices.Quadrotor`."""

    def __init__(self, robot: Quadrotor) -> None:
        self.robot = robot
        self._last_mode = ""
        self._writers: dict[str, Callable[[np.ndarray], object]] = {
            "position": lambda v: robot.command_position(v[:3], float(v[3])),
            "thrust_rates": lambda v: robot.command_thrust_rates(float(v[0]), v[1:4]),
            "motor_thrusts": robot.command_motor_thrusts,
            "motor_rpms": robot.command_motor_rpms,
            "disarm": lambda v: robot.disarm(),
        }

    def read(self) -> Any:
        """The vehicle's :class:`rcs.types.QuadrotorState`."""
        return self.robot.read()

    def write(self, command: Command) -> None:
        """Dispatch by mode; a repeated ``"disarm"`` is sent once."""
        if command.mode == "disarm" and self._last_mode == "disarm":
            return
        self._writers[command.mode](command.values)
        self._last_mode = command.mode


class PolicyTask:
    """A :class:`ControlTask` that executes policy chunks safely.

    Per tick: read the device; take this tick's action from the executor; let the watchdog decide the
    stage; command the action (faded in after engaging) when RUNNING, otherwise the fallback's command;
    pass the result through the safety filter (always); write it. The filtered command is fed back to the
    executor so the next chunk splices onto what was really commanded (during a fade-in, the executor's own
    action, since the fade is applied on top of the executor's plan).

    Args:
        io: device reader/writer.
        executor: the chunk executor (its names must match the policy's mode layout).
        safety: the safety filter.
        watchdog: the watchdog (its e-stop is :attr:`estop`).
        fallback: device-specific commands for non-running stages.
        mode: the command mode the policy's actions are in.
        hold_vector: the command vector (in ``mode``) that holds the device where a state measures it, used
            to seed the executor's history on engage; ``None`` if ``mode`` has no such vector.
    """

    def __init__(
        self,
        io: DeviceIO,
        executor: ChunkExecutor,
        safety: SafetyFilter,
        watchdog: Watchdog,
        fallback: Fallback,
        mode: str,
        hold_vector: Callable[[Any], np.ndarray] | None = None,
    ) -> None:
        self.io = io
        self.executor = executor
        self.safety = safety
        self.watchdog = watchdog
        self.fallback = fallback
        self.mode = mode
        self.hold_vector = hold_vector
        self.history = CommandHistory()
        self.last_command: Command | None = None  # before the safety filter (diagnostics)
        self.stage = Stage.IDLE
        self.write_errors = 0
        self._started = False
        self._engage_request: bool | None = None
        self._neutral: np.ndarray | None = None
        self._fade_tick: int | None = None

    @property
    def estop(self) -> EStop:
        """The latching e-stop the watchdog obeys."""
        return self.watchdog.estop

    def engage(self) -> None:
        """Hand control to the policy at the next tick (any thread)."""
        self._engage_request = True

    def disengage(self) -> None:
        """Take control back at the next tick (any thread)."""
        self._engage_request = False

    # -- ControlTask ------------------------------------------------------------------------------------
    def read(self, tick: int) -> Any:
        """Read the device."""
        return self.io.read()

    def compute(self, tick: int, state: Any) -> Command:
        """This tick's filtered command (see the class docstring for the pipeline)."""
        if not self._started:
            self.safety.reset(state)
            self._started = True
        self._apply_engage_request(tick, state)
        action = self.executor.step(tick)
        stage = self.watchdog.update(tick, action is not None, self.executor.last_chunk_tick)
        fading = False
        if stage is Stage.RUNNING and action is not None:  # the watchdog reports RUNNING only with an action
            command, fading = self._running(tick, state, action)
        else:
            command = self.fallback.command(stage, state, self.history, tick)
        self.stage = stage
        self.last_command = command
        safe = self.safety.filter(command, state)
        self.history.push(safe, tick)
        if safe.mode == self.mode:
            # The fade-in is the outermost layer: while it lasts the executor continues its own plan (feeding
            # it the faded command would make the next splice start from it and fade it a second time).
            self.executor.record_executed(tick, action if fading and action is not None else safe.values)
        return safe

    def write(self, tick: int, command: Command) -> None:
        """Write the command; a device rejection (a filter bug) is logged and counted, not raised."""
        try:
            self.io.write(command)
        except ActionError as e:  # the filter should make this impossible: log loudly, hold next tick
            self.write_errors += 1
            log.error("device rejected a filtered command at tick %d: %s", tick, e)

    # -- helpers ------------------------------------------------------------------------------------------
    def _apply_engage_request(self, tick: int, state: Any) -> None:
        request, self._engage_request = self._engage_request, None
        if request is None:
            return
        if not request:
            self.watchdog.disengage(tick)
            return
        self.watchdog.engage(tick)
        if self.executor.remaining(tick) == 0:
            seed = None
            if self.history.last is not None and self.history.last.mode == self.mode:
                seed = self.history.last.values
            elif self.hold_vector is not None:
                seed = self.hold_vector(state)
            if seed is not None:
                self.executor.seed(tick, seed)

    def _running(self, tick: int, state: Any, action: np.ndarray) -> tuple[Command, bool]:
        """The policy's command (faded in after engaging) and whether a fade is in progress."""
        if self.stage is not Stage.RUNNING:
            self.fallback.reset()
        start = self.watchdog.fade_started_at
        if start is not None and start != self._fade_tick:
            self._fade_tick = start
            self._neutral = self.fallback.neutral(self.mode, state, self.history)
        alpha = self.watchdog.fade_alpha(tick)
        if alpha < 1.0 and self._neutral is not None:
            return Command(self.mode, fade(self._neutral, action, alpha)), True
        return Command(self.mode, action), False

    def end_episode(self, label: str = "") -> dict[str, Any]:
        """Log one summary line each for the safety filter's interventions and the watchdog's stages of the
        episode that ends now (per-tick details stay at DEBUG), and start counting the next one."""
        return {"safety_interventions": self.safety.log.end_episode(label), **self.watchdog.end_episode(label)}

    def report(self) -> dict[str, Any]:
        """Counters of every stage of the pipeline."""
        return {
            "stage": self.stage.value,
            "ticks_in_stage": {s.value: n for s, n in self.watchdog.ticks_in_stage.items()},
            "estop": self.estop.triggered,
            "starved_ticks": self.executor.starved_ticks,
            "chunks_accepted": self.executor.accepted,
            "chunk_rejections": self.executor.rejections.summary(),
            "safety_interventions": self.safety.log.summary(),
            "write_errors": self.write_errors,
            "executor_limited_ticks": self.executor.limited_ticks,
        }


@dataclass(frozen=True)
class _DeviceParts:
    io: DeviceIO
    safety: SafetyFilter
    fallback: Fallback
    names: tuple[str, ...]
    hold_vector: Callable[[Any], np.ndarray] | None


def arm_safety_config(robot: Arm, rate_hz: float, workspace: WorkspaceBox | None = None) -> ArmSafetyConfig:
    """Spec limits plus a workspace box checked on the TCP: ``workspace`` if given, else the robot's scene
    workspace (if it exposes ``scene.workspace``; simulated arms do, a physical arm's box comes from its safety
    config in ``launch/robots/``).

    The TCP comes from ``robot.kinematics.forward`` (arm base frame); the shipped simulated scenes put the base
    at the world origin, so a world-frame box applies as is. A robot mounted elsewhere needs the base pose
    composed into ``tcp_position``. ``tcp_lipschitz`` comes from ``robot.kinematics.tcp_lipschitz()`` when the
    kinematics offer it (e.g. ``MinkKinematics``).
    """
    if workspace is None:
        workspace = getattr(getattr(robot, "scene", None), "workspace", None)
    kin = robot.kinematics
    # Kinematics that can bound the TCP's motion per joint motion (m/rad) let the filter prove whole
    # neighbourhoods inside the box per FK call, which keeps the workspace check within its per-tick budget.
    bound = getattr(kin, "tcp_lipschitz", None)
    lipschitz = tuple(float(v) for v in bound()) if workspace is not None and callable(bound) else None
    return ArmSafetyConfig(
        control_dt=1.0 / rate_hz,
        workspace=workspace,
        tcp_position=(lambda q: kin.forward(q)[0]) if workspace is not None else None,
        tcp_lipschitz=lipschitz,
    )


def _arm_parts(robot: Arm, safety: Any, control_dt: float, mode: str) -> _DeviceParts:
    if mode != "joint_positions":
        raise ConfigError(f"arm mode={mode!r}: arms are driven in 'joint_positions' mode")
    config = safety if isinstance(safety, ArmSafetyConfig) else arm_safety_config(robot, 1.0 / control_dt)
    _check_dt(config.control_dt, control_dt)
    filt = ArmSafetyFilter(robot.spec, config)

    def hold(state: Any) -> np.ndarray:
        return command_vector_of_arm(state, filt.has_gripper)

    return _DeviceParts(ArmIO(robot), filt, ArmFallback(hold, control_dt), filt.names, hold)


def _check_dt(config_dt: float, loop_dt: float) -> None:
    if abs(config_dt - loop_dt) > 1e-9 * loop_dt:
        raise ConfigError(f"safety config control_dt={config_dt} differs from the loop period {loop_dt}")


def _quadrotor_parts(robot: Quadrotor, safety: Any, control_dt: float, mode: str) -> _DeviceParts:
    if not isinstance(safety, QuadrotorSafetyConfig):
        raise ConfigError("a quadrotor needs a QuadrotorSafetyConfig (geofence and ceiling are per site)")
    _check_dt(safety.control_dt, control_dt)
    filt = QuadrotorSafetyFilter(robot.spec, safety)
    if mode not in filt.modes:
        raise ConfigError(f"quadrotor mode={mode!r}; known: {sorted(filt.modes)}")
    fallback = QuadrotorFallback(robot.spec, control_dt, ground_z=safety.ground_z)
    hold = (lambda state: fallback.neutral("position", state, CommandHistory())) if mode == "position" else None
    return _DeviceParts(QuadrotorIO(robot), filt, fallback, filt.names(mode), hold)


def _arm_safety_from(robot: Arm, rate_hz: float, overrides: dict[str, Any]) -> ArmSafetyConfig:
    """``overrides`` are ArmSafetyConfig fields; ``workspace: {lower: [x, y, z], upper: [x, y, z]}`` (m, base
    frame) replaces the scene's box (a physical arm has no scene: its box is in its config file)."""
    overrides = dict(overrides)
    box = overrides.pop("workspace", None)
    try:
        workspace = None if box is None else WorkspaceBox(tuple(box["lower"]), tuple(box["upper"]))
        return dataclasses.replace(arm_safety_config(robot, rate_hz, workspace), **overrides)
    except (KeyError, TypeError) as e:
        raise ConfigError(f"safety: {e} (workspace: {{lower: [x, y, z], upper: [x, y, z]}} in m)") from None


def _quadrotor_safety_from(robot: Quadrotor, rate_hz: float, overrides: dict[str, Any]) -> QuadrotorSafetyConfig:
    overrides = dict(overrides)
    fence = overrides.pop("geofence", None)
    if not isinstance(fence, dict) or "max_altitude" not in overrides:
        raise ConfigError(
            "safety: a quadrotor needs geofence: {lower: [x, y, z], upper: [x, y, z]} and max_altitude (m)"
        )
    try:
        box = WorkspaceBox(tuple(fence["lower"]), tuple(fence["upper"]))
        return QuadrotorSafetyConfig(control_dt=1.0 / rate_hz, geofence=box, **overrides)
    except (KeyError, TypeError) as e:
        raise ConfigError(f"safety: {e}") from None


def _arm_bounds(robot: Arm, safety: Any) -> CommandBounds:
    spec = robot.spec
    lower, upper, vmax = list(spec.lower), list(spec.upper), list(spec.max_velocity)
    optional: frozenset[str] = frozenset()
    if spec.gripper is not None:  # normalized width 0..1, moved as fast as the gripper goes
        lower, upper, vmax = lower + [0.0], upper + [1.0], vmax + [math.inf]
        optional = frozenset({"gripper"})
    return CommandBounds(np.array(lower), np.array(upper), np.array(vmax), optional)


def _quadrotor_bounds(robot: Quadrotor, safety: Any) -> CommandBounds:
    cfg = safety.config
    fence_hi = [*cfg.geofence.upper[:2], min(cfg.geofence.upper[2], cfg.max_altitude)]
    yaw_rate = cfg.max_yaw_rate if cfg.max_yaw_rate is not None else robot.spec.max_body_rate[2]
    return CommandBounds(
        np.array([*cfg.geofence.lower, -math.inf]),
        np.array([*fence_hi, math.inf]),
        np.array([cfg.max_speed] * 3 + [yaw_rate]),
        frozenset({"yaw"}),
    )


def _arm_action_map(robot: Arm, measured_state: Callable[[], Any], names: Sequence[str]) -> Any:
    from rcs.control.cartesian import PoseChunkToJoints, pose_layout_of  # IK: only for TCP-pose policies
    from rcs.control.joint_deltas import JointDeltasToTargets, is_joint_delta_layout

    def measured() -> np.ndarray:
        return np.array(measured_state().joint_positions, dtype=np.float64)

    layout = pose_layout_of(names)
    if layout is not None:
        return PoseChunkToJoints.for_arm(robot, measured, layout)
    if is_joint_delta_layout(names):
        return JointDeltasToTargets(robot.spec.joint_names, robot.spec.gripper is not None, measured)
    return None


@dataclass(frozen=True)
class CommandBounds:
    """Position and speed bounds of the default mode's command vector (executor names order).

    Attributes:
        lower, upper: bounds per entry (arm: rad and normalized gripper width; quadrotor: m (world) and rad).
        max_velocity: largest speed per entry (rad/s, m/s; ``inf``: unbounded).
        optional: entries a remote trajectory may leave out (they are held).
    """

    lower: np.ndarray
    upper: np.ndarray
    max_velocity: np.ndarray
    optional: frozenset[str]


@dataclass(frozen=True)
class DeviceKind:
    """Everything that differs between device kinds, as data: the control loop, the policy link
    (:mod:`rcs.control.policy_link`) and the robot server (:mod:`rcs.remote.server`) look it up instead of
    branching on the device type.

    Attributes:
        name: ``"arm"`` or ``"quadrotor"``.
        parts: builds the IO, safety filter, fallback and command names (``robot, safety config, dt, mode``).
        default_mode: command mode of a policy's actions unless one is given.
        safety_from: the safety config from a robot, a rate (Hz) and config-file overrides (ConfigError on bad keys).
        bounds: the command vector's bounds from the robot and its safety filter (remote trajectories).
        armed_at_start: whether a served robot takes motion commands before an explicit ``arm`` command.
        motor_switch: names of the device methods that start and stop the motors, queued into the loop thread
            on ``arm`` / ``disarm`` (``None``: the device has no such switch).
        airborne: whether a state is off the ground (then the motors must not stop: land first).
        target_frame: the description key naming the frame of a ``pose`` target.
        action_map: builds the robot-side conversion for a policy whose actions are not the executor's
            commands (TCP poses through IK, :class:`rcs.control.cartesian.PoseLayout`; joint deltas,
            :mod:`rcs.control.joint_deltas`) from the robot, a callable giving its latest state and the policy's
            action names; it returns ``None`` for names it does not convert. ``None``: this kind converts none.
    """

    name: str
    parts: Callable[[Any, Any, float, str], _DeviceParts]
    default_mode: str
    safety_from: Callable[[Any, float, dict[str, Any]], Any]
    bounds: Callable[[Any, Any], CommandBounds]
    armed_at_start: bool
    motor_switch: tuple[str, str] | None
    airborne: Callable[[Any, Any], bool]
    target_frame: str
    action_map: Callable[[Any, Callable[[], Any], Sequence[str]], Any] | None


#: Device base class -> its kind.
DEVICE_KINDS: dict[type, DeviceKind] = {
    Arm: DeviceKind(
        "arm",
        _arm_parts,
        "joint_positions",
        _arm_safety_from,
        _arm_bounds,
        armed_at_start=True,
        motor_switch=None,
        airborne=lambda safety, state: False,
        target_frame="base_frame",
        action_map=_arm_action_map,
    ),
    Quadrotor: DeviceKind(
        "quadrotor",
        _quadrotor_parts,
        "position",
        _quadrotor_safety_from,
        _quadrotor_bounds,
        armed_at_start=False,
        motor_switch=("arm", "disarm"),
        airborne=lambda safety, state: bool(safety.airborne(state)),
        target_frame="world_frame",
        action_map=None,
    ),
}


def device_kind(robot: Any) -> DeviceKind:
    """The :class:`DeviceKind` of ``robot``; ConfigError for a device no kind binds."""
    for cls, kind in DEVICE_KINDS.items():
        if isinstance(robot, cls):
            return kind
    raise ConfigError(f"no control binding for {type(robot).__name__}; known: {[c.__name__ for c in DEVICE_KINDS]}")


def make_policy_task(
    robot: Arm | Quadrotor,
    rate_hz: float,
    *,
    safety: ArmSafetyConfig | QuadrotorSafetyConfig | None = None,
    mode: str | None = None,
    executor: dict[str, Any] | None = None,
    watchdog: dict[str, Any] | None = None,
    estop: EStop | None = None,
) -> PolicyTask:
    """Build the executor -> watchdog -> safety -> device pipeline for ``robot`` at ``rate_hz``.

    Args:
        robot: a connected arm or quadrotor.
        rate_hz: control rate (Hz).
        safety: the per-robot, per-scene safety config (arms default to spec limits only, no workspace;
            quadrotors must give one: geofence and ceiling have no sensible default).
        mode: command mode of the policy's actions (default per device kind).
        executor: extra :class:`ExecutorConfig` fields (e.g. ``{"strategy": "splice"}``).
        watchdog: extra :class:`WatchdogConfig` fields (e.g. ``{"stop_after_s": 0.2}``).
        estop: shared e-stop (a new one if omitted).
    """
    kind = device_kind(robot)
    dt = 1.0 / rate_hz
    mode = mode or kind.default_mode
    parts = kind.parts(robot, safety, dt, mode)
    # The executor keeps its own output inside the safety filter's limits (positions, velocities,
    # accelerations): the filter stays a last resort that a healthy policy never triggers.
    limits = limits_of_safety_filter(parts.safety)
    ex = ChunkExecutor(ExecutorConfig(names=parts.names, control_dt=dt, **{"limits": limits, **(executor or {})}))
    # A rate-limited executor already starts from the held command at rest and reaches the policy's plan within
    # the acceleration limit, so the default fade-in is not needed; a fade laid over the limited plan would
    # itself break the acceleration limit (the filter then intervenes for the first 0.5 s of every engage).
    wd_defaults: dict[str, Any] = {"fade_in_s": 0.0} if limits is not None else {}
    wd = Watchdog(WatchdogConfig(control_dt=dt, **{**wd_defaults, **(watchdog or {})}), estop)
    return PolicyTask(parts.io, ex, parts.safety, wd, parts.fallback, mode, parts.hold_vector)
