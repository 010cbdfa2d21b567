"""A gymnasium-style vector env of the hover task on :class:`sim.batch.quadrotor.BatchQuadrotor`.

Observation, action mapping and reward are :mod:`rcs.flight.hover_task` (the same functions the MuJoCo
evaluation and the deployed policy use). Each of the ``num_envs`` vehicles gets its own domain randomization
draw at every reset. Episodes end with ``terminated`` when a vehicle crashes (position error beyond
``max_position_error`` per axis, below ``ground_z``) or its simulation diverges (``info["diverged"]``), and with
``truncated`` at ``episode_s``. Finished vehicles are reset in the same call (gymnasium's same-step autoreset):
the returned observation is the new episode's first; the last one of the finished episode is in
``info["final_observation"]`` (rows of finished vehicles only are meaningful).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from gymnasium import spaces

from rcs.errors import ConfigError
from rcs.flight import hover_task
from rcs.spec import DomainRandomization, QuadrotorSpec
from sim.batch.quadrotor import GRAVITY, PARAMETERS, BatchQuadrotor

RESET_POOL = 4096
"""Resets drawn ahead at once (see :meth:`HoverVectorEnv._refill`)."""


@dataclass(frozen=True)
class HoverStarts:
    """Distribution of episode starts around the target (uniform in each quantity).

    Attributes:
        position_radius: m, the start is up to this far from the target (uniform direction, uniform radius).
        tilt: rad, up to this angle between body z and world z (uniform axis in the horizontal plane).
        yaw: rad, heading uniform in [-yaw, yaw].
        linear_velocity: m/s per axis. angular_velocity: rad/s per axis (body).
    """

    position_radius: float = 0.5
    tilt: float = math.radians(40.0)
    yaw: float = math.pi
    linear_velocity: float = 0.5
    angular_velocity: float = 2.0


@dataclass(frozen=True)
class MovingTargets:
    """Targets that move (tracking episodes): a figure-eight per episode, ``x = A_x sin(w t + phi)``,
    ``y = A_y sin(2 (w t + phi))`` about the hover point at its height, turned by a random heading; uniform in each
    range below, a random phase and heading. Peak speeds reach about 1 m/s.

    Attributes:
        fraction: share of episodes whose target moves (the rest hover).
        amplitude_x, amplitude_y: m, (low, high) half-extents.
        period: s, (low, high) time of one loop.
    """

    fraction: float = 0.0
    amplitude_x: tuple[float, float] = (0.2, 1.0)
    amplitude_y: tuple[float, float] = (0.1, 0.5)
    period: tuple[float, float] = (6.0, 12.0)


def sample_starts(
    rng: np.random.Generator, n: int, starts: HoverStarts
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``n`` start offsets from the target (m), quaternions, linear (m/s, world) and angular (rad/s, body)
    velocities drawn from ``starts``."""
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    offset = d * rng.uniform(0.0, starts.position_radius, (n, 1))
    axis = rng.uniform(0.0, 2 * math.pi, n)
    tilt = rng.uniform(0.0, starts.tilt, n)
    yaw = rng.uniform(-starts.yaw, starts.yaw, n)
    # q = q_yaw * q_tilt: tilt about the horizontal axis (cos a, sin a, 0), then heading yaw about world z
    st, ct = np.sin(0.5 * tilt), np.cos(0.5 * tilt)
    sy, cy = np.sin(0.5 * yaw), np.cos(0.5 * yaw)
    tx, ty = st * np.cos(axis), st * np.sin(axis)
    quat = np.stack([cy * ct, cy * tx - sy * ty, cy * ty + sy * tx, sy * ct], axis=1)
    v = rng.uniform(-starts.linear_velocity, starts.linear_velocity, (n, 3))
    w = rng.uniform(-starts.angular_velocity, starts.angular_velocity, (n, 3))
    return offset, quat, v, w


class HoverVectorEnv:
    """``num_envs`` hover episodes stepped together (gymnasium vector-env interface: ``reset``/``step`` on
    batches, ``single_observation_space``, ``single_action_space``).

    Args:
        spec: the vehicle.
        num_envs: vehicles.
        randomization: drawn per vehicle at each of its resets.
        target: hover point (m, world).
        control_rate_hz: policy rate; the physics runs ``round(1 / (rate * physics_dt))`` steps per env step.
        physics_dt: physics step (s).
        episode_s: episode length (s).
        starts: start distribution.
        max_position_error: m per axis before the episode is a crash.
        ground_z: m, below this the vehicle has hit the ground.
        nominal_fraction: share of resets that keep the nominal vehicle (the spec) instead of a randomized draw:
            the nominal is the best estimate of the real vehicle, but a corner of the Crazyflie box (slowest
            motors, lightest inertia) that uniform draws rarely come near.
        disturbance: (horizontal, vertical) bound of a constant external force drawn per randomized vehicle and
            episode, as a fraction of its weight, uniform in [-bound, bound] per axis (x and y share the first):
            unknown payloads, steady wind and thrust offsets a policy must cancel (with its error integral).
            Nominal vehicles fly undisturbed.
        moving: tracking episodes (default: none, every target hovers).
        action_delay_s: (low, high) bound of the time (s) between an observation and its action reaching the
            motors, drawn per vehicle and episode (every vehicle, nominal ones too), rounded to whole physics
            steps: the previous action acts until then. A served policy's link (observation, request, reply,
            loop tick, radio or MAVLink) takes milliseconds a policy trained without them cannot spare.
    """

    def __init__(
        self,
        spec: QuadrotorSpec,
        num_envs: int,
        randomization: DomainRandomization | None = None,
        target: tuple[float, float, float] = (0.0, 0.0, 1.0),
        control_rate_hz: float = 100.0,
        physics_dt: float = 0.001,
        episode_s: float = 5.0,
        starts: HoverStarts | None = None,
        max_position_error: float = 1.5,
        ground_z: float = 0.02,
        nominal_fraction: float = 0.0,
        disturbance: tuple[float, float] = (0.0, 0.0),
        action_delay_s: tuple[float, float] = (0.0, 0.0),
        moving: MovingTargets | None = None,
    ) -> None:
        if not 0.0 <= nominal_fraction <= 1.0:
            raise ConfigError(f"nominal_fraction={nominal_fraction} must be in [0, 1]")
        bounds = tuple(float(d) for d in disturbance)
        if len(bounds) != 2 or not all(0.0 <= d < 1.0 for d in bounds):
            raise ConfigError(f"disturbance={disturbance!r} must be (horizontal, vertical) weight fractions in [0, 1)")
        self.disturbance = bounds
        self.moving = moving or MovingTargets()
        if not 0.0 <= self.moving.fraction <= 1.0:
            raise ConfigError(f"moving.fraction={self.moving.fraction} must be in [0, 1]")
        lo, hi = (float(d) for d in action_delay_s)
        self.delay_steps = (int(round(lo / physics_dt)), int(round(hi / physics_dt)))
        self.nominal_fraction = float(nominal_fraction)
        self.spec = spec
        self.num_envs = int(num_envs)
        self.sim = BatchQuadrotor(spec, num_envs, physics_dt, randomization, on_divergence="mask")
        k = int(round(1.0 / (control_rate_hz * physics_dt)))
        if k < 1 or abs(k * physics_dt * control_rate_hz - 1.0) > 1e-9:
            raise ConfigError(
                f"control_rate_hz={control_rate_hz}: its period must be a whole number of physics steps ({physics_dt} s)"
            )
        self.substeps = k
        self.dt = k * physics_dt
        if not 0 <= self.delay_steps[0] <= self.delay_steps[1] < k:
            raise ConfigError(
                f"action_delay_s={action_delay_s!r} must be (low, high) with 0 <= low <= high < the control period "
                f"{self.dt} s"
            )
        self.target = np.asarray(target, dtype=np.float64)
        self.max_steps = int(round(episode_s / self.dt))
        self.starts = starts or HoverStarts()
        self.max_position_error = float(max_position_error)
        self.ground_z = float(ground_z)
        r = spec.num_rotors
        self.single_action_space = spaces.Box(-1.0, 1.0, (r,), dtype=np.float32)
        n_obs = len(hover_task.observation_names(r))
        self.single_observation_space = spaces.Box(-np.inf, np.inf, (n_obs,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (self.num_envs, r), dtype=np.float32)
        self.observation_space = spaces.Box(-np.inf, np.inf, (self.num_envs, n_obs), dtype=np.float32)
        self.last_action = np.zeros((self.num_envs, r))
        self.integral = np.zeros(self.num_envs)  # m s, the height-error integral of each vehicle
        self.delay = np.zeros(self.num_envs, dtype=np.int64)  # physics steps before each action applies
        # each vehicle's target: figure-eight amplitudes (m; 0: hovering), rate (rad/s), phase and heading (rad)
        self.target_amplitude = np.zeros((self.num_envs, 2))
        self.target_rate = np.zeros(self.num_envs)
        self.target_phase = np.zeros(self.num_envs)
        self.target_heading = np.zeros(self.num_envs)
        rest = np.zeros((self.num_envs, 3))
        self._resting = (np.tile(self.target, (self.num_envs, 1)), rest, rest)  # read only
        self.steps = np.zeros(self.num_envs, dtype=np.int64)
        self.rng = np.random.default_rng()
        self._pool: dict[str, np.ndarray] = {}
        self._pool_next = 0

    def _refill(self, size: int) -> None:
        """Draw :data:`RESET_POOL` resets at once (parameters, nominal share, starts): one reset is then a slice,
        not ~40 small numpy calls (resets happen every step somewhere in a large batch)."""
        sim, rng, n = self.sim, self.rng, size
        pool = sim.draw_parameters(n, rng)
        sim.check_parameters(pool)  # once for the pool; each reset then assigns a checked slice
        weight = (pool["mass"] * GRAVITY)[:, None]
        bound = np.array([self.disturbance[0], self.disturbance[0], self.disturbance[1]])
        pool["external_force"] = weight * bound * rng.uniform(-1.0, 1.0, (n, 3))
        if self.nominal_fraction > 0.0:
            nominal = rng.random(n) < self.nominal_fraction
            pool["external_force"][nominal] = 0.0
            s = self.spec
            pool["mass"][nominal] = s.mass
            pool["inertia"][nominal] = np.asarray(s.inertia)
            pool["max_thrust"][nominal] = s.max_thrust
            pool["motor_time_constant"][nominal] = s.motor_time_constant
        pool["offset"], pool["quaternion"], pool["linear_velocity"], pool["angular_velocity"] = sample_starts(
            rng, n, self.starts
        )
        pool["delay"] = rng.integers(self.delay_steps[0], self.delay_steps[1] + 1, n)
        mv = self.moving
        moves = rng.random(n) < mv.fraction
        amplitude = np.stack([rng.uniform(*mv.amplitude_x, n), rng.uniform(*mv.amplitude_y, n)], axis=1)
        pool["target_amplitude"] = amplitude * moves[:, None]
        pool["target_rate"] = 2.0 * math.pi / rng.uniform(*mv.period, n)
        pool["target_phase"] = rng.uniform(0.0, 2.0 * math.pi, n)
        pool["target_heading"] = rng.uniform(0.0, 2.0 * math.pi, n)
        target0 = self.target_motion(
            np.zeros(n), pool["target_amplitude"], pool["target_rate"], pool["target_phase"], pool["target_heading"]
        )
        # motors already spun up to each vehicle's hover thrust, as the MuJoCo env's reset does
        pool["hover"] = np.clip(pool["mass"] * GRAVITY / (self.spec.num_rotors * pool["max_thrust"]), 0.0, 1.0)
        last = np.repeat(2.0 * pool["hover"][:, None] - 1.0, self.spec.num_rotors, 1)
        start = target0[0] + pool["offset"]
        pool["start"] = start
        pool["integral"] = hover_task.integrate_error(np.zeros(n), start, target0[0], self.dt)
        pool["observation"] = hover_task.observe(
            start, pool["quaternion"], pool["linear_velocity"], pool["angular_velocity"], last, target0[0],
            pool["integral"], target0[1], target0[2],
        )  # fmt: skip
        self._pool, self._pool_next = pool, 0

    def _reset_ids(self, ids: np.ndarray) -> np.ndarray:
        """Reset vehicles ``ids``; returns their first observations."""
        if len(ids) == 0:
            return np.empty((0,) + self.single_observation_space.shape, dtype=np.float32)
        if self._pool_next + len(ids) > len(self._pool.get("hover", ())):
            self._refill(max(RESET_POOL, len(ids)))
        take = slice(self._pool_next, self._pool_next + len(ids))
        self._pool_next += len(ids)
        p, sim, r = self._pool, self.sim, self.spec.num_rotors
        sim.assign_parameters(ids, {name: p[name][take] for name in PARAMETERS})
        sim.external_force[ids] = p["external_force"][take]
        hover = np.repeat(p["hover"][take, None], r, 1)
        for name in ("target_amplitude", "target_rate", "target_phase", "target_heading"):
            getattr(self, name)[ids] = p[name][take]
        sim.set_state(
            ids,
            p["start"][take],
            p["quaternion"][take],
            p["linear_velocity"][take],
            p["angular_velocity"][take],
            hover,
        )
        self.last_action[ids] = 2.0 * hover - 1.0
        self.integral[ids] = p["integral"][take]
        self.delay[ids] = p["delay"][take]
        self.steps[ids] = 0
        return p["observation"][take]

    def target_motion(
        self, t: np.ndarray, amplitude: np.ndarray, rate: np.ndarray, phase: np.ndarray, heading: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Target position (m), velocity (m/s) and acceleration (m/s^2), world, (k, 3) each, of ``k`` vehicles at
        their episode times ``t`` (s) (see :class:`MovingTargets`; zero amplitude: the hover point at rest)."""
        th = rate * t + phase
        s1, c1, s2, c2 = np.sin(th), np.cos(th), np.sin(2.0 * th), np.cos(2.0 * th)
        ax, ay, w = amplitude[:, 0], amplitude[:, 1], rate
        ch, sh = np.cos(heading), np.sin(heading)
        out = []
        for u, v in ((ax * s1, ay * s2), (ax * w * c1, 2.0 * ay * w * c2), (-ax * w * w * s1, -4.0 * ay * w * w * s2)):
            world = np.zeros((len(t), 3))
            world[:, 0] = ch * u - sh * v  # turned by the heading about world z
            world[:, 1] = sh * u + ch * v
            out.append(world)
        return out[0] + self.target, out[1], out[2]

    def targets(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every vehicle's target position, velocity and acceleration now (world; (num_envs, 3) each)."""
        if self.moving.fraction == 0.0:  # every target hovers: the hover point at rest, no trigonometry per step
            return self._resting
        t = self.steps * self.dt
        return self.target_motion(t, self.target_amplitude, self.target_rate, self.target_phase, self.target_heading)

    def observe(self) -> np.ndarray:
        """(num_envs, obs) observation of the current states (:func:`rcs.flight.hover_task.observe`)."""
        return self._observe(*self.targets())

    def _observe(self, target: np.ndarray, velocity: np.ndarray, acceleration: np.ndarray) -> np.ndarray:
        s = self.sim
        return hover_task.observe(
            s.position, s.quaternion, s.linear_velocity, s.angular_velocity, self.last_action, target, self.integral,
            velocity, acceleration,
        )  # fmt: skip

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        """Reset every vehicle (new randomization and start); ``seed`` reseeds the generator."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self._pool = {}  # redraw from the (re)seeded generator
        self._reset_ids(np.arange(self.num_envs))
        return self.observe(), {}

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        """Apply ``(num_envs, r)`` actions in [-1, 1] for one control period; see the module docstring."""
        a = np.minimum(np.maximum(np.asarray(actions, dtype=np.float64), -1.0), 1.0)
        u = (a + 1.0) * 0.5  # hover_task.motor_command of clipped a
        if self.delay_steps[1] == 0:
            diverged = self.sim.step(u, self.substeps).copy()
        else:  # the previous action acts for each vehicle's delay, then this one
            u_prev = (self.last_action + 1.0) * 0.5
            longest = self.delay_steps[1]
            for j in range(longest):
                self.sim.step(np.where((j < self.delay)[:, None], u_prev, u), 1)
            diverged = self.sim.step(u, self.substeps - longest).copy()
        any_diverged = bool(diverged.any())
        prev = self.last_action
        self.last_action = a
        self.steps += 1
        target, target_v, target_a = self.targets()
        p = self.sim.position
        with np.errstate(invalid="ignore"):  # NaN rows are diverged ones, reset below
            self.integral = hover_task.integrate_error(self.integral, p, target, self.dt)
        obs = self._observe(target, target_v, target_a)
        rew = hover_task.reward(obs, a, prev)
        with np.errstate(invalid="ignore"):  # NaN rows are diverged ones, terminated below anyway
            crashed = (np.abs(p - target).max(1) > self.max_position_error) | (p[:, 2] < self.ground_z)
        terminated = crashed | diverged if any_diverged else crashed
        truncated = (self.steps >= self.max_steps) & ~terminated
        if any_diverged:
            rew[diverged] = 0.0  # a diverged state's numbers mean nothing
        rew -= hover_task.CRASH_PENALTY * terminated
        info: dict = {"diverged": diverged}
        done = np.flatnonzero(terminated | truncated)
        if len(done):
            final = obs.copy()  # obs rows of finished vehicles are overwritten by their new episodes below
            if any_diverged:
                final[diverged] = 0.0
            info["final_observation"] = final
            obs[done] = self._reset_ids(done)
        return obs, rew.astype(np.float32), terminated, truncated, info
