"""Reality shifts (rcs.shifts, sim.mujoco.shifts) and the simulated-arm options they are made of: actuation delay,
object mass and servo damping through the randomization schema, camera offsets. Real MuJoCo physics throughout."""

from __future__ import annotations

import numpy as np
import pytest

import rcs
from rcs.errors import ConfigError, UnknownNameError
from rcs.shifts import RealityShift, make_shift
from sim.mujoco.shifts import REALITY_A

STEP = np.array([0.1, 0, 0, 0, 0, 0, 0])  # rad: a joint1 step command


def _joint1_response(**config) -> np.ndarray:
    """joint1's motion (rad) over 20 control ticks of 10 ms after a 0.1 rad step command at t = 0."""
    arm = rcs.make_robot("sim/panda", **config)
    with arm:
        arm.reset(seed=None)
        q0 = arm.read().joint_positions.copy()
        arm.command_joint_positions(q0 + STEP)
        out = []
        for _ in range(20):
            arm.advance(0.01)
            out.append(arm.read().joint_positions[0] - q0[0])
    arm.simulation.close()
    return np.asarray(out)


def test_actuation_delay_applies_each_command_exactly_the_delay_later() -> None:
    now = _joint1_response()
    late = _joint1_response(actuation_delay_s=0.03)
    assert np.all(np.abs(late[:3]) < 1e-9)  # 3 ticks of nothing: the command has not arrived
    assert now[0] > 1e-4  # without the delay the joint moves within the first tick
    np.testing.assert_allclose(late[3:], now[:-3], atol=1e-9)  # then the same motion, 30 ms later


def test_arm_extras_scale_object_mass_and_servo_damping_only() -> None:
    nominal = rcs.make_robot("sim/panda")
    shifted = rcs.make_robot(
        "sim/panda",
        randomization={
            "actuator_gain": (0.7, 0.7),
            "extra": {"object_mass": (2.0, 2.0), "actuator_damping": (1.5, 1.5)},
        },
    )
    shifted.reset(seed=4)  # fixed ranges: every draw is the same value
    m0, m1 = nominal.simulation.model, shifted.simulation.model
    cube = m0.body("cube").id
    assert m1.body_mass[cube] == pytest.approx(2.0 * m0.body_mass[cube])
    others = np.arange(m0.nbody) != cube
    np.testing.assert_array_equal(m1.body_mass[others], m0.body_mass[others])
    j1 = m0.actuator("joint1").id
    assert m1.actuator_gainprm[j1, 0] == pytest.approx(0.7 * m0.actuator_gainprm[j1, 0])
    assert m1.actuator_biasprm[j1, 1] == pytest.approx(0.7 * m0.actuator_biasprm[j1, 1])
    assert m1.actuator_biasprm[j1, 2] == pytest.approx(0.7 * 1.5 * m0.actuator_biasprm[j1, 2])
    for arm in (nominal, shifted):
        arm.simulation.close()


def test_camera_offset_moves_only_that_camera() -> None:
    nominal = rcs.make_robot("sim/panda")
    moved = rcs.make_robot("sim/panda", camera_offsets={"front": [0.0, 0.01, 0.0, 0.0, 0.02, 0.0]})
    a, b = (r.simulation.camera_pose_world("front") for r in (nominal, moved))
    parent = nominal.simulation.model.cam_bodyid[nominal.simulation.camera_id("front")]
    assert parent == 0  # the front camera hangs from the world: the offset is in world coordinates
    np.testing.assert_allclose(b[:3, 3] - a[:3, 3], [0.0, 0.01, 0.0], atol=1e-12)
    angle = np.arccos(np.clip((np.trace(a[:3, :3].T @ b[:3, :3]) - 1) / 2, -1, 1))
    assert angle == pytest.approx(0.02, abs=1e-9)
    np.testing.assert_allclose(
        nominal.simulation.camera_pose_world("wrist"), moved.simulation.camera_pose_world("wrist"), atol=1e-12
    )
    for arm in (nominal, moved):
        arm.simulation.close()


def test_bad_shift_options_are_one_line() -> None:
    cases = {
        "actuation_delay_s=nan": {"actuation_delay_s": float("nan")},
        "actuation_delay_s=2": {"actuation_delay_s": 2},
        "inertia not read by a simulated arm": {"randomization": {"extra": {"inertia": (1.0, 1.0)}}},
        "unknown field(s) foo": {"randomization": {"foo": (1.0, 1.0)}},
        "camera_offsets.top: no such camera": {"camera_offsets": {"top": [0] * 6}},
        "camera_offsets.front=[0, 0]": {"camera_offsets": {"front": [0, 0]}},
    }
    for needle, config in cases.items():
        with pytest.raises(ConfigError) as err:
            rcs.make_robot("sim/panda", **config)
        assert needle in str(err.value) and "\n" not in str(err.value), (needle, str(err.value))


def test_reality_a_is_pinned() -> None:
    """The hidden values of the shifted-reality benchmark: changing them invalidates every recorded figure
    (docs/eval.md) and the shipped residual, so this test must change with them, on purpose."""
    assert make_shift("reality-a") is REALITY_A
    assert REALITY_A.robot == "sim/panda"
    assert dict(REALITY_A.robot_config) == {
        "randomization": {
            "friction": (0.6, 0.6),
            "actuator_gain": (0.5, 0.5),
            "extra": {"object_mass": (2.0, 2.0), "actuator_damping": (1.5, 1.5)},
        },
        "actuation_delay_s": 0.12,
        "camera_offsets": {"front": (0.0, 0.01, 0.0, 0.0, 0.02, 0.0)},
    }
    config = REALITY_A.apply("sim/panda", {})
    arm = rcs.make_robot("sim/panda", **config)  # the shift's options are all accepted by the robot
    arm.reset(seed=0)
    assert arm.simulation.scales["friction"] == 0.6 and arm.simulation.scales["object_mass"] == 2.0
    arm.simulation.close()


def test_shift_refuses_another_robot_a_clash_and_an_unknown_name() -> None:
    with pytest.raises(ConfigError, match="made for robot 'sim/panda', not 'sim/so101'"):
        REALITY_A.apply("sim/so101")
    with pytest.raises(ConfigError, match="sets actuation_delay_s, which the run sets too"):
        REALITY_A.apply("sim/panda", {"actuation_delay_s": 0.01})
    with pytest.raises(UnknownNameError, match="reality-a"):
        make_shift("reality-b")
    shift = RealityShift("x", "sim/panda", "nothing")
    assert shift.apply("sim/panda", {"physics_dt": 0.001}) == {"physics_dt": 0.001}
