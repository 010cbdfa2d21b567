"""Unit tests of the generic flight-control code (pure numpy, no simulator)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rcs.errors import ConfigError
from rcs.flight.controllers import GRAVITY, Mixer, PositionController, RateController
from rcs.flight.trajectories import FigureEight, Hover
from rcs.geometry import quat_from_euler_rpy, quat_to_euler_rpy
from rcs.spec import QuadrotorSpec

# Crazyflie-like numbers, written out here so these tests do not depend on the simulator package.
SPEC = QuadrotorSpec(
    name="test_quad",
    mass=0.027,
    inertia=(3.85e-6, 3.85e-6, 5.97e-6),
    rotor_positions=((0.028, -0.028), (-0.028, -0.028), (-0.028, 0.028), (0.028, 0.028)),
    rotor_directions=(1, -1, 1, -1),
    max_thrust=0.1488,
    torque_to_thrust=0.0251,
    motor_time_constant=0.15,
    max_body_rate=(34.9, 34.9, 17.4),
    control_rate_hz=100.0,
)
FMAX = SPEC.max_thrust
MIXER = Mixer(SPEC)


# -- Mixer ------------------------------------------------------------------------------------------------


def test_mixer_signs_follow_flu_and_spin_directions():
    hover = SPEC.hover_thrust
    base = MIXER.allocate(hover, np.zeros(3)).thrusts
    np.testing.assert_allclose(base, hover / 4)
    left = np.array([p[1] > 0 for p in SPEC.rotor_positions])
    back = np.array([p[0] < 0 for p in SPEC.rotor_positions])
    cw = np.array(SPEC.rotor_directions) == -1
    roll = MIXER.allocate(hover, np.array([1e-4, 0, 0])).thrusts - base  # +roll: left side up
    pitch = MIXER.allocate(hover, np.array([0, 1e-4, 0])).thrusts - base  # +pitch: nose down, back up
    yaw = MIXER.allocate(hover, np.array([0, 0, 1e-4])).thrusts - base  # +yaw (CCW body): spin CW rotors up
    assert (roll[left] > 0).all() and (roll[~left] < 0).all()
    assert (pitch[back] > 0).all() and (pitch[~back] < 0).all()
    assert (yaw[cw] > 0).all() and (yaw[~cw] < 0).all()


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=4, max_size=4))
def test_mixer_inverse_round_trip_from_thrusts(u):
    """Any thrusts within limits -> wrench -> allocation gives back the same thrusts, unsaturated."""
    f = np.asarray(u) * FMAX
    collective, torques = MIXER.wrench(f)
    out = MIXER.allocate(collective, torques)
    np.testing.assert_allclose(out.thrusts, f, atol=1e-12)
    np.testing.assert_allclose(out.normalized, f / FMAX, atol=1e-12)
    assert not out.saturated or np.isclose(f, 0).any() or np.isclose(f, FMAX).any()


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(st.floats(0.05, 0.5), st.floats(-3e-3, 3e-3), st.floats(-3e-3, 3e-3), st.floats(-2e-3, 2e-3))
def test_mixer_round_trip_of_feasible_wrench(collective, tx, ty, tz):
    """Allocation then inverse reproduces any wrench the rotors can produce."""
    torques = np.array([tx, ty, tz])
    raw = MIXER.thrusts_for(collective, torques)
    out = MIXER.allocate(collective, torques)
    got_c, got_t = MIXER.wrench(out.thrusts)
    if (raw >= 0).all() and (raw <= FMAX).all():
        assert not out.saturated
        assert got_c == pytest.approx(collective, abs=1e-12)
        np.testing.assert_allclose(got_t, torques, atol=1e-15)
    assert got_c == pytest.approx(out.collective_thrust, abs=1e-12)
    np.testing.assert_allclose(got_t, out.torques, atol=1e-15)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.floats(-1.0, 2.0), st.floats(-0.05, 0.05), st.floats(-0.05, 0.05), st.floats(-0.05, 0.05))
def test_mixer_saturation_keeps_thrusts_in_range_and_torque_directions(collective, tx, ty, tz):
    out = MIXER.allocate(collective, np.array([tx, ty, tz]))
    assert (out.thrusts >= 0).all() and (out.thrusts <= FMAX).all()
    assert (out.normalized >= 0).all() and (out.normalized <= 1).all()
    # roll/pitch keep their direction (scaled by roll_pitch_scale), yaw never flips sign; tolerance 1e-10 N m
    # (1e-8 of the largest torque) for rounding at the thrust limits
    np.testing.assert_allclose(out.torques[:2], out.roll_pitch_scale * np.array([tx, ty]), atol=1e-10)
    assert out.torques[2] * np.sign(tz) >= -1e-10
    assert abs(out.torques[2]) <= abs(tz) + 1e-10


def test_mixer_gives_up_yaw_before_roll_pitch_and_collective():
    hover = SPEC.hover_thrust
    rp = np.array([2e-4, -1e-4])
    out = MIXER.allocate(hover, np.array([rp[0], rp[1], 8e-3]))  # beyond the 2 * FMAX * k = 7.5e-3 N m max
    assert out.saturated and out.roll_pitch_scale == 1.0 and 0.0 < out.yaw_scale < 1.0
    np.testing.assert_allclose(out.torques[:2], rp, atol=1e-15)
    assert out.collective_thrust == pytest.approx(hover, abs=1e-12)
    assert np.isclose(out.thrusts, 0).any() or np.isclose(out.thrusts, FMAX).any()  # yaw uses all headroom


def test_mixer_shifts_collective_to_keep_roll_pitch_and_scales_only_an_impossible_spread():
    # near full thrust a roll torque needs the collective lowered
    out = MIXER.allocate(4 * FMAX, np.array([2e-3, 0, 0]))
    assert out.roll_pitch_scale == 1.0 and out.collective_thrust < 4 * FMAX
    assert out.torques[0] == pytest.approx(2e-3, abs=1e-15)
    # a roll torque beyond what any collective allows is scaled down, direction kept
    max_roll = 2 * FMAX * 0.028
    out = MIXER.allocate(2 * FMAX, np.array([3 * max_roll, max_roll, 0]))
    assert out.roll_pitch_scale < 1.0
    assert out.torques[0] / out.torques[1] == pytest.approx(3.0)
    assert (out.thrusts >= 0).all() and (out.thrusts <= FMAX).all()


def test_mixer_rejects_degenerate_layouts():
    bad = QuadrotorSpec(
        "line",
        0.03,
        (1e-5, 1e-5, 2e-5),
        ((0.1, 0), (0.2, 0), (-0.1, 0), (-0.2, 0)),
        (1, -1, 1, -1),
        0.1,
        0.02,
        0.0,
        (10, 10, 10),
        100,
    )
    with pytest.raises(ConfigError):
        Mixer(bad)


# -- RateController ----------------------------------------------------------------------------------------


def test_rate_controller_gains_scale_with_inertia_and_sign():
    heavy = QuadrotorSpec(**{**SPEC.__dict__, "inertia": tuple(2 * i for i in SPEC.inertia)})
    a, b = RateController(SPEC), RateController(heavy)
    ref, rate = np.array([1.0, -2.0, 0.5]), np.zeros(3)
    ta, tb = a.update(ref, rate, 0.002), b.update(ref, rate, 0.002)
    np.testing.assert_allclose(tb, 2 * ta)
    assert (np.sign(ta) == np.sign(ref)).all()


def test_rate_controller_default_gains_place_the_poles():
    rc = RateController(SPEC, bandwidth=40.0, damping=1.0)
    tau = SPEC.motor_time_constant
    np.testing.assert_allclose(rc.kp, 40.0**2 * tau)
    np.testing.assert_allclose(rc.kd, 2 * 1.0 * 40.0 * tau - 1)
    # tau s^2 + (1 + kd) s + kp has a double pole at -40
    np.testing.assert_allclose(np.roots([tau, 1 + rc.kd[0], rc.kp[0]]), [-40.0, -40.0], rtol=1e-6)


def test_rate_controller_no_derivative_kick_and_integral_clamp():
    rc = RateController(SPEC, integral_limit=0.01)
    rc.update(np.zeros(3), np.zeros(3), 0.002)
    t = rc.update(np.array([5.0, 0, 0]), np.zeros(3), 0.002)  # setpoint step, measurement unchanged
    expected = SPEC.inertia[0] * (rc.kp[0] * 5.0 + rc.ki[0] * 0.01)
    assert t[0] == pytest.approx(expected)
    for _ in range(1000):
        rc.update(np.array([5.0, 0, 0]), np.zeros(3), 0.002)
    assert rc.integral[0] == pytest.approx(0.01)
    rc.reset()
    assert not rc.integral.any()


def _simulate_rate_axis(rc: RateController, tau: float, disturbance: float, seconds: float = 2.0) -> np.ndarray:
    """Single-axis rigid body behind a first-order motor lag, 500 Hz controller, 1 kHz physics."""
    inertia = SPEC.inertia[0]
    w = 0.0
    torque = 0.0
    out = []
    for _ in range(int(seconds * 500)):
        cmd = rc.update(np.array([2.0, 0.0, 0.0]), np.array([w, 0.0, 0.0]), 0.002)[0]
        for _ in range(2):
            torque += (1 - math.exp(-0.001 / tau)) * (cmd - torque)
            w += 0.001 * (torque + disturbance) / inertia
        out.append(w)
    return np.array(out)


def test_rate_loop_tracks_a_step_with_a_constant_disturbance():
    w = _simulate_rate_axis(RateController(SPEC), SPEC.motor_time_constant, disturbance=2e-5)
    assert abs(w[-1] - 2.0) < 0.01  # integral action removes the disturbance's offset
    assert w.max() < 2.6  # no wild overshoot


# -- PositionController ------------------------------------------------------------------------------------


def _pc() -> PositionController:
    return PositionController(SPEC)


LEVEL = np.array([1.0, 0, 0, 0])


def test_position_controller_hover_at_reference_is_weight_and_zero_rates():
    cmd = _pc().update(np.array([0, 0, 1.0]), np.zeros(3), LEVEL, 0.01, np.array([0, 0, 1.0]))
    assert cmd.collective_thrust == pytest.approx(SPEC.mass * GRAVITY)
    np.testing.assert_allclose(cmd.body_rates, 0, atol=1e-12)
    np.testing.assert_allclose(cmd.desired_quaternion, LEVEL, atol=1e-12)


def test_position_controller_tilts_towards_the_error_in_flu():
    p = np.array([0, 0, 1.0])
    fwd = _pc().update(p, np.zeros(3), LEVEL, 0.01, p + [0.5, 0, 0])
    left = _pc().update(p, np.zeros(3), LEVEL, 0.01, p + [0, 0.5, 0])
    up = _pc().update(p, np.zeros(3), LEVEL, 0.01, p + [0, 0, 0.5])
    turn = _pc().update(p, np.zeros(3), LEVEL, 0.01, p, yaw_ref=0.3)
    assert fwd.body_rates[1] > 0 and abs(fwd.body_rates[0]) < 1e-12  # pitch nose-down to go +x
    assert left.body_rates[0] < 0 and abs(left.body_rates[1]) < 1e-12  # roll right-side-up to go +y
    assert up.collective_thrust > SPEC.mass * GRAVITY
    assert turn.body_rates[2] > 0 and np.allclose(turn.body_rates[:2], 0, atol=1e-12)
    assert quat_to_euler_rpy(fwd.desired_quaternion)[1] > 0


def test_position_controller_respects_tilt_thrust_and_rate_limits():
    pc = PositionController(SPEC, max_tilt=0.3)
    cmd = pc.update(np.zeros(3), np.zeros(3), LEVEL, 0.01, np.array([100.0, -50.0, 100.0]))
    r, p, _ = quat_to_euler_rpy(cmd.desired_quaternion)
    tilt = math.acos(math.cos(r) * math.cos(p))
    assert tilt <= 0.3 + 1e-9
    assert 0 <= cmd.collective_thrust <= 0.9 * SPEC.max_collective_thrust + 1e-12
    assert (np.abs(cmd.body_rates) <= np.asarray(SPEC.max_body_rate) + 1e-12).all()


def test_position_controller_projects_thrust_on_current_body_z():
    q = quat_from_euler_rpy(0.0, math.radians(30), 0.0)
    cmd = _pc().update(np.array([0, 0, 1.0]), np.zeros(3), q, 0.01, np.array([0, 0, 1.0]))
    assert cmd.collective_thrust == pytest.approx(SPEC.mass * GRAVITY * math.cos(math.radians(30)))
    assert cmd.body_rates[1] < 0  # rotate back to level


def test_position_controller_jerk_feedforward_gives_rates():
    p = np.array([0, 0, 1.0])
    cmd = _pc().update(p, np.zeros(3), LEVEL, 0.01, p, jerk_ref=np.array([1.0, 0, 0]))
    assert cmd.body_rates[1] == pytest.approx(1.0 / GRAVITY)  # q = h . x_b, h = j / g
    cmd = _pc().update(p, np.zeros(3), LEVEL, 0.01, p, jerk_ref=np.array([0, 1.0, 0]))
    assert cmd.body_rates[0] == pytest.approx(-1.0 / GRAVITY)


def test_position_controller_vertical_integral_scales_thrust():
    pc = _pc()
    p = np.array([0, 0, 1.0])
    for _ in range(200):  # vehicle sinking relative to the reference -> integral grows
        cmd = pc.update(p, np.array([0, 0, -0.1]), LEVEL, 0.01, p)
    assert pc.integral[2] > 0 and cmd.collective_thrust > SPEC.mass * GRAVITY
    assert pc.integral[2] <= pc.integral_limit[2]
    pc.reset()
    assert not pc.integral.any()


# -- Trajectories ------------------------------------------------------------------------------------------


def test_hover_reference_is_constant():
    h = Hover([0.1, 0.2, 1.0], yaw=0.3)
    pos, vel, acc, yaw = h.sample(5.0)
    np.testing.assert_array_equal(pos, [0.1, 0.2, 1.0])
    assert not vel.any() and not acc.any() and not h.jerk(1.0).any() and yaw == 0.3


@pytest.mark.parametrize("t", [0.3, 2.0, 5.5, 7.99, 8.0, 8.01, 11.3, 20.0])
def test_figure_eight_derivatives_match_finite_differences(t):
    f = FigureEight(center=(0.2, -0.1), amplitude_x=1.0, amplitude_y=0.5, period=8.0, height=1.2)
    h = 1e-5
    p = lambda s: f.sample(s).position  # noqa: E731
    v = lambda s: f.sample(s).velocity  # noqa: E731
    a = lambda s: f.sample(s).acceleration  # noqa: E731
    np.testing.assert_allclose(f.sample(t).velocity, (p(t + h) - p(t - h)) / (2 * h), atol=1e-7)
    np.testing.assert_allclose(f.sample(t).acceleration, (v(t + h) - v(t - h)) / (2 * h), atol=1e-6)
    np.testing.assert_allclose(f.jerk(t), (a(t + h) - a(t - h)) / (2 * h), atol=1e-5)


def test_figure_eight_starts_as_hover_and_stays_in_its_box():
    f = FigureEight(center=(0.0, 0.0, 1.0), amplitude_x=1.0, amplitude_y=0.5, period=8.0)
    pos, vel, acc, yaw = f.sample(0.0)
    np.testing.assert_array_equal(pos, [0.0, 0.0, 1.0])
    assert not vel.any() and not acc.any() and not f.jerk(0.0).any()
    np.testing.assert_array_equal(f.sample(-1.0).position, pos)
    ts = np.linspace(0, 40, 4001)
    pts = np.array([f.sample(t).position for t in ts])
    assert np.abs(pts[:, 0]).max() <= 1.0 + 1e-12 and np.abs(pts[:, 1]).max() <= 0.5 + 1e-12
    assert np.abs(pts[:, 0]).max() > 0.99 and np.abs(pts[:, 1]).max() > 0.49
    np.testing.assert_array_equal(pts[:, 2], 1.0)
    # after the ramp it is periodic with the period
    np.testing.assert_allclose(f.sample(13.0).position, f.sample(21.0).position, atol=1e-12)
    # the speed ramps up smoothly: no step in velocity anywhere
    vel = np.array([f.sample(t).velocity for t in ts])
    assert np.abs(np.diff(vel, axis=0)).max() < 0.02


def test_figure_eight_rejects_conflicting_height():
    with pytest.raises(ConfigError):
        FigureEight(center=(0, 0, 1.0), height=2.0)
    with pytest.raises(ConfigError):
        FigureEight(period=0.0)
