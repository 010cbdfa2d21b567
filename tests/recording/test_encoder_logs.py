"""The recorder's video encoders keep the codec's own log lines (SVT-AV1's ``Svt[info]``) off the terminal."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("lerobot")
pytest.importorskip("av")

SCRIPT = textwrap.dedent("""
    import sys
    from pathlib import Path

    import numpy as np

    from rcs.recording.encoder_process import EncoderProcess, ProcessVideoStream
    from rcs.recording.video import VideoOptions, VideoStream

    out = Path(sys.argv[1])
    encoder = VideoOptions(vcodec="libsvtav1").encoder_config()
    frames = [np.full((48, 64, 3), 10 * i, dtype=np.uint8) for i in range(6)]
    if sys.argv[2] == "thread":
        stream = VideoStream(out / "thread.mp4", 20, encoder, None, 16)
    else:
        worker = EncoderProcess(48, 64, 20, encoder, None, 16)
        stream = ProcessVideoStream(worker, out / "process.mp4")
    for f in frames:
        stream.put(f, block=True)
    result = stream.finish()
    if sys.argv[2] == "process":
        worker.close()
    assert result.error is None and result.frames == 6, result
    assert result.path.stat().st_size > 0
    print("encoded", result.frames)
""")


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_svtav1_encoder_prints_no_info_lines(tmp_path, backend):
    env = {k: v for k, v in os.environ.items() if k != "SVT_LOG"}  # as a user's shell has it
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path), backend], capture_output=True, text=True, timeout=180, env=env
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "encoded 6" in out.stdout
    assert "Svt[" not in out.stdout + out.stderr, (out.stdout + out.stderr)[:2000]
