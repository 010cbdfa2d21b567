"""The batched quadrotor model (sim/batch) against the MuJoCo Crazyflie, its randomization, divergence, vector env.

Tolerances of the agreement tests: both sides integrate the same equations (filterexact motor lag with actearly,
thrust and rotor drag from the spec, rigid body with gyroscopic term) with the same scheme (MuJoCo's semi-implicit
Euler and exponential-map quaternion update at 1 ms), so they differ only by floating-point rounding (order of
operations). Measured: ~1e-10 m after 1 s open loop, growing with the open-loop instability of a tilted,
spinning vehicle; the bounds (1e-6 m, 1e-6 quaternion, 1e-4 rad/s, 1e-9 N) leave ~1000x margin over that and are
still ~1000x tighter than any modelling difference would give (e.g. a 1 % thrust error moves the vehicle ~5 mm
in 1 s, a missing gyroscopic term ~1e-3 rad/s after 1 s at these rates).
"""

from __future__ import annotations

import numpy as np
import pytest

from rcs.errors import ConfigError, SimulationDivergedError
from rcs.flight import hover_task
from rcs.flight.controllers import Mixer, PositionController, RateController
from rcs.geometry import quat_from_euler_rpy
from rcs.spec import DomainRandomization
from sim.batch.hover_env import HoverVectorEnv
from sim.batch.quadrotor import BatchQuadrotor
from sim.mujoco.quadrotor import CRAZYFLIE_RANDOMIZATION, CRAZYFLIE_SPEC, make_crazyflie

SPEC = CRAZYFLIE_SPEC
#: the Crazyflie randomization plus a mass range, so every parameter the batch model randomizes is exercised
RANDOMIZATION = DomainRandomization(
    mass=(0.8, 1.2),
    motor_constant=CRAZYFLIE_RANDOMIZATION.motor_constant,
    motor_time_constant=CRAZYFLIE_RANDOMIZATION.motor_time_constant,
    extra=dict(CRAZYFLIE_RANDOMIZATION.extra),
)
STARTS = [
    # position, roll/pitch/yaw, linear velocity, angular velocity, motor thrust (fraction of max)
    ((0.1, -0.2, 2.0), (0.2, -0.1, 0.5), (0.2, 0.1, -0.1), (0.3, -0.4, 0.5), 0.45),
    ((0.0, 0.0, 2.0), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), 0.3),
    ((-0.3, 0.4, 2.0), (-0.1, 0.15, -2.0), (-0.5, 0.3, 0.4), (-0.3, 0.2, 3.0), 0.7),
]


def _mujoco_vehicles(seeds: list[int]):
    """MuJoCo vehicles, each reset with a seed of RANDOMIZATION; and a batch with the same drawn parameters."""
    vehicles = []
    batch = BatchQuadrotor(SPEC, len(seeds))
    for i, seed in enumerate(seeds):
        v = make_crazyflie(randomization=RANDOMIZATION)
        v.connect()
        v.reset(seed=seed)
        v.arm()
        k = v.simulation.scales
        batch.set_parameters(
            [i],
            mass=SPEC.mass * k["mass"],
            inertia=np.asarray(SPEC.inertia) * k["mass"] * k["inertia"],
            max_thrust=SPEC.max_thrust * k["motor_constant"],
            motor_time_constant=SPEC.motor_time_constant * k["motor_time_constant"],
        )
        vehicles.append(v)
    return vehicles, batch


def _place(vehicles, batch) -> None:
    for i, (v, (p, rpy, lin, ang, frac)) in enumerate(zip(vehicles, STARTS, strict=True)):
        q = quat_from_euler_rpy(*rpy)
        f = np.full(4, frac * batch.max_thrust[i])
        v.set_vehicle_state(np.array(p), q, np.array(lin), np.array(ang), f)
        batch.set_state([i], np.array(p), q, np.array(lin), np.array(ang), np.full(4, frac))


def _assert_agree(vehicles, batch, when: str) -> None:
    for i, v in enumerate(vehicles):
        s = v.read()
        q = batch.quaternion[i] * np.sign(batch.quaternion[i, 0])
        assert np.abs(s.position - batch.position[i]).max() < 1e-6, (when, i, s.position, batch.position[i])
        assert np.abs(s.quaternion - q).max() < 1e-6, (when, i)
        assert np.abs(s.linear_velocity - batch.linear_velocity[i]).max() < 1e-5, (when, i)
        assert np.abs(s.angular_velocity - batch.angular_velocity[i]).max() < 1e-4, (when, i)
        assert np.abs(s.motor_thrusts - batch.motor_thrusts()[i]).max() < 1e-9, (when, i)


def test_open_loop_agrees_with_mujoco():
    """Same randomized parameters, starts and piecewise-constant motor commands for 1 s."""
    vehicles, batch = _mujoco_vehicles([1, 2, 3])
    _place(vehicles, batch)
    rng = np.random.default_rng(0)
    hover = batch.mass * 9.81 / (4 * batch.max_thrust)
    moved, lowest = 0.0, np.inf
    for k in range(100):  # 10 ms command periods
        if k % 10 == 0:  # around each vehicle's hover thrust, unequal per rotor: the vehicles tilt, yaw and drift
            u = np.clip(hover[:, None] * (1.0 + rng.normal(0.0, 0.005, (3, 4))), 0.0, 1.0)
        for i, v in enumerate(vehicles):
            v.command_motor_thrusts(u[i])
            v.advance(0.01)
        batch.step(u, substeps=10)
        moved = max(moved, float(np.abs(batch.position[0] - np.array(STARTS[0][0])).max()))
        lowest = min(lowest, float(batch.position[:, 2].min()))
    _assert_agree(vehicles, batch, "after 1 s")
    assert moved > 0.05  # the comparison covered real motion, not a vehicle at rest
    assert lowest > 0.1  # and stayed in the air (the batch model has no ground)


def test_closed_loop_agrees_with_mujoco():
    """The classical cascade (rcs.flight.controllers) at 500 Hz on each side, from each side's own state, 2 s."""
    vehicles, batch = _mujoco_vehicles([4, 5, 6])
    _place(vehicles, batch)
    target = np.array([0.0, 0.0, 1.2])
    ctrls = [(PositionController(SPEC), RateController(SPEC), Mixer(SPEC)) for _ in range(2 * len(vehicles))]
    dt = 0.002

    def command(ctrl, p, v, q, w) -> np.ndarray:
        pos, rate, mix = ctrl
        cmd = pos.update(p, v, q, dt, target)
        return mix.allocate(cmd.collective_thrust, rate.update(cmd.body_rates, w, dt)).normalized

    for _ in range(1000):
        u = np.zeros((len(vehicles), 4))
        for i, v in enumerate(vehicles):
            s = v.read()
            v.command_motor_thrusts(command(ctrls[i], s.position, s.linear_velocity, s.quaternion, s.angular_velocity))
            v.advance(dt)
            b = len(vehicles) + i
            u[i] = command(
                ctrls[b], batch.position[i], batch.linear_velocity[i], batch.quaternion[i], batch.angular_velocity[i]
            )
        batch.step(u, substeps=2)
    _assert_agree(vehicles, batch, "after 2 s closed loop")
    assert np.linalg.norm(batch.position - target, axis=1).max() < 0.2  # the loop did fly towards the target


def test_randomization_is_per_vehicle_within_the_schema_and_seeded():
    a = BatchQuadrotor(SPEC, 64, randomization=RANDOMIZATION)
    b = BatchQuadrotor(SPEC, 64, randomization=RANDOMIZATION)
    a.randomize(None, np.random.default_rng(7))
    b.randomize(None, np.random.default_rng(7))
    np.testing.assert_array_equal(a.mass, b.mass)
    np.testing.assert_array_equal(a.motor_time_constant, b.motor_time_constant)
    mass_k = a.mass / SPEC.mass
    kf = a.max_thrust / SPEC.max_thrust
    tau_k = a.motor_time_constant / SPEC.motor_time_constant
    inertia_k = a.inertia / np.asarray(SPEC.inertia) / mass_k[:, None]
    for got, (lo, hi) in [
        (mass_k, RANDOMIZATION.mass),
        (kf, RANDOMIZATION.motor_constant),
        (tau_k, RANDOMIZATION.motor_time_constant),
        (inertia_k[:, 0], RANDOMIZATION.extra["inertia"]),
    ]:
        assert got.min() >= lo - 1e-12 and got.max() <= hi + 1e-12
        assert got.std() > 0.1 * (hi - lo)  # drawn per vehicle, not one draw for all
    np.testing.assert_allclose(inertia_k, inertia_k[:, :1].repeat(3, 1))  # one inertia scale per vehicle
    nominal = BatchQuadrotor(SPEC, 4)
    nominal.randomize(None, np.random.default_rng(0))  # no randomization: every vehicle nominal
    assert (nominal.mass == SPEC.mass).all() and (nominal.max_thrust == SPEC.max_thrust).all()


def test_divergence_is_masked_per_vehicle_or_raised():
    hover = SPEC.hover_thrust / 4 / SPEC.max_thrust

    def place(b: BatchQuadrotor) -> None:
        n = b.n
        b.set_state(slice(None), np.tile([0, 0, 1.0], (n, 1)), np.tile([1.0, 0.1, 0, 0], (n, 1)), np.zeros((n, 3)),
                    np.zeros((n, 3)), np.full((n, 4), hover))  # fmt: skip

    b, alone = BatchQuadrotor(SPEC, 3), BatchQuadrotor(SPEC, 1)
    place(b)
    place(alone)
    b.angular_velocity[1] = [0.0, 0.0, 600.0]  # 0.6 rad per 1 ms step: beyond what the step resolves
    b.position[2, 0] = np.nan
    diverged = b.step(np.full((3, 4), hover), substeps=10)
    assert diverged.tolist() == [False, True, True]
    frozen = b.position[1].copy()
    b.step(None, substeps=10)
    alone.step(np.full((1, 4), hover), substeps=20)
    np.testing.assert_array_equal(b.position[1], frozen)  # a diverged vehicle is no longer integrated
    np.testing.assert_allclose(b.position[0], alone.position[0], atol=1e-12)  # the healthy one is unaffected
    assert np.abs(b.position[0] - [0, 0, 1.0]).max() > 1e-4  # (and did move: it is tilted)
    r = BatchQuadrotor(SPEC, 2, on_divergence="raise")
    r.set_state(
        slice(None), np.tile([0, 0, 1.0], (2, 1)), np.tile([1.0, 0, 0, 0], (2, 1)), np.zeros((2, 3)), np.zeros((2, 3))
    )
    r.angular_velocity[1] = [600.0, 0.0, 0.0]
    with pytest.raises(SimulationDivergedError, match=r"vehicles \[1\]"):
        r.step(np.zeros((2, 4)))


def test_vector_env_autoresets_diverged_crashed_and_timed_out_vehicles():
    env = HoverVectorEnv(SPEC, 4, CRAZYFLIE_RANDOMIZATION, episode_s=0.05)
    obs, _ = env.reset(seed=3)
    assert obs.shape == (4, len(hover_task.OBSERVATION_NAMES)) and obs.dtype == np.float32
    np.testing.assert_array_equal(
        obs,
        hover_task.observe(
            env.sim.position, env.sim.quaternion, env.sim.linear_velocity, env.sim.angular_velocity,
            env.last_action, env.target, env.integral,
        ),
    )  # fmt: skip
    # the integral starts with the first step's height error (clipped to 0.1 m), one control period of it
    np.testing.assert_allclose(env.integral, env.dt * np.clip(env.sim.position[:, 2] - env.target[2], -0.1, 0.1))
    env.sim.angular_velocity[0] = [0.0, 600.0, 0.0]  # diverges
    env.sim.position[1] = [0.0, 0.0, 0.01]  # below the ground
    hover = np.full((4, 4), 2 * SPEC.hover_thrust / 4 / SPEC.max_thrust - 1)
    obs, rew, term, trunc, info = env.step(hover)
    assert info["diverged"].tolist() == [True, False, False, False]
    assert term.tolist() == [True, True, False, False] and not trunc.any()
    assert np.isfinite(obs).all() and np.isfinite(rew).all()
    assert not env.sim.diverged.any() and (env.steps[:2] == 0).all()  # reset in the same call
    assert rew[1] < -hover_task.CRASH_PENALTY + 2.0 < rew[2]
    for _ in range(3):
        obs, rew, term, trunc, info = env.step(hover)
    obs, rew, term, trunc, info = env.step(hover)  # 5th step: 0.05 s
    assert trunc[2:].all() and "final_observation" in info
    assert np.abs(info["final_observation"][2, 0:3]).max() > 0.0


def test_bad_parameters_are_one_clear_error_and_change_nothing():
    from rcs.errors import ConfigError

    b = BatchQuadrotor(SPEC, 2)
    for field, value in (("mass", -1.0), ("inertia", [1e-6, 0.0, 1e-6]), ("motor_time_constant", float("nan"))):
        with pytest.raises(ConfigError, match=f"^{field}: every value must be finite"):
            b.set_parameters([0], **{field: value})
    assert b.mass[0] == SPEC.mass and b.motor_time_constant[0] == SPEC.motor_time_constant


def test_observation_layout_matches_its_definition():
    from rcs.geometry import quat_to_matrix

    rng = np.random.default_rng(2)
    q = rng.normal(size=(5, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    p, v, w, a = rng.normal(size=(5, 3)), rng.normal(size=(5, 3)), rng.normal(size=(5, 3)), rng.uniform(-1, 1, (5, 4))
    target = np.array([0.0, 0.0, 1.0])
    integral = rng.uniform(-0.3, 0.3, 5)
    tv, ta = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    obs = hover_task.observe(p, q, v, w, a, target, integral, tv, ta)
    raw = obs * hover_task.OBSERVATION_SCALE  # back to SI units
    np.testing.assert_allclose(raw[:, 0:3], np.clip(p - target, -1.0, 1.0), atol=1e-6)
    np.testing.assert_allclose(raw[:, 3], integral, atol=1e-6)
    for i in range(5):
        np.testing.assert_allclose(raw[i, 4:13], quat_to_matrix(q[i]).reshape(9), atol=1e-6)
    np.testing.assert_allclose(raw[:, 13:16], v - tv, atol=1e-6)
    np.testing.assert_allclose(raw[:, 16:19], w, atol=1e-5)
    np.testing.assert_allclose(raw[:, 19:22], ta, atol=1e-5)
    np.testing.assert_allclose(raw[:, 22:26], a, atol=1e-6)
    hovering = hover_task.observe(p, q, v, w, a, target, integral)  # a hover point: target at rest
    np.testing.assert_array_equal(hovering[:, 13:16], v.astype(np.float32))
    assert (hovering[:, 19:22] == 0).all()
    assert len(hover_task.OBSERVATION_NAMES) == obs.shape[1] == len(hover_task.OBSERVATION_SCALE)


def test_height_error_integral_clips_the_error_then_the_sum():
    """integrate_error: a far height adds at most 0.1 m per second, the sum stops at 0.3 m s; x and y count not."""
    target = np.array([0.0, 0.0, 1.0])
    i = hover_task.integrate_error(np.zeros(2), [[5.0, 0.0, 1.05], [0.0, -3.0, -1.0]], target, 0.5)
    np.testing.assert_allclose(i, [0.025, -0.05])
    for _ in range(20):
        i = hover_task.integrate_error(i, [[0.0, 0.0, 1.05], [0.0, 0.0, -1.0]], target, 0.5)
    np.testing.assert_allclose(i, [0.3, -0.3])
    i = hover_task.integrate_error(i, [[0.0, 0.0, 0.95], [0.0, 0.0, 1.0]], target, 1.0)  # back at once: no windup
    np.testing.assert_allclose(i, [0.25, -0.3])


def test_vector_env_draws_pushes_and_delays_the_action_by_whole_physics_steps():
    """disturbance: a constant vertical force per vehicle within +-30 % of its weight; action_delay_s: the previous
    action acts for the drawn delay, then the new one (checked against stepping a BatchQuadrotor by hand)."""
    env = HoverVectorEnv(SPEC, 64, None, disturbance=(0.0, 0.3), action_delay_s=(0.003, 0.003))
    env.reset(seed=5)
    weight = SPEC.mass * 9.81
    fz = env.sim.external_force[:, 2]
    assert (np.abs(fz) <= 0.3 * weight).all() and np.ptp(fz) > 0.2 * weight
    assert (env.sim.external_force[:, :2] == 0.0).all() and (env.delay == 3).all()
    ref = BatchQuadrotor(SPEC, 64)
    ref.set_state(slice(None), env.sim.position, env.sim.quaternion, env.sim.linear_velocity,
                  env.sim.angular_velocity, env.sim.motor_state)  # fmt: skip
    ref.external_force[:] = env.sim.external_force
    previous, action = env.last_action.copy(), np.full((64, 4), 0.2)
    env.step(action)
    ref.step((previous + 1) / 2, 3)
    ref.step((action + 1) / 2, 7)
    np.testing.assert_allclose(env.sim.position, ref.position, atol=1e-12)
    np.testing.assert_allclose(env.sim.motor_state, ref.motor_state, atol=1e-12)
    with pytest.raises(ConfigError, match="action_delay_s"):
        HoverVectorEnv(SPEC, 2, action_delay_s=(0.0, 0.01))  # a whole control period
    with pytest.raises(ConfigError, match="disturbance"):
        HoverVectorEnv(SPEC, 2, disturbance=(0.0, 1.0))


def test_moving_targets_are_consistent_figure_eights_and_enter_the_observation():
    """MovingTargets: velocity and acceleration are the time derivatives of the position (central differences),
    the height stays the hover point's, the observation's velocity entries are relative to the target's."""
    from sim.batch.hover_env import MovingTargets

    env = HoverVectorEnv(SPEC, 32, None, moving=MovingTargets(fraction=1.0))
    env.reset(seed=4)
    assert (env.target_amplitude > 0).all()
    t, h = np.full(32, 1.3), 1e-4
    args = (env.target_amplitude, env.target_rate, env.target_phase, env.target_heading)
    p, v, a = env.target_motion(t, *args)
    (p_lo, v_lo, _), (p_hi, v_hi, _) = env.target_motion(t - h, *args), env.target_motion(t + h, *args)
    np.testing.assert_allclose((p_hi - p_lo) / (2 * h), v, atol=1e-6)
    np.testing.assert_allclose((v_hi - v_lo) / (2 * h), a, atol=1e-5)
    assert np.allclose(p[:, 2], env.target[2]) and np.abs(v).max() > 0.1
    obs, *_ = env.step(np.zeros((32, 4)))
    p, v, a = env.targets()
    np.testing.assert_allclose(obs[:, 13:16], env.sim.linear_velocity - v, atol=1e-5)
    np.testing.assert_allclose(obs[:, 19:22] * 2.0, a, atol=1e-5)
    hover = HoverVectorEnv(SPEC, 8, None, moving=MovingTargets(fraction=0.0))
    hover.reset(seed=4)
    assert (hover.target_amplitude == 0).all() and (hover.targets()[1] == 0).all()
