"""The one policy link (rcs.control.policy_link) and the per-device-kind data it and the robot server use."""

from __future__ import annotations

import math

import numpy as np
import pytest

import rcs
from rcs.control.policy_link import LinkSchedule, PolicyLink, check_replan_steps
from rcs.control.task import DEVICE_KINDS, device_kind, make_policy_task
from rcs.devices import Arm, Quadrotor
from rcs.errors import ConfigError
from rcs.serving.client import PolicyClient
from rcs.serving.protocol import Schema, TensorSpec, text_spec


@pytest.fixture(scope="module")
def panda():
    robot = rcs.make_robot("sim/panda")
    robot.connect()
    yield robot
    robot.close()


@pytest.fixture(scope="module")
def crazyflie():
    robot = rcs.make_robot("sim/crazyflie")
    robot.connect()
    yield robot
    robot.close()


def _schema(names, observation=None, chunk=16, dt=0.05) -> Schema:
    obs = observation or (TensorSpec("observation.state", (len(names),), "float32", "", tuple(names)),)
    return Schema(tuple(obs), TensorSpec("action", (chunk, len(names)), "float32", "rad", tuple(names)), dt)


def test_schedule_sets_the_watchdog_from_the_request_period():
    schedule = LinkSchedule(replan_steps=8, policy_dt=0.05)
    assert schedule.period_s == pytest.approx(0.4)
    assert schedule.watchdog() == pytest.approx({"stop_after_s": 0.6, "disarm_after_s": 1.4})
    assert schedule.watchdog(overdue_s=0.1)["stop_after_s"] == pytest.approx(0.5)
    # configured fields win; timeouts it leaves out follow the period
    assert schedule.watchdog({"disarm_after_s": 3.0}) == pytest.approx({"stop_after_s": 0.6, "disarm_after_s": 3.0})
    with pytest.raises(
        ConfigError, match=r"watchdog.stop_after_s=0.4: must exceed the policy link's request period 0.400 s"
    ):
        schedule.watchdog({"stop_after_s": 0.4})
    assert check_replan_steps("policy.replan_steps", 16, 16) == 16
    with pytest.raises(ConfigError, match=r"policy.replan_steps=17: must be in \[1, 16\] \(the chunk length\)"):
        check_replan_steps("policy.replan_steps", 17, 16)


def test_observation_is_assembled_per_schema(panda):
    task = make_policy_task(panda, 100.0)
    names = task.executor.names
    schema = _schema(
        names,
        (
            TensorSpec("observation.state", (len(names),), "float32", "", tuple(names)),
            TensorSpec("observation.images.front", (4, 6, 3), "uint8", "px"),
            text_spec("task", 32),
        ),
    )
    state = np.arange(len(names), dtype=np.float64)
    image = np.zeros((4, 6, 3), np.uint8)
    features = {"observation.state": state, "observation.images.front": image, "unused": np.zeros(2)}
    client = PolicyClient("tcp://127.0.0.1:1", schema)
    try:
        link = PolicyLink(
            task, panda, client, LinkSchedule(4, 0.05), lambda: (7, 1.5, features), budget_s=0.1, instruction="pick it"
        )
        tick, captured, obs = link.observe()
        assert (tick, captured) == (7, 1.5) and list(obs) == ["observation.state", "observation.images.front", "task"]
        assert obs["observation.state"].dtype == np.float32 and np.array_equal(obs["observation.state"], state)
        assert bytes(obs["task"]).rstrip(b"\0") == b"pick it"
        assert link.feed.period_s == pytest.approx(0.2) and link.action_map is None
        with pytest.raises(ConfigError, match=r"'observation.images.front': robot gives shape \(4, 5, 3\)"):
            link.assemble({**features, "observation.images.front": np.zeros((4, 5, 3), np.uint8)})
        with pytest.raises(ConfigError, match="'observation.state': the robot gives"):
            link.assemble({"observation.images.front": image})
        link.instruction = None
        with pytest.raises(ValueError, match="takes an instruction"):
            link.assemble(features)
    finally:
        client.close()


def test_pose_policies_get_the_kinds_ik_and_other_kinds_refuse_them(panda, crazyflie):
    from rcs.control.cartesian import POSE_6D_NAMES
    from rcs.safety.quadrotor import QuadrotorSafetyConfig
    from rcs.spec import WorkspaceBox

    task = make_policy_task(panda, 100.0)
    pose = (*POSE_6D_NAMES, "gripper")
    client = PolicyClient("tcp://127.0.0.1:1", _schema(pose))
    try:
        link = PolicyLink(
            task, panda, client, LinkSchedule(1, 0.05), lambda: (0, 0.0, {}), budget_s=0.1, measured_state=panda.read
        )
        assert link.action_map.names_in == pose and link.action_map.names_out == task.executor.names
        assert link.report() == {"bridge": link.counters, "state": "connecting", "ik": {"waypoints": 0, "misses": 0}}
    finally:
        client.close()
    deltas = tuple(f"delta_{j}" for j in panda.spec.joint_names) + ("gripper",)
    client = PolicyClient("tcp://127.0.0.1:1", _schema(deltas))
    try:  # joint deltas (rcs record --relative --control-mode joint) are integrated into joint targets
        link = PolicyLink(
            task, panda, client, LinkSchedule(1, 0.05), lambda: (0, 0.0, {}), budget_s=0.1, measured_state=panda.read
        )
        assert link.action_map.names_in == deltas and link.action_map.names_out == task.executor.names
        assert "ik" not in link.report()
    finally:
        client.close()
    safety = QuadrotorSafetyConfig(control_dt=0.01, geofence=WorkspaceBox((-2, -2, 0), (2, 2, 2.5)), max_altitude=2.0)
    quad_task = make_policy_task(crazyflie, 100.0, safety=safety)
    client = PolicyClient("tcp://127.0.0.1:1", _schema(POSE_6D_NAMES))
    try:
        with pytest.raises(ConfigError, match="TCP-pose and joint-delta actions need an arm"):
            PolicyLink(
                quad_task,
                crazyflie,
                client,
                LinkSchedule(1, 0.05),
                lambda: (0, 0.0, {}),
                budget_s=0.1,
                measured_state=crazyflie.read,
            )
    finally:
        client.close()


def test_device_kinds_hold_what_differs_between_arms_and_quadrotors(panda, crazyflie):
    arm, quad = device_kind(panda), device_kind(crazyflie)
    assert (arm, quad) == (DEVICE_KINDS[Arm], DEVICE_KINDS[Quadrotor])
    assert (arm.name, arm.default_mode, arm.armed_at_start, arm.motor_switch, arm.target_frame) == (
        "arm",
        "joint_positions",
        True,
        None,
        "base_frame",
    )
    assert (quad.name, quad.default_mode, quad.armed_at_start, quad.motor_switch, quad.target_frame) == (
        "quadrotor",
        "position",
        False,
        ("arm", "disarm"),
        "world_frame",
    )
    # arm bounds: the spec's joint limits, then the normalized gripper width moved at any speed
    task = make_policy_task(panda, 100.0)
    bounds = arm.bounds(panda, task.safety)
    assert np.array_equal(bounds.lower[:-1], panda.spec.lower) and bounds.upper[-1] == 1.0
    assert math.isinf(bounds.max_velocity[-1]) and bounds.optional == frozenset({"gripper"})
    assert not arm.airborne(task.safety, panda.read())
    # quadrotor: the safety config comes from the config file's fields; geofence top lowered to the ceiling
    safety = quad.safety_from(
        crazyflie,
        100.0,
        {"geofence": {"lower": [-2, -2, 0], "upper": [2, 2, 2.5]}, "max_altitude": 2.0, "max_speed": 0.5},
    )
    qtask = make_policy_task(crazyflie, 100.0, safety=safety)
    qb = quad.bounds(crazyflie, qtask.safety)
    assert qb.upper[:3].tolist() == [2, 2, 2.0] and qb.max_velocity[:3].tolist() == [0.5] * 3
    assert qb.optional == frozenset({"yaw"}) and math.isinf(qb.upper[3])
    with pytest.raises(ConfigError, match="safety: a quadrotor needs geofence"):
        quad.safety_from(crazyflie, 100.0, {"max_altitude": 2.0})
    with pytest.raises(ConfigError, match="safety: "):
        arm.safety_from(panda, 100.0, {"no_such_field": 1})
    # a physical arm has no scene: its workspace box comes from its config file and replaces the scene's
    box = arm.safety_from(panda, 100.0, {"workspace": {"lower": [0.3, -0.2, 0.1], "upper": [0.6, 0.2, 0.5]}})
    assert (box.workspace.lower, box.workspace.upper) == ((0.3, -0.2, 0.1), (0.6, 0.2, 0.5))
    assert box.tcp_position is not None and box.tcp_lipschitz is not None
    with pytest.raises(ConfigError, match=r"safety: .*workspace: \{lower"):
        arm.safety_from(panda, 100.0, {"workspace": {"lower": [0, 0, 0]}})
