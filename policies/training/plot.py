"""A loss-curve PNG drawn with Pillow (no plotting library needed): log-scale loss against training step."""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw

WIDTH, HEIGHT, MARGIN = 800, 480, 60


def loss_curve_png(path: str | Path, steps: list[int], losses: list[float], title: str = "training loss") -> Path:
    """Write the curve (raw points light, a moving average dark) to ``path``; returns it."""
    img = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(img)
    x0, y0, x1, y1 = MARGIN, MARGIN // 2, WIDTH - MARGIN // 2, HEIGHT - MARGIN
    draw.rectangle([x0, y0, x1, y1], outline="black")
    draw.text((x0, 8), title, fill="black")
    pts = [(s, v) for s, v in zip(steps, losses, strict=True) if v > 0 and math.isfinite(v)]
    if len(pts) >= 2:
        smin, smax = pts[0][0], max(pts[-1][0], pts[0][0] + 1)
        lmin = math.log10(min(v for _, v in pts))
        lmax = math.log10(max(v for _, v in pts))
        lmax = max(lmax, lmin + 1e-3)

        def xy(s: float, v: float) -> tuple[float, float]:
            return (
                x0 + (s - smin) / (smax - smin) * (x1 - x0),
                y1 - (math.log10(v) - lmin) / (lmax - lmin) * (y1 - y0),
            )

        draw.line([xy(s, v) for s, v in pts], fill=(170, 190, 230), width=1)
        k = max(1, len(pts) // 50)
        smooth = [
            (pts[i][0], sum(v for _, v in pts[max(0, i - k) : i + 1]) / len(pts[max(0, i - k) : i + 1]))
            for i in range(len(pts))
        ]
        draw.line([xy(s, v) for s, v in smooth], fill=(20, 60, 160), width=2)
        for frac in (0.0, 0.5, 1.0):
            lv = lmin + frac * (lmax - lmin)
            y = y1 - frac * (y1 - y0)
            draw.text((4, y - 6), f"{10**lv:.3g}", fill="black")
        draw.text((x0, y1 + 8), f"step {smin}", fill="black")
        draw.text((x1 - 90, y1 + 8), f"step {smax}", fill="black")
        draw.text((WIDTH // 2 - 40, y1 + 28), "step (log-scale loss)", fill="black")
    path = Path(path)
    img.save(path)
    return path
