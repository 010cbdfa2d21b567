"""The spread of a sample (durations, errors) as the reports print it: median, 99th percentile and maximum."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def spread(values: Sequence[float] | np.ndarray, scale: float = 1.0, digits: int = 2) -> dict[str, float]:
    """``{"p50", "p99", "max"}`` of ``values * scale`` (e.g. ``scale=1e3``: s to ms), each rounded to ``digits``
    decimals; empty for an empty sample (the caller decides what "no data" reads as)."""
    a = np.asarray(values, dtype=np.float64) * scale
    if a.size == 0:
        return {}
    p50, p99 = np.percentile(a, [50, 99])
    return {"p50": round(float(p50), digits), "p99": round(float(p99), digits), "max": round(float(a.max()), digits)}
