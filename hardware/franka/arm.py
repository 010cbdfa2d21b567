"""Franka Panda driver (``hw/panda``): the :class:`rcs.devices.Arm` interface on franky-control (libfranka).

Spec and kinematics are the simulated Panda's (:data:`sim.mujoco.arm.PANDA`, :class:`MinkKinematics` on its
MJCF), so code written against ``sim/panda`` runs here by changing the robot name only. Joint order joint1..7,
radians, base frame ``link0``.

Streaming: the control loop calls :meth:`command_joint_positions` at its rate (aim >= 500 Hz for a Franka). The
first call starts one long-lived :class:`franky.JointImpedanceTrackingMotion` (franky's client-side joint
impedance controller on the torque interface, asynchronous); every call then only publishes a new reference
(:class:`hardware.franka.streaming.ImpedanceStream`: position capped at ``dynamics_factor`` x the maximum joint
velocities, velocity feed-forward from the recent targets), which franky's 1 kHz loop picks up at its next cycle.
Stiffness and damping are config keys. The previous design (one preempting :class:`franky.JointMotion` per
call) replanned from zero acceleration every tick and followed a 0.1 rad, 0.25 Hz sinusoid with ~150 mrad RMS
error against franky-sim; the impedance stream follows it within a few mrad (figures in docs/hardware.md).
After a reflex and recovery the next command starts a fresh impedance motion from the arm's current position.

Faults: a reflex or a refused motion (``ControlException``) surfaces on the next :meth:`read` or command as
:class:`rcs.errors.DeviceFaultError` (``"hw/panda: controller: ..."``) and stays latched until
:meth:`FrankaArm.recover` (or is recovered right away with ``auto_recover=True``). A dead link (libfranka's 1 s
state timeout) raises :class:`rcs.errors.LinkLostError` naming the host, from then on; :meth:`close` still works.
"""

from __future__ import annotations

import gc
import logging
import time
from dataclasses import replace
from typing import Any

import franky
import mujoco
import numpy as np

from hardware.franka.config import DEVICE, FrankaConfig, parse_config, realtime_enforced
from hardware.franka.faults import error_names, one_line, state_fault, translate
from hardware.franka.gripper import FrankaHand
from hardware.franka.streaming import ImpedanceStream
from hardware.franka.thread_priority import keep_thread_scheduling
from rcs.devices import Arm
from rcs.errors import DeviceFaultError, LinkLostError, RcsError
from rcs.spec import ArmSpec
from rcs.types import ArmState
from sim.mujoco.arm import PANDA
from sim.mujoco.kinematics import MinkKinematics
from sim.mujoco.simulation import MODELS_DIR

logger = logging.getLogger(__name__)

STOP_TIMEOUT = 5.0  # s, for the arm to come to rest at close()
REST_VELOCITY = 0.01  # rad/s, every joint slower than this counts as at rest
#: s for a started impedance motion to run on the robot (robot mode Move). Waited for, so that no other call races
#: the motion's start: a close() that stops a motion libfranka is still starting leaves that start waiting for the
#: robot forever, and the destructor of franky's Robot waits with it (seen against franky-sim on a loaded host).
MOTION_START_TIMEOUT = 2.0


class FrankaArm(Arm):
    """A Franka Panda (with Franka Hand) on franky. Build it with :func:`make_franka_panda`.

    Attributes:
        config: the validated :class:`FrankaConfig`.
        commands_sent: joint targets handed to franky since connect (for rate measurements).
    """

    name = DEVICE
    sim_twin = "sim/panda"  # the same spec and kinematics (module docstring)

    def __init__(self, config: FrankaConfig) -> None:
        super().__init__(spec_for(config), config.limit_policy)
        self.config = config
        self._kinematics: MinkKinematics | None = None
        self._robot: franky.Robot | None = None
        self._hand: FrankaHand | None = None
        self._fault: RcsError | None = None
        self._stream: ImpedanceStream | None = None  # the running impedance motion, started by the first command
        self._dynamics = franky.RelativeDynamicsFactor(config.dynamics_factor)
        self.commands_sent = 0

    # -- description --------------------------------------------------------------------------------
    @property
    def kinematics(self) -> MinkKinematics:
        """FK/IK of the TCP in the base frame ``link0``, on the simulated Panda's MJCF (loaded on first use)."""
        if self._kinematics is None:
            model = mujoco.MjModel.from_xml_path(str(MODELS_DIR / PANDA.robot_model))
            s = self.spec
            self._kinematics = MinkKinematics(model, s.joint_names, s.tcp_frame, s.base_frame)
        return self._kinematics

    @property
    def host(self) -> str:
        return self.config.host

    # -- lifecycle ----------------------------------------------------------------------------------
    def _connect(self) -> None:
        enforce = realtime_enforced(self.config.realtime)
        rt = franky.RealtimeConfig.Enforce if enforce else franky.RealtimeConfig.Ignore
        _ = self.kinematics  # load before the first read, not inside the control loop
        try:
            with keep_thread_scheduling():  # libfranka would leave this thread at SCHED_FIFO 99
                self._robot = franky.Robot(self.host, relative_dynamics_factor=self._dynamics, realtime_config=rt)
                if self.config.gripper:
                    g = self.spec.gripper
                    assert g is not None
                    self._hand = FrankaHand(
                        self.host, g.max_width, self.config.gripper_speed, self.config.gripper_force
                    )
        except Exception as exc:
            self._robot, self._hand = None, None
            if isinstance(exc, franky.RealtimeException):
                raise DeviceFaultError(
                    DEVICE, "host", f"{one_line(exc)} (set realtime='ignore' to run anyway)"
                ) from None
            err = translate(exc, self.host)
            if err is None:
                raise
            if isinstance(err, LinkLostError):  # never connected: say so, not "lost"
                err = LinkLostError(f"{DEVICE} robot on {self.host}: cannot connect: {one_line(exc)}")
            raise err from None
        self._fault = None
        self._stream = None
        self.commands_sent = 0
        logger.info("%s connected to %s (dynamics factor %.2f)", DEVICE, self.host, self.config.dynamics_factor)

    def _close(self) -> None:
        """Stop the arm (decelerate to rest and hold), then release the robot and gripper; never raises."""
        robot, hand, stream = self._robot, self._hand, self._stream
        self._robot, self._hand, self._stream = None, None, None
        if hand is not None:
            hand.close()
            del hand
        if robot is None:
            return
        if stream is not None:
            stream.close()
        if not isinstance(self._fault, LinkLostError):
            try:
                if robot.is_in_control and stream is not None:
                    # franky cannot preempt a torque motion with a JointStopMotion (another motion type), so
                    # the impedance motion itself brakes: hold where the arm is, until it is at rest.
                    stream.brake(np.array(robot.state.q, dtype=float))
                    deadline = time.monotonic() + STOP_TIMEOUT
                    while time.monotonic() < deadline and np.max(np.abs(robot.state.dq)) > REST_VELOCITY:
                        time.sleep(0.01)
                elif robot.is_in_control:
                    robot.move(franky.JointStopMotion(), asynchronous=True)
                    robot.join_motion(STOP_TIMEOUT)
            except Exception as exc:  # the arm is stopping or stopped anyway: the controller holds on abort
                logger.warning("%s on %s: stopping at close: %s", DEVICE, self.host, one_line(exc))
        del stream
        try:
            robot.stop()
        except Exception as exc:
            logger.debug("%s on %s: stop at close: %s", DEVICE, self.host, one_line(exc))
        del robot
        gc.collect()  # drop the connection now even if a reference cycle holds the Robot: one client only

    def recover(self) -> bool:
        """Run libfranka's automatic error recovery after a reflex; clears the latched fault on success."""
        self._require_connected()
        if isinstance(self._fault, LinkLostError):
            raise self._fault
        assert self._robot is not None
        try:
            ok = bool(self._robot.recover_from_errors())
        except Exception as exc:
            raise self._latch(exc) from None
        if ok:
            self._fault = None
            self._end_stream()
        return ok

    def _end_stream(self) -> None:
        """Forget the impedance motion (aborted by a reflex): the next command starts a new one."""
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    # -- fault handling -----------------------------------------------------------------------------
    def _latch(self, exc: BaseException) -> RcsError:
        """Record a franky failure as the driver's fault (a link loss is never overwritten)."""
        if isinstance(self._fault, LinkLostError):
            return self._fault
        err = translate(exc, self.host)
        if err is None:
            err = DeviceFaultError(DEVICE, "controller", f"{type(exc).__name__}: {one_line(exc)}")
        self._set_fault(err)  # with auto_recover, may already be cleared again: still raised once
        return err

    def _set_fault(self, err: RcsError) -> None:
        if isinstance(self._fault, LinkLostError):
            return
        self._fault = err
        if isinstance(err, DeviceFaultError) and self.config.auto_recover and self._robot is not None:
            logger.warning("%s; auto_recover: running automatic error recovery", err)
            try:
                recovered = bool(self._robot.recover_from_errors())
            except Exception as exc:
                logger.warning("%s on %s: automatic error recovery failed: %s", DEVICE, self.host, one_line(exc))
                return
            if recovered:
                self._fault = None
                self._end_stream()

    def _check(self) -> None:
        """Raise the latched fault, or a failure the running motion ended with.

        No method keeps the franky Robot in a local variable: a traceback the caller keeps would keep the
        connection open, and the controller (and franky-sim) serves one client only, so reconnecting would hang.
        """
        if self._fault is not None:
            raise self._fault
        assert self._robot is not None
        try:
            self._robot.poll_motion()  # re-raises what ended the last asynchronous motion (reflex, link loss)
        except Exception as exc:
            err = self._latch(exc)
            raise err from None

    def _raise_fault(self, err: RcsError) -> None:
        self._set_fault(err)
        raise err

    # -- Arm hooks ----------------------------------------------------------------------------------
    def _read(self) -> ArmState:
        self._check()
        try:
            state = self._robot.state
        except Exception as exc:
            raise self._latch(exc) from None
        timestamp = time.monotonic()
        names = error_names(state.current_errors)
        if names:
            self._raise_fault(state_fault(names, state.robot_mode))
        q = np.array(state.q, dtype=float)
        gripper = float("nan")
        if self._hand is not None:
            try:
                gripper = self._hand.width()
            except RcsError as err:
                self._raise_fault(err)
        position, quaternion = self.kinematics.forward(q)
        return ArmState(
            timestamp=timestamp,
            joint_positions=q,
            joint_velocities=np.array(state.dq, dtype=float),
            joint_efforts=np.array(state.tau_J, dtype=float),
            gripper=gripper,
            tcp_position=position,
            tcp_quaternion=quaternion,
        )

    def _write_joint_positions(self, q: np.ndarray) -> None:
        self._check()
        try:
            if self._stream is None or not self._robot.is_in_control:
                self._start_stream()
            self._stream.update(q)
        except RcsError:
            raise
        except Exception as exc:
            self._end_stream()
            raise self._latch(exc) from None
        self.commands_sent += 1

    def _start_stream(self) -> None:
        """Start the impedance motion holding the arm's current position (first command, or after recovery)."""
        self._end_stream()
        stream = ImpedanceStream(
            stiffness=np.array(self.config.stiffness),
            damping=np.array(self.config.damping),
            max_velocity=self.spec.max_velocity,  # already scaled by the dynamics factor (spec_for)
            lower=self.spec.lower,
            upper=self.spec.upper,
        )
        stream.start(self._robot, np.array(self._robot.state.q, dtype=float))
        self._stream = stream
        deadline = time.monotonic() + MOTION_START_TIMEOUT
        # franky reports is_in_control as soon as its control thread exists; the robot runs the motion (mode Move)
        # only once libfranka's start handshake is done, tens of ms later on a loaded host.
        while self._robot.state.robot_mode != franky.RobotMode.Move:
            self._robot.poll_motion()  # a motion that failed to start raises its reason (the caller latches it)
            if time.monotonic() > deadline:
                self._end_stream()
                raise DeviceFaultError(
                    DEVICE, "controller", f"the impedance motion did not start within {MOTION_START_TIMEOUT} s"
                )
            time.sleep(0.001)

    def _write_gripper(self, width: float) -> None:
        self._check()
        assert self._hand is not None  # Arm refuses gripper commands when the spec has no gripper
        try:
            self._hand.command(width)
        except RcsError as err:
            self._raise_fault(err)
        except Exception as exc:
            raise self._latch(exc) from None


def spec_for(config: FrankaConfig) -> ArmSpec:
    """The Panda's spec with the joint velocity and acceleration limits scaled by ``config.dynamics_factor`` (as
    franky scales its own motions), and without the gripper when ``config.gripper`` is off.

    The scaled limits are the arm's limits for the whole stack: the chunk executor and the safety filter plan
    within them, so the streamed targets never outrun what the driver lets the arm do, and an e-stop that holds
    the command holds the arm (a driver-side ramp slower than the stream would carry on after the stop).
    """
    f = config.dynamics_factor
    joints = tuple(
        replace(j, max_velocity=j.max_velocity * f, max_acceleration=j.max_acceleration * f) for j in PANDA.spec.joints
    )
    return replace(PANDA.spec, joints=joints, gripper=PANDA.spec.gripper if config.gripper else None)


def make_franka_panda(**config: Any) -> FrankaArm:
    """Registry factory ``"hw/panda"``: a Franka Panda on franky (not connected yet: ``connect()``/``with``).

    Keyword config (see :class:`hardware.franka.config.FrankaConfig`): ``host`` (required), ``realtime``
    (``"auto"``), ``dynamics_factor`` (0.1), ``auto_recover`` (False), ``limit_policy`` (``"raise"``),
    ``gripper`` (True), ``gripper_speed`` (m/s, 0.05), ``gripper_force`` (N, 20), ``stiffness`` (7 values,
    N m/rad) and ``damping`` (7 values, N m s/rad) of the joint impedance that tracks the streamed targets.
    """
    return FrankaArm(parse_config(config))
