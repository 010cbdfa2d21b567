"""Hardware-in-the-loop SO-101: six emulated STS3215 servos on a Feetech bus (a pty) driving the MuJoCo SO-101.

The emulator is its own process, as the arm is its own machine::

    python -m hardware.emulators.so101 --role follower --seed 0 [--baud 1000000] [--control ipc://...]

prints one JSON line ``{"ready": true, "port": "/dev/pts/N", "control": "ipc://..."}`` and serves until
SIGTERM/SIGINT. The host talks to the servos on ``port`` with the real protocol (lerobot's ``FeetechMotorsBus``);
servo ids 1..6 are lerobot's SO-101 ids (shoulder_pan, shoulder_lift, elbow_flex, wrist_flex, wrist_roll,
gripper). Each servo drives its joint of ``sim/models/so101/pick_cube.xml`` (the robot's MuJoCo servos and
gravity compensation are removed: the emulated motors are the only actuators, so a limp arm sags). The encoder
reads ``mounting offset + angle * 4096 / (2 pi)``; the mounting offsets are drawn from ``--seed`` (2048 +- 200
ticks, as an arm assembled with centred servos) and unknown to the host, which must calibrate. Physics runs in
real time (MuJoCo time step 2 ms).

The control channel (ZeroMQ REQ/REP on ``control``, JSON requests ``{"cmd": ...}``) is for tests only: ground
truth (``state``), a hand that moves the arm (``move``: min-jerk to given angles over a duration, then holds;
``release``; while the hand holds the arm, the arm passes through the scene as if lifted around the table),
fault injection (``fault``/``clear_faults`` on a named servo) and ``unplug`` (closes the pty
master: the host's reads fail). :class:`So101Emulator` starts the process and wraps the channel; it implements
:class:`rcs.emulator.RobotEmulator`. :func:`start_so101` is the registry factory (``rcs.emulators`` ``hw/so101``).

Roles: ``follower`` (12 V servos) and ``leader`` (7.4 V servos; moved by the hand). Servos power up limp
(Torque_Enable 0).
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hardware.emulators.control import ControlServer
from hardware.emulators.process import EmulatorClient, serve_emulator
from rcs.errors import ConfigError, LinkLostError

log = logging.getLogger(__name__)

ROBOT = "hw/so101"
JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")  # servo ids 1..6
ROLES = {"follower": 12.0, "leader": 7.4}  # role -> servo supply voltage (V)
MOUNT_SPREAD = 200  # ticks: how far from 2048 an assembled servo's horn may sit at joint angle 0
#: SCHED_FIFO priority of the emulator process: below the control loop's default (80), above everything else.
EMULATOR_FIFO_PRIORITY = 70
HAND_KP, HAND_KD = 30.0, 1.0  # N m/rad, N m s/rad: the hand's grip (it also carries the arm's weight)
MAX_HAND_DURATION = 120.0  # s
TRACE_S = 120.0  # s of physics history the emulator keeps for :meth:`So101Emulator.trace`
MAX_CATCH_UP = 0.2  # s of physics the real-time loop may run late before it drops time
SWEEP_SPEED = 3.0  # rad/s of the scripted operator
LIMIT_PUSH = 0.03  # rad: the operator pushes this far past a joint's end stop to be sure it is reached


# ------------------------------------------------------------------------------------------------------------
# The emulator process
# ------------------------------------------------------------------------------------------------------------
class _Hand:
    """Min-jerk reference from ``start`` to ``target`` (rad, 6 joints) over ``duration`` s of sim time."""

    def __init__(
        self, start: np.ndarray, target: np.ndarray, t0: float, duration: float, lets_go_on_torque: bool = False
    ) -> None:
        self.start, self.target, self.t0, self.duration = start, target, t0, duration
        #: let go once the pose is reached and every servo's torque is on (a person holding a parked arm)
        self.lets_go_on_torque = lets_go_on_torque

    def reference(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        tau = min(max((t - self.t0) / self.duration, 0.0), 1.0)
        s = tau**3 * (10 - 15 * tau + 6 * tau**2)
        ds = 30 * tau**2 * (1 - tau) ** 2 / self.duration
        delta = self.target - self.start
        return self.start + s * delta, ds * delta

    def done(self, t: float) -> bool:
        return t >= self.t0 + self.duration


class So101Process:
    """The emulated arm inside the emulator process: MuJoCo model, servos, bus, real-time physics thread and
    control channel. ``baud`` (bit/s) is the servos' configured rate."""

    def __init__(self, role: str, seed: int, baud: int, control: str) -> None:
        import mujoco

        from hardware.emulators.feetech.bus import FeetechBus
        from hardware.emulators.feetech.registers import BAUD_RATES
        from hardware.emulators.feetech.servo import STALL_TORQUE, Servo
        from sim.mujoco.simulation import MODELS_DIR

        self._mujoco = mujoco
        m = mujoco.MjModel.from_xml_path(str(MODELS_DIR / "so101" / "pick_cube.xml"))
        # The emulated motors are the only actuators: no MuJoCo position servos, no gravity compensation.
        m.actuator_gainprm[:] = 0.0
        m.actuator_biasprm[:] = 0.0
        m.body_gravcomp[:] = 0.0
        m.jnt_actgravcomp[:] = False
        self.model, self.data = m, mujoco.MjData(m)
        key = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_KEY, "home")
        mujoco.mj_resetDataKeyframe(m, self.data, key)
        mujoco.mj_forward(m, self.data)
        jids = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, n) for n in JOINTS]
        self.qadr = np.array([m.jnt_qposadr[j] for j in jids])
        self.dadr = np.array([m.jnt_dofadr[j] for j in jids])
        self.limits = np.array([m.jnt_range[j] for j in jids])
        self.dt = float(m.opt.timestep)
        # the arm's own geoms (everything under the robot's base body); the scene keeps its contacts
        base = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "base")
        arm_bodies = {b for b in range(m.nbody) if self._descends(m, b, base)}
        self._arm_geoms = np.array([g for g in range(m.ngeom) if m.geom_bodyid[g] in arm_bodies])
        self._arm_contype = m.geom_contype[self._arm_geoms].copy()
        self._arm_conaffinity = m.geom_conaffinity[self._arm_geoms].copy()
        self._hand_contacts: bool | None = None  # the arm's contact state the physics thread must apply next
        self._stall = STALL_TORQUE
        self._block_sign = np.ones(len(JOINTS))

        rng = np.random.default_rng(seed)
        mounts = 2048 + rng.integers(-MOUNT_SPREAD, MOUNT_SPREAD + 1, size=len(JOINTS))
        baud_index = {v: k for k, v in BAUD_RATES.items()}[baud]
        self.servos = [Servo(i + 1, float(mounts[i]), ROLES[role]) for i in range(len(JOINTS))]
        for s in self.servos:
            s.table.set("Baud_Rate", baud_index)
        self.bus = FeetechBus(self.servos)
        self.lock = self.bus.lock
        self.hand: _Hand | None = None
        self.sim_time = 0.0
        # ring buffer of (host monotonic s, joint angles rad) after every physics step: ground truth for tests
        self._trace_t = np.full(int(TRACE_S / self.dt), -np.inf)
        self._trace_q = np.zeros((len(self._trace_t), len(JOINTS)))
        self._trace_n = 0
        self._stop = threading.Event()
        self._unplug, self._unplugged = threading.Event(), threading.Event()
        self._physics = threading.Thread(target=self._run_physics, name="so101-bus-physics", daemon=True)

        self.control = control
        self._control = ControlServer(control, self._handle, name="so101-control")

    @staticmethod
    def _descends(m: Any, body: int, ancestor: int) -> bool:
        while body > 0:
            if body == ancestor:
                return True
            body = int(m.body_parentid[body])
        return False

    def start(self) -> None:
        self._physics.start()
        self._control.start()

    def close(self) -> None:
        self._stop.set()
        if self._physics.is_alive():
            self._physics.join(2)
        self._control.close()
        self.bus.close()

    # -- physics ---------------------------------------------------------------------------------------------
    def _run_physics(self) -> None:
        """One thread serves the bus and steps the physics, so a packet never waits for another thread to hand
        over the GIL: it is answered as soon as this process runs, between physics steps."""
        t0, steps = time.monotonic(), 0
        while not self._stop.is_set():
            if self._unplug.is_set() and self.bus.master != -1:
                self.bus.unplug()  # here, not in the control thread: no other thread may hold the fd meanwhile
                self._unplugged.set()
            self.bus.serve_once(max(t0 + (steps + 1) * self.dt - time.monotonic(), 0.0))
            due = int((time.monotonic() - t0) / self.dt)
            if (due - steps) * self.dt > MAX_CATCH_UP:  # the host machine stalled us: drop time, stay real-time
                log.warning("so101 emulator: physics %.0f ms late, dropping time", (due - steps) * self.dt * 1e3)
                t0 += (due - steps - 1) * self.dt
                due = steps + 1
            while steps < due:
                self._step()
                steps += 1
                self.bus.serve_once(0.0)  # catching up: answer packets that arrived meanwhile

    def _step(self) -> None:
        d, dt = self.data, self.dt
        q, v = d.qpos[self.qadr], d.qvel[self.dadr]
        tau = np.zeros(len(JOINTS))
        with self.lock:
            for i, servo in enumerate(self.servos):
                tau[i] = servo.step(float(q[i]), float(v[i]), dt)
                if servo.blocked:  # injected overload: an external load of twice the stall torque
                    tau[i] += 2 * self._stall * self._block_sign[i]
            hand = self.hand
            if hand is not None and hand.lets_go_on_torque and hand.done(self.sim_time):
                if all(servo.table.get("Torque_Enable") == 1 for servo in self.servos[: len(self.qadr)]):
                    # a person holding a parked arm lets go once the servos hold it
                    self.hand, hand, self._hand_contacts = None, None, True
            contacts, self._hand_contacts = self._hand_contacts, None
        if contacts is not None:
            # A person lifts the arm around the table: while the hand holds it, the arm does not touch the
            # scene (straight joint-space paths from a sagged pose would otherwise run into the table top).
            m = self.model
            m.geom_contype[self._arm_geoms] = self._arm_contype if contacts else 0
            m.geom_conaffinity[self._arm_geoms] = self._arm_conaffinity if contacts else 0
        if hand is not None:
            ref, vref = hand.reference(self.sim_time)
            tau += HAND_KP * (ref - q) + HAND_KD * (vref - v) + d.qfrc_bias[self.dadr]
        d.qfrc_applied[self.dadr] = tau
        self._mujoco.mj_step(self.model, d)
        self.sim_time += dt
        with self.lock:
            k = self._trace_n % len(self._trace_t)
            self._trace_t[k], self._trace_q[k] = time.monotonic(), d.qpos[self.qadr]
            self._trace_n += 1

    # -- control channel -------------------------------------------------------------------------------------
    def _servo_index(self, request: Mapping[str, Any]) -> int:
        servo = request.get("servo")
        if isinstance(servo, str) and servo in JOINTS:
            return JOINTS.index(servo)
        if isinstance(servo, int) and 1 <= servo <= len(JOINTS):
            return servo - 1
        raise ValueError(f"servo={servo!r}: expected a joint name ({', '.join(JOINTS)}) or an id 1..{len(JOINTS)}")

    def _handle(self, request: Mapping[str, Any]) -> dict[str, Any]:
        cmd = request.get("cmd")
        if cmd == "state":
            with self.lock:
                q = self.data.qpos[self.qadr].tolist()
                hand = self.hand
                state = "idle" if hand is None else ("holding" if hand.done(self.sim_time) else "moving")
                return {
                    "arm": q[:5],
                    "gripper": q[5],
                    "time": self.sim_time,
                    "hand": state,
                    "limits": self.limits.tolist(),
                }
        if cmd == "trace":
            since = float(request.get("since", 0.0))
            with self.lock:
                keep = self._trace_t >= since
                order = np.argsort(self._trace_t[keep])
                return {"time": self._trace_t[keep][order].tolist(), "positions": self._trace_q[keep][order].tolist()}
        if cmd == "move":
            target = request.get("positions")
            if not isinstance(target, list) or len(target) != len(JOINTS):
                raise ValueError(f"positions: expected {len(JOINTS)} angles (rad) in the order {', '.join(JOINTS)}")
            target_arr = np.asarray(target, dtype=float)
            if not np.all(np.isfinite(target_arr)):
                raise ValueError("positions: every angle must be a finite number (rad)")
            duration = float(request.get("duration", 1.0))
            if not 0.0 < duration <= MAX_HAND_DURATION:
                raise ValueError(f"duration={duration}: expected 0 < duration <= {MAX_HAND_DURATION} s")
            with self.lock:
                self.hand = _Hand(
                    self.data.qpos[self.qadr].copy(),
                    target_arr,
                    self.sim_time,
                    duration,
                    bool(request.get("until_torque", False)),
                )
                self._hand_contacts = False
            return {}
        if cmd == "release":
            with self.lock:
                self.hand = None
                self._hand_contacts = True
            return {}
        if cmd == "fault":
            i = self._servo_index(request)
            with self.lock:
                self.servos[i].inject(str(request.get("kind")))
                # the load pushes toward the nearer end of the range, fixed for the fault's duration
                self._block_sign[i] = 1.0 if self.data.qpos[self.qadr[i]] > self.limits[i].mean() else -1.0
            return {}
        if cmd == "clear_faults":
            i = self._servo_index(request)
            with self.lock:
                self.servos[i].clear_faults()
            return {}
        if cmd == "unplug":
            self._unplug.set()
            if not self._unplugged.wait(10.0):
                raise ValueError("unplug: the bus loop did not close the port within 10 s")
            return {}
        raise ValueError(f"cmd={cmd!r}: expected state, trace, move, release, fault, clear_faults or unplug")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the emulator process (see the module docstring)."""
    from hardware.emulators.feetech.registers import BAUD_RATES

    parser = argparse.ArgumentParser(prog="python -m hardware.emulators.so101", description=__doc__.split("\n")[0])
    parser.add_argument("--role", choices=sorted(ROLES), default="follower")
    parser.add_argument("--seed", type=int, default=0, help="draws the servos' mounting offsets")
    parser.add_argument("--baud", type=int, default=1_000_000, choices=sorted(BAUD_RATES.values()))
    parser.add_argument("--control", default=None, help="ZeroMQ endpoint of the control channel (default: ipc)")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # The bus thread must answer within the host's packet timeout (tens of ms) while the physics thread runs:
    # hand the GIL over every 0.5 ms instead of Python's default 5 ms.
    sys.setswitchinterval(0.0005)
    # A servo answers within microseconds whatever the host does: the emulator's threads (they inherit the
    # policy) run SCHED_FIFO where permitted, so a loaded machine does not make the "servos" miss the host's
    # packet timeout (that would test the machine's scheduler, not the driver). Falls back with a warning.
    from rcs.control.priorities import enable_fifo

    fifo, why = enable_fifo(EMULATOR_FIFO_PRIORITY)
    if not fifo:
        log.warning("so101 emulator: %s; replies may miss the host's timeout on a loaded machine", why)

    def start(control: str) -> So101Process:
        arm = So101Process(args.role, args.seed, args.baud, control)
        arm.start()
        return arm

    return serve_emulator("so101", args.control, start, lambda arm: {"port": arm.bus.port})


# ------------------------------------------------------------------------------------------------------------
# The client (test side)
# ------------------------------------------------------------------------------------------------------------
class So101Emulator(EmulatorClient):
    """A running SO-101 emulator process (implements :class:`rcs.emulator.RobotEmulator`).

    Args:
        role: ``"follower"`` or ``"leader"``.
        seed: draws the servos' mounting offsets.
        arm_id: lerobot calibration id the driver uses for this arm.
        calibration_dir: folder of lerobot calibration files (default: a temporary folder removed on close).
        baud: the servos' baud rate (bit/s).
        ready_timeout: seconds to wait for the process's ready line.
        request_timeout: seconds to wait for a control reply.
        python: interpreter for the process (default: this one, the main venv's).
    """

    robot = ROBOT

    def __init__(
        self,
        role: str = "follower",
        seed: int = 0,
        arm_id: str = "emulated_so101",
        calibration_dir: str | Path | None = None,
        baud: int = 1_000_000,
        ready_timeout: float = 60.0,
        request_timeout: float = 20.0,
        python: str | None = None,
    ) -> None:
        if role not in ROLES:
            raise ConfigError(f"{ROBOT} emulator: role={role!r}: expected one of {', '.join(sorted(ROLES))}")
        if not isinstance(arm_id, str) or not arm_id:
            raise ConfigError(f"{ROBOT} emulator: arm_id={arm_id!r}: expected a non-empty name")
        self.role, self.seed, self.arm_id = role, int(seed), arm_id
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if calibration_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="rcs-so101-calib-")
            calibration_dir = self._tmp.name
        self.calibration_dir = Path(calibration_dir)
        args = ["--role", role, "--seed", str(seed), "--baud", str(baud)]
        try:
            super().__init__(
                f"{ROBOT} emulator", "hardware.emulators.so101", args, ("port",), ready_timeout, request_timeout, python
            )
        except BaseException:
            self._remove_calibration()
            raise
        self.port: str = self.ready["port"]
        self.robot_config: dict[str, Any] = {
            "port": self.port,
            "arm_id": arm_id,
            "calibration_dir": str(self.calibration_dir),
        }

    # -- control channel -------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Ground truth: ``arm`` (5 joint angles, rad, spec order), ``gripper`` (jaw angle, rad), ``time`` (sim
        s), ``hand`` (``idle``/``moving``/``holding``), ``limits`` ((lower, upper) rad per servo joint)."""
        return self._request("state")

    def joint_positions(self) -> np.ndarray:
        """Ground-truth arm joint positions (rad) in the SO-101 spec's joint order (gripper excluded)."""
        return np.asarray(self.state()["arm"], dtype=float)

    def trace(self, since: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Ground-truth history: the host monotonic times (s, shape (n,)) of the physics steps since ``since``
        (the last :data:`TRACE_S` s at most) and the joint angles after each (rad, shape (n, 6), servo order:
        5 arm joints + gripper jaw). ``time.monotonic()`` is one clock for every process on a host, so the
        times compare with a driver's timestamps."""
        reply = self._request("trace", since=float(since))
        return np.asarray(reply["time"], dtype=float), np.asarray(reply["positions"], dtype=float).reshape(
            -1, len(JOINTS)
        )

    def gripper_position(self) -> float:
        """Ground-truth jaw angle (rad; lower limit closed, upper limit open)."""
        return float(self.state()["gripper"])

    def move_by_hand(
        self,
        positions: Mapping[str, float] | Sequence[float],
        duration: float = 1.0,
        wait: bool = True,
        tolerance: float = 0.02,
        timeout: float | None = None,
        until_torque: bool = False,
    ) -> None:
        """Move the arm by hand to ``positions`` (rad: all six joints in servo order, or a mapping of joint names;
        unnamed joints keep their angle) along a min-jerk path of ``duration`` s; the hand then holds the pose
        (until :meth:`release_hand` or the next move) whether the servos' torque is on or off; with
        ``until_torque`` it lets go by itself once every servo's torque is on (the host holds the arm). With ``wait``,
        return when every joint is within ``tolerance`` rad of its target clipped to the joint's range."""
        state = self.state()
        current = [*state["arm"], state["gripper"]]
        if isinstance(positions, Mapping):
            unknown = sorted(set(positions) - set(JOINTS))
            if unknown:
                raise ConfigError(f"{ROBOT} emulator: joint {unknown[0]!r} unknown; joints: {', '.join(JOINTS)}")
            target = [float(positions.get(n, q)) for n, q in zip(JOINTS, current, strict=True)]
        else:
            target = [float(x) for x in positions]
        self._request("move", positions=target, duration=float(duration), until_torque=bool(until_torque))
        if not wait:
            return
        limits = np.asarray(state["limits"])
        goal = np.clip(np.asarray(target), limits[:, 0], limits[:, 1])
        deadline = time.monotonic() + (timeout if timeout is not None else 3 * duration + 30.0)
        while True:
            s = self.state()
            error = np.abs(np.asarray([*s["arm"], s["gripper"]]) - goal)
            if s["hand"] == "holding" and error.max() <= tolerance:
                return
            if time.monotonic() > deadline:
                j = int(error.argmax())
                raise LinkLostError(
                    f"{ROBOT} emulator: hand move: joint {JOINTS[j]!r} is {error[j]:.3f} rad from its target "
                    f"{goal[j]:.3f} rad after the timeout (tolerance {tolerance} rad)"
                )
            time.sleep(0.02)

    def release_hand(self) -> None:
        """The hand lets go (a limp arm then sags under gravity)."""
        self._request("release")

    def inject_fault(self, servo: str | int, kind: str) -> None:
        """Cause a fault on ``servo`` (joint name or id): ``overload``, ``overheat``, ``voltage`` or ``angle``."""
        self._request("fault", servo=servo, kind=kind)

    def clear_faults(self, servo: str | int) -> None:
        """Remove the injected fault causes of ``servo``."""
        self._request("clear_faults", servo=servo)

    def unplug(self) -> None:
        """Pull the cable: the emulator closes its end of the pty; the host's reads and writes then fail."""
        self._request("unplug")

    def operator(self) -> So101Operator:
        """A scripted calibration operator whose hand is this emulator's."""
        return So101Operator(self)

    # -- lifecycle -------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL after 10 s) and remove temporary files (idempotent)."""
        super().close()
        self._remove_calibration()

    def _remove_calibration(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


class So101Operator:
    """The calibration operator for an emulated arm (see ``hardware.so101.calibration.CalibrationOperator``).

    ``hold_middle_pose``: every joint to 0 rad of the sim model (the middle of each arm joint's range), held.
    ``sweep_ranges``: each joint to its lower and upper end stop (the gripper closed and open), along a path
    that keeps the arm clear of the table, calling ``checkpoint()`` at each end and holding there until it
    returns; then back to the middle pose.
    """

    def __init__(self, emulator: So101Emulator, speed: float = SWEEP_SPEED) -> None:
        self.emulator, self.speed = emulator, float(speed)

    def _move(self, target: np.ndarray) -> None:
        s = self.emulator.state()
        current = np.asarray([*s["arm"], s["gripper"]])
        duration = max(float(np.abs(target - current).max()) / self.speed, 0.1) + 0.2
        self.emulator.move_by_hand(target.tolist(), duration=duration)

    def hold_middle_pose(self) -> None:
        self._move(np.zeros(len(JOINTS)))

    def sweep_ranges(self, checkpoint: Callable[[], None] | None = None) -> None:
        limits = np.asarray(self.emulator.state()["limits"])
        for target, at_ends in sweep_plan(limits):
            self._move(target)
            if at_ends and checkpoint is not None:
                checkpoint()


def sweep_plan(limits: np.ndarray) -> list[tuple[np.ndarray, bool]]:
    """Waypoints (rad, servo order) of the range sweep and whether each reaches end stops. Checked against the
    pick_cube scene: no leg brings the arm into the table (elbow_flex's upper end needs the shoulder lifted back,
    shoulder_lift's upper end needs the elbow at its lower end)."""
    lo = limits[:, 0] - LIMIT_PUSH
    hi = limits[:, 1] + LIMIT_PUSH
    z = np.zeros(len(JOINTS))

    def pose(**joints: float) -> np.ndarray:
        out = z.copy()
        for name, value in joints.items():
            out[JOINTS.index(name)] = value
        return out

    wrist = ("shoulder_pan", "wrist_flex", "wrist_roll", "gripper")
    return [
        (pose(**{n: lo[JOINTS.index(n)] for n in wrist}), True),
        (pose(**{n: hi[JOINTS.index(n)] for n in wrist}), True),
        (z, False),
        (pose(shoulder_lift=lo[1]), True),
        (pose(shoulder_lift=-1.0), False),
        (pose(shoulder_lift=-1.0, elbow_flex=hi[2]), True),
        (pose(shoulder_lift=-1.0, elbow_flex=lo[2]), True),
        (pose(shoulder_lift=hi[1], elbow_flex=lo[2]), True),
        (pose(elbow_flex=lo[2]), False),
        (z, False),
    ]


#: where ``start_so101`` leaves a follower (rad, servo order): the simulated SO-101's home pose, jaw half open.
PARKED = (0.0, -0.25, 0.4, math.pi / 2 - 0.15, 0.0, 0.8)


def start_so101(
    calibration_dir: str | Path | None = None,
    arm_id: str = "emulated_so101",
    calibrate: bool = True,
    **config: Any,
) -> So101Emulator:
    """Registry factory ``hw/so101`` (group ``rcs.emulators``): start an emulated SO-101 follower; with
    ``calibrate`` and no lerobot calibration file for ``arm_id`` in ``calibration_dir`` yet, run the SO-101
    calibration flow (``hardware.so101.calibration.calibrate``) on it with the scripted operator, then let go
    of the arm; a follower is then parked by hand at :data:`PARKED` until its servos hold it. Other keywords go to :class:`So101Emulator` (``role``, ``seed``, ``baud``, timeouts)."""
    allowed = {"role", "seed", "baud", "ready_timeout", "request_timeout", "python"}
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise ConfigError(
            f"{ROBOT} emulator: unknown option {unknown[0]!r}; accepted: calibration_dir, arm_id, calibrate, "
            + ", ".join(sorted(allowed))
        )
    emulator = So101Emulator(arm_id=arm_id, calibration_dir=calibration_dir, **config)
    try:
        if calibrate and not (emulator.calibration_dir / f"{arm_id}.json").exists():
            from hardware.so101.calibration import calibrate as run_calibration

            run_calibration(emulator.port, arm_id, emulator.calibration_dir, emulator.operator())
        if emulator.role == "follower":
            # as a user leaves the arm before starting the stack: parked above the table, held by hand until
            # the driver's servos hold it (a limp arm left alone sags onto the table)
            emulator.move_by_hand(PARKED, duration=1.0, until_torque=True)
    except BaseException:
        emulator.close()
        raise
    return emulator


if __name__ == "__main__":
    sys.exit(main())
