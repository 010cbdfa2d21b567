"""The most common user path: ``rcs record`` -> lerobot's own ``lerobot-train`` -> ``rcs eval``.

A real ``lerobot-train`` run (ACT, CPU, 20 steps) on the expert's recording, whose actions are Cartesian absolute
targets with a rotation vector (``x y z rx ry rz gripper``). The checkpoint has no ``rcs_policy.json``: its manifest
is derived from the dataset named in its ``train_config.json``, and its actions run through the robot-side IK.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.policies.conftest import ENV, RCS, last_json

pytest.importorskip("torch")
LEROBOT_TRAIN = str(Path(sys.executable).with_name("lerobot-train"))


@pytest.fixture(scope="module")
def act_checkpoint(tiny_dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lerobot_train") / "act"
    args = [
        LEROBOT_TRAIN,
        "--dataset.repo_id=local/pick",
        f"--dataset.root={tiny_dataset}",
        "--policy.type=act",
        "--policy.device=cpu",
        "--policy.push_to_hub=false",
        "--policy.pretrained_backbone_weights=null",  # torchvision would download ImageNet weights
        "--policy.chunk_size=10",
        "--policy.n_action_steps=10",
        "--policy.dim_model=64",
        "--policy.dim_feedforward=128",
        "--policy.n_encoder_layers=1",
        "--policy.n_decoder_layers=1",
        "--policy.use_vae=false",
        "--steps=20",
        "--batch_size=4",
        "--num_workers=0",
        "--save_freq=20",
        "--wandb.enable=false",
        f"--output_dir={out}",
    ]
    env = {**ENV, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(args, capture_output=True, text=True, timeout=900, env=env, cwd=out.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = out / "checkpoints" / "last" / "pretrained_model"
    assert (ckpt / "train_config.json").is_file() and not (ckpt / "rcs_policy.json").exists()
    return ckpt


def _eval(ckpt: Path, out: Path) -> subprocess.CompletedProcess:
    args = [RCS, "eval", "--policy", str(ckpt), "--episodes", "1", "--max-steps", "20", "--videos", "0"]
    args += ["--out", str(out), "--json"]
    return subprocess.run(args, capture_output=True, text=True, timeout=600, env={**ENV, "OMP_NUM_THREADS": "1"})


def test_lerobot_train_checkpoint_evaluates_through_the_robot_side_ik(act_checkpoint, tiny_dataset, tmp_path):
    from rcs.serving.policy import read_manifest

    _, manifest = read_manifest(act_checkpoint)
    info = json.loads((tiny_dataset / "meta" / "info.json").read_text())
    assert (
        manifest["names"]["action"]
        == info["features"]["action"]["names"]
        == list("xyz") + ["rx", "ry", "rz", "gripper"]
    )
    assert manifest["units"]["action"] == "m,rotvec" and manifest["policy_dt"] == pytest.approx(1 / info["fps"])
    proc = _eval(act_checkpoint, tmp_path / "eval")
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = last_json(proc.stdout)
    assert summary["episodes"] == 1 and summary["requests"] >= 1
    # every executed action went through IK: chunk waypoints converted to joint targets
    assert summary["ik"]["waypoints"] >= 10, summary["ik"]


def test_checkpoint_without_manifest_or_dataset_is_refused_saying_what_is_missing(act_checkpoint, tmp_path):
    ckpt = tmp_path / "moved"
    shutil.copytree(act_checkpoint, ckpt)
    train = json.loads((ckpt / "train_config.json").read_text())
    train["dataset"]["root"] = str(tmp_path / "elsewhere")
    (ckpt / "train_config.json").write_text(json.dumps(train))
    proc = _eval(ckpt, tmp_path / "eval")
    assert proc.returncode == 1, proc.stderr[-2000:]  # rcs eval: a refused input exits 1 with its one line
    line = proc.stderr.strip()
    assert "\n" not in line and "Traceback" not in line, line
    assert "no rcs_policy.json, and the dataset it was trained on ('local/pick')" in line
    assert os.fspath(tmp_path / "elsewhere") in line and "policy_dt" not in line
