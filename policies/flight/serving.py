"""Serve a flight checkpoint with ``rcs serve`` (policy loader kind ``flight_mlp``; numpy only, no torch).

Schema (one observation per request, one action per chunk, ``policy_dt`` = 1 / the checkpoint's control rate):

- ``observation.state`` (float32, 18): ``x y z`` (m, world ENU), ``qw qx qy qz`` (world from body), ``vx vy vz``
  (m/s, world), ``wx wy wz`` (rad/s, body FLU), ``iz`` (m s: the height-error integral,
  :func:`rcs.flight.hover_task.integrate_error`, including this step's error) and ``u0 .. u3``, the normalized
  motor thrusts the vehicle was last commanded (the policy's previous action). Both memories are part of the
  observation because the server keeps none per session: the client carries them
  (:class:`rcs.flight.observation.FlightObservation`);
- ``observation.target`` (float32, 9): ``target_x target_y target_z`` (m), ``target_vx ..`` (m/s), ``target_ax ..``
  (m/s^2), world: the hover point (velocity, acceleration 0) or where a tracked reference is now;
- ``action`` (float32, (1, 4)): ``motor_0 .. motor_3`` normalized thrusts in [0, 1] (``command_motor_thrusts``),
  the spec's rotor order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rcs.flight import hover_task
from rcs.flight.observation import TARGET_NAMES, state_names
from rcs.serving.policy import LoadOptions
from rcs.serving.protocol import Schema, TensorSpec

KIND = "flight_mlp"


def schema(meta: Mapping[str, Any]) -> Schema:
    """The wire schema of a checkpoint (module docstring)."""
    n = len(meta["action"]["names"])
    names = state_names(n)
    state = TensorSpec("observation.state", (len(names),), "float32", "", names)
    target = TensorSpec("observation.target", (len(TARGET_NAMES),), "float32", "", TARGET_NAMES)
    action = TensorSpec("action", (1, n), "float32", "1", tuple(f"motor_{i}" for i in range(n)))
    return Schema((state, target), action, 1.0 / float(meta["control_rate_hz"]))


def manifest(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The ``rcs_policy.json`` of a checkpoint folder."""
    return {"kind": KIND, "checkpoint_id": f"flight-hover-{meta['spec']['name']}", "schema": schema(meta).as_dict()}


class FlightPolicy:
    """A :class:`rcs.serving.policy.Policy` running the numpy MLP of a flight checkpoint.

    Args:
        directory: the checkpoint folder.
        checkpoint_id: reported id.
    """

    def __init__(self, directory: str | Path, checkpoint_id: str) -> None:
        from policies.flight.model import load

        self.mlp = load(directory)
        self.schema = schema(self.mlp.meta)
        self.checkpoint_id = checkpoint_id
        self._n = self.mlp.act_dim

    def infer(self, observations: Sequence[Mapping[str, np.ndarray]]) -> list[np.ndarray]:
        """One (1, n) chunk of normalized motor thrusts per observation."""
        if not observations:
            return []
        s = np.stack([np.asarray(o["observation.state"], dtype=np.float64) for o in observations])
        target = np.stack([np.asarray(o["observation.target"], dtype=np.float64) for o in observations])
        last = 2.0 * s[:, 14 : 14 + self._n] - 1.0
        obs = hover_task.observe(
            s[:, 0:3],
            s[:, 3:7],
            s[:, 7:10],
            s[:, 10:13],
            last,
            target[:, 0:3],
            s[:, 13],
            target[:, 3:6],
            target[:, 6:9],
        )
        u = hover_task.motor_command(self.mlp(obs)).astype(np.float32)
        return [u[i : i + 1] for i in range(len(u))]


def load(directory: Path, manifest: Mapping[str, Any], options: LoadOptions) -> FlightPolicy:
    """Entry point ``rcs.policy_loaders`` ``flight_mlp`` (``options`` change nothing here)."""
    return FlightPolicy(directory, str(manifest.get("checkpoint_id", KIND)))
