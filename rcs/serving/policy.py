"""Policies the server can run: a :class:`Policy` protocol, a null and a constant (scripted) policy, loading.

A policy declares its :class:`~rcs.serving.protocol.Schema` and maps a batch of observations (one per
session) to one action chunk each. Heavy frameworks (torch, lerobot) are imported only inside loaders.

``load_policy(spec)`` accepts ``"null"``, ``"constant"``, a path to a JSON manifest
(``{"kind": "null"|"constant"|"lerobot"|..., ...}``), a directory holding ``rcs_policy.json``, or a lerobot
checkpoint directory. Kinds other than the built-in ones load through the ``rcs.policy_loaders`` registry
(``lerobot``: :mod:`policies.lerobot_adapter`), so serving lerobot checkpoints needs torch only in the
server process.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from rcs.errors import ConfigError, UnknownNameError
from rcs.registry import policy_loaders
from rcs.serving.manifest import MANIFEST_NAME, derive_manifest
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


@dataclass(frozen=True)
class RequestContext:
    """Where an observation comes from, for policies that keep state per robot (:class:`SessionPolicy`).

    Attributes:
        session_id: the client's session (one robot connection; a re-handshake opens a new one).
        tick: the robot's control tick of the observation (increases within a session; a new episode that
            restarts its loop starts again lower).
        capture_time: the robot's monotonic time of the observation (s, the robot host's clock).
    """

    session_id: int
    tick: int
    capture_time: float


@runtime_checkable
class SessionPolicy(Protocol):
    """A policy whose action depends on earlier requests of the same robot (it caches a chunk, keeps a memory).

    The server calls :meth:`infer_sessions` instead of :meth:`Policy.infer`, with one
    :class:`RequestContext` per observation.
    """

    schema: Schema
    checkpoint_id: str

    def infer_sessions(
        self, observations: Sequence[Observation], contexts: Sequence[RequestContext]
    ) -> list[np.ndarray]:
        """One ``(chunk_size, D)`` action chunk per observation, ``contexts[i]`` describing ``observations[i]``."""


def standard_schema(
    image_size: int = 224,
    cameras: int = 2,
    state_dim: int = 14,
    chunk_size: int = 50,
    action_dim: int = 7,
    policy_dt: float = 0.02,
) -> Schema:
    """The benchmark's request: ``cameras`` HxWx3 uint8 images, a float32 state, a (H, D) float32 chunk."""
    obs = [TensorSpec(f"observation.images.cam{i}", (image_size, image_size, 3), "uint8", "px") for i in range(cameras)]
    obs.append(TensorSpec("observation.state", (state_dim,), "float32", "rad"))
    action = TensorSpec(
        "action", (chunk_size, action_dim), "float32", "rad", tuple(f"joint{i}" for i in range(action_dim))
    )
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

    def __init__(
        self,
        schema: Schema | None = None,
        value: Sequence[float] | np.ndarray | None = None,
        checkpoint_id: str = "constant",
        delay_s: float = 0.0,
    ) -> None:
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


def schema_from_manifest(m: Mapping[str, Any]) -> Schema:
    """The ``"schema"`` entry of a manifest (wire form), or the standard schema if absent."""
    if "schema" not in m:
        return standard_schema()
    try:
        return Schema.from_dict(m["schema"], "manifest.schema")
    except ProtocolError as e:
        raise ConfigError(f"policy manifest: {e}") from None


@dataclass(frozen=True)
class LoadOptions:
    """How the loading process serves a policy: not part of the checkpoint, passed to every loader.

    Attributes:
        realtime: the policy serves a real-time loop's control path on this machine (``rcs serve --realtime``);
            a policy that starts servers of its own (a residual's base) starts them real-time too.
    """

    realtime: bool = False


#: a policy loader: (checkpoint directory, manifest, options) -> the loaded policy
Loader = Callable[[Path, Mapping[str, Any], LoadOptions], Policy]


def _load_null(path: Path, manifest: Mapping[str, Any], options: LoadOptions) -> Policy:
    return NullPolicy(schema_from_manifest(manifest), str(manifest.get("checkpoint_id", "null")))


def _load_constant(path: Path, manifest: Mapping[str, Any], options: LoadOptions) -> Policy:
    return ConstantPolicy(
        schema_from_manifest(manifest),
        manifest.get("value"),
        str(manifest.get("checkpoint_id", "constant")),
        float(manifest.get("delay_s", 0.0)),
    )


#: kinds built into the core; others come from the ``rcs.policy_loaders`` entry points (e.g. ``lerobot``).
BUILTIN_LOADERS: dict[str, Loader] = {
    "null": _load_null,
    "constant": _load_constant,
}

LEROBOT_CONFIG_NAME = "config.json"


def read_manifest(spec: str | Path) -> tuple[Path, dict[str, Any]]:
    """Resolve ``spec`` to ``(checkpoint directory, manifest)``.

    ``spec`` is a manifest file, a directory holding ``rcs_policy.json``, or a lerobot checkpoint directory
    (``config.json`` with a ``type``) without a manifest, whose manifest is derived from the dataset it was
    trained on (:func:`rcs.serving.manifest.derive_manifest`).
    """
    path = Path(spec)
    if path.is_dir():
        if (path / MANIFEST_NAME).is_file():
            path = path / MANIFEST_NAME
        elif (path / LEROBOT_CONFIG_NAME).is_file():
            return path, derive_manifest(path)  # a stock lerobot-train checkpoint
        else:
            raise ConfigError(
                f"policy={str(spec)!r}: directory has neither {MANIFEST_NAME} nor a lerobot {LEROBOT_CONFIG_NAME}"
            )
    if not path.is_file():
        raise ConfigError(f"policy={str(spec)!r}: not 'null', 'constant' or an existing manifest file/directory")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"policy manifest {path}: {e}") from None
    if not isinstance(manifest, dict):
        raise ConfigError(f"policy manifest {path}: must be a JSON object")
    return path.parent, manifest


def replan_steps_of(directory: str | Path, chunk_size: int) -> int:
    """How many actions of each chunk to execute before asking for the next: the checkpoint's ``n_action_steps``.

    lerobot's ``n_action_steps`` in ``directory/config.json`` is the open-loop horizon a policy was trained and
    tuned for; 1 (replan every policy step) when the directory has no lerobot config or the config none.
    Raises :class:`ConfigError` when it is not an integer in ``[1, chunk_size]``.
    """
    path = Path(directory) / LEROBOT_CONFIG_NAME
    if not path.is_file():
        return 1
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: unreadable ({e})") from None
    steps = config.get("n_action_steps", 1) if isinstance(config, dict) else 1
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= chunk_size:
        raise ConfigError(
            f"{path}: n_action_steps={steps!r} must be an integer in [1, {chunk_size}] (the chunk length)"
        )
    return steps


def load_policy(spec: str | Path, options: LoadOptions = LoadOptions()) -> Policy:
    """``"null"``, ``"constant"``, a manifest path or a checkpoint directory (see :func:`read_manifest`).

    The manifest's ``kind`` picks the loader: ``null`` and ``constant`` are built in, any other kind is looked
    up in the ``rcs.policy_loaders`` registry (``lerobot`` lives in ``policies.lerobot_adapter``), so the core
    never imports torch. Every loader gets ``options`` (:class:`LoadOptions`).
    """
    if str(spec) in BUILTIN_LOADERS:
        return BUILTIN_LOADERS[str(spec)](Path("."), {}, options)
    directory, manifest = read_manifest(spec)
    kind = manifest.get("kind")
    if not isinstance(kind, str):
        raise ConfigError(f"policy manifest in {directory}: 'kind' must be a string, got {kind!r}")
    loader = BUILTIN_LOADERS.get(kind)
    if loader is None:
        try:
            loader = policy_loaders.factory(kind)
        except UnknownNameError as e:
            raise ConfigError(
                f"policy manifest in {directory}: kind={kind!r}; known: "
                f"{sorted(set(BUILTIN_LOADERS) | set(policy_loaders.names()))}"
            ) from e
    return loader(directory, manifest, options)


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
