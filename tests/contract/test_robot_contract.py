"""The contract every registered robot passes: simulated now, hardware emulators and drivers later.

Written against the rcs device API only, never a backend. A new backend is covered by registering it.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

import rcs
from rcs.devices import Arm, Quadrotor, Simulated
from rcs.errors import ActionError, NotConnectedError
from rcs.types import ArmState, QuadrotorState

ROBOTS = rcs.robots.names()


@pytest.fixture(params=ROBOTS)
def robot(request):
    r = rcs.make_robot(request.param)
    yield r
    r.close()
    sim = getattr(r, "simulation", None)
    if sim is not None:
        sim.close()


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


def test_clip_policy_clips_and_reports():
    for name in ROBOTS:
        r = rcs.make_robot(name, limit_policy="clip")
        with r:
            if isinstance(r, Arm):
                target = r.spec.upper + 1.0
                sent = r.command_joint_positions(target)
                np.testing.assert_array_equal(sent, r.spec.upper)
            else:
                sent = r.command_motor_thrusts(np.full(r.spec.num_rotors, 2.0))
                np.testing.assert_array_equal(sent, 1.0)
            assert r.clip_report.total == 1
        sim = getattr(r, "simulation", None)
        if sim is not None:
            sim.close()


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
