"""The learned flight task, defined once: hover at a point or follow a moving one; observation vector, action
mapping, reward and success.

Pure numpy on batched arrays (leading dimensions ``...``), so the same functions serve the batched trainer
(:mod:`sim.batch`), the evaluation on the MuJoCo vehicle (:mod:`sim.bench.flight`) and the deployed policy
(:mod:`policies.flight.model`), each handing in :class:`rcs.types.QuadrotorState`-like arrays.

Frames and units (REP-103, SI): position, target and linear velocity in the world frame (ENU, m, m/s); angular
velocity in the body frame (FLU, rad/s); quaternion (w, x, y, z) rotating body vectors into the world.

The target is a point with a velocity and an acceleration (world, m, m/s, m/s^2): zero for a hover point, a
reference trajectory's (:mod:`rcs.flight.trajectories`) for tracking.

Observation (float32, :data:`OBSERVATION_NAMES`, 26 entries, each already divided by its entry of
:data:`OBSERVATION_SCALE`):

====================  ======  =========================================================================
entries               scale   meaning
====================  ======  =========================================================================
``ex ey ez``          0.25 m  position minus target (world), each clipped to +-:data:`POSITION_ERROR_CLIP`
``iz``                0.1 m s integral of the height error (:func:`integrate_error`): what lets a memoryless
                              network cancel a steady thrust offset (a lighter vehicle, stronger motors)
``r00 .. r22``        1       world-from-body rotation matrix, row-major (``r02 r12 r22`` = body z)
``evx evy evz``       1 m/s   linear velocity minus the target's (world)
``wx wy wz``          10      angular velocity (body, rad/s)
``tax tay taz``       2 m/s^2 the target's acceleration (world; the feed-forward a tracking policy needs)
``a0 .. a{n-1}``      1       the previous action (policy units, [-1, 1]), one per rotor
====================  ======  =========================================================================

Action: one value per rotor in [-1, 1], rotor order of the :class:`rcs.spec.QuadrotorSpec`; the motor command
is the normalized thrust ``u = (a + 1) / 2`` in [0, 1] (:func:`motor_command`), i.e. the
``command_motor_thrusts`` interface: thrust ``u * max_thrust`` N, through the vehicle's motor lag.

The integral and the previous action are the task's only memory; whoever runs the policy carries them from one
control step to the next (the trainer per vehicle, :class:`policies.flight.model.HoverController`, or the client
of a policy server, which keeps no state per session).
"""

from __future__ import annotations

import numpy as np

POSITION_ERROR_CLIP = 1.0
"""m: the position error is clipped to this per axis, so a far start looks like "1 m off" (keeps the inputs
inside what training covered)."""

POSITION_ERROR_SCALE = 0.25
"""m per observation unit: a few cm of error must move the inputs visibly (the network starts with unit gains)."""

ANGULAR_VELOCITY_SCALE = 10.0
"""rad/s per observation unit."""

TARGET_ACCELERATION_SCALE = 2.0
"""m/s^2 per observation unit of the target's acceleration."""

INTEGRAL_SCALE = 0.1
"""m s per observation unit of the height-error integral."""

INTEGRAL_ERROR_CLIP = 0.1
"""m: the error is clipped to this before it is integrated, so a far start (a transient, not an offset) winds the
integral up no faster than a 10 cm offset would."""

INTEGRAL_CLIP = 0.3
"""m s: the integral's bound (anti-windup): 3 s of a 10 cm offset."""


def _quat_products_to_matrix() -> np.ndarray:
    """(16, 9): row-major world-from-body matrix of a unit quaternion (w, x, y, z) from its products ``q_i q_j``."""
    c = np.zeros((4, 4, 9))
    w, x, y, z = range(4)
    terms = {
        0: [(w, w, 1), (x, x, 1), (y, y, -1), (z, z, -1)],
        1: [(x, y, 2), (w, z, -2)],
        2: [(x, z, 2), (w, y, 2)],
        3: [(x, y, 2), (w, z, 2)],
        4: [(w, w, 1), (x, x, -1), (y, y, 1), (z, z, -1)],
        5: [(y, z, 2), (w, x, -2)],
        6: [(x, z, 2), (w, y, -2)],
        7: [(y, z, 2), (w, x, 2)],
        8: [(w, w, 1), (x, x, -1), (y, y, -1), (z, z, 1)],
    }
    for k, entries in terms.items():
        for i, j, coef in entries:
            c[i, j, k] += coef
    return c.reshape(16, 9)


_QUAT_PRODUCTS_TO_MATRIX = _quat_products_to_matrix()


def observation_names(num_rotors: int = 4) -> tuple[str, ...]:
    """Names of the observation entries, in order (see the module docstring)."""
    rot = tuple(f"r{i}{j}" for i in range(3) for j in range(3))
    motion = ("evx", "evy", "evz", "wx", "wy", "wz", "tax", "tay", "taz")
    return ("ex", "ey", "ez", "iz", *rot, *motion, *(f"a{i}" for i in range(num_rotors)))


OBSERVATION_NAMES = observation_names(4)
"""The quadrotor (4-rotor) observation entries."""


def observation_scale(num_rotors: int = 4) -> np.ndarray:
    """(22 + num_rotors,) divisor of each raw entry (unit per observation unit)."""
    return np.r_[
        np.full(3, POSITION_ERROR_SCALE),
        INTEGRAL_SCALE,
        np.ones(9 + 3),
        np.full(3, ANGULAR_VELOCITY_SCALE),
        np.full(3, TARGET_ACCELERATION_SCALE),
        np.ones(num_rotors),
    ]


OBSERVATION_SCALE = observation_scale(4)


def integrate_error(integral: np.ndarray | float, position: np.ndarray, target: np.ndarray, dt: float) -> np.ndarray:
    """The height-error integral (m s) after one control step of ``dt`` s ending at ``position``:

    ``i_k = clip(i_{k-1} + dt clip(z_k - z_target, +-INTEGRAL_ERROR_CLIP), +-INTEGRAL_CLIP)``, ``i_{-1} = 0``
    at the start of a flight (the integral includes the current error). Height only: the offsets a hover
    policy must learn to cancel (mass, motor constant) are vertical, and a horizontal integral in the world
    frame couples with any residual yaw drift.

    Args:
        integral: (...,) m s, the previous integral. position: (..., 3) m, world. target: (..., 3) or (3,) m.
        dt: s, the control period.
    """
    e = np.asarray(position, dtype=np.float64)[..., 2] - np.asarray(target, dtype=np.float64)[..., 2]
    e = np.minimum(np.maximum(e, -INTEGRAL_ERROR_CLIP), INTEGRAL_ERROR_CLIP)
    return np.minimum(np.maximum(np.asarray(integral, dtype=np.float64) + dt * e, -INTEGRAL_CLIP), INTEGRAL_CLIP)


def observe(
    position: np.ndarray,
    quaternion: np.ndarray,
    linear_velocity: np.ndarray,
    angular_velocity: np.ndarray,
    last_action: np.ndarray,
    target: np.ndarray,
    integral: np.ndarray,
    target_velocity: np.ndarray | float = 0.0,
    target_acceleration: np.ndarray | float = 0.0,
) -> np.ndarray:
    """(..., 22 + n) float32 observation (module docstring) from state arrays with leading dims ``...``.

    Args:
        position: (..., 3) m, world. quaternion: (..., 4) w x y z, world from body.
        linear_velocity: (..., 3) m/s, world. angular_velocity: (..., 3) rad/s, body.
        last_action: (..., n) the previous action in policy units [-1, 1].
        target: (..., 3) or (3,) m, world: the hover point, or where the reference is now.
        integral: (...,) m s: the height-error integral up to this step (:func:`integrate_error`).
        target_velocity, target_acceleration: (..., 3) or (3,) m/s, m/s^2, world (default 0: hovering).
    """
    p = np.asarray(position, dtype=np.float64)
    q = np.asarray(quaternion, dtype=np.float64)
    a = np.asarray(last_action, dtype=np.float64)
    out = np.empty(p.shape[:-1] + (22 + a.shape[-1],), dtype=np.float32)
    e = np.minimum(np.maximum(p - np.asarray(target, dtype=np.float64), -POSITION_ERROR_CLIP), POSITION_ERROR_CLIP)
    out[..., 0:3] = e * (1.0 / POSITION_ERROR_SCALE)  # (minimum/maximum: np.clip costs more per call)
    out[..., 3] = np.asarray(integral, dtype=np.float64) * (1.0 / INTEGRAL_SCALE)
    # every rotation-matrix entry is linear in the products q_i q_j (for a unit q): one outer product, one matmul
    qq = (q[..., :, None] * q[..., None, :]).reshape(q.shape[:-1] + (16,))
    out[..., 4:13] = qq @ _QUAT_PRODUCTS_TO_MATRIX
    out[..., 13:16] = np.asarray(linear_velocity, dtype=np.float64) - target_velocity
    out[..., 16:19] = np.asarray(angular_velocity, dtype=np.float64) * (1.0 / ANGULAR_VELOCITY_SCALE)
    out[..., 19:22] = np.asarray(target_acceleration, dtype=np.float64) * (1.0 / TARGET_ACCELERATION_SCALE)
    out[..., 22:] = a
    return out


def motor_command(action: np.ndarray) -> np.ndarray:
    """Normalized motor thrusts in [0, 1] of policy actions (clipped to [-1, 1]): ``(a + 1) / 2``."""
    return (np.minimum(np.maximum(np.asarray(action, dtype=np.float64), -1.0), 1.0) + 1.0) * 0.5


_REWARD_GROUPS = np.zeros((26, 3))
_REWARD_GROUPS[0:3, 0] = _REWARD_GROUPS[13:16, 1] = _REWARD_GROUPS[16:19, 2] = 1.0
_REWARD_NORM_WEIGHTS = np.array([2.0 * POSITION_ERROR_SCALE, 0.2, 0.05 * ANGULAR_VELOCITY_SCALE])

CRASH_PENALTY = 10.0
"""Subtracted from the reward of the step that ends an episode in a crash (left the flight box, hit the ground)."""


def reward(obs: np.ndarray, action: np.ndarray, previous_action: np.ndarray) -> np.ndarray:
    """(...,) per-step reward of the observation after ``action`` took effect (``previous_action``: the one before).

    ``2 - (2 |e| + 0.2 |v - v_target| + 0.05 |w| + 0.2 |w_z| + 0.2 (1 - r22) + 0.05 |a - a_prev|^2)`` (SI units): positive while the
    vehicle is within about 1 m of the target, so staying up is always worth more than a crash (which also costs
    :data:`CRASH_PENALTY`); position error dominates; velocity, spin (yaw spin
    most: its control authority is the weak rotor drag, and an unchecked yaw rate grows), tilt and jerky commands
    are damped.
    """
    o = np.asarray(obs)
    norms = np.sqrt((o * o) @ _REWARD_GROUPS)  # |e| / scale, |v|, |w| / scale: one matmul for the three norms
    da = np.asarray(action, dtype=np.float64) - np.asarray(previous_action, dtype=np.float64)
    cost = norms @ _REWARD_NORM_WEIGHTS + (0.2 * ANGULAR_VELOCITY_SCALE) * np.abs(o[..., 18])
    cost += 0.2 * (1.0 - o[..., 12]) + 0.05 * (da * da).sum(-1)
    return 2.0 - cost


def position_error(position: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(...,) distance (m) from the target."""
    return np.linalg.norm(np.asarray(position, dtype=np.float64) - np.asarray(target, dtype=np.float64), axis=-1)


def hover_success(errors: np.ndarray, dt: float, window_s: float = 2.0, threshold: float = 0.1) -> bool:
    """Success of one episode: every position error (m) of the last ``window_s`` s (samples every ``dt`` s)
    is within ``threshold`` m."""
    e = np.asarray(errors, dtype=np.float64)
    k = max(1, int(round(window_s / dt)))
    return bool(len(e) >= k and np.all(e[-k:] <= threshold))
