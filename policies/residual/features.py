"""The residual's observation and its action space, both normalized with the base checkpoint's statistics.

The base (a lerobot checkpoint) normalizes vector inputs and actions by MIN_MAX: ``z = 2 (x - min) / (max - min) - 1``
maps the training data's range to [-1, 1]. The residual works in the same space: its observation is the
normalized vector inputs plus the base's normalized action for this step, and its output ``r`` (in [-1, 1]) moves
the base's normalized action by ``scale * r``:

    a = unnormalize(normalize(a_base) + scale * r)

so ``scale`` is a fraction of each action entry's half-range in the base's data (e.g. 0.1: 10 %), one bound per
entry. One bound does not suit every entry: 0.1 lets the residual move a TCP position by 1.5-2.3 cm, which
corrects a soft or late arm, but a gripper command by only 0.05 of its opening, which cannot keep a gripper closed
that the base opens mid-carry (docs/sim2real.md: nearly every failure of the shipped base on ``reality-a`` follows
a drop). A bound of :data:`MAX_SCALE` lets the residual set its entry anywhere in the data's range whatever the base
says; a wider gripper bound has so far trained worse than the default within the step budget (docs/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rcs.errors import ConfigError

#: a statistic range below this (in the feature's units) is treated as this, so a constant entry normalizes to
#: a finite value (lerobot's normalizer uses the same floor)
MIN_SPAN = 1e-8
#: the largest bound per entry (normalized units): from any base action in [-1, 1], ``+-2`` reaches the whole range
MAX_SCALE = 2.0


@dataclass(frozen=True)
class MinMax:
    """One feature's MIN_MAX normalization: ``low`` and ``high`` (its units) map to -1 and 1."""

    low: np.ndarray
    high: np.ndarray

    def normalize(self, x: np.ndarray) -> np.ndarray:
        """Feature units -> normalized (float64)."""
        span = np.maximum(self.high - self.low, MIN_SPAN)
        return 2.0 * (np.asarray(x, dtype=np.float64) - self.low) / span - 1.0

    def unnormalize(self, z: np.ndarray) -> np.ndarray:
        """Normalized -> feature units (float64)."""
        span = np.maximum(self.high - self.low, MIN_SPAN)
        return (np.asarray(z, dtype=np.float64) + 1.0) * span / 2.0 + self.low

    def as_dict(self) -> dict[str, list[float]]:
        return {"min": self.low.tolist(), "max": self.high.tolist()}

    @classmethod
    def from_dict(cls, name: str, data: Any) -> MinMax:
        """From ``{"min": [...], "max": [...]}``; ConfigError names ``name`` if it is malformed."""
        try:
            low = np.asarray(data["min"], dtype=np.float64)
            high = np.asarray(data["max"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"residual statistics {name}: needs 'min' and 'max' number lists ({e})") from None
        if low.ndim != 1 or low.shape != high.shape or not (np.isfinite(low).all() and np.isfinite(high).all()):
            raise ConfigError(f"residual statistics {name}: 'min' and 'max' must be finite lists of one length")
        return cls(low, high)


@dataclass(frozen=True)
class ResidualSpace:
    """What the residual reads and how it acts.

    Attributes:
        inputs: the wire vector inputs it reads (e.g. ``observation.state``, ``observation.environment_state``),
            in this order, each with its base statistics in ``stats``.
        stats: MIN_MAX of each input.
        action: MIN_MAX of the base's action.
        scale: the residual's bound per action entry in normalized action units (``|a_i - a_base,i| <= scale_i``
            there), each in (0, :data:`MAX_SCALE`].
        phase_steps: 0, or the base's ``replan_steps``: the observation then ends with the step within the base's
            chunk, one-hot (entry ``k`` is 1 for the chunk's ``k``-th action, ``k = 0`` the step it was predicted
            on). The base replans every ``replan_steps`` steps and its new chunk may jump (e.g. open the gripper
            it held closed): without the phase the residual cannot tell the step before a replan from the one
            after it.
    """

    inputs: tuple[str, ...]
    stats: Mapping[str, MinMax]
    action: MinMax
    scale: tuple[float, ...]
    phase_steps: int = 0

    def __post_init__(self) -> None:
        missing = [k for k in self.inputs if k not in self.stats]
        if missing:
            raise ConfigError(f"residual space: no statistics for inputs {missing}")
        if len(self.scale) != self.action_dim:
            raise ConfigError(
                f"residual scale: expected {self.action_dim} bounds (one per action entry), got {len(self.scale)}"
            )
        for i, bound in enumerate(self.scale):
            check_bound(f"action entry {i}", bound)
        if self.phase_steps < 0:
            raise ConfigError(
                f"residual phase_steps={self.phase_steps}: must be 0 (no phase) or the base's replan_steps"
            )

    @property
    def action_dim(self) -> int:
        return len(self.action.low)

    @property
    def observation_dim(self) -> int:
        """Length of :meth:`observe`: the inputs, the base's normalized action, then the chunk phase (if any)."""
        return sum(len(self.stats[k].low) for k in self.inputs) + self.action_dim + self.phase_steps

    def observe(
        self, observation: Mapping[str, np.ndarray], base_action: np.ndarray, chunk_step: int | None = None
    ) -> np.ndarray:
        """The residual's observation (float32): each input normalized, the base's normalized action, then (with
        :attr:`phase_steps`) ``chunk_step``, the index of ``base_action`` in the base's chunk, one-hot.

        Raises:
            ValueError: an input missing, of the wrong length, or non-finite (names it); ``chunk_step`` missing or
                outside ``[0, phase_steps)`` where the space reads it.
        """
        parts = []
        for key in self.inputs:
            if key not in observation:
                raise ValueError(f"residual input {key}: missing from the observation")
            x = np.asarray(observation[key], dtype=np.float64).reshape(-1)
            stat = self.stats[key]
            if len(x) != len(stat.low) or not np.isfinite(x).all():
                raise ValueError(f"residual input {key}: expected {len(stat.low)} finite values, got {x.tolist()}")
            parts.append(stat.normalize(x))
        parts.append(self.action.normalize(self.check_action("base action", base_action)))
        if self.phase_steps:
            if chunk_step is None or not 0 <= chunk_step < self.phase_steps:
                raise ValueError(f"residual chunk step: {chunk_step!r} must be in [0, {self.phase_steps})")
            parts.append(np.eye(self.phase_steps)[chunk_step])
        return np.concatenate(parts).astype(np.float32)

    def compose(self, base_action: np.ndarray, residual: np.ndarray) -> np.ndarray:
        """The executed action (action units, float64): the base's action moved by ``scale * residual`` (per entry)
        in the normalized space; ``residual`` is clipped to [-1, 1].

        Raises:
            ValueError: a non-finite or wrongly sized base action or residual (names which).
        """
        base = self.check_action("base action", base_action)
        r = np.asarray(residual, dtype=np.float64).reshape(-1)
        if r.shape != (self.action_dim,) or not np.isfinite(r).all():
            raise ValueError(f"residual action: expected {self.action_dim} finite values, got {r.tolist()}")
        return self.action.unnormalize(self.action.normalize(base) + self.bounds * np.clip(r, -1.0, 1.0))

    @property
    def bounds(self) -> np.ndarray:
        """:attr:`scale` as a float64 array (normalized action units per entry)."""
        return np.asarray(self.scale, dtype=np.float64)

    def check_action(self, what: str, action: np.ndarray) -> np.ndarray:
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (self.action_dim,) or not np.isfinite(a).all():
            raise ValueError(f"{what}: expected {self.action_dim} finite values, got {a.tolist()}")
        return a

    def as_dict(self) -> dict[str, Any]:
        data = {
            "inputs": list(self.inputs),
            "stats": {k: self.stats[k].as_dict() for k in self.inputs},
            "action": self.action.as_dict(),
            # one number when every entry has the same bound (the layout of checkpoints that predate per-entry bounds)
            "scale": self.scale[0] if len(set(self.scale)) == 1 else list(self.scale),
        }
        if self.phase_steps:  # absent in checkpoints that predate the phase: they read 0
            data["phase_steps"] = self.phase_steps
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ResidualSpace:
        try:
            inputs = tuple(str(k) for k in data["inputs"])
            stats = {k: MinMax.from_dict(k, data["stats"][k]) for k in inputs}
            action = MinMax.from_dict("action", data["action"])
            scale = data["scale"]
            bounds = [scale] * len(action.low) if isinstance(scale, int | float) else list(scale)
            phase_steps = data.get("phase_steps", 0)
            if not isinstance(phase_steps, int):
                raise TypeError(f"phase_steps={phase_steps!r} must be an integer")
            return cls(inputs, stats, action, tuple(float(b) for b in bounds), phase_steps)
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"residual space: malformed ({type(e).__name__}: {e})") from None


def check_bound(entry: str, bound: float) -> float:
    """``bound`` if it is a valid residual bound (normalized units, in (0, :data:`MAX_SCALE`]).

    Raises:
        ConfigError: naming ``entry`` and the range.
    """
    if not (np.isfinite(bound) and 0.0 < bound <= MAX_SCALE):
        raise ConfigError(f"residual scale of {entry}: {bound!r} must be in (0, {MAX_SCALE}] (normalized action units)")
    return float(bound)


def entry_bounds(names: Sequence[str], scale: float, per_entry: Mapping[str, float] | None = None) -> tuple[float, ...]:
    """One bound per action entry (normalized units): ``scale``, except the entries ``per_entry`` names.

    Raises:
        ConfigError: ``per_entry`` names an entry that ``names`` (the base's action names) does not hold.
    """
    per_entry = dict(per_entry or {})
    unknown = [k for k in per_entry if k not in names]
    if unknown:
        raise ConfigError(
            f"residual entry scale {unknown[0]!r}: the base's action has no such entry ({', '.join(names)})"
        )
    return tuple(check_bound(name, per_entry.get(name, scale)) for name in names)


def base_statistics(directory: Path, keys: Sequence[str]) -> dict[str, MinMax]:
    """MIN_MAX statistics of ``keys`` (e.g. ``action``, ``observation.state``) from a lerobot checkpoint's saved
    normalizer (``policy_preprocessor_step_*_normalizer_processor.safetensors``).

    Raises:
        ConfigError: no normalizer file, or a key without ``min``/``max`` in it.
    """
    from safetensors.numpy import load_file

    files = sorted(Path(directory).glob("policy_preprocessor_step_*_normalizer_processor.safetensors"))
    if not files:
        raise ConfigError(f"base checkpoint {directory}: no saved normalizer (policy_preprocessor_step_*_normalizer)")
    tensors = load_file(files[0])
    out = {}
    for key in keys:
        if f"{key}.min" not in tensors or f"{key}.max" not in tensors:
            raise ConfigError(f"base checkpoint {directory}: the normalizer has no min/max of {key}")
        out[key] = MinMax(tensors[f"{key}.min"].astype(np.float64), tensors[f"{key}.max"].astype(np.float64))
    return out
