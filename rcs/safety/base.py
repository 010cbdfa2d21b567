"""What every safety filter is: the interface the control loop calls, and the check of a malformed command.

A filter never raises on bad input: NaN/inf or a wrongly shaped command is replaced by a hold (see
:func:`hold_reason`), and every intervention is counted with its reason in
:class:`rcs.safety.interventions.InterventionLog`.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from rcs.safety.interventions import InterventionLog
from rcs.types import Command


class SafetyFilter(Protocol):
    """What the control loop needs from a safety filter."""

    log: InterventionLog

    def filter(self, command: Command, state: Any) -> Command:
        """A command that respects every limit, derived from ``command`` (never raises on bad values)."""
        ...

    def reset(self, state: Any) -> None:
        """Start from the measured ``state`` (at rest)."""
        ...


def hold_reason(values: object, size: int) -> str | None:
    """Why ``values`` cannot be used as a command of ``size`` elements (None if it can)."""
    arr = np.asarray(values)
    if arr.dtype.kind not in "fiu":
        return "bad_dtype"
    if arr.shape != (size,):
        return "bad_shape"
    if not np.isfinite(arr).all():
        return "non_finite"
    return None


def short_repr(values: object) -> str:
    """``values`` as at most 80 characters for an intervention message (4 digits, long arrays elided)."""
    text = np.array2string(np.asarray(values), precision=4, threshold=8) if hasattr(values, "__len__") else repr(values)
    return text if len(text) <= 80 else text[:77] + "..."
