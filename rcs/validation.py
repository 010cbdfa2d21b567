"""Checks of incoming commands against a spec: shape, dtype, finiteness and limits.

Every failure raises :class:`rcs.errors.ActionError` naming the field, the value and the limit. Clipping
happens only where the caller's :class:`LimitPolicy` asks for it, and every clip is reported. The two
device-option checks (:func:`limit_policy_of`, :func:`positive_seconds`) raise :class:`rcs.errors.ConfigError`
instead: a bad option is a configuration error, found before anything is commanded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import Enum

import numpy as np
import numpy.typing as npt

from rcs.errors import ActionError, ConfigError

log = logging.getLogger(__name__)


class LimitPolicy(str, Enum):
    """What to do with a finite value outside its limits."""

    RAISE = "raise"
    CLIP = "clip"


def limit_policy_of(device: str, value: object) -> LimitPolicy:
    """A device's ``limit_policy`` option (a :class:`LimitPolicy` or its value) as a :class:`LimitPolicy`.

    Raises:
        ConfigError: any other value, in one line naming the device, e.g.
            ``hw/panda: limit_policy='wrap' must be one of raise, clip``.
    """
    try:
        return LimitPolicy(value)
    except ValueError:
        allowed = ", ".join(p.value for p in LimitPolicy)
        raise ConfigError(f"{device}: limit_policy={value!r} must be one of {allowed}") from None


def positive_seconds(device: str, name: str, value: object, upper: float) -> float:
    """A device's duration option ``name`` (s) as a float within (0, ``upper``] s.

    Raises:
        ConfigError: a bool, a non-number (int or float only), NaN, a value <= 0 or > ``upper``, in one line
            naming the device and the option, e.g. ``hw/px4: link_timeout_s=-1 must be within (0, 30.0] s``.
    """
    # bool is an int subclass: True would otherwise pass as 1 s; NaN fails the chained comparison
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= upper:
        raise ConfigError(f"{device}: {name}={value!r} must be within (0, {upper}] s")
    return float(value)


@dataclass
class ClipReport:
    """Counts clips per field; ``last`` holds the most recent message."""

    counts: dict[str, int] = field(default_factory=dict)
    last: str = ""

    def add(self, name: str, message: str) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1
        self.last = message

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def as_vector(name: str, value: object, size: int) -> np.ndarray:
    """Return ``value`` as a finite float64 vector of length ``size`` or raise naming ``name``.

    Accepts any real (integer or floating) array-like; rejects bool, complex, object and strings.
    """
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu":
        raise ActionError(f"{name}.dtype", str(arr.dtype), "a real numeric dtype (float or int)")
    if arr.shape != (size,):
        raise ActionError(f"{name}.shape", arr.shape, f"shape ({size},)")
    arr = arr.astype(np.float64, copy=True)
    if not np.isfinite(arr).all():
        i = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise ActionError(f"{name}[{i}]", float(arr[i]), "a finite value (no NaN or inf)")
    return arr


def as_chunk(what: str, values: object, names: tuple[str, ...]) -> np.ndarray:
    """``values`` as a float64 (H, len(names)) chunk of finite numbers.

    Raises:
        ValueError: another shape, or a step with a non-finite value (named with the step's index), e.g.
            ``pose chunk step 3 is not finite: [...]``; a malformed chunk is refused as a whole.
    """
    chunk = np.asarray(values, dtype=np.float64)
    if chunk.ndim != 2 or chunk.shape[1] != len(names):
        raise ValueError(f"{what} shape {chunk.shape}: expected (H, {len(names)}) {names}")
    if not np.all(np.isfinite(chunk)):
        step = int(np.flatnonzero(~np.all(np.isfinite(chunk), axis=1))[0])
        raise ValueError(f"{what} step {step} is not finite: {chunk[step].tolist()}")
    return chunk


def as_scalar(name: str, value: object) -> float:
    """Return ``value`` as a finite float or raise naming ``name``."""
    if type(value) is float:  # hot path: a plain Python float
        if value - value == 0.0:  # finite (NaN and inf give NaN)
            return value
        raise ActionError(name, value, "a finite value (no NaN or inf)")
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu" or arr.size != 1:
        raise ActionError(name, value, "a single real number")
    x = float(arr.reshape(()))
    if not np.isfinite(x):
        raise ActionError(name, x, "a finite value (no NaN or inf)")
    return x


def enforce_bounds(
    name: str,
    arr: np.ndarray,
    lower: npt.ArrayLike,
    upper: npt.ArrayLike,
    policy: LimitPolicy,
    report: ClipReport | None = None,
    labels: tuple[str, ...] | None = None,
    unit: str = "",
) -> np.ndarray:
    """Check ``lower <= arr <= upper`` elementwise; raise or clip according to ``policy``.

    ``labels`` name the elements (e.g. joint names) in messages. Returns ``arr`` (clipped if allowed).
    """
    if (arr >= lower).all() and (arr <= upper).all():  # hot path: no allocation beyond the comparisons
        return arr
    lo = np.broadcast_to(np.asarray(lower, dtype=np.float64), arr.shape)
    hi = np.broadcast_to(np.asarray(upper, dtype=np.float64), arr.shape)
    i = int(np.flatnonzero((arr < lo) | (arr > hi) | np.isnan(arr))[0])
    label = labels[i] if labels is not None else str(i)
    field_name = f"{name}[{label}]"
    limit = f"limit [{lo[i]:.6g}, {hi[i]:.6g}]{(' ' + unit) if unit else ''}"
    if policy is LimitPolicy.RAISE:
        raise ActionError(field_name, float(arr[i]), limit)
    clipped = np.clip(arr, lo, hi)
    message = f"clipped {field_name}={float(arr[i]):.6g} to {limit}"
    if report is not None:
        report.add(name, message)
    log.info(message)
    return clipped
