"""Policies the server can run: a :class:`Policy` protocol, a null and a constant (scripted) policy, loading.

A policy declares its :class:`~rcs.serving.protocol.Schema` and maps a batch of observations (one per
session) to one action chunk each. Heavy frameworks (torch, lerobot) are imported only inside loaders.

``load_policy(spec)`` accepts ``"null"``, ``"constant"`` or a path to a JSON manifest
(``{"kind": "null"|"constant"|"lerobot", ...}``, or a directory holding ``rcs_policy.json``).
``"lerobot"`` checkpoints go through :func:`load_lerobot_policy`, a hook that is not implemented yet.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from rcs.errors import ConfigError
from rcs.serving.protocol import ProtocolError, Schema, TensorSpec

log = logging.getLogger(__name__)

Observation = Mapping[str, np.ndarray]


@runtime_checkable
class Policy(Protocol):
    """A policy served by :class:`rcs.serving.server.PolicyServer`.

    Attributes:
        schema: observation and action schemas, chunk size and ``policy_dt`` (s).
        checkpoint_id: identifies the loaded weights (sent in WELCOME and every CHUNK).
    """

    schema: Schema
    checkpoint_id: str

    def infer(self, observations: Sequence[Observation]) -> list[np.ndarray]:
        """One ``(chunk_size, D)`` action chunk per observation (dtype and units of ``schema.action``).

        Observations are read-only views on the received frames (copy before modifying). Runs in the
        server's inference thread; a batch holds one observation per session (``max_batch`` at most).
        """


def standard_schema(image_size: int = 224, cameras: int = 2, state_dim: int = 14, chunk_size: int = 50,
                    action_dim: int = 7, policy_dt: float = 0.02) -> Schema:
    """The benchmark's request: ``cameras`` HxWx3 uint8 images, a float32 state, a (H, D) float32 chunk."""
    obs = [TensorSpec(f"observation.images.cam{i}", (image_size, image_size, 3), "uint8", "px")
           for i in range(cameras)]
    obs.append(TensorSpec("observation.state", (state_dim,), "float32", "rad"))
    action = TensorSpec("action", (chunk_size, action_dim), "float32", "rad",
                        tuple(f"joint{i}" for i in range(action_dim)))
    return Schema(tuple(obs), action, policy_dt)


class NullPolicy:
    """Returns zeros of the action shape (transport benchmarks, plumbing tests).

    Args:
        schema: the schema to serve (default :func:`standard_schema`).
        checkpoint_id: reported checkpoint id.
    """

    def __init__(self, schema: Schema | None = None, checkpoint_id: str = "null") -> None:
        self.schema = schema or standard_schema()
        self.checkpoint_id = checkpoint_id
        self._zeros = np.zeros(self.schema.action.shape, dtype=self.schema.action.dtype)

    def infer(self, observations: Sequence[Observation]) -> list[np.ndarray]:
        """A zero chunk per observation."""
        return [self._zeros for _ in observations]


class ConstantPolicy:
    """Returns the same action at every step of every chunk (a scripted policy: e.g. hold a pose).

    Args:
        schema: the schema to serve.
        value: ``(D,)`` action repeated ``chunk_size`` times (units of ``schema.action``), default zeros.
        checkpoint_id: reported checkpoint id.
        delay_s: artificial inference time (s), for tests of deadlines and supersession.
    """

    def __init__(self, schema: Schema | None = None, value: Sequence[float] | np.ndarray | None = None,
                 checkpoint_id: str = "constant", delay_s: float = 0.0) -> None:
        self.schema = schema or standard_schema()
        self.checkpoint_id = checkpoint_id
        self.delay_s = float(delay_s)
        h, d = self.schema.action.shape
        v = np.zeros(d) if value is None else np.asarray(value, dtype=np.float64)
        if v.shape != (d,):
            raise ConfigError(f"constant policy value shape={v.shape} must be ({d},)")
        self._chunk = np.tile(v, (h, 1)).astype(self.schema.action.dtype)

    def infer(self, observations: Sequence[Observation]) -> list[np.ndarray]:
        """The constant chunk per observation (after ``delay_s``)."""
        if self.delay_s > 0:
            import time

            time.sleep(self.delay_s)
        return [self._chunk for _ in observations]


def load_lerobot_policy(path: Path, manifest: Mapping[str, Any]) -> Policy:
    """Hook for lerobot checkpoints (``manifest["kind"] == "lerobot"``): not implemented yet.

    The adapter will import lerobot lazily, build the policy with ``from_pretrained`` and its
    pre/post-processors, map its features to a :class:`Schema` and call ``predict_action_chunk``.
    """
    raise NotImplementedError(f"lerobot checkpoints are not supported yet (adapter hook: {path})")


def schema_from_manifest(m: Mapping[str, Any]) -> Schema:
    """The ``"schema"`` entry of a manifest (wire form), or the standard schema if absent."""
    if "schema" not in m:
        return standard_schema()
    try:
        return Schema.from_dict(m["schema"], "manifest.schema")
    except ProtocolError as e:
        raise ConfigError(f"policy manifest: {e}") from None


def load_policy(spec: str) -> Policy:
    """``"null"``, ``"constant"`` or a manifest path (see the module docstring)."""
    if spec == "null":
        return NullPolicy()
    if spec == "constant":
        return ConstantPolicy()
    path = Path(spec)
    if path.is_dir():
        path = path / "rcs_policy.json"
    if not path.is_file():
        raise ConfigError(f"policy={spec!r}: not 'null', 'constant' or an existing manifest file/directory")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"policy manifest {path}: {e}") from None
    if not isinstance(manifest, dict):
        raise ConfigError(f"policy manifest {path}: must be a JSON object")
    kind = manifest.get("kind")
    ckpt = str(manifest.get("checkpoint_id", path.stem))
    if kind == "null":
        return NullPolicy(schema_from_manifest(manifest), ckpt)
    if kind == "constant":
        return ConstantPolicy(schema_from_manifest(manifest), manifest.get("value"), ckpt,
                              float(manifest.get("delay_s", 0.0)))
    if kind == "lerobot":
        return load_lerobot_policy(path.parent, manifest)
    raise ConfigError(f"policy manifest {path}: kind={kind!r}; known: null, constant, lerobot")


def write_manifest(path: str | Path, kind: str, schema: Schema | None = None, **fields: Any) -> Path:
    """Write a JSON policy manifest (tests, scripts); returns its path."""
    data: dict[str, Any] = {"kind": kind, **fields}
    if schema is not None:
        data["schema"] = schema.as_dict()
    p = Path(path)
    tmp = p.with_suffix(p.suffix + ".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(p)
    return p
