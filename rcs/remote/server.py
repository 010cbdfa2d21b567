"""The robot server: one process owns a robot, runs its real-time control loop and serves it over ZeroMQ.

Threads and sockets:

- **control loop** (:class:`rcs.control.loop.ControlLoop`, SCHED_FIFO when permitted): each tick runs queued
  device actions (arm/disarm), reads the robot, publishes the state (PUB, topic ``state``), then the
  :class:`rcs.control.task.PolicyTask` pipeline (chunk executor -> watchdog -> safety filter -> robot) and
  advances a simulated robot. It owns the PUB socket and also sends what other threads queued (status,
  camera frames), so no socket is shared between threads.
- **command thread**: a ROUTER socket; answers DESCRIBE with the robot description and every COMMAND with a
  REPLY that says why a command was rejected. Trajectories and targets become action chunks submitted to the
  executor (:mod:`rcs.remote.commands`); e-stop, reset and arm/disarm act on the task. Also builds the
  STATUS message (watchdog stage, e-stop, loop timing, safety interventions, rejections) every
  ``status_period_s``.
- **camera thread** (if cameras are configured): reads frames at their rate and queues CAMERA messages. A
  simulated camera renders from the simulation the loop steps: it starts a frame right after a physics step
  (see :class:`_SteppedSimulation`) and renders concurrently with the loop.
- **policy link** (optional): :class:`rcs.control.policy_link.PolicyLink` to a policy server (its
  :class:`rcs.serving.chunk_feed.ChunkFeed` thread feeds the loop's executor).

What differs between arms and quadrotors (safety config, command bounds, arming, landing, target frames) is
data of the device's :class:`rcs.control.task.DeviceKind`.

The wire format is :mod:`rcs.remote.wire` (the policy protocol's codec with its own magic); see docs/ros2.md.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Self

import numpy as np
import zmq

import rcs
from rcs.control.chunking import ActionChunk
from rcs.control.loop import NO_RT, ControlLoop, RtConfig
from rcs.control.policy_link import LinkSchedule, check_replan_steps
from rcs.control.priorities import PATH_PRIORITY, realtime_io_threads, start_zmq_garbage_collector
from rcs.control.task import PolicyTask, device_kind, make_policy_task
from rcs.devices import Arm, Quadrotor, Simulated
from rcs.errors import ConfigError, RcsError
from rcs.geometry import yaw_of
from rcs.percentiles import spread
from rcs.remote import commands as cmd
from rcs.remote.config import ServerConfig
from rcs.remote.description import describe
from rcs.remote.observation import RobotObservation, VehicleObservation, arm_command_names, vector_inputs
from rcs.remote.state import state_message
from rcs.remote.wire import (
    REQUEST_TYPES,
    TOPIC_CAMERA,
    TOPIC_STATE,
    TOPIC_STATUS,
    Reply,
    RobotHeader,
    RobotMessage,
    RobotMsg,
    accepted,
    decode_header,
    decode_message,
    description_hash,
    encode_message,
    rejected,
)
from rcs.safety.watchdog import Stage
from rcs.serving.chunk_feed import FeedState
from rcs.serving.keys import curve_server, is_loopback, load_server_keys
from rcs.serving.protocol import MAX_FRAMES, MAX_METADATA_BYTES, ProtocolError, Schema, recv_bounded

log = logging.getLogger(__name__)

#: ``trajectory`` config keys the server reads itself (the others are TrajectoryLimits fields).
SERVER_TRAJECTORY_KEYS = ("max_age_s", "max_future_s", "target_velocity_scale", "settle_s")

#: Default cap of the control rate when the config gives none (Hz).
DEFAULT_MAX_RATE_HZ = 500.0

#: Complete commands queued per client connection before libzmq stops reading from it (request/reply: a
#: client has one command in flight; the bound keeps a flooding peer from making the server buffer more).
COMMAND_RCVHWM = 16

#: a camera frame older than this many frame periods (and STALE_FRAME_MIN_S) is not fed to a policy
STALE_FRAME_PERIODS = 3.0
STALE_FRAME_MIN_S = 0.5

#: dtypes accepted for command tensors (positions, times, velocities, poses): a float of another width is a
#: client bug, an integer a unit or encoding mistake; neither is converted silently.
COMMAND_DTYPES = ("float64", "float32")


# ---------------------------------------------------------------------------------------------------------
# The task the loop runs: queued device actions, publishing and trajectory freshness around a PolicyTask
# ---------------------------------------------------------------------------------------------------------


class _SteppedSimulation:
    """The simulated robot as the loop sees it: ``advance`` then signal that a physics step just ended.

    A camera thread waits for that signal before it reads a frame, so the frame's scene update (microseconds)
    happens in the loop's idle time right after a step instead of during one. Rendering itself (tens to
    hundreds of ms on a CPU) then runs concurrently with the loop; it is not done under a lock because that
    would stall the loop for the whole render.
    """

    def __init__(self, robot: Any, stepped: threading.Event) -> None:
        self._robot = robot
        self._stepped = stepped

    @property
    def sim_time(self) -> float:
        return float(self._robot.sim_time)

    def advance(self, dt: float) -> None:
        self._robot.advance(dt)
        self._stepped.set()

    def reset(self, seed: int | None = None) -> None:
        self._robot.reset(seed)


class _ServedTask:
    """The loop's task: queued device actions, read + publish, PolicyTask compute, write (all in the loop thread)."""

    def __init__(self, task: PolicyTask, pub: zmq.Socket, period_s: float) -> None:
        self.task = task
        self.pub = pub
        self.period_s = period_s
        self.actions: deque[Callable[[], None]] = deque()  # device actions queued by other threads
        self.outbox: deque[list[Any]] = deque()  # encoded messages queued by other threads
        self.latest: tuple[int, Any] | None = None  # (tick, state) of the last read
        self.fresh_until_tick = -1  # a remote trajectory keeps the watchdog fed until its last point
        self.published = 0
        self.send_drops = 0
        self._last_command: Any = None  # the filtered command written at the previous tick

    def read(self, tick: int) -> Any:
        while self.actions:
            action = self.actions.popleft()
            try:
                action()
            except Exception:  # a failing action must not stop the loop
                log.exception("queued device action failed")
        state = self.task.read(tick)
        previous = self.latest
        self.latest = (tick, state)
        self._publish(tick, state, previous)
        while self.outbox:
            self._send(self.outbox.popleft())
        return state

    def compute(self, tick: int, state: Any) -> Any:
        # A timed trajectory was given as a whole: the watchdog's silence timer starts at its last point (a
        # streaming policy's chunks are not marked, so a silent policy still stops after stop_after_s).
        if tick <= self.fresh_until_tick:
            self.task.executor.last_chunk_tick = tick
        return self.task.compute(tick, state)

    def write(self, tick: int, command: Any) -> None:
        self.task.write(tick, command)
        self._last_command = command

    def _publish(self, tick: int, state: Any, previous: tuple[int, Any] | None) -> None:
        dt = (tick - previous[0]) * self.period_s if previous is not None else 0.0
        self.published += 1
        frames = state_message(
            self.published,
            tick,
            state,
            previous[1] if previous is not None else None,
            dt,
            self._last_command,
            self.task.stage.value,
        )
        self._send([TOPIC_STATE, *frames])

    def _send(self, frames: list[Any]) -> None:
        try:
            self.pub.send_multipart(frames, zmq.NOBLOCK, copy=False)
        except zmq.Again:
            self.send_drops += 1


# ---------------------------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------------------------


class RobotServer:
    """Serve one robot: control loop + state publisher + command endpoint (+ cameras, + policy link).

    Args:
        config: the server config.
        robot: an already created robot (default: ``rcs.make_robot(config.robot, **config.robot_config)``).

    Use :meth:`start` then :meth:`stop` (or ``with RobotServer(cfg) as server:``).
    """

    def __init__(self, config: ServerConfig, robot: Arm | Quadrotor | None = None) -> None:
        self.config = config
        self._curve, self._allow = load_server_keys(config.curve_secret, config.allow)
        self.robot = robot if robot is not None else rcs.make_robot(config.robot, **config.robot_config)
        if not isinstance(self.robot, (Arm, Quadrotor)):
            raise ConfigError(
                f"robot {config.robot!r} is a {type(self.robot).__name__}; serving needs an Arm or Quadrotor"
            )
        # a policy link's manifest and schedule are checked before anything connects to the robot
        self._link_schema: Schema | None = None
        self._link_schedule: LinkSchedule | None = None
        if config.policy:
            self._link_schema, self._link_schedule = self._policy_link_schedule()
        spec_rate = float(self.robot.spec.control_rate_hz)
        self.rate_hz = float(config.rate_hz) if config.rate_hz is not None else min(spec_rate, DEFAULT_MAX_RATE_HZ)
        self.dt = 1.0 / self.rate_hz
        self.kind = device_kind(self.robot)
        self.robot.connect()
        self._stepped = threading.Event()
        self.task = make_policy_task(
            self.robot,
            self.rate_hz,
            safety=self._safety_config(),
            mode=config.policy.mode if config.policy is not None else None,
            executor=self._executor_config(),
            watchdog=self._watchdog_config(),
        )
        self.names = self.task.executor.names
        self.limits = self._trajectory_limits()
        self._check_message_caps()
        tcfg = config.trajectory
        self.max_age_s = float(tcfg.get("max_age_s", 0.5))
        self.max_future_s = float(tcfg.get("max_future_s", 0.01))
        self.settle_ticks = max(0, round(float(tcfg.get("settle_s", 0.5)) * self.rate_hz))
        self.armed = config.start_armed if config.start_armed is not None else self.kind.armed_at_start
        self.rejections: dict[str, int] = {}
        self.last_rejection = ""
        self.commands_accepted = 0
        self.cameras = [self._make_camera(c) for c in config.cameras]
        self.description = describe(
            self.robot,
            config.robot,
            self.rate_hz,
            self.names,
            self.task.mode,
            self.cameras,
            [c.fps for c in config.cameras],
        )
        self.description_hash = description_hash(self.description)
        # its own context: real-time I/O threads must not leak into the process's shared one (other clients in
        # this process, later servers); destroyed by stop()
        self._ctx: zmq.Context = zmq.Context()
        if config.realtime:
            realtime_io_threads(self._ctx)
        self._pub = self._ctx.socket(zmq.PUB)
        self._pub.setsockopt(zmq.LINGER, 0)
        self._pub.setsockopt(zmq.SNDHWM, 1000)
        self._curve_releases: list[Callable[[], None]] = []
        try:
            self._secure(self._pub, config.state_endpoint, "state_endpoint")
            _bind(self._pub, config.state_endpoint, "state_endpoint")
        except Exception:
            self._pub.close(0)
            self._release_curve()
            self._ctx.destroy(linger=0)
            raise
        self._served = _ServedTask(self.task, self._pub, self.dt)
        self.loop = ControlLoop(
            self._served,
            self.rate_hz,
            robot=_SteppedSimulation(self.robot, self._stepped) if isinstance(self.robot, Simulated) else None,
            rt=RtConfig() if config.realtime else NO_RT,
            stats_capacity=max(1000, int(10 * self.rate_hz)),
            log_every_s=0.0,
        )
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._kinematics: Any = None
        self._link: Any = None
        self._flight: VehicleObservation | None = None  # a flight policy's inputs (with its latency compensation)
        self._camera_frames: dict[str, Any] = {}
        self._rate_window: tuple[float, int] = (time.monotonic(), 0)
        self.achieved_rate_hz = 0.0

    # -- construction helpers ----------------------------------------------------------------------------
    def _safety_config(self) -> Any:
        return self.kind.safety_from(self.robot, self.rate_hz, dict(self.config.safety))

    def _trajectory_limits(self) -> cmd.TrajectoryLimits:
        extra = {k: v for k, v in self.config.trajectory.items() if k not in SERVER_TRAJECTORY_KEYS}
        bounds = self.kind.bounds(self.robot, self.task.safety)
        try:
            return cmd.TrajectoryLimits(
                self.names, bounds.lower, bounds.upper, bounds.max_velocity, bounds.optional, **extra
            )
        except TypeError as e:
            raise ConfigError(f"trajectory: {e}") from None

    def _check_message_caps(self) -> None:
        """The longest trajectory the limits accept must fit the frame and message caps (else it could never
        be sent); a ConfigError names the keys."""
        points, width = self.limits.max_points, len(self.names)
        frame = points * width * 8  # positions (or velocities) as float64
        if frame > self.config.max_frame_bytes:
            raise ConfigError(
                f"trajectory.max_points={points}: a trajectory of {width} float64 values per point "
                f"needs frames of {frame} bytes > max_frame_bytes={self.config.max_frame_bytes}"
            )
        message = 2 * frame + points * 8 + MAX_METADATA_BYTES
        if message > self.config.max_message_bytes:
            raise ConfigError(
                f"trajectory.max_points={points}: positions, velocities and times need up to "
                f"{message} bytes > max_message_bytes={self.config.max_message_bytes}"
            )

    def _release_curve(self) -> None:
        """Forget the sockets' allow-lists (after they are closed)."""
        while self._curve_releases:
            self._curve_releases.pop()()

    def _secure(self, sock: zmq.Socket, endpoint: str, key: str) -> None:
        """CURVE on ``sock`` (before it binds) when configured; a warning when it is exposed without it."""
        if self._curve is not None:
            self._curve_releases.append(curve_server(sock, self._curve, self._allow or frozenset()))
        elif not is_loopback(endpoint):
            log.warning(
                "%s=%s WITHOUT CurveZMQ: anyone reaching this port can %s",
                key,
                endpoint,
                "command the robot" if key == "command_endpoint" else "read the robot's state and cameras",
            )

    def _make_camera(self, c: Any) -> Any:
        camera = rcs.make_camera(
            c.backend, robot=self.robot, name=c.name, width=c.width, height=c.height, fps=c.fps, **c.options
        )
        camera.connect()
        return camera

    # -- lifecycle ------------------------------------------------------------------------------------
    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Self:
        """Bind the command socket, start the loop, the command thread, cameras and the policy link."""
        router = self._ctx.socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        # libzmq drops a peer announcing a larger frame before buffering it; the sum of the frames of one
        # message is bounded in _serve_commands (recv_bounded), the messages queued per peer by RCVHWM.
        router.setsockopt(zmq.MAXMSGSIZE, self.config.max_frame_bytes)
        router.setsockopt(zmq.RCVHWM, COMMAND_RCVHWM)
        try:
            self._secure(router, self.config.command_endpoint, "command_endpoint")
        except Exception:
            router.close(0)
            raise
        _bind(router, self.config.command_endpoint, "command_endpoint")  # closes the socket on failure
        if self.config.realtime:
            start_zmq_garbage_collector()  # before a real-time thread's first zero-copy camera frame would start it
        if self.cameras:  # first frames before the loop starts: a renderer's first frame creates its GL context
            ready = threading.Event()
            self._spawn("rcs-robot-cameras", self._serve_cameras, ready)
            if not ready.wait(60.0):
                raise ConfigError("cameras: the first frames took longer than 60 s")
        self.loop.start()
        end = time.monotonic() + 10.0
        while self._served.latest is None:  # ready means state flows (commands and the link need a state)
            if time.monotonic() > end:
                raise RuntimeError("the control loop produced no state within 10 s")
            time.sleep(0.002)
        self._spawn("rcs-robot-commands", self._serve_commands, router)
        if self.config.policy is not None:
            self._start_policy_link()
        log.info(
            "robot server %s at %.0f Hz: state %s, commands %s",
            self.config.robot,
            self.rate_hz,
            self.config.state_endpoint,
            self.config.command_endpoint,
        )
        return self

    def _spawn(self, name: str, target: Callable[..., None], *args: Any) -> None:
        t = threading.Thread(target=target, args=args, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def stop(self, stop_time_s: float = 0.3, land_timeout_s: float = 20.0) -> None:
        """Controlled stop, then stop every thread: arms disengage and brake for ``stop_time_s``; an airborne
        quadrotor is landed first (e-stop: descend, disarm on the ground; up to ``land_timeout_s``)."""
        if self._stop.is_set():
            return
        if self._link is not None:
            self._link.stop()
        self.task.disengage()
        latest = self._served.latest
        if latest is not None and self.kind.airborne(self.task.safety, latest[1]):
            log.warning("stopping while airborne: landing first")
            self.task.estop.trigger("robot server shutdown: landing")
            end = time.monotonic() + land_timeout_s
            # latest is set (checked above) and never reset to None, which its Optional type cannot say
            while time.monotonic() < end and (state := self._served.latest[1]).armed:  # type: ignore[index]
                time.sleep(0.05)
            if state.armed:
                log.error("not landed within %.0f s; stopping anyway", land_timeout_s)
        time.sleep(stop_time_s)
        self._stop.set()
        self.loop.stop()
        try:
            self.loop.join(timeout=5.0)
        except Exception as e:  # noqa: BLE001 the loop logged it with its traceback; stopping goes on
            log.debug("control loop had stopped with %s", e)
        for t in self._threads:
            t.join(timeout=5.0)
        for camera in self.cameras:
            camera.close()
        self._pub.close(0)
        self._release_curve()
        self._ctx.destroy(linger=0)  # closes a socket a thread that did not join in time still holds
        self.robot.close()
        log.info("robot server stopped")

    def wait(self, stop: threading.Event) -> BaseException | None:
        """Block until ``stop`` is set or the loop dies; returns what stopped the loop (``None``: ``stop``)."""
        while not stop.wait(0.2):
            if not self.loop.running:
                error = self.loop.error
                if error is None:
                    log.error("control loop stopped unexpectedly")
                    return RuntimeError("control loop stopped unexpectedly")
                return error
        return None

    # -- command thread ---------------------------------------------------------------------------------
    def _serve_commands(self, router: zmq.Socket) -> None:
        poller = zmq.Poller()
        poller.register(router, zmq.POLLIN)
        next_status = time.monotonic()
        try:
            while not self._stop.is_set():
                timeout = max(0.0, next_status - time.monotonic())
                if poller.poll(int(timeout * 1000) + 1):
                    try:  # frame by frame: a message over the caps is released as it is read, never decoded
                        frames, too_big = recv_bounded(
                            router,
                            zmq.NOBLOCK,
                            max_frames=MAX_FRAMES,
                            max_bytes=self.config.max_message_bytes,
                            envelope=1,
                        )
                    except zmq.Again:
                        continue
                    identity, body = frames[0].bytes, frames[1:]
                    reply = self._handle(body, too_big)
                    router.send_multipart([identity, *reply], copy=False)
                if time.monotonic() >= next_status:
                    next_status += self.config.status_period_s
                    self._served.outbox.append(
                        [
                            TOPIC_STATUS,
                            *encode_message(
                                RobotHeader(
                                    RobotMsg.STATUS, 0, self.loop.tick, time.monotonic(), self.description_hash
                                ),
                                self.status(),
                            ),
                        ]
                    )
        finally:
            router.close(0)

    def _handle(self, frames: list[Any], too_big: ProtocolError | None = None) -> list[Any]:
        """The reply frames to one request; ``too_big``: the request was cut off on receipt (over the caps)."""
        seq = 0
        try:
            seq = decode_header(frames[0]).seq if frames else 0
            if too_big is not None:
                raise too_big
            msg = decode_message(frames, REQUEST_TYPES)
        except ProtocolError as e:
            return self._reply(seq, self._reject(rejected(e.code, e.field, e.detail, e.limit)))
        if msg.header.type is RobotMsg.DESCRIBE:
            header = RobotHeader(RobotMsg.DESCRIPTION, seq, self.loop.tick, time.monotonic(), self.description_hash)
            return encode_message(header, {"description": self.description, "clock_offset_s": _clock_offset()})
        try:
            reply = self._command(msg)
        except Exception as e:  # a server bug must not stop the server: answer and log
            log.exception("command failed")
            reply = rejected("internal", "command", f"{type(e).__name__}: {e}")
        if reply.ok:
            self.commands_accepted += 1
        else:
            self._reject(reply)
        return self._reply(seq, reply)

    def _reject(self, reply: Reply) -> Reply:
        self.rejections[reply.code] = self.rejections.get(reply.code, 0) + 1
        self.last_rejection = str(reply)
        log.warning("command %s", reply)
        return reply

    def _reply(self, seq: int, reply: Reply) -> list[Any]:
        return encode_message(RobotHeader(RobotMsg.REPLY, seq, self.loop.tick, time.monotonic()), reply.as_meta())

    def _command(self, msg: RobotMessage) -> Reply:
        name = msg.meta.get("command")
        handler = self._handlers().get(name) if isinstance(name, str) else None
        if handler is None:
            return rejected("unknown_command", "command", f"{name!r:.40}", f"one of {sorted(self._handlers())}")
        for tensor, array in msg.tensors.items():
            if array.dtype.name not in COMMAND_DTYPES:
                return rejected(
                    "dtype",
                    _TENSOR_FIELDS.get(tensor, tensor),
                    f"dtype {array.dtype.name}",
                    " or ".join(COMMAND_DTYPES),
                )
        return handler(msg)

    def _handlers(self) -> dict[str, Callable[[RobotMessage], Reply]]:
        return {
            "trajectory": self._trajectory,
            "pose": self._pose,
            "estop": self._estop,
            "reset": self._reset,
            "arm": self._arm,
            "disarm": self._disarm,
        }

    # -- commands ---------------------------------------------------------------------------------------
    def _motion_allowed(self) -> Reply | None:
        if self.task.estop.triggered:
            return rejected(
                "estop", "estop", f"e-stop latched ({self.task.estop.reason}); robot holds", "call reset first"
            )
        if not self.armed:
            return rejected("disarmed", "armed", "the robot is disarmed; robot holds", "arm it first")
        if self.task.mode != self.kind.default_mode:
            return rejected(
                "mode",
                "policy.mode",
                f"this server's executor runs the policy's {self.task.mode!r} commands",
                f"trajectories and poses are {self.kind.default_mode!r} commands: a server without policy.mode",
            )
        return None

    def _age(self, msg: RobotMessage) -> float | Reply:
        age = msg.meta.get("age_s", 0.0)
        if not isinstance(age, (int, float)) or isinstance(age, bool) or not math.isfinite(age):
            return rejected("timing", "age_s", f"{age!r:.40}", "a finite number of seconds")
        if age > self.max_age_s:
            return rejected("stale_timestamp", "header.stamp", f"{age:.3f} s old", f"<= {self.max_age_s} s")
        if age < -self.max_future_s:
            return rejected(
                "future_timestamp",
                "header.stamp",
                f"{-age:.3f} s in the future",
                f"<= {self.max_future_s} s ahead (future start times are not supported)",
            )
        return max(0.0, float(age))

    def current_command(self) -> np.ndarray:
        """The command vector the robot is held at now (last filtered command, else the measured state)."""
        last = self.task.history.last
        if last is not None and last.mode == self.task.mode:
            return np.array(last.values, dtype=np.float64)
        latest = self._served.latest
        if latest is None or self.task.hold_vector is None:
            raise RuntimeError("no state read yet")
        return np.asarray(self.task.hold_vector(latest[1]), dtype=np.float64)

    def _submit(self, values: np.ndarray, age_s: float, kind: str) -> Reply:
        """Submit a per-tick plan as one chunk starting ``age_s`` ago. The last point is held for ``settle_s``
        more (still fresh for the watchdog), so a command the safety filter slowed down (e.g. after ticks were
        skipped under load) settles on the target instead of being held wherever braking left it."""
        # "now" for the executor: the loop publishes a tick before the executor steps it, and a late wake-up skips
        # ticks, so the loop's tick may run ahead of the executor's next one (a chunk starting there is "future")
        tick = min(self.loop.tick, self.task.executor.tick + 1)
        start = max(0, tick - round(age_s / self.dt))
        duration = (len(values) - 1) * self.dt
        if self.settle_ticks:
            values = np.vstack([values, np.repeat(values[-1:], self.settle_ticks, axis=0)])
        chunk = ActionChunk(start, values, self.names, self.dt, self.dt, time.monotonic() - age_s)
        rejection = self.task.executor.submit(chunk)
        if rejection is not None:
            return rejected(rejection.reason, kind, rejection.message)
        self._served.fresh_until_tick = start + len(values) - 1
        if not self.task.watchdog.engaged:
            self.task.engage()
        return accepted(start_tick=start, duration_s=round(duration, 6))

    def _trajectory(self, msg: RobotMessage) -> Reply:
        blocked = self._motion_allowed()
        if blocked is not None:
            return blocked
        age = self._age(msg)
        if isinstance(age, Reply):
            return age
        if "positions" not in msg.tensors or "time_from_start" not in msg.tensors:
            return rejected("shape", "trajectory", "needs tensors 'positions' and 'time_from_start'")
        plan = cmd.plan_trajectory(
            self.limits,
            msg.meta.get("names"),
            msg.tensors["positions"],
            msg.tensors["time_from_start"],
            self.current_command(),
            self.dt,
            msg.tensors.get("velocities"),
        )
        if isinstance(plan, Reply):
            return plan
        return self._submit(plan, age, "trajectory")

    def _pose(self, msg: RobotMessage) -> Reply:
        """A target: arms move the TCP there (IK, then a joint-space minimum-jerk move); quadrotors fly there."""
        blocked = self._motion_allowed()
        if blocked is not None:
            return blocked
        age = self._age(msg)
        if isinstance(age, Reply):
            return age
        frame = msg.meta.get("frame_id")
        expected = self.description[self.kind.target_frame]
        if frame != expected:
            return rejected("frame", "header.frame_id", f"{frame!r:.40}", f"{expected!r}")
        position = cmd._as_float_array("pose.position", msg.tensors.get("position"), (3,))
        if isinstance(position, Reply):
            return position
        if not np.isfinite(position).all():
            return rejected("non_finite", "pose.position", f"{position.tolist()}", "finite numbers (no NaN or inf)")
        quat = cmd.check_quaternion("pose.orientation", msg.tensors.get("quaternion"))
        if isinstance(quat, Reply):
            return quat
        current = self.current_command()
        goal = self._goal(position, quat, current)
        if isinstance(goal, Reply):
            return goal
        vmax = self.limits.max_velocity * float(self.config.trajectory.get("target_velocity_scale", 0.5))
        return self._submit(cmd.min_jerk_move(current, goal, vmax, self.dt), age, "pose")

    def _goal(self, position: np.ndarray, quat: np.ndarray, current: np.ndarray) -> np.ndarray | Reply:
        """The command vector of a target pose, per device kind (:data:`_POSE_GOALS`)."""
        return getattr(self, _POSE_GOALS[self.kind.name])(position, quat, current)

    def _arm_goal(self, position: np.ndarray, quat: np.ndarray, current: np.ndarray) -> np.ndarray | Reply:
        box = getattr(getattr(self.task.safety, "config", None), "workspace", None)
        if box is not None and not box.contains(position):
            return rejected(
                "workspace",
                "pose.position",
                f"{position.round(4).tolist()}",
                f"inside {list(box.lower)} .. {list(box.upper)} m",
            )
        arm = self.robot
        if not isinstance(arm, Arm):  # _POSE_GOALS picks this method for arms only
            raise TypeError(f"_arm_goal on a {type(arm).__name__}")
        if self._kinematics is None:  # a private copy: the loop thread uses the robot's for the workspace check
            import copy

            self._kinematics = copy.deepcopy(arm.kinematics)
        dof = arm.spec.dof
        result = self._kinematics.inverse(position, quat, current[:dof])
        if not result.converged:
            return rejected(
                "unreachable",
                "pose",
                f"IK residual {result.position_error * 1000:.1f} mm, {math.degrees(result.orientation_error):.1f} deg",
                "a reachable pose",
            )
        goal = current.copy()
        goal[:dof] = result.joint_positions
        return goal

    def _quadrotor_goal(self, position: np.ndarray, quat: np.ndarray, current: np.ndarray) -> np.ndarray | Reply:
        goal = np.array([*position, yaw_of(quat)])
        lo, hi = self.limits.lower[:3], self.limits.upper[:3]
        if np.any(position < lo) or np.any(position > hi):
            return rejected(
                "position_limit",
                "pose.position",
                f"{position.round(4).tolist()}",
                f"inside the geofence {lo.tolist()} .. {hi.tolist()} m",
            )
        goal[3] = current[3] + (goal[3] - current[3] + math.pi) % (2 * math.pi) - math.pi  # shortest way round
        return goal

    def _estop(self, msg: RobotMessage) -> Reply:
        reason = msg.meta.get("reason", "remote")
        self.task.estop.trigger(f"remote: {str(reason)[:80]}")
        return accepted(estop=True)

    def _reset(self, msg: RobotMessage) -> Reply:
        """Release the e-stop latch; the robot keeps holding until the next motion command."""
        self.task.estop.reset()
        return accepted(estop=False)

    def _arm(self, msg: RobotMessage) -> Reply:
        if self.task.estop.triggered:
            return rejected("estop", "estop", f"e-stop latched ({self.task.estop.reason})", "call reset first")
        if self.kind.motor_switch is not None:
            self._served.actions.append(getattr(self.robot, self.kind.motor_switch[0]))
        self.armed = True
        if self._link is not None and self._link.state is FeedState.ARMED:
            self.task.engage()  # a linked policy takes over again (faded in); a dead-man key re-arms this way
        return accepted(armed=True)

    def _disarm(self, msg: RobotMessage) -> Reply:
        latest = self._served.latest
        if self.kind.motor_switch is not None and latest is not None:
            if self.kind.airborne(self.task.safety, latest[1]):
                return rejected(
                    "airborne",
                    "armed",
                    f"refusing to stop the motors at z={latest[1].position[2]:.2f} m",
                    "on the ground (land first, or e-stop: it lands, then disarms)",
                )
            self._served.actions.append(getattr(self.robot, self.kind.motor_switch[1]))
        self.armed = False
        self.task.disengage()
        return accepted(armed=False)

    @property
    def policy_link(self) -> Any:
        """The running :class:`rcs.control.policy_link.PolicyLink` (``None`` without a ``policy`` config or
        before :meth:`start`)."""
        return self._link

    # -- status ---------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Watchdog stage, e-stop, loop timing, safety interventions and command rejections."""
        stats = self.loop.stats()
        now, ticks = time.monotonic(), stats.ticks
        t0, n0 = self._rate_window
        if now - t0 >= 1.0:
            self.achieved_rate_hz = (ticks - n0) / (now - t0)
            self._rate_window = (now, ticks)
        report = self.task.report()
        return {
            "robot": self.config.robot,
            "stage": report["stage"],
            "estop": report["estop"],
            "estop_reason": self.task.estop.reason,
            "armed": self.armed,
            "engaged": self.task.watchdog.engaged,
            "tick": self.loop.tick,
            "loop": {
                "rate_hz": self.rate_hz,
                "achieved_rate_hz": round(self.achieved_rate_hz, 2),
                "lateness_us": stats.lateness_us,
                "overruns": stats.overruns,
                "missed_ticks": stats.missed_ticks,
                "rt_scheduling": stats.rt_scheduling,
                "compute_us": stats.phase_us["compute"],
            },
            "safety_interventions": report["safety_interventions"],
            "chunk_rejections": report["chunk_rejections"],
            "command_rejections": dict(self.rejections),
            "last_rejection": self.last_rejection,
            "commands_accepted": self.commands_accepted,
            "write_errors": report["write_errors"],
            "states_published": self._served.published,
            "clock_offset_s": _clock_offset(),
            **({"policy": self._policy_report()} if self._link is not None else {}),
        }

    def _policy_report(self) -> dict[str, Any]:
        """The link's report, and a flight policy's prediction horizons (ms: p50, p99, max, how many)."""
        out: dict[str, Any] = self._link.report()
        horizons = list(self._flight.horizons) if self._flight is not None else []
        if horizons:
            out["prediction_horizon_ms"] = {**spread(horizons, scale=1e3), "predictions": len(horizons)}
        return out

    # -- cameras ----------------------------------------------------------------------------------------
    def _serve_cameras(self, ready: threading.Event) -> None:
        # GL contexts are current in the thread that created them: every render happens in this thread.
        for camera in self.cameras:
            try:
                self._camera_frames[camera.spec.name] = camera.read()  # a policy's first request needs one
            except Exception:
                log.exception("camera %s: first read failed", camera.spec.name)
        ready.set()
        periods = [1.0 / c.fps for c in self.config.cameras]
        due = [time.monotonic()] * len(self.cameras)
        while not self._stop.is_set():
            i = int(np.argmin(due))
            if self._stop.wait(max(0.0, due[i] - time.monotonic())):
                return
            due[i] = max(due[i] + periods[i], time.monotonic())
            camera = self.cameras[i]
            if isinstance(self.robot, Simulated):  # read right after a physics step (see _SteppedSimulation)
                self._stepped.clear()
                self._stepped.wait(0.1)
            try:
                frame = camera.read()
            except RcsError as e:  # a physical camera's lost link says why on one line; it reconnects by itself
                log.warning("camera %s: %s", camera.spec.name, e)
                continue
            except Exception:
                log.exception("camera %s read failed", camera.spec.name)
                continue
            self._camera_frames[camera.spec.name] = frame
            k = frame.intrinsics
            meta = {
                "name": camera.spec.name,
                "frame_index": frame.frame_index,
                "intrinsics": [k.width, k.height, k.fx, k.fy, k.cx, k.cy],
            }
            header = RobotHeader(RobotMsg.CAMERA, frame.frame_index, self.loop.tick, float(frame.timestamp))
            frames = encode_message(header, meta, {"image": frame.image, "extrinsics": frame.extrinsics})
            self._served.outbox.append([TOPIC_CAMERA + camera.spec.name.encode(), *frames])

    # -- policy link ------------------------------------------------------------------------------------
    def _policy_link_schedule(self) -> tuple[Schema, LinkSchedule]:
        """The linked policy's schema and request schedule: ``replan_steps`` (default: the checkpoint's
        ``n_action_steps``, as ``rcs eval`` runs it) policy steps, so the robot executes chunks as evaluated.

        ``policy.manifest`` is a manifest file with a ``schema``, or a lerobot checkpoint directory whose schema
        the robot derives from the checkpoint's own files and its joint names (:func:`rcs.eval.inputs.
        checkpoint_schema`)."""
        from rcs.serving.policy import read_manifest, replan_steps_of, schema_from_manifest

        link = self.config.policy
        assert link is not None
        try:
            directory, manifest = read_manifest(link.manifest)
            if "schema" in manifest or not isinstance(self.robot, Arm):
                schema = schema_from_manifest(manifest)
            else:
                from rcs.eval.inputs import checkpoint_schema

                schema = checkpoint_schema(directory, arm_command_names(self.robot))
        except ConfigError as e:
            raise ConfigError(f"policy.manifest {link.manifest!r}: {e}") from None
        chunk = schema.action.shape[0]
        if link.replan_steps is None:
            steps = replan_steps_of(directory, chunk)
        else:
            steps = check_replan_steps("policy.replan_steps", link.replan_steps, chunk)
        return schema, LinkSchedule(steps, schema.policy_dt)

    def _executor_config(self) -> dict[str, Any] | None:
        """The configured executor; a policy streaming one action per request (a flight policy) defaults to
        executing each action when it arrives and holding it until the next (``sync``, ``hold_last_s`` = its
        period), as a streamed setpoint is held."""
        schema = self._link_schema
        if schema is None or schema.action.shape[0] != 1:
            return self.config.executor or None
        return {"strategy": "sync", "hold_last_s": schema.policy_dt, **self.config.executor}

    def _watchdog_config(self) -> dict[str, Any] | None:
        """The configured watchdog; with a policy link, timeouts it leaves out follow the link's request period."""
        if self._link_schedule is None:
            return self.config.watchdog or None
        return self._link_schedule.watchdog(self.config.watchdog)

    def _start_policy_link(self) -> None:
        from rcs.control.policy_link import PolicyLink
        from rcs.serving.client import PolicyClient

        link = self.config.policy
        schema = self._link_schema
        assert link is not None and schema is not None and self._link_schedule is not None
        cameras = {c.spec.name for c in self.cameras}
        # an arm fills every named vector input from its state (rcs.remote.observation), a quadrotor a flight
        # policy's inputs (a policy taking observation.target; its mode must be motor_thrusts); otherwise the
        # command vector (the hold setpoint) is the observation.state
        vectors = vector_inputs(schema.observation)
        observed = RobotObservation(self.robot, vectors) if isinstance(self.robot, Arm) else None
        flight = None
        if isinstance(self.robot, Quadrotor) and "observation.target" in vectors:  # a flight policy
            flight = VehicleObservation(
                self.robot, vectors, self.task.mode, schema.policy_dt, link.target, link.latency_compensation
            )
            self._flight = flight
        if observed is not None:
            provided = set(observed.keys)
        else:
            provided = set(vectors) if flight is not None else {"observation.state"}
        for spec in schema.observation:
            if spec.name not in provided and not (
                spec.name.startswith("observation.images.") and spec.name.rsplit(".", 1)[1] in cameras
            ):
                raise ConfigError(
                    f"policy observation {spec.name!r}: the robot provides {sorted(provided)} and "
                    f"'observation.images.<camera>' for cameras {[c.spec.name for c in self.cameras]}"
                )

        # s: the oldest frame a policy is fed, per camera (a few frame periods, at least STALE_FRAME_MIN_S)
        max_age = {c.name: max(STALE_FRAME_PERIODS / c.fps, STALE_FRAME_MIN_S) for c in self.config.cameras}

        def read() -> tuple[int, float, dict[str, np.ndarray]]:
            """The latest published state (its named vectors, or the command vector) and the latest frame of each
            camera."""
            tick, state = self._latest()
            if observed is not None:
                features = observed.vectors(state)
            elif flight is not None:
                last = self.task.history.last
                written = np.asarray(last.values) if last is not None and last.mode == flight.MODE else None
                horizon = time.monotonic() - state.timestamp + self._action_lead_s()
                features = flight.vectors(state, self.task.stage is Stage.RUNNING, written, horizon)
            else:
                hold = self.task.hold_vector
                features = {"observation.state": hold(state) if hold is not None else np.zeros(0)}
            now = time.monotonic()
            for name, frame in list(self._camera_frames.items()):
                limit = max_age[name]
                if now - frame.timestamp > limit:  # never feed a policy an image of the past as the present
                    raise RcsError(
                        f"camera {name}: newest frame is {now - frame.timestamp:.2f} s old (> {limit:.2f} s): "
                        "the stream stopped"
                    )
                features[f"observation.images.{name}"] = frame.image
            return tick, float(state.timestamp), features

        def on_arm() -> None:
            if self.armed and not self.task.estop.triggered:
                self.task.engage()

        client = PolicyClient(link.endpoint, schema, name=f"rcs robot {self.config.robot}", context=self._ctx)
        self._link = PolicyLink(
            self.task,
            self.robot,
            client,
            self._link_schedule,
            read,
            budget_s=link.budget_s,
            on_arm=on_arm,
            measured_state=lambda: self._latest()[1],
            thread_priority=PATH_PRIORITY if self.config.realtime else None,
        ).start()

    def _action_lead_s(self) -> float:
        """s from sending an observation until its action is expected at the device: the policy's median round
        trip over the latest replies, plus one control period (the action waits for the loop's next tick, then
        for the device's own cycle). What the device takes beyond its cycle is not known here."""
        recent = self._link.latency_ms(last=LEAD_REPLIES) if self._link is not None else {}
        return recent.get("p50", 0.0) / 1e3 + self.dt

    def _latest(self) -> tuple[int, Any]:
        """(tick, state) of the loop's last read; ValueError before the first."""
        latest = self._served.latest
        if latest is None:
            raise ValueError("no robot state yet")
        return latest


#: replies whose median round trip estimates a flight policy's latency (:meth:`RobotServer._action_lead_s`)
LEAD_REPLIES = 50

#: Device kind -> the RobotServer method turning a ``pose`` target into a command vector: an arm's joints by IK
#: (inside the scene's workspace), a quadrotor's position and yaw (inside the geofence).
_POSE_GOALS = {"arm": "_arm_goal", "quadrotor": "_quadrotor_goal"}

#: Command tensor -> the field name rejections use for it (as the ROS 2 messages call it).
_TENSOR_FIELDS = {"position": "pose.position", "quaternion": "pose.orientation"}


def _bind(sock: zmq.Socket, endpoint: str, key: str) -> None:
    """Bind, turning ZeroMQ's error (port in use, bad address) into a ConfigError naming the config key."""
    try:
        sock.bind(endpoint)
    except zmq.ZMQError as e:
        sock.close(0)
        raise ConfigError(f"{key}={endpoint!r}: cannot bind: {e}") from None


def _clock_offset() -> float:
    """Wall clock minus monotonic clock (s): turns a state's monotonic capture time into wall time."""
    return time.time() - time.monotonic()
