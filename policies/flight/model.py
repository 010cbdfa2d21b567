"""The flight policy's MLP in numpy, its self-describing checkpoint folder, and the per-vehicle controller.

No torch here: a robot-side process loads a checkpoint and runs it with numpy alone (the trainer,
:mod:`policies.flight.ppo`, writes the same folder from its torch module).

Checkpoint folder:

- ``model.safetensors``: the actor's layers ``layers.{i}.weight`` ((out, in), float32) and ``layers.{i}.bias``;
  ``tanh`` between layers, none after the last; the output is the action mean (clipped to [-1, 1]).
- ``flight_policy.json``: what the numbers mean: observation names, frames and scales
  (:mod:`rcs.flight.hover_task`), action layout and mapping to motor commands, motor order and positions, the
  vehicle spec it was trained on, the control rate, the randomization and training facts.
- ``rcs_policy.json``: the serving manifest (``kind: "flight_mlp"``, :mod:`policies.flight.serving`).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from rcs.errors import ConfigError
from rcs.flight import hover_task
from rcs.flight.trajectories import ReferenceSample
from rcs.spec import QuadrotorSpec

WEIGHTS_NAME = "model.safetensors"
LAYOUT_NAME = "flight_policy.json"
FORMAT = "rcs.flight_mlp/3"
"""Version 2 added the height-error integral to the observation (``iz``); 3 the target's velocity (the
velocity entries are relative to it) and acceleration."""

SHIPPED_CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "crazyflie_hover_ppo"
"""The hover checkpoint shipped in the ``policies`` package (Crazyflie, PPO, 120 s)."""


def layout(spec: QuadrotorSpec, control_rate_hz: float, target: tuple[float, float, float], **extra: Any) -> dict:
    """The ``flight_policy.json`` content for a policy of ``spec`` (see the module docstring)."""
    n = spec.num_rotors
    return {
        "format": FORMAT,
        "task": "hover",
        "control_rate_hz": float(control_rate_hz),
        "frames": {
            "world": "ENU (REP-103), m",
            "body": "FLU (REP-103)",
            "quaternion": "w x y z, world from body",
        },
        "observation": {
            "names": list(hover_task.observation_names(n)),
            "scale": hover_task.observation_scale(n).tolist(),
            "position_error_clip_m": hover_task.POSITION_ERROR_CLIP,
            "integral": {
                "definition": "rcs.flight.hover_task.integrate_error: i_k = clip(i_(k-1) + dt clip(z_k - z_target, "
                "+-error_clip_m), +-clip_m_s), i_(-1) = 0 at the start of a flight; dt = 1 / control_rate_hz",
                "error_clip_m": hover_task.INTEGRAL_ERROR_CLIP,
                "clip_m_s": hover_task.INTEGRAL_CLIP,
            },
            "definition": "rcs.flight.hover_task.observe: (position - target) world m clipped to +-1 m, / 0.25; "
            "height-error integral m s / 0.1; world-from-body rotation matrix row-major; linear velocity minus "
            "the target's, world m/s; angular velocity body rad/s / 10; the target's acceleration world m/s^2 / 2; "
            "previous action",
        },
        "action": {
            "names": [f"a{i}" for i in range(n)],
            "range": [-1.0, 1.0],
            "to_motor": "normalized thrust u = (a + 1) / 2 in [0, 1]: Quadrotor.command_motor_thrusts",
        },
        "motors": {
            "order": "spec rotor order (Crazyflie: m1 front right, m2 back right, m3 back left, m4 front left)",
            "positions_m": [list(p) for p in spec.rotor_positions],
            "directions": list(spec.rotor_directions),
            "max_thrust_n": spec.max_thrust,
        },
        "default_target": list(target),
        "spec": asdict(spec),
        **extra,
    }


class MlpPolicy:
    """The deterministic actor (action mean) in numpy.

    Args:
        weights: ``layers.{i}.weight`` (out, in) and ``layers.{i}.bias`` arrays.
        meta: the ``flight_policy.json`` content.
    """

    def __init__(self, weights: dict[str, np.ndarray], meta: dict) -> None:
        self.meta = meta
        self.layers: list[tuple[np.ndarray, np.ndarray]] = []
        i = 0
        while f"layers.{i}.weight" in weights:
            w = np.asarray(weights[f"layers.{i}.weight"], dtype=np.float32)
            b = np.asarray(weights[f"layers.{i}.bias"], dtype=np.float32)
            self.layers.append((w, b))
            i += 1
        if not self.layers:
            raise ConfigError("flight policy weights: no layers.0.weight")
        self.obs_dim = int(self.layers[0][0].shape[1])
        self.act_dim = int(self.layers[-1][0].shape[0])
        names = meta.get("observation", {}).get("names", [])
        if len(names) != self.obs_dim:
            raise ConfigError(f"flight policy: {len(names)} observation names for an input of {self.obs_dim}")

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """(..., act_dim) actions in [-1, 1] of (..., obs_dim) observations."""
        x = np.asarray(obs, dtype=np.float32)
        if x.shape[-1] != self.obs_dim:
            raise ConfigError(f"flight policy: observation has {x.shape[-1]} entries, expected {self.obs_dim}")
        for k, (w, b) in enumerate(self.layers):
            x = x @ w.T + b
            if k < len(self.layers) - 1:
                x = np.tanh(x)
        return np.clip(x, -1.0, 1.0)


def save(directory: str | Path, weights: dict[str, np.ndarray], meta: dict) -> Path:
    """Write a checkpoint folder (weights, layout JSON and the serving manifest); returns it."""
    from safetensors.numpy import save_file

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}, str(d / WEIGHTS_NAME))
    (d / LAYOUT_NAME).write_text(json.dumps(meta, indent=1) + "\n")
    from policies.flight.serving import manifest

    (d / "rcs_policy.json").write_text(json.dumps(manifest(meta), indent=1) + "\n")
    return d


def load(directory: str | Path) -> MlpPolicy:
    """The numpy policy of a checkpoint folder.

    Raises:
        ConfigError: a missing or malformed file, naming it.
    """
    from safetensors.numpy import load_file

    d = Path(directory)
    try:
        meta = json.loads((d / LAYOUT_NAME).read_text())
        weights = load_file(str(d / WEIGHTS_NAME))
    except (OSError, ValueError) as e:
        raise ConfigError(f"flight policy checkpoint {d}: {e}") from None
    if meta.get("format") != FORMAT:
        raise ConfigError(f"flight policy checkpoint {d}: format={meta.get('format')!r}, expected {FORMAT!r}")
    return MlpPolicy(weights, meta)


class HoverController:
    """Runs a hover policy on one vehicle at its control rate: state in, normalized motor thrusts out.

    Keeps the previous action and the position-error integral (both part of the observation). Call :meth:`reset`
    at the start of each flight with the motors' current normalized thrusts (e.g. the hover thrust when starting
    in the air).

    Args:
        policy: the loaded policy.
        target: hover point (m, world); default the checkpoint's.
    """

    def __init__(self, policy: MlpPolicy, target: np.ndarray | None = None) -> None:
        self.policy = policy
        self.target = np.asarray(target if target is not None else policy.meta["default_target"], dtype=np.float64)
        self.dt = 1.0 / float(policy.meta["control_rate_hz"])
        self.last_action = np.zeros(policy.act_dim)
        self.integral = np.zeros(())

    def reset(self, motor_commands: np.ndarray | None = None) -> None:
        """Start a flight; ``motor_commands``: the normalized thrusts the motors run at now (default 0)."""
        u = np.zeros(self.policy.act_dim) if motor_commands is None else np.asarray(motor_commands, dtype=np.float64)
        self.last_action = 2.0 * u - 1.0
        self.integral = np.zeros(())

    def __call__(
        self,
        position: np.ndarray,
        quaternion: np.ndarray,
        linear_velocity: np.ndarray,
        angular_velocity: np.ndarray,
        reference: ReferenceSample | None = None,
    ) -> np.ndarray:
        """Normalized motor thrusts (n,) in [0, 1] for the state (position m world, quaternion w x y z world from
        body, linear velocity m/s world, angular velocity rad/s body); one call per control period.
        ``reference``: where a tracked trajectory is now (:mod:`rcs.flight.trajectories`; its yaw is not used);
        ``None``: hover at :attr:`target`."""
        target, velocity, acceleration = self.target, np.zeros(3), np.zeros(3)
        if reference is not None:
            target, velocity, acceleration = reference.position, reference.velocity, reference.acceleration
        self.integral = hover_task.integrate_error(self.integral, position, target, self.dt)
        obs = hover_task.observe(
            position, quaternion, linear_velocity, angular_velocity, self.last_action, target, self.integral,
            velocity, acceleration,
        )  # fmt: skip
        a = self.policy(obs).astype(np.float64)
        self.last_action = a
        return hover_task.motor_command(a)
