"""The composed checkpoint folder: a residual actor and the base it was trained on top of.

- ``residual.json``: format, the residual space (:class:`policies.residual.features.ResidualSpace`: inputs,
  statistics, action range, scale), the actor's hidden widths, the base (its folder relative to this one, its
  ``checkpoint_id``, ``replan_steps``, ``policy_dt``) and what training produced it;
- ``actor.safetensors``: the :class:`policies.residual.actor.ResidualActor` state dict;
- ``config.json``: the inputs a robot must send (the base's ``input_features``), chunks of ``CHUNK_STEPS``
  actions of which the robot executes one (``n_action_steps`` 1: the residual acts every policy step), the
  action names;
- ``rcs_policy.json``: the serving manifest (``kind: "residual"``, loaded by :mod:`policies.residual.policy`),
  with the base's entry names, units and ``policy_dt``.

The folder is small (the actor only); the base stays where it is and is named, never copied.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rcs.errors import ConfigError
from rcs.serving.manifest import MANIFEST_NAME, read_json_object
from rcs.serving.policy import read_manifest, replan_steps_of

from .features import ResidualSpace, base_statistics, entry_bounds

FORMAT = "rcs.residual/1"
RESIDUAL_NAME = "residual.json"
WEIGHTS_NAME = "actor.safetensors"
KIND = "residual"
#: actions per served chunk: this step's, and the next step's to bridge a late reply (the robot executes one)
CHUNK_STEPS = 2


@dataclass(frozen=True)
class BaseRef:
    """The base a residual was trained on.

    Attributes:
        directory: its checkpoint folder (absolute once loaded).
        checkpoint_id: what its server must report (a different base is refused).
        replan_steps: actions it executes per chunk.
        policy_dt: its period (s).
    """

    directory: Path
    checkpoint_id: str
    replan_steps: int
    policy_dt: float


def base_ref(directory: str | Path) -> BaseRef:
    """A :class:`BaseRef` read from a base checkpoint folder's files (``rcs_policy.json``, ``config.json``)."""
    directory = Path(directory).resolve()
    _, manifest = read_manifest(directory)
    config = read_json_object(directory / "config.json", "base checkpoint config")
    chunk = config.get("horizon") or config.get("chunk_size") or 1
    policy_dt = manifest.get("policy_dt")
    if not isinstance(policy_dt, int | float) or not policy_dt > 0:
        raise ConfigError(f"base checkpoint {directory}: policy_dt={policy_dt!r} must be > 0 s")
    return BaseRef(
        directory, str(manifest.get("checkpoint_id", directory.name)), replan_steps_of(directory, chunk), policy_dt
    )


def initial_space(
    base: BaseRef, scale: float, per_entry: Mapping[str, float] | None = None, chunk_phase: bool = False
) -> ResidualSpace:
    """The residual space over a base: its vector inputs and action with its saved MIN_MAX statistics, bound by
    ``scale`` (normalized units) except the action entries ``per_entry`` names (by the base's action names); with
    ``chunk_phase`` it also reads the step within the base's chunk (``phase_steps`` = the base's ``replan_steps``).

    Raises:
        ConfigError: ``per_entry`` names an entry the base's action does not have, or the base does not name its
            action entries (``names.action`` in its ``rcs_policy.json``) while ``per_entry`` is given.
    """
    config = read_json_object(base.directory / "config.json", "base checkpoint config")
    inputs = tuple(k for k, f in (config.get("input_features") or {}).items() if f.get("type") in ("STATE", "ENV"))
    stats = base_statistics(base.directory, (*inputs, "action"))
    dim = len(stats["action"].low)
    if per_entry:
        _, manifest = read_manifest(base.directory)
        names = (manifest.get("names") or {}).get("action") or ()
        if len(names) != dim:
            raise ConfigError(f"base checkpoint {base.directory}: names.action must list its {dim} action entries")
        bounds = entry_bounds(tuple(names), scale, per_entry)
    else:
        bounds = (float(scale),) * dim
    phase_steps = base.replan_steps if chunk_phase else 0
    return ResidualSpace(inputs, {k: stats[k] for k in inputs}, stats["action"], bounds, phase_steps)


def save(
    directory: str | Path,
    state_dict: dict[str, Any],
    space: ResidualSpace,
    hidden: tuple[int, ...],
    base: BaseRef,
    checkpoint_id: str,
    training: dict[str, Any] | None = None,
) -> Path:
    """Write a composed checkpoint folder (atomically per file); returns it."""
    from safetensors.torch import save_file

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    base_config = read_json_object(base.directory / "config.json", "base checkpoint config")
    _, base_manifest = read_manifest(base.directory)
    relative = os.path.relpath(base.directory, out.resolve())
    meta = {
        "format": FORMAT,
        "space": space.as_dict(),
        "hidden": list(hidden),
        "base": {
            "path": relative,
            "checkpoint_id": base.checkpoint_id,
            "replan_steps": base.replan_steps,
            "policy_dt": base.policy_dt,
        },
        "training": training or {},
    }
    config = {
        "type": KIND,
        "input_features": base_config.get("input_features", {}),
        "output_features": base_config.get("output_features", {}),
        "horizon": CHUNK_STEPS,
        "n_action_steps": 1,
        "action_names": base_config.get("action_names") or (base_manifest.get("names") or {}).get("action", []),
    }
    manifest = {
        "kind": KIND,
        "checkpoint_id": checkpoint_id,
        "policy_dt": base.policy_dt,
        "names": base_manifest.get("names", {}),
        "units": base_manifest.get("units", {}),
        "base": relative,
    }
    tmp = out / (WEIGHTS_NAME + ".tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in state_dict.items()}, str(tmp))
    tmp.replace(out / WEIGHTS_NAME)
    for name, data in ((RESIDUAL_NAME, meta), ("config.json", config), (MANIFEST_NAME, manifest)):
        t = out / (name + ".tmp")
        t.write_text(json.dumps(data, indent=2))
        t.replace(out / name)
    return out


@dataclass(frozen=True)
class Composed:
    """A loaded composed checkpoint: the residual's space, actor widths and weights, and its base."""

    directory: Path
    space: ResidualSpace
    hidden: tuple[int, ...]
    base: BaseRef
    state_dict: dict[str, Any]
    training: dict[str, Any]


def load(directory: str | Path) -> Composed:
    """Read a composed checkpoint folder; ConfigError names what is missing or malformed."""
    from safetensors.torch import load_file

    directory = Path(directory).resolve()
    meta = read_json_object(directory / RESIDUAL_NAME, "residual checkpoint")
    if meta.get("format") != FORMAT:
        raise ConfigError(f"{directory / RESIDUAL_NAME}: format={meta.get('format')!r}, this version reads {FORMAT}")
    try:
        b = meta["base"]
        base = BaseRef(
            (directory / b["path"]).resolve(), str(b["checkpoint_id"]), int(b["replan_steps"]), float(b["policy_dt"])
        )
        hidden = tuple(int(h) for h in meta["hidden"])
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"{directory / RESIDUAL_NAME}: malformed base or hidden ({type(e).__name__}: {e})") from None
    weights = directory / WEIGHTS_NAME
    if not weights.is_file():
        raise ConfigError(f"residual checkpoint {directory}: no {WEIGHTS_NAME}")
    space = ResidualSpace.from_dict(meta["space"])
    if space.phase_steps not in (0, base.replan_steps):
        raise ConfigError(
            f"{directory / RESIDUAL_NAME}: phase_steps={space.phase_steps} must be 0 or its base's replan_steps "
            f"({base.replan_steps})"
        )
    return Composed(
        directory,
        space,
        hidden,
        base,
        load_file(str(weights)),
        meta.get("training", {}),
    )


def copy(directory: str | Path, to: str | Path) -> Path:
    """The composed checkpoint at ``directory`` written to ``to``, its base named relative to the new folder (a
    folder copied by hand would point at the wrong base)."""
    composed = load(directory)
    _, manifest = read_manifest(composed.directory)
    return save(
        to,
        composed.state_dict,
        composed.space,
        composed.hidden,
        composed.base,
        str(manifest.get("checkpoint_id", composed.directory.name)),
        composed.training,
    )
