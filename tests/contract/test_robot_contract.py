"""The contract every registered robot passes: simulated now, hardware emulators and drivers later.

Written against the rcs device API only, never a backend. A new backend is covered by registering it.
"""

from __future__ import annotations

import importlib.util
import time

import numpy as np
import pytest

import rcs
from rcs.devices import Arm, Quadrotor, Simulated
from rcs.errors import ActionError, NotConnectedError
from rcs.types import ArmState, QuadrotorState
from tests.contract.rigs import RobotRig

# isaac/* needs Isaac Lab, which only .venv-isaac has: tests/isaac/test_isaac_contract.py runs this suite for it there
ROBOTS = [n for n in rcs.robots.names() if not n.startswith("isaac/") or importlib.util.find_spec("isaaclab")]
# s: every emulated driver's link timeout (libfranka 1 s, SO-101 link_timeout_s 1 s) with room for a loaded host
LINK_LOSS_NOTICED_WITHIN_S = 5.0


@pytest.fixture(scope="module", params=ROBOTS)
def rig(request):
    """One rig per robot for the whole module: an emulated robot's emulator is started once."""
    r = RobotRig(request.param)
    yield r
    r.close()


@pytest.fixture
def robot(rig):
    r = rig.make()
    yield r
    rig.release(r)


def test_every_robot_is_an_arm_or_quadrotor(robot):
    assert isinstance(robot, (Arm, Quadrotor))


def test_describes_itself_while_disconnected(robot):
    assert not robot.is_connected
    assert robot.spec.control_rate_hz > 0
    for features in (robot.observation_features, robot.action_features):
        assert features and all("shape" in f and "dtype" in f and "unit" in f for f in features.values())
    with pytest.raises(NotConnectedError):
        robot.read()


def test_lifecycle_is_idempotent_and_context_managed(robot):
    with robot:
        assert robot.is_connected
        robot.connect()
    assert not robot.is_connected
    robot.close()


def _expected_shapes(robot) -> dict[str, tuple[int, ...]]:
    return {name: f["shape"] for name, f in robot.observation_features.items()}


def test_read_matches_features_with_monotonic_timestamps(robot):
    with robot:
        a = robot.read()
        time.sleep(0.001)
        b = robot.read()
        assert isinstance(a, (ArmState, QuadrotorState))
        assert b.timestamp > a.timestamp and abs(b.timestamp - time.monotonic()) < 1.0
        for name, shape in _expected_shapes(robot).items():
            value = np.atleast_1d(getattr(b, name))
            assert value.shape == shape, name
            assert np.isfinite(value).all() or name == "gripper", name


def test_simulated_time_advances_by_whole_steps(robot):
    if not isinstance(robot, Simulated):
        pytest.skip("not simulated")
    with robot:
        robot.reset(seed=0)
        t0 = robot.sim_time
        robot.advance(0.05)
        assert robot.sim_time - t0 == pytest.approx(0.05, abs=1e-9)


# -- bad input: a clear ActionError naming the field, the value and the limit ---------------------------


def _bad_commands(robot):
    if isinstance(robot, Arm):
        n = robot.spec.dof
        home = np.asarray(robot.spec.home)
        over = home.copy()
        over[1] = robot.spec.upper[1] + 0.5
        name1 = robot.spec.joint_names[1]
        return [
            (lambda: robot.command_joint_positions(home[:-1]), "joint_positions.shape"),
            (lambda: robot.command_joint_positions(np.full(n, np.nan)), "joint_positions[0]"),
            (lambda: robot.command_joint_positions(np.array(["x"] * n)), "joint_positions.dtype"),
            (lambda: robot.command_joint_positions(over), f"joint_positions[{name1}]"),
            (lambda: robot.command_gripper(1.5), "gripper[0]"),
            (lambda: robot.command_gripper(float("inf")), "gripper"),
            (lambda: robot.command_cartesian_pose([np.nan, 0, 0]), "cartesian_position[0]"),
            (lambda: robot.command_cartesian_pose([0.3, 0, 0.3], [2.0, 0, 0, 0]), "cartesian_quaternion"),
        ]
    n = robot.spec.num_rotors
    return [
        (lambda: robot.command_motor_thrusts(np.zeros(n + 1)), "motor_thrusts.shape"),
        (lambda: robot.command_motor_thrusts(np.array([0.5, np.nan, 0.5, 0.5][:n])), "motor_thrusts[1]"),
        (lambda: robot.command_motor_thrusts(np.full(n, 1.2)), "motor_thrusts[0]"),
        (lambda: robot.command_motor_rpms(np.array([0.5, 0.5, -0.1, 0.5][:n])), "motor_rpms[2]"),
        (lambda: robot.command_thrust_rates(robot.spec.max_collective_thrust * 2, np.zeros(3)), "collective_thrust[0]"),
        (lambda: robot.command_thrust_rates(0.1, np.array([0.0, 1e3, 0.0])), "body_rates[pitch]"),
        (lambda: robot.command_position(np.array([0.0, np.inf, 1.0])), "position[1]"),
    ]


def test_bad_commands_raise_naming_the_field(robot):
    with robot:
        for command, field in _bad_commands(robot):
            with pytest.raises(ActionError) as e:
                command()
            assert e.value.field == field
            assert str(e.value).startswith(field)


def test_clip_policy_clips_and_reports(rig):
    r = rig.make(limit_policy="clip")
    try:
        with r:
            if isinstance(r, Arm):
                target = r.spec.upper + 1.0
                here = r.read().joint_positions
                sent = r.command_joint_positions(target)
                r.command_joint_positions(here)  # a physical arm must not travel to its limits for this check
                np.testing.assert_array_equal(sent, r.spec.upper)
            else:
                sent = r.command_motor_thrusts(np.full(r.spec.num_rotors, 2.0))
                np.testing.assert_array_equal(sent, 1.0)
            assert r.clip_report.total == 1
    finally:
        rig.release(r)


def test_good_commands_are_accepted(robot):
    with robot:
        if isinstance(robot, Arm):
            robot.command_joint_positions(np.asarray(robot.spec.home))
            if robot.spec.gripper is not None:
                robot.command_gripper(0.5)
            state = robot.read()
            res = robot.command_cartesian_pose(state.tcp_position, state.tcp_quaternion)
            assert res.converged
        else:
            robot.arm()
            robot.command_motor_thrusts(np.full(robot.spec.num_rotors, 0.3))
            robot.command_thrust_rates(robot.spec.hover_thrust, np.zeros(3))
            robot.command_position(np.array([0.0, 0.0, 1.0]), 0.0)


# -- behaviour every arm shares, simulated or physical (emulated) -----------------------------------------


def _arm(robot) -> Arm:
    if not isinstance(robot, Arm):
        pytest.skip("arms only")
    return robot


def _nudge_target(arm: Arm, joint: int, delta: float = 0.15) -> np.ndarray:
    """The current position with one joint moved by ``delta`` rad toward the middle of its range."""
    q = arm.read().joint_positions
    middle = (arm.spec.lower[joint] + arm.spec.upper[joint]) / 2
    target = q.copy()
    target[joint] += delta if q[joint] <= middle else -delta
    return target


def test_joint_order_is_the_specs(rig, robot):
    """Commanding one joint moves that joint and no other by as much, in the physics behind the robot."""
    arm = _arm(robot)
    with arm:
        if isinstance(arm, Simulated):
            arm.reset(seed=0)
        for joint in (0, arm.spec.dof - 1):
            before = rig.truth(arm)
            arm.command_joint_positions(_nudge_target(arm, joint))
            moved = before
            for _ in range(40):  # up to 2 s of robot time
                rig.wait(arm, 0.05)
                moved = np.abs(rig.truth(arm) - before)
                if moved[joint] > 0.1:
                    break
            assert moved[joint] > 0.1, f"joint {arm.spec.joint_names[joint]} moved {moved[joint]:.3f} rad of 0.15"
            assert int(np.argmax(moved)) == joint, f"joint {joint} commanded, moved: {moved.round(3).tolist()}"
            settled, last = False, rig.truth(arm)
            for _ in range(40):  # compare at rest: while moving, the reading and the physics are taken apart
                rig.wait(arm, 0.05)
                now = rig.truth(arm)
                settled, last = bool(np.abs(now - last).max() < 1e-3), now
                if settled:
                    break
            reading = arm.read().joint_positions
            error = np.abs(reading - rig.truth(arm)).max()
            assert error < 0.02, f"read() differs from the physics by {error:.4f} rad (settled: {settled})"


def test_estop_holds_the_arm(rig, robot):
    """The control loop's e-stop stops a moving arm and holds it, whatever commands keep arriving."""
    import time as _time

    from rcs.control.chunking import ActionChunk
    from rcs.control.loop import ControlLoop
    from rcs.control.task import make_policy_task

    arm = _arm(robot)
    rate = min(arm.spec.control_rate_hz, 100.0)
    dt = 1.0 / rate
    with arm:
        if isinstance(arm, Simulated):
            arm.reset(seed=0)
        task = make_policy_task(arm, rate)
        target = np.concatenate([_nudge_target(arm, 0, 0.4), [arm.read().gripper] if arm.spec.gripper else []])

        every = max(1, int(0.05 * rate))  # a fresh chunk every 50 ms: well inside the watchdog's 0.2 s

        class Driver:
            def __init__(self) -> None:
                self.last_chunk = -every

            def read(self, tick: int):
                return task.read(tick)

            def compute(self, tick: int, state):
                # conditions on ranges of ticks: a paced loop skips the deadlines of a late tick
                if tick == 0:
                    task.engage()
                if tick - self.last_chunk >= every:  # fresh chunks keep arriving, before and after the e-stop
                    chunk = np.tile(target, (20, 1))
                    task.executor.submit(ActionChunk(tick, chunk, task.executor.names, dt, dt, _time.monotonic()))
                    self.last_chunk = tick
                if tick >= int(0.3 * rate) and not task.estop.triggered:
                    task.estop.trigger("contract test")
                return task.compute(tick, state)

            def write(self, tick: int, command) -> None:
                task.write(tick, command)

        driver = Driver()
        simulated = isinstance(arm, Simulated)
        loop = ControlLoop(driver, rate, robot=arm if simulated else None, paced=not simulated, rt=None)
        loop.run(ticks=int(0.8 * rate))  # moving for 0.3 s, then 0.5 s to brake
        stopped_at = rig.truth(arm)
        loop.run(ticks=int(0.5 * rate))
        drift = np.abs(rig.truth(arm) - stopped_at).max()
        assert task.estop.triggered
        assert drift < 0.01, f"the arm moved {drift:.4f} rad during the e-stop hold"


def test_link_loss_mid_motion_is_one_clear_error(rig, robot):
    """The robot vanishes while moving: the next call raises LinkLostError naming the link; close() still works."""
    from rcs.errors import LinkLostError

    arm = _arm(robot)
    if not rig.emulated:
        pytest.skip("a simulator has no link to lose")
    arm.connect()
    arm.command_joint_positions(_nudge_target(arm, 0, 0.3))
    rig.kill_link()
    # A driver notices on a read or command once its own link timeout has run out (libfranka: 1 s without a
    # state packet; Feetech: a read unanswered for its retry window). The deadline bounds "eventually" on a
    # loaded host; what is asserted is that the loss surfaces as one LinkLostError, not how fast.
    deadline = time.monotonic() + LINK_LOSS_NOTICED_WITHIN_S
    with pytest.raises(LinkLostError) as e:
        while time.monotonic() < deadline:
            arm.read()
            arm.command_joint_positions(arm.spec.home)
            time.sleep(0.02)
    assert len(str(e.value).splitlines()) == 1 and rig.name in str(e.value)
    arm.close()
    assert not arm.is_connected


def test_vehicle_link_loss_is_one_clear_error(rig, robot):
    """A quadrotor's link vanishes (radio out of range, autopilot off): the next calls raise one LinkLostError
    naming the robot; close() still works. The vehicle side's own failsafe is each emulator's test."""
    from rcs.errors import LinkLostError

    if not isinstance(robot, Quadrotor):
        pytest.skip("quadrotors only")
    if not rig.emulated:
        pytest.skip("a simulator has no link to lose")
    robot.connect()
    robot.read()
    rig.kill_link()
    deadline = time.monotonic() + LINK_LOSS_NOTICED_WITHIN_S
    with pytest.raises(LinkLostError) as e:
        while time.monotonic() < deadline:
            robot.read()
            robot.command_position(np.array([0.0, 0.0, 0.5]), 0.0)
            time.sleep(0.02)
    assert len(str(e.value).splitlines()) == 1 and rig.name in str(e.value)
    robot.close()
    assert not robot.is_connected
