"""Serve a lerobot policy checkpoint directory through ``rcs serve`` (loader kind ``"lerobot"``).

The checkpoint is loaded with lerobot's own code: ``get_policy_class(cfg.type).from_pretrained(dir)`` and
``make_pre_post_processors(cfg, pretrained_path=dir)``, so any directory that lerobot's ``from_pretrained``
reads works here: lerobot's ACT, Diffusion, SmolVLA, pi0..., and this project's policy types. The
``rcs.lerobot_policies`` entry point of a policy type, if any, is loaded first: an entry naming a module is
imported (that registers a type defined outside lerobot, ``rcs_diffusion = "policies.rcs_diffusion"``); an
entry naming a callable is called with no arguments (a vendored workaround for a bug in lerobot's code of
that type, e.g. ``pi0 = "policies.pi0.lerobot_workarounds:fix_pi0_projector_width"``; it must be idempotent).

Before serving, three checks that lerobot itself does not make:

* **The weights are the file's.** lerobot loads ``model.safetensors`` non-strictly (a tensor missing from the
  file keeps its random initial value; the openpi family returns a random model on any loading error):
  :func:`check_weights` compares the file with the loaded model (:mod:`policies.lerobot_weights`).

* **Normalization stats cover every feature.** lerobot's normalizer silently passes a feature through
  unnormalized when its stats are missing (upstream PR #4446); a policy fed raw joint angles where it was
  trained on z-scores moves the robot anywhere. Every feature whose normalization mode is not ``IDENTITY``
  must have the statistics its mode needs, with the feature's size; otherwise :class:`ConfigError` lists
  each gap.
* **Joint order.** lerobot checkpoints carry shapes but no component names. The sidecar manifest
  ``rcs_policy.json`` (written by ``rcs train``) names the columns of ``action`` and of each state vector;
  they go into the served :class:`~rcs.serving.protocol.Schema`, and the robot side refuses to arm when they
  differ from its own joint order (``schema_differences`` reports ``joint order``). Without names the
  schema has none, and a robot that declares its joint names refuses too.

Wire form of observations: images travel as ``(H, W, 3)`` uint8 (unit ``px``) and are converted here to
lerobot's ``(3, H, W)`` float in [0, 1]; state vectors as float32; a language instruction as a ``uint8``
text tensor named ``task`` (:func:`rcs.serving.protocol.encode_text`) when the policy takes one.

Manifest fields (all optional except ``policy_dt``)::

    {"kind": "lerobot", "policy_dt": 0.05, "checkpoint_id": "...",
     "names": {"action": [...], "observation.state": [...]}, "units": {"action": "rad", ...},
     "text": {"name": "task", "max_bytes": 256}, "device": "cpu", "torch_threads": 1,
     "overrides": {"config": {"vlm_model_name": "@/vlm"},
                   "preprocessor": {"tokenizer_processor": {"tokenizer_name": "@/vlm"}}}}

``overrides`` replace fields of the policy config and constructor arguments of processor steps (by their
registry name) at load time; a string starting with ``@/`` is a path relative to the checkpoint directory.
That is how a checkpoint carries a local copy of what lerobot would fetch from the hub (a VLM backbone, a
tokenizer) and stays movable: see :mod:`policies.smolvla.offline`.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rcs.errors import ConfigError, UnknownNameError
from rcs.registry import lerobot_policy_plugins
from rcs.serving.policy import LoadOptions
from rcs.serving.protocol import (
    TEXT_UNIT,
    ProtocolError,
    Schema,
    TensorSpec,
    decode_text,
    text_spec,
)

log = logging.getLogger(__name__)

#: statistics each normalization mode reads (lerobot.processor.normalize_processor._apply_transform).
STATS_NEEDED: dict[str, tuple[str, str]] = {
    "MEAN_STD": ("mean", "std"),
    "MIN_MAX": ("min", "max"),
    "QUANTILES": ("q01", "q99"),
    "QUANTILE10": ("q10", "q90"),
}

#: policy types whose offline ``predict_action_chunk`` wants a time axis on state tensors, (B, T, D),
#: while images get theirs added by the policy itself (lerobot's diffusion, ``n_obs_steps`` = T).
TIME_AXIS_TYPES: frozenset[str] = frozenset({"diffusion"})


def read_policy_type(directory: Path) -> str:
    """The ``type`` field of a lerobot ``config.json``; :class:`ConfigError` if missing or unreadable."""
    path = directory / "config.json"
    try:
        cfg = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"policy checkpoint {directory}: no config.json (not a lerobot checkpoint)") from None
    except (OSError, ValueError) as e:
        raise ConfigError(f"policy checkpoint {path}: unreadable ({e})") from None
    kind = cfg.get("type") if isinstance(cfg, dict) else None
    if not isinstance(kind, str):
        raise ConfigError(f"policy checkpoint {path}: 'type' must name a lerobot policy type, got {kind!r}")
    return kind


def import_policy_plugin(policy_type: str) -> None:
    """Load the ``rcs.lerobot_policies`` entry of ``policy_type``, if one is declared (else no-op).

    A module entry is imported (registering the type with lerobot); a callable entry is called (a workaround
    applied before lerobot builds the model; called at every load, so it must be idempotent).
    """
    try:
        plugin = lerobot_policy_plugins.factory(policy_type)
    except UnknownNameError:
        return
    if callable(plugin):
        plugin()


def normalization_gaps(step: Any) -> list[str]:
    """Features a lerobot (un)normalizer step would silently leave raw: ``"<feature>: <what is wrong>"``."""
    gaps: list[str] = []
    stats: Mapping[str, Mapping[str, Any]] = step.stats or {}
    for key, feature in step.features.items():
        mode = step.norm_map.get(feature.type)
        mode_name = getattr(mode, "value", "IDENTITY") if mode is not None else "IDENTITY"
        if mode_name == "IDENTITY":
            continue
        needed = STATS_NEEDED.get(mode_name)
        if needed is None:
            gaps.append(f"{key}: normalization mode {mode_name} is unknown to this adapter")
            continue
        have = stats.get(key)
        if have is None:
            gaps.append(f"{key}: no stats (mode {mode_name} needs {'/'.join(needed)})")
            continue
        channels = feature.shape[0] if feature.type.value == "VISUAL" else math.prod(feature.shape)
        for name in needed:
            if name not in have:
                gaps.append(f"{key}: stats lack '{name}' (mode {mode_name})")
                continue
            value = np.asarray(have[name].cpu() if hasattr(have[name], "cpu") else have[name], dtype=np.float64)
            if value.size not in (channels, math.prod(feature.shape)):
                gaps.append(f"{key}: stats '{name}' has {value.size} values, feature shape {feature.shape}")
            elif not np.all(np.isfinite(value)):
                gaps.append(f"{key}: stats '{name}' contains NaN or inf")
    return gaps


def check_normalization(pipeline: Any, where: str) -> None:
    """Raise :class:`ConfigError` if any (un)normalizer step of ``pipeline`` has a gap."""
    gaps = [
        g
        for step in pipeline.steps
        if hasattr(step, "norm_map") and hasattr(step, "features")
        for g in normalization_gaps(step)
    ]
    if gaps:
        raise ConfigError(
            f"{where}: normalization stats do not cover every feature (lerobot would silently "
            f"skip them, upstream PR #4446): " + "; ".join(gaps)
        )


def check_weights(policy: Any, model_file: Path, where: str) -> None:
    """Raise :class:`ConfigError` unless ``model_file`` is what ``policy`` holds (:mod:`policies.lerobot_weights`)."""
    from policies.lerobot_weights import weight_gaps

    if not model_file.is_file():
        raise ConfigError(f"{where}: no {model_file.name} (the weights)")
    try:
        gaps = weight_gaps(policy, model_file)
    except Exception as e:  # safetensors raises several types for a damaged file
        raise ConfigError(f"{where}: cannot read {model_file.name}: {type(e).__name__}: {e}") from e
    if gaps:
        raise ConfigError(
            f"{where}: {model_file.name} is not what the model holds after lerobot loaded it "
            f"(lerobot loads weights non-strictly and would serve random values): " + "; ".join(gaps)
        )


class LerobotPolicy:
    """A lerobot policy behind the :class:`rcs.serving.policy.Policy` protocol.

    Args:
        directory: checkpoint directory (``config.json``, ``model.safetensors``, processor files).
        manifest: the ``rcs_policy.json`` fields (see the module docstring).
    """

    def __init__(self, directory: str | Path, manifest: Mapping[str, Any] | None = None) -> None:
        import torch
        from lerobot.configs.policies import PreTrainedConfig
        from lerobot.policies.factory import get_policy_class, make_pre_post_processors

        self.directory = Path(directory)
        m = dict(manifest or {})
        policy_type = read_policy_type(self.directory)
        import_policy_plugin(policy_type)
        self._torch = torch
        if m.get("torch_threads"):
            torch.set_num_threads(int(m["torch_threads"]))
        self.device = str(m.get("device", "cpu"))
        overrides = self._resolve(m.get("overrides") or {})
        try:
            cfg = PreTrainedConfig.from_pretrained(str(self.directory))
            cfg.device = self.device
            for key, value in (overrides.get("config") or {}).items():
                if not hasattr(cfg, key):
                    raise ConfigError(
                        f"policy checkpoint {self.directory}: overrides.config.{key}: "
                        f"{type(cfg).__name__} has no such field"
                    )
                setattr(cfg, key, value)
            self.policy = get_policy_class(cfg.type).from_pretrained(str(self.directory), config=cfg)
            self.pre, self.post = make_pre_post_processors(
                cfg,
                pretrained_path=str(self.directory),
                preprocessor_overrides=overrides.get("preprocessor") or {},
                postprocessor_overrides=overrides.get("postprocessor") or {},
            )
        except (ConfigError, UnknownNameError):
            raise
        except Exception as e:  # lerobot/safetensors raise many types for a corrupted or partial checkpoint
            raise ConfigError(
                f"policy checkpoint {self.directory}: lerobot could not load it: {type(e).__name__}: {e}"
            ) from e
        self.policy.eval()
        self.config = cfg
        check_weights(self.policy, self.directory / "model.safetensors", f"policy checkpoint {self.directory}")
        check_normalization(self.pre, f"policy checkpoint {self.directory} (preprocessor)")
        check_normalization(self.post, f"policy checkpoint {self.directory} (postprocessor)")
        self.checkpoint_id = str(m.get("checkpoint_id", f"{policy_type}:{self.directory.name}"))
        self._time_axis = policy_type in TIME_AXIS_TYPES
        if self._time_axis and int(getattr(cfg, "n_obs_steps", 1)) != 1:
            raise ConfigError(
                f"policy checkpoint {self.directory}: n_obs_steps={cfg.n_obs_steps}; the server "
                f"passes one observation per request, so only n_obs_steps=1 is served"
            )
        self._images = tuple(cfg.image_features)
        self._text = m.get("text") if isinstance(m.get("text"), dict) else None
        if self._text is None and _takes_language(cfg):
            self._text = {"name": "task", "max_bytes": 256}
        policy_dt = m.get("policy_dt")
        if not isinstance(policy_dt, (int, float)) or not policy_dt > 0:
            raise ConfigError(
                f"policy checkpoint {self.directory}: rcs_policy.json must give policy_dt > 0 "
                f"(s between actions of a chunk), got {policy_dt!r}"
            )
        names = m.get("names") or {}
        units = m.get("units") or {}
        observation = [self._spec(key, feat, names, units) for key, feat in cfg.input_features.items()]
        if self._text is not None:
            observation.append(text_spec(str(self._text["name"]), int(self._text["max_bytes"])))
        self._observation = tuple(observation)
        try:
            chunk = self._run(self._zero_observation(observation), 1)[0]
        except Exception as e:  # lerobot's model code raises anything (shape, dtype, key errors) on a bad checkpoint
            raise ConfigError(
                f"policy checkpoint {self.directory}: loaded, but a test inference on a zero "
                f"observation failed: {type(e).__name__}: {e}"
            ) from e
        action_names = tuple(names.get("action", ()))
        if action_names and len(action_names) != chunk.shape[1]:
            raise ConfigError(
                f"policy checkpoint {self.directory}: names.action has {len(action_names)} "
                f"names, the policy outputs {chunk.shape[1]} action components"
            )
        try:
            action = TensorSpec("action", chunk.shape, "float32", str(units.get("action", "")), action_names)
            self.schema = Schema(self._observation, action, float(policy_dt))
        except ProtocolError as e:
            raise ConfigError(f"policy checkpoint {self.directory}: {e}") from None
        log.info(
            "loaded %s policy from %s: chunk %s, inputs %s",
            policy_type,
            self.directory,
            chunk.shape,
            [s.name for s in self._observation],
        )

    def _resolve(self, value: Any) -> Any:
        """``overrides`` with every ``"@/..."`` string made a path inside the checkpoint directory."""
        if isinstance(value, dict):
            return {k: self._resolve(v) for k, v in value.items()}
        if isinstance(value, str) and value.startswith("@/"):
            path = (self.directory / value[2:]).resolve()
            if not path.is_relative_to(self.directory.resolve()) or not path.exists():
                raise ConfigError(
                    f"policy checkpoint {self.directory}: override path {value!r} does not exist inside the checkpoint"
                )
            return str(path)
        return value

    def _spec(self, key: str, feature: Any, names: Mapping[str, Any], units: Mapping[str, Any]) -> TensorSpec:
        if key in self._images:
            c, h, w = feature.shape
            return TensorSpec(key, (h, w, c), "uint8", str(units.get(key, "px")))
        shape = tuple(feature.shape)
        feature_names = tuple(names.get(key, ()))
        if feature_names and (len(shape) != 1 or len(feature_names) != shape[0]):
            raise ConfigError(
                f"policy checkpoint {self.directory}: names[{key!r}] has {len(feature_names)} "
                f"names, feature shape is {shape}"
            )
        return TensorSpec(key, shape, "float32", str(units.get(key, "")), feature_names)

    @staticmethod
    def _zero_observation(specs: Sequence[TensorSpec]) -> dict[str, np.ndarray]:
        return {s.name: np.zeros(s.shape, dtype=s.dtype) for s in specs}

    def _batch(self, observations: Sequence[Mapping[str, np.ndarray]]) -> dict[str, Any]:
        torch = self._torch
        batch: dict[str, Any] = {}
        for spec in self._observation:
            if spec.unit == TEXT_UNIT:
                batch[spec.name] = [decode_text(o[spec.name], spec.name) for o in observations]
                continue
            stacked = torch.from_numpy(np.stack([np.asarray(o[spec.name]) for o in observations]))
            if spec.name in self._images:
                stacked = stacked.permute(0, 3, 1, 2).to(torch.float32).div_(255.0)
            elif self._time_axis:
                stacked = stacked.unsqueeze(1)
            batch[spec.name] = stacked
        return batch

    def _run(self, observation: Mapping[str, np.ndarray], n: int) -> np.ndarray:
        return np.stack(self.infer([observation] * n))

    def infer(self, observations: Sequence[Mapping[str, np.ndarray]]) -> list[np.ndarray]:
        """One ``(H, D)`` float32 chunk (robot units, unnormalized) per observation."""
        torch = self._torch
        with torch.inference_mode():
            batch = self.pre(self._batch(observations))
            actions = self.policy.predict_action_chunk(batch)
            actions = self.post(actions)
        out = actions.detach().to("cpu", torch.float32).numpy()
        return [np.ascontiguousarray(a) for a in out]


def _takes_language(cfg: Any) -> bool:
    """Whether a lerobot config tokenizes a task string (SmolVLA, pi0 family)."""
    return any(hasattr(cfg, attr) for attr in ("tokenizer_max_length", "vlm_model_name"))


def load(path: Path, manifest: Mapping[str, Any], options: LoadOptions) -> LerobotPolicy:
    """Entry point of the ``rcs.policy_loaders`` group (kind ``"lerobot"``; ``options`` change nothing here)."""
    return LerobotPolicy(path, manifest)
