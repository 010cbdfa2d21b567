"""Bad inputs: unexpected dataset features, corrupted checkpoints, a NaN-returning policy."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from rcs.errors import ConfigError
from tests.policies.conftest import TINY_POLICY, last_json, rcs

torch = pytest.importorskip("torch")


def _dataset_with(root: Path, features: dict) -> Path:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset.create("local/odd", fps=20, features=features, root=root, use_videos=False)
    for _ in range(3):
        ds.add_frame({k: np.zeros(f["shape"], dtype=f["dtype"]) for k, f in features.items()} | {"task": "x"})
    ds.save_episode()
    ds.finalize()
    return root


def test_dataset_with_unexpected_observation_feature_is_refused_naming_it(tmp_path):
    from policies.rcs_diffusion.configuration_rcs_diffusion import RcsDiffusionConfig
    from policies.training.data import DatasetFeatureError, load_demos

    vec = lambda n: {"dtype": "float32", "shape": (n,), "names": [f"v{i}" for i in range(n)]}  # noqa: E731
    root = _dataset_with(
        tmp_path / "odd", {"observation.state": vec(4), "observation.velocity": vec(4), "action": vec(2)}
    )
    with pytest.raises(DatasetFeatureError, match=r"observation\.velocity"):
        load_demos(root, RcsDiffusionConfig(device="cpu"))
    data = load_demos(
        root, RcsDiffusionConfig(device="cpu", horizon=2, n_action_steps=1), ignore=("observation.velocity",)
    )
    assert sorted(data.input_features) == ["observation.state"]
    # a dataset whose state has no 'gripper' entry cannot give joint targets
    with pytest.raises(DatasetFeatureError, match="gripper"):
        load_demos(
            root,
            RcsDiffusionConfig(device="cpu", action_target="joint_state_lookahead"),
            ignore=("observation.velocity",),
        )


def test_resume_on_a_dataset_with_other_features_is_refused(tiny_run, tmp_path):
    from policies.training.data import DatasetFeatureError
    from policies.training.train import TrainConfig, train

    state = [
        *(f"joint{i}" for i in range(1, 8)),
        "gripper",
        "tcp_x",
        "tcp_y",
        "tcp_z",
        "tcp_qw",
        "tcp_qx",
        "tcp_qy",
        "tcp_qz",
    ]
    action = ["x", "y", "z", "rx", "ry", "rz", "gripper"]
    other = _dataset_with(
        tmp_path / "other",
        {  # no environment state, no camera
            "observation.state": {"dtype": "float32", "shape": (15,), "names": state},
            "action": {"dtype": "float32", "shape": (7,), "names": action},
        },
    )
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, symlinks=True)
    with pytest.raises(DatasetFeatureError, match="observation.environment_state"):
        train(
            TrainConfig(dataset=str(other), output=str(run), steps=6, resume=True, policy=dict(TINY_POLICY)),
            progress=False,
        )


@pytest.fixture
def broken_copy(tiny_checkpoint, tmp_path):
    def make(how: str) -> Path:
        d = tmp_path / how
        shutil.copytree(tiny_checkpoint, d)
        model = d / "model.safetensors"
        if how == "truncated":
            model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
        elif how == "missing":
            model.unlink()
        elif how == "wrong_shape":  # config says a longer chunk than the weights were trained for
            cfg = json.loads((d / "config.json").read_text())
            cfg["horizon"] = cfg["horizon"] * 2
            (d / "config.json").write_text(json.dumps(cfg))
        return d

    return make


@pytest.mark.parametrize("how", ["truncated", "missing", "wrong_shape"])
def test_corrupted_checkpoint_gives_a_clear_error(broken_copy, how):
    from policies.rcs_diffusion.modeling_rcs_diffusion import CheckpointError, RcsDiffusionPolicy
    from rcs.serving.policy import load_policy

    d = broken_copy(how)
    with pytest.raises(CheckpointError, match="model.safetensors"):
        RcsDiffusionPolicy.from_pretrained(d)
    with pytest.raises(ConfigError, match=str(d.name)):
        load_policy(d)


def test_nan_policy_is_held_by_the_safety_layer_and_fails_with_its_reason(tiny_checkpoint, tmp_path):
    """Every chunk of this checkpoint is NaN: the robot side rejects it, the robot holds, the episode fails."""
    from safetensors.torch import load_file, save_file

    d = tmp_path / "nan"
    shutil.copytree(tiny_checkpoint, d)
    weights = load_file(str(d / "model.safetensors"))
    weights["head.out.bias"] = torch.full_like(weights["head.out.bias"], float("nan"))
    save_file(weights, str(d / "model.safetensors"), metadata={"format": "pt"})
    out = last_json(
        rcs(
            "eval",
            "--policy",
            str(d),
            "--episodes",
            "1",
            "--max-steps",
            "20",
            "--videos",
            "0",
            "--out",
            str(tmp_path / "eval"),
            "--json",
        ).stdout
    )
    assert out["success_rate"] == 0.0 and out["episodes"] == 1
    reason = next(iter(out["failures"].values()))
    assert reason.startswith("no valid chunk") and "non_finite" in reason, reason
    assert out["chunk_rejections"].get("non_finite", 0) > 0
