"""A return-curve PNG drawn with Pillow (like :mod:`policies.training.plot`, but on a linear scale: returns can be
negative)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw

WIDTH, HEIGHT, MARGIN = 800, 480, 60


def curve_png(path: str | Path, xs: Sequence[float], ys: Sequence[float], title: str, xlabel: str) -> Path:
    """Write ``ys`` against ``xs`` (linear axes, finite points only) to ``path``; returns it."""
    img = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(img)
    x0, y0, x1, y1 = MARGIN, MARGIN // 2, WIDTH - MARGIN // 2, HEIGHT - MARGIN
    draw.rectangle([x0, y0, x1, y1], outline="black")
    draw.text((x0, 8), title, fill="black")
    pts = [(x, y) for x, y in zip(xs, ys, strict=True) if math.isfinite(y)]
    if len(pts) >= 2:
        xmin, xmax = pts[0][0], max(pts[-1][0], pts[0][0] + 1)
        ymin, ymax = min(y for _, y in pts), max(y for _, y in pts)
        ymax = max(ymax, ymin + 1e-6)

        def xy(x: float, y: float) -> tuple[float, float]:
            return x0 + (x - xmin) / (xmax - xmin) * (x1 - x0), y1 - (y - ymin) / (ymax - ymin) * (y1 - y0)

        draw.line([xy(x, y) for x, y in pts], fill=(20, 60, 160), width=2)
        for frac in (0.0, 0.5, 1.0):
            draw.text((4, y1 - frac * (y1 - y0) - 6), f"{ymin + frac * (ymax - ymin):.4g}", fill="black")
        draw.text((x0, y1 + 8), f"{xmin:.6g}", fill="black")
        right = f"{xmax:.6g}"  # right-aligned under the axis' end, where its value is
        draw.text((x1 - draw.textlength(right), y1 + 8), right, fill="black")
        draw.text((WIDTH // 2 - 60, y1 + 28), xlabel, fill="black")
    path = Path(path)
    img.save(path)
    return path
