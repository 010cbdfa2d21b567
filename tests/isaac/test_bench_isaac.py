"""`rcs bench isaac`: Isaac Lab next to MuJoCo for the same scene, each measurement a real run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

RCS = str(Path(sys.executable).with_name("rcs"))


def test_bench_isaac_measures_both_engines_on_the_same_scene(isaac_venv: Path) -> None:
    out = subprocess.run(
        [
            RCS,
            "bench",
            "isaac",
            "--envs",
            "2",
            "--steps",
            "30",
            "--task-steps",
            "3",
            "--isaac-python",
            str(isaac_venv),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)["results"]["2"]
    isaac, mujoco = result["isaac"], result["mujoco"]
    assert isaac["num_envs"] == mujoco["num_envs"] == 2 and isaac["device"] == "cpu"
    assert isaac["physics_dt"] == mujoco["physics_dt"] == 0.002
    assert isaac["env_steps_per_s"] > 0 and mujoco["env_steps_per_s"] > 0
    # both engines start every env at home and move all of them towards the same targets
    assert abs(isaac["start_error"] - mujoco["start_error"]) < 1e-6 and mujoco["start_error"] > 0.9, result
    assert isaac["max_error"] < 0.8 * isaac["start_error"] and mujoco["max_error"] < 0.8 * mujoco["start_error"], result
    # the pick-cube task, batched in one Isaac world next to MuJoCo copies, both 2 envs
    task = result["task"]
    assert task["isaac"]["num_envs"] == task["mujoco"]["num_envs"] == 2
    assert task["isaac"]["env_steps_per_s"] > 0 and task["mujoco"]["env_steps_per_s"] > 0


def test_bench_isaac_without_the_isaac_venv_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "no-venv" / "python"
    out = subprocess.run(
        [RCS, "bench", "isaac", "--envs", "1", "--isaac-python", str(missing), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode != 0
    assert "scripts/setup_isaac.sh" in out.stderr and "Traceback" not in out.stderr, out.stderr
