"""Franka Panda emulator: franky-sim (a MuJoCo-backed server of libfranka's network protocol) as its own process.

franky-sim pins its own mujoco and numpy, so it runs from its own venv (``.venv-franky-sim``, made by
``scripts/setup_franky_sim.sh``) as a separate process, as a real robot is a separate machine. The driver
(``hw/panda``, :mod:`hardware.franka.arm`) connects to it with franky/libfranka exactly as to a robot: robot on
TCP/UDP port 1337 and gripper on port 1338 of a loopback address (franky-sim's ports are fixed, so each emulator
gets its own address 127.x.y.z instead of its own port).

This file has two halves:

- the launcher (:func:`start_franka`, :class:`FrankySimEmulator`), imported in the stack's venv;
- the server (:func:`_serve`), run in the franky-sim venv as ``python hardware/emulators/franka.py --serve``:
  franky-sim's own MuJoCo simulation and protocol servers, plus a side channel on stdin/stdout (one line per
  request, ``@rcs``-prefixed replies) for what only an emulator offers: ground-truth joint positions and
  gripper width, and reflex injection.

Emulator gaps (franky-sim 1.0.4, read in its code): it simulates an FR3 (its URDF/MJCF), not a Panda; it enforces
no joint, velocity or torque limits (torques are clipped silently) and produces no reflexes or control errors
by itself, and its automatic error recovery always succeeds. This server therefore adds reflex injection: the
server aborts the running motion with libfranka's ``kReflexAborted`` status, reports the robot in reflex mode
with the named error bit set, rejects motions until libfranka's automatic error recovery command clears it,
as the real controller does. The driver sees the real protocol; only the cause (a collision) is injected.

Only the standard library and numpy are imported at module level: both venvs have them.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_VENV = REPO_ROOT / ".venv-franky-sim"
SETUP_SCRIPT = "scripts/setup_franky_sim.sh"
_PREFIX = "@rcs "

#: libfranka's ``franka::Errors`` in wire order (research_interface robot state, 41 flags).
ERROR_NAMES: tuple[str, ...] = (
    "joint_position_limits_violation",
    "cartesian_position_limits_violation",
    "self_collision_avoidance_violation",
    "joint_velocity_violation",
    "cartesian_velocity_violation",
    "force_control_safety_violation",
    "joint_reflex",
    "cartesian_reflex",
    "max_goal_pose_deviation_violation",
    "max_path_pose_deviation_violation",
    "cartesian_velocity_profile_safety_violation",
    "joint_position_motion_generator_start_pose_invalid",
    "joint_motion_generator_position_limits_violation",
    "joint_motion_generator_velocity_limits_violation",
    "joint_motion_generator_velocity_discontinuity",
    "joint_motion_generator_acceleration_discontinuity",
    "cartesian_position_motion_generator_start_pose_invalid",
    "cartesian_motion_generator_elbow_limit_violation",
    "cartesian_motion_generator_velocity_limits_violation",
    "cartesian_motion_generator_velocity_discontinuity",
    "cartesian_motion_generator_acceleration_discontinuity",
    "cartesian_motion_generator_elbow_sign_inconsistent",
    "cartesian_motion_generator_start_elbow_invalid",
    "cartesian_motion_generator_joint_position_limits_violation",
    "cartesian_motion_generator_joint_velocity_limits_violation",
    "cartesian_motion_generator_joint_velocity_discontinuity",
    "cartesian_motion_generator_joint_acceleration_discontinuity",
    "cartesian_position_motion_generator_invalid_frame",
    "force_controller_desired_force_tolerance_violation",
    "controller_torque_discontinuity",
    "start_elbow_sign_inconsistent",
    "communication_constraints_violation",
    "power_limit_violation",
    "joint_p2p_insufficient_torque_for_planning",
    "tau_j_range_violation",
    "instability_detected",
    "joint_move_in_wrong_direction",
    "cartesian_spline_motion_generator_violation",
    "joint_via_motion_generator_planning_joint_limit_violation",
    "base_acceleration_initialization_timeout",
    "base_acceleration_invalid_reading",
)

_CONFIG_KEYS = ("venv", "startup_timeout", "initial_joint_positions")


class EmulatorError(RuntimeError):
    """The emulator could not start or stopped answering its side channel (one-line message)."""


class FrankySimEmulator:
    """A running franky-sim server process (implements :class:`rcs.emulator.RobotEmulator`).

    Attributes:
        robot: ``"hw/panda"``.
        robot_config: ``{"host": <loopback address>}`` for ``make_robot("hw/panda", **robot_config)``.
        host: the loopback address the robot (port 1337) and gripper (port 1338) servers listen on.
        log_path: the server's stderr (franky-sim's own log), kept for diagnosis.
    """

    robot = "hw/panda"

    def __init__(self, venv: Path, startup_timeout: float, initial_joint_positions: tuple[float, ...] | None) -> None:
        python = venv / "bin" / "python"
        if not python.is_file():
            raise EmulatorError(f"hw/panda emulator: no franky-sim venv at {venv}: run bash {SETUP_SCRIPT}")
        self._lock = threading.Lock()
        self._closed = False
        fd, log = tempfile.mkstemp(prefix="franky-sim-", suffix=".log")
        self.log_path = Path(log)
        cmd = [str(python), "-u", str(Path(__file__).resolve()), "--serve"]
        if initial_joint_positions is not None:
            cmd += ["--initial-q", json.dumps(list(initial_joint_positions))]
        # stdin/stdout are the side channel; a closed stdin (this process died) stops the server.
        self._proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=fd, text=True, bufsize=1, cwd=REPO_ROOT
        )
        os.close(fd)
        self._replies: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, name="franky-sim-side-channel", daemon=True).start()
        try:
            ready = self._reply(timeout=startup_timeout, what="startup")
        except EmulatorError:
            self._stop(signal.SIGKILL)
            raise
        self.host: str = ready["host"]
        self.robot_config: dict[str, Any] = {"host": self.host}
        logger.info("franky-sim emulator pid %d serving hw/panda on %s", self._proc.pid, self.host)

    @property
    def pid(self) -> int:
        return self._proc.pid

    def is_alive(self) -> bool:
        return self._proc.poll() is None

    # -- side channel ------------------------------------------------------------------------------
    def _request(self, line: str, timeout: float = 10.0) -> dict[str, Any]:
        with self._lock:
            if self._closed or self._proc.poll() is not None:
                raise EmulatorError(f"hw/panda emulator on {getattr(self, 'host', '?')} is not running")
            assert self._proc.stdin is not None
            try:
                self._proc.stdin.write(line + "\n")
                self._proc.stdin.flush()
            except (BrokenPipeError, OSError) as exc:
                raise EmulatorError(f"hw/panda emulator side channel closed: {exc}") from None
            return self._reply(timeout, line)

    def _pump(self) -> None:
        """Forward the server's ``@rcs`` lines to the reply queue (other stdout lines are skipped)."""
        assert self._proc.stdout is not None
        for raw in self._proc.stdout:
            if raw.startswith(_PREFIX):
                self._replies.put(raw[len(_PREFIX) :])

    def _reply(self, timeout: float, what: str) -> dict[str, Any]:
        """The server's next reply, within ``timeout`` s."""
        try:
            reply = json.loads(self._replies.get(timeout=timeout))
        except queue.Empty:
            if self._proc.poll() is not None:
                raise EmulatorError(
                    f"hw/panda emulator exited with code {self._proc.returncode} during {what}: {self._last_log_line()}"
                ) from None
            raise EmulatorError(
                f"hw/panda emulator: no answer to {what} within {timeout:.0f} s (log {self.log_path})"
            ) from None
        if "error" in reply:
            raise EmulatorError(f"hw/panda emulator: {reply['error']}")
        return reply

    def _last_log_line(self) -> str:
        try:
            lines = [ln for ln in self.log_path.read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            lines = []
        return lines[-1] if lines else f"(no output; log {self.log_path})"

    def joint_positions(self) -> np.ndarray:
        """Ground truth: the simulated joint positions (rad), joint1..joint7, straight from MuJoCo's qpos."""
        return np.asarray(self._request("q")["q"], dtype=float)

    def gripper_width(self) -> float:
        """Ground truth: the simulated finger opening (m, 0..0.08)."""
        return float(self._request("gripper")["width"])

    def inject_reflex(self, error: str = "joint_reflex") -> None:
        """Make the controller abort as after a collision: the running motion ends with ``kReflexAborted``,
        the state reports reflex mode with ``error`` set, motions are refused until error recovery."""
        if error not in ERROR_NAMES:
            raise ValueError(f"error={error!r} is not a libfranka error; one of: {', '.join(ERROR_NAMES)}")
        self._request(f"reflex {error}")

    # -- lifecycle ---------------------------------------------------------------------------------
    def kill(self) -> None:
        """SIGKILL the server: the link dies without warning (a pulled network cable)."""
        self._stop(signal.SIGKILL)

    def close(self) -> None:
        """Stop the server (idempotent)."""
        self._stop(signal.SIGTERM)

    def _stop(self, sig: int) -> None:
        self._closed = True
        if self._proc.poll() is None:
            self._proc.send_signal(sig)
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
        for stream in (self._proc.stdin, self._proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass

    def __enter__(self) -> FrankySimEmulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_franka(**config: Any) -> FrankySimEmulator:
    """Registry factory (``rcs.emulators`` ``"hw/panda"``): start franky-sim and wait until it serves.

    Keyword config: ``venv`` (path of the franky-sim venv, default ``.venv-franky-sim`` in the repo),
    ``startup_timeout`` (s, default 60: MuJoCo and pinocchio load slowly on a loaded machine),
    ``initial_joint_positions`` (7 values, rad; default franky-sim's 0, 0, 0, -1.57, 0, 1.57, 0.785).
    """
    unknown = sorted(set(config) - set(_CONFIG_KEYS))
    if unknown:
        raise ValueError(
            f"hw/panda emulator: unknown option(s) {', '.join(unknown)}; accepted: {', '.join(_CONFIG_KEYS)}"
        )
    timeout = float(config.get("startup_timeout", 60.0))
    if not timeout > 0:
        raise ValueError(f"hw/panda emulator: startup_timeout={timeout} must be > 0 s")
    q0 = config.get("initial_joint_positions")
    if q0 is not None:
        q0 = tuple(float(v) for v in q0)
        if len(q0) != 7 or not all(np.isfinite(q0)):
            raise ValueError(f"hw/panda emulator: initial_joint_positions={list(q0)} must be 7 finite values (rad)")
    return FrankySimEmulator(Path(config.get("venv", DEFAULT_VENV)), timeout, q0)


# ---------------------------------------------------------------------------------------------------
# Server half: runs in the franky-sim venv (python hardware/emulators/franka.py --serve).
# ---------------------------------------------------------------------------------------------------
def _serve(argv: list[str]) -> int:  # pragma: no cover - runs in the emulator's own process
    import argparse

    from franky_sim import SimulationServer
    from franky_sim.franka_robot_protocol import (
        AutomaticErrorRecoveryCommand,
        AutomaticErrorRecoveryStatus,
        MoveStatus,
        RobotCommand,
        RobotMode,
    )
    from franky_sim.franka_robot_server import FrankaRobotServer
    from franky_sim.franka_server import BaseCommand
    from franky_sim.mujoco_simulator import MujocoSimulator

    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", action="store_true")
    parser.add_argument("--initial-q", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")

    def say(**reply: Any) -> None:
        sys.stdout.write(_PREFIX + json.dumps(reply) + "\n")
        sys.stdout.flush()

    class RecoveryCommand(AutomaticErrorRecoveryCommand):
        def handle(self, server: Any) -> None:
            server.clear_reflex()
            self.reply(AutomaticErrorRecoveryStatus.kSuccess)

    class ReflexRobotServer(FrankaRobotServer):
        """franky-sim's robot server plus the controller's reflex behaviour, triggered from the side channel."""

        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, **kw)
            self._reflex: int | None = None
            self._pending: int | None = None
            # franky-sim acknowledges recovery without state; ours clears the injected reflex.
            self._FrankaServer__command_class_map[RobotCommand.kAutomaticErrorRecovery] = RecoveryCommand

        def request_reflex(self, index: int) -> None:
            self._pending = index  # applied in the simulation thread, between ticks

        def clear_reflex(self) -> None:
            self._reflex = None

        def process_commands(self) -> None:
            super().process_commands()
            if self._pending is not None:
                self._reflex, self._pending = self._pending, None
                motion_id = self.current_motion_id
                self.stop_motion(send_preemption_signal=False)  # hold the current position
                if motion_id:
                    BaseCommand.send_response(
                        self._tcp_socket, RobotCommand.kMove, motion_id, MoveStatus.kReflexAborted
                    )
                    self.reset_current_motion_id()

        def start_motion(self, *a: Any, **kw: Any) -> None:
            if self._reflex is not None:  # MoveCommand.handle answers kAborted, as the robot in reflex mode
                raise RuntimeError(f"robot in reflex mode ({ERROR_NAMES[self._reflex]}): recover first")
            super().start_motion(*a, **kw)

        @property
        def robot_state(self) -> Any:
            state = super().robot_state
            if self._reflex is None:
                return state
            flags = tuple(i == self._reflex for i in range(len(ERROR_NAMES)))
            # on the wire: ``errors`` is libfranka's current_errors, ``reflex_reason`` its last_motion_errors
            return state.replace(robot_mode=RobotMode.kReflex, errors=flags, reflex_reason=flags)

    class Server(SimulationServer):
        def init(self) -> None:
            for robot in self.sim.robots:
                rs = ReflexRobotServer(robot, self._remaining_hostname_candidates)
                rs.init()
                self.robot_servers.append(rs)
            self.sim.start()

    robot_kwargs: dict[str, Any] = {}
    if args.initial_q is not None:
        robot_kwargs["initial_q"] = tuple(json.loads(args.initial_q))
    with MujocoSimulator(enable_visualization=False) as sim:
        robot = sim.add_robot(**robot_kwargs)
        with Server(sim) as server:
            rs = server.robot_servers[0]
            server.run_async()
            say(host=rs.hostname)
            for line in sys.stdin:  # EOF: the launcher is gone, so is the robot
                cmd, _, arg = line.strip().partition(" ")
                try:
                    if cmd == "q":
                        say(q=list(robot.inner_state.q))
                    elif cmd == "gripper":
                        say(width=float(robot.hand_width))
                    elif cmd == "reflex":
                        rs.request_reflex(ERROR_NAMES.index(arg))
                        say(ok=True)
                    else:
                        say(error=f"unknown request {cmd!r}")
                except Exception as exc:  # the side channel must keep answering
                    say(error=f"{type(exc).__name__}: {exc}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sys.exit(_serve(sys.argv[1:]))
