"""The simulated Crazyflie: model vs spec, motor model, onboard controllers, baseline tracking, validation."""

from __future__ import annotations

import importlib.metadata as md
import logging
import math
import tomllib
from pathlib import Path

import mujoco
import numpy as np
import pytest

import rcs
from rcs.devices import Quadrotor, Simulated, VehicleStateControl
from rcs.errors import ActionError, ConfigError, SimulationDivergedError
from rcs.flight.controllers import PositionController
from rcs.flight.trajectories import FigureEight, Hover, Trajectory
from rcs.spec import DomainRandomization
from sim.mujoco.quadrotor import (
    CRAZYFLIE_RANDOMIZATION,
    CRAZYFLIE_SPEC,
    MOTOR_ACTUATORS,
    MujocoQuadrotor,
    check_model_matches_spec,
    make_crazyflie,
)
from sim.mujoco.simulation import MODELS_DIR

log = logging.getLogger(__name__)
SPEC = CRAZYFLIE_SPEC
REPO = Path(__file__).resolve().parents[2]
U_HOVER = SPEC.hover_thrust / SPEC.num_rotors / SPEC.max_thrust


@pytest.fixture
def quad():
    q = make_crazyflie()
    q.connect()
    q.reset(seed=0)
    yield q
    q.close()


def _place_in_air(q: MujocoQuadrotor, z: float = 1.0, thrust_per_rotor: float | None = None) -> None:
    f = SPEC.hover_thrust / SPEC.num_rotors if thrust_per_rotor is None else thrust_per_rotor
    q.set_vehicle_state([0.0, 0.0, z], [1.0, 0.0, 0.0, 0.0], np.zeros(3), np.zeros(3), np.full(SPEC.num_rotors, f))


def _fly_baseline(q: MujocoQuadrotor, ref: Trajectory, seconds: float, pc: PositionController, t0: float = 0.0):
    """Drive ``command_thrust_rates`` at the spec's control rate with the baseline controller; return the
    position error (m) after each control step against the reference at that time."""
    dt = 1.0 / SPEC.control_rate_hz
    errors = []
    for k in range(int(round(seconds / dt))):
        t = t0 + k * dt
        s = q.read()
        r = ref.sample(t)
        cmd = pc.update(
            s.position,
            s.linear_velocity,
            s.quaternion,
            dt,
            r.position,
            r.velocity,
            r.acceleration,
            r.yaw,
            jerk_ref=ref.jerk(t),
        )
        q.command_thrust_rates(cmd.collective_thrust, cmd.body_rates)
        q.advance(dt)
        errors.append(float(np.linalg.norm(q.read().position - ref.sample(t + dt).position)))
    return np.array(errors)


# -- model vs spec -------------------------------------------------------------------------------------------


def test_spec_and_mjcf_agree():
    """Read the MJCF independently of the backend and compare with the spec, the single source of truth."""
    m = mujoco.MjModel.from_xml_path(str(MODELS_DIR / "crazyflie" / "scene.xml"))
    bid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "crazyflie")
    assert m.body_mass[bid] == pytest.approx(SPEC.mass, rel=1e-9)
    assert m.body_subtreemass[bid] == pytest.approx(SPEC.mass, rel=1e-9)  # visual geoms carry no mass
    np.testing.assert_allclose(m.body_inertia[bid], SPEC.inertia, rtol=1e-9)
    np.testing.assert_allclose(m.body_ipos[bid], 0.0, atol=1e-12)
    for i, name in enumerate(MOTOR_ACTUATORS):
        aid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_ACTUATOR, name)
        sid = m.actuator_trnid[aid, 0]
        np.testing.assert_allclose(m.site_pos[sid], [*SPEC.rotor_positions[i], 0.0], atol=1e-12)
        assert m.actuator_gainprm[aid, 0] == pytest.approx(SPEC.max_thrust, rel=1e-8)
        assert m.actuator_dynprm[aid, 0] == pytest.approx(SPEC.motor_time_constant)
        assert m.actuator_gear[aid, 5] == pytest.approx(-SPEC.rotor_directions[i] * SPEC.torque_to_thrust, rel=1e-8)
    assert SPEC.max_thrust == pytest.approx(0.149, abs=5e-4) and SPEC.torque_to_thrust == pytest.approx(
        0.0251, abs=1e-4
    )
    check_model_matches_spec(m, SPEC, "crazyflie", MOTOR_ACTUATORS)  # the same check the backend runs
    wrong = type(SPEC)(**{**SPEC.__dict__, "mass": 0.03})
    with pytest.raises(ConfigError, match="mass"):
        check_model_matches_spec(m, wrong, "crazyflie", MOTOR_ACTUATORS)
    with pytest.raises(ConfigError, match="mass"):
        MujocoQuadrotor(wrong)


def test_registry_factory_and_protocols():
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]["rcs.robots"]
    assert declared["sim/crazyflie"] == "sim.mujoco.quadrotor:make_crazyflie"
    factory = md.EntryPoint("sim/crazyflie", declared["sim/crazyflie"], "rcs.robots").load()
    q = factory(physics_dt=0.002, onboard_rate_hz=250.0)
    assert isinstance(q, Quadrotor) and isinstance(q, Simulated) and isinstance(q, VehicleStateControl)
    assert q.simulation.timestep == 0.002 and q.onboard_dt == pytest.approx(0.004)
    assert set(q.camera_names) == {"chase", "front", "overview"}
    with pytest.raises(ConfigError, match="onboard_rate_hz"):
        make_crazyflie(physics_dt=0.003)  # 2 ms onboard period is not a whole number of 3 ms steps
    robot = rcs.make_robot("sim/crazyflie", physics_dt=0.001, randomization=None, limit_policy="raise")
    assert isinstance(robot, MujocoQuadrotor)


# -- motor model -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tau_scale", [1.0, 0.5])
def test_motor_lag_step_response(tau_scale):
    rand = DomainRandomization(motor_time_constant=(tau_scale, tau_scale), motor_constant=(0.8, 0.8))
    q = make_crazyflie(randomization=rand)
    with q:
        q.reset(seed=1)
        q.arm()
        tau = SPEC.motor_time_constant * tau_scale
        fmax = 0.8 * SPEC.max_thrust
        q.command_motor_thrusts(np.full(4, 0.2))  # below weight: stays on the ground
        for n_tau in (1, 2, 3):  # 63 %, 86 %, 95 % of the step after 1, 2, 3 time constants
            q.advance(tau)
            np.testing.assert_allclose(q.read().motor_thrusts, (1 - math.exp(-n_tau)) * 0.2 * fmax, rtol=0.02)
        q.advance(10 * tau)
        np.testing.assert_allclose(q.read().motor_thrusts, 0.2 * fmax, rtol=1e-3)


def test_thrust_accelerates_the_body_as_modelled(quad):
    """In the air, vertical acceleration = (sum of lagged thrusts) / m - g."""
    _place_in_air(quad)
    quad.arm()
    quad.command_motor_thrusts(np.full(4, 0.7))
    quad.advance(0.1)
    s0 = quad.read()
    quad.advance(0.001)
    s1 = quad.read()
    acc = (s1.linear_velocity[2] - s0.linear_velocity[2]) / 0.001
    expected = s1.motor_thrusts.sum() / SPEC.mass - 9.81
    assert acc == pytest.approx(expected, rel=1e-3)
    np.testing.assert_allclose(s1.angular_velocity, 0.0, atol=1e-9)


def test_yaw_drag_sign_and_magnitude(quad):
    _place_in_air(quad)
    quad.arm()
    ccw = np.array(SPEC.rotor_directions) == 1
    u = np.where(ccw, U_HOVER + 0.15, U_HOVER - 0.15)  # same collective, more thrust on the CCW pair
    quad.command_motor_thrusts(u)
    izz = SPEC.inertia[2]
    k = SPEC.torque_to_thrust
    expected_rate = 0.0
    for _ in range(300):
        quad.advance(0.001)
        f = quad.read().motor_thrusts  # actearly: the step used the end-of-step thrusts
        expected_rate += 0.001 * k * (f[~ccw].sum() - f[ccw].sum()) / izz
    s = quad.read()
    # CCW rotors push the body clockwise seen from above: negative yaw rate about body z (FLU)
    assert s.angular_velocity[2] < -1.0
    assert s.angular_velocity[2] == pytest.approx(expected_rate, rel=0.01)
    np.testing.assert_allclose(s.angular_velocity[:2], 0.0, atol=1e-9)


def test_front_right_and_back_left_rotors_yaw_the_vehicle_clockwise(quad):
    """Against an outside reference, not our spec: in Bitcraze's firmware mixer (power_distribution_quadrotor.c)
    motors 1 (front right) and 3 (back left) get minus the yaw term, i.e. they spin counter-clockwise and their
    drag yaws the body clockwise seen from above. Rotors are picked by where they sit, not by spec direction."""
    xy = np.array(SPEC.rotor_positions)
    front_right = int(np.flatnonzero((xy[:, 0] > 0) & (xy[:, 1] < 0))[0])
    back_left = int(np.flatnonzero((xy[:, 0] < 0) & (xy[:, 1] > 0))[0])
    assert (front_right, back_left) == (0, 2)  # the firmware's motor numbering: m1 front right, m3 back left
    _place_in_air(quad)
    quad.arm()
    u = np.full(4, U_HOVER - 0.1)
    u[[front_right, back_left]] = U_HOVER + 0.1
    quad.command_motor_thrusts(u)
    quad.advance(0.3)
    s = quad.read()
    assert s.angular_velocity[2] < -1.0  # clockwise from above: negative yaw rate about body z (FLU)
    np.testing.assert_allclose(s.angular_velocity[:2], 0.0, atol=1e-9)


def test_motor_speed_mode_lags_speed_and_thrust_is_its_square(quad):
    """Normalized RPM: the rotor speed follows the command with the motor time constant, thrust = speed^2 * max."""
    _place_in_air(quad, thrust_per_rotor=0.0)  # rotors at rest
    quad.arm()
    w = np.array([0.5, 0.6, 0.7, 0.8])
    quad.command_motor_rpms(w)
    tau = SPEC.motor_time_constant
    quad.advance(tau)
    speed = w * (1.0 - math.exp(-1.0))  # from rest: w (1 - e^(-t / tau)) at t = tau
    np.testing.assert_allclose(quad.read().motor_thrusts, speed**2 * SPEC.max_thrust, rtol=1e-9)
    quad.command_motor_thrusts(np.full(4, U_HOVER))  # switching modes keeps the rotors' state
    quad.command_motor_rpms(w)
    quad.advance(20 * tau)  # e^-20: settled
    np.testing.assert_allclose(quad.read().motor_thrusts, w**2 * SPEC.max_thrust, rtol=1e-6)


def test_hover_in_speed_mode_at_the_square_root_of_the_hover_thrust(quad):
    _place_in_air(quad)  # rotors spun up to hover thrust
    quad.arm()
    quad.command_motor_rpms(np.full(4, math.sqrt(U_HOVER)))
    quad.advance(1.0)
    s = quad.read()
    assert abs(s.position[2] - 1.0) < 1e-3 and np.abs(s.linear_velocity).max() < 1e-3


def test_an_unresolvable_spin_raises_instead_of_returning_numbers(quad):
    """Full thrust on one diagonal spins the drag-free model up without bound; once the body turns more than the
    integrator resolves per step, advance raises one clear error (it used to return ~1e4 rad/s silently)."""
    _place_in_air(quad)
    quad.arm()
    quad.command_motor_thrusts(np.array([1.0, 0.0, 1.0, 0.0]))
    with pytest.raises(SimulationDivergedError) as e:
        for _ in range(100):
            quad.advance(0.1)
    assert len(str(e.value).splitlines()) == 1 and "rad per 1 ms physics step" in str(e.value)
    assert np.abs(quad.read().angular_velocity).max() < 1000.0  # raised near the limit, not long after


def test_a_non_finite_state_raises_and_mujoco_warns_through_logging(quad, caplog, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _place_in_air(quad)
    quad.simulation.data.qvel[0] = np.nan
    with caplog.at_level(logging.WARNING, logger="sim.mujoco.simulation"):
        with pytest.raises(SimulationDivergedError, match="crazyflie_scene: simulation diverged"):
            quad.advance(0.01)
    assert any("MuJoCo: Nan, Inf or huge value" in r.getMessage() for r in caplog.records)
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()  # MuJoCo's default handler would have written it here


def test_equal_hover_thrust_gives_zero_yaw_torque(quad):
    _place_in_air(quad)
    quad.arm()
    quad.command_motor_thrusts(np.full(4, U_HOVER))
    quad.advance(1.0)
    s = quad.read()
    np.testing.assert_allclose(s.angular_velocity, 0.0, atol=1e-12)
    np.testing.assert_allclose(s.position, [0.0, 0.0, 1.0], atol=1e-6)  # and it hovers
    c, torques = quad.mixer.wrench(s.motor_thrusts)
    np.testing.assert_allclose(torques, 0.0, atol=1e-15)


# -- arming and validation ------------------------------------------------------------------------------------


def test_disarmed_motors_produce_no_thrust(quad):
    quad.advance(0.2)  # settle into the (soft) ground contact
    z0 = quad.read().position[2]
    quad.command_motor_thrusts(np.ones(4))
    quad.command_thrust_rates(0.5, np.zeros(3))
    quad.command_position(np.array([0.0, 0.0, 1.0]))
    quad.advance(0.5)
    s = quad.read()
    assert not s.armed and not s.motor_thrusts.any()
    assert s.position[2] == pytest.approx(z0, abs=1e-6)
    # armed it flies; disarmed again the motors are commanded to zero and spin down with the motor lag
    quad.arm()
    assert not quad.read().motor_thrusts.any()  # arming alone idles
    quad.command_motor_thrusts(np.ones(4))
    quad.advance(0.5)
    assert quad.read().position[2] > z0 + 0.1
    quad.disarm()
    assert not quad.simulation.data.ctrl.any()
    f0 = quad.read().motor_thrusts
    quad.advance(SPEC.motor_time_constant)
    np.testing.assert_allclose(quad.read().motor_thrusts, f0 * math.exp(-1), rtol=0.01)


def test_zero_collective_stops_the_motors(quad):
    _place_in_air(quad)
    quad.arm()
    quad.command_thrust_rates(0.0, np.array([3.0, 0.0, 0.0]))
    quad.advance(0.01)
    assert not quad.simulation.data.ctrl.any()


def test_bad_inputs_raise_action_error_naming_the_field(quad):
    quad.arm()
    cases = [
        (lambda: quad.command_motor_thrusts(np.array([0.5, np.nan, 0.5, 0.5])), "motor_thrusts[1]"),
        (lambda: quad.command_motor_thrusts(np.zeros(3)), "motor_thrusts.shape"),
        (lambda: quad.command_motor_thrusts(np.full(4, 1.01)), "motor_thrusts[0]"),
        (lambda: quad.command_thrust_rates(SPEC.max_collective_thrust + 0.01, np.zeros(3)), "collective_thrust[0]"),
        (lambda: quad.command_thrust_rates(float("nan"), np.zeros(3)), "collective_thrust"),
        (lambda: quad.command_thrust_rates(0.3, np.array([0.0, 0.0, 100.0])), "body_rates[yaw]"),
        (lambda: quad.command_thrust_rates(0.3, np.zeros(4)), "body_rates.shape"),
        (lambda: quad.command_position(np.array([0.0, np.inf, 1.0])), "position[1]"),
        (lambda: quad.command_position(np.array([0.0, 0.0, 1.0]), float("nan")), "yaw"),
        (lambda: quad.set_vehicle_state([0, 0, 1], [2.0, 0, 0, 0], np.zeros(3), np.zeros(3)), "quaternion"),
        (
            lambda: quad.set_vehicle_state([0, 0, 1], [1.0, 0, 0, 0], np.zeros(3), np.zeros(3), np.full(4, 1.0)),
            "motor_thrusts[0]",
        ),
    ]
    for command, field in cases:
        with pytest.raises(ActionError) as e:
            command()
        assert e.value.field == field, str(e.value)
    assert not quad.simulation.data.ctrl.any()  # nothing reached the motors


# -- determinism and scheduling --------------------------------------------------------------------------------


def _rollout(seed: int, chunks: list[float]) -> tuple[np.ndarray, dict[str, float]]:
    q = make_crazyflie(randomization=CRAZYFLIE_RANDOMIZATION)
    with q:
        q.reset(seed=seed)
        q.arm()
        out = []
        for i, dt in enumerate(chunks):
            q.command_thrust_rates(0.35, np.array([0.5 * math.sin(i), 0.3, -0.2]))
            q.advance(dt)
            s = q.read()
            out.append(
                np.concatenate([s.position, s.quaternion, s.linear_velocity, s.angular_velocity, s.motor_thrusts])
            )
        return np.array(out), dict(q.simulation.scales)


def test_deterministic_under_seed_and_randomization_applied():
    a, sa = _rollout(3, [0.01] * 60)
    b, sb = _rollout(3, [0.01] * 60)
    c, sc = _rollout(4, [0.01] * 60)
    np.testing.assert_array_equal(a, b)
    assert sa == sb and sa != sc and not np.array_equal(a, c)
    for key in ("motor_constant", "motor_time_constant", "inertia"):
        lo, hi = CRAZYFLIE_RANDOMIZATION.ranges()[key]
        assert lo <= sa[key] <= hi
    q = make_crazyflie(randomization=CRAZYFLIE_RANDOMIZATION)
    q.reset(seed=3)
    m = q.simulation.model
    ids = q.simulation.motor_ids
    np.testing.assert_allclose(m.actuator_gainprm[ids, 0], SPEC.max_thrust * sa["motor_constant"])
    np.testing.assert_allclose(m.actuator_dynprm[ids, 0], SPEC.motor_time_constant * sa["motor_time_constant"])
    np.testing.assert_allclose(
        m.body_inertia[q.simulation.body_id("crazyflie")], np.array(SPEC.inertia) * sa["inertia"]
    )
    np.testing.assert_allclose(m.dof_M0[3:6], np.array(SPEC.inertia) * sa["inertia"])  # reaches the dynamics
    q.reset(seed=None)  # unseeded reset: nominal model
    np.testing.assert_allclose(m.actuator_gainprm[ids, 0], SPEC.max_thrust)


def test_onboard_ticks_are_aligned_to_simulated_time():
    """Advancing in uneven chunks gives the same trajectory as in whole control periods."""
    a, _ = _rollout(5, [0.01] * 20)
    chunks = [0.003, 0.007] * 20  # same command changes at the same times (every 10 ms)
    q = make_crazyflie(randomization=CRAZYFLIE_RANDOMIZATION)
    with q:
        q.reset(seed=5)
        q.arm()
        out = []
        for i in range(20):
            q.command_thrust_rates(0.35, np.array([0.5 * math.sin(i), 0.3, -0.2]))
            q.advance(chunks[2 * i])
            q.advance(chunks[2 * i + 1])
            s = q.read()
            out.append(
                np.concatenate([s.position, s.quaternion, s.linear_velocity, s.angular_velocity, s.motor_thrusts])
            )
    np.testing.assert_array_equal(a, np.array(out))
    assert q.sim_time == pytest.approx(0.2, abs=1e-12)


# -- closed loop: hover and tracking ------------------------------------------------------------------------------

WIND = np.array([0.005, -0.004, 0.0])  # N, a steady lateral disturbance (~2.4% of the weight)


@pytest.mark.parametrize(
    "seed, randomization", [(0, None), (11, CRAZYFLIE_RANDOMIZATION)], ids=["nominal", "randomized"]
)
def test_hover_position_mode_holds_within_2cm(seed, randomization):
    """Acceptance: take off from the ground with the onboard position controller, settle, then stay within
    2 cm of the setpoint for 5 s, against a steady wind."""
    q = make_crazyflie(randomization=randomization)
    with q:
        q.reset(seed=seed)
        q.simulation.data.xfrc_applied[q.simulation.body_id("crazyflie"), :3] = WIND
        q.arm()
        target = np.array([0.3, -0.2, 1.0])
        q.command_position(target, yaw=0.5)
        q.advance(8.0)  # take-off and settling
        err = []
        for _ in range(500):
            q.advance(0.01)
            err.append(np.linalg.norm(q.read().position - target))
        err = np.array(err)
        yaw = 2 * math.atan2(q.read().quaternion[3], q.read().quaternion[0])
        scales = q.simulation.scales
    log.info(
        "position-mode hover %s: max %.2f mm, RMS %.2f mm over 5 s",
        scales,
        1e3 * err.max(),
        1e3 * np.sqrt(np.mean(err**2)),
    )
    assert err.max() < 0.02
    assert yaw == pytest.approx(0.5, abs=0.02)


def test_hover_baseline_thrust_rates_holds_within_2cm(quad):
    """Acceptance: the baseline PositionController driving command_thrust_rates at 100 Hz holds a hover."""
    quad.simulation.data.xfrc_applied[quad.simulation.body_id("crazyflie"), :3] = WIND
    quad.arm()
    pc = PositionController(SPEC)
    ref = Hover([-0.2, 0.1, 1.0], yaw=-0.4)
    _fly_baseline(quad, ref, 8.0, pc)
    err = _fly_baseline(quad, ref, 5.0, pc, t0=8.0)
    log.info("baseline hover: max %.2f mm, RMS %.2f mm over 5 s", 1e3 * err.max(), 1e3 * np.sqrt(np.mean(err**2)))
    assert err.max() < 0.02


@pytest.mark.parametrize(
    "seed, randomization", [(0, None), (12, CRAZYFLIE_RANDOMIZATION)], ids=["nominal", "randomized"]
)
def test_figure_eight_tracking_with_baseline(seed, randomization, record_property):
    """Figure eight 1.0 m x 0.5 m (half-extents), 8 s period, 1 m height, after an 8 s speed ramp."""
    q = make_crazyflie(randomization=randomization)
    with q:
        q.reset(seed=seed)
        q.arm()
        pc = PositionController(SPEC)
        _fly_baseline(q, Hover([0.0, 0.0, 1.0]), 6.0, pc)  # take off to the start point
        f8 = FigureEight(center=(0.0, 0.0), amplitude_x=1.0, amplitude_y=0.5, period=8.0, height=1.0)
        err = _fly_baseline(q, f8, 24.0, pc)  # 8 s ramp + two full loops
        scales = q.simulation.scales
    ramp, loops = err[:800], err[800:]
    rms, peak = float(np.sqrt(np.mean(loops**2))), float(loops.max())
    record_property("figure_eight_rms_m", rms)
    record_property("figure_eight_max_m", peak)
    log.info(
        "figure eight %s: RMS %.2f mm, max %.2f mm (ramp max %.2f mm)", scales, 1e3 * rms, 1e3 * peak, 1e3 * ramp.max()
    )
    assert rms < 0.01 and peak < 0.02 and ramp.max() < 0.02


def test_position_mode_is_stable_at_the_hardest_randomization_corner():
    """Slow motors, 6.2 x inertia and 25 % less thrust than the controllers assume, all at once."""
    corner = DomainRandomization(
        motor_constant=(0.75, 0.75), motor_time_constant=(1.0, 1.0), extra={"inertia": (6.2, 6.2)}
    )
    q = make_crazyflie(randomization=corner)
    with q:
        q.reset(seed=0)
        q.arm()
        target = np.array([0.5, 0.5, 1.2])
        q.command_position(target, yaw=-1.0)
        q.advance(10.0)
        err = []
        for _ in range(300):
            q.advance(0.01)
            err.append(np.linalg.norm(q.read().position - target))
    assert max(err) < 0.02
