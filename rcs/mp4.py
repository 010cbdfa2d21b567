"""Write frames to an MP4 file (H.264 through imageio's bundled ffmpeg; imported lazily)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def write_mp4(path: str | Path, frames: Sequence[np.ndarray], fps: float) -> Path:
    """Write (H, W, 3) uint8 frames to ``path`` at ``fps``; creates parent folders. Returns the path."""
    import imageio.v2 as imageio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # entered as a plain ``with``: imageio's stub types ``__enter__`` as the base reader/writer, not the Writer
    writer = imageio.get_writer(path, fps=fps, codec="libx264", macro_block_size=8, quality=7)
    with writer:
        for frame in frames:
            writer.append_data(np.asarray(frame, dtype=np.uint8))
    return path
