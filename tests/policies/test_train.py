"""`rcs train`: checkpoints in lerobot's layout, loss log and curve, and an exact resume."""

from __future__ import annotations

import json

import pytest
import torch

from tests.policies.conftest import TINY_POLICY


def test_train_writes_checkpoints_loss_log_and_curve(tiny_run):
    ckpts = tiny_run / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["000002", "000004", "last"]
    assert (ckpts / "last").resolve().name == "000004"
    model = ckpts / "last" / "pretrained_model"
    for name in (
        "config.json",
        "model.safetensors",
        "policy_preprocessor.json",
        "policy_postprocessor.json",
        "rcs_policy.json",
    ):
        assert (model / name).is_file(), name
    assert json.loads((model / "config.json").read_text())["type"] == "rcs_diffusion"
    manifest = json.loads((model / "rcs_policy.json").read_text())
    assert manifest["kind"] == "lerobot" and manifest["policy_dt"] == pytest.approx(0.05)
    assert manifest["names"]["action"] == [*(f"joint{i}" for i in range(1, 8)), "gripper"]
    for name in ("optimizer_state.safetensors", "rng_state.safetensors", "training_step.json"):
        assert (ckpts / "last" / "training_state" / name).is_file(), name
    header = (tiny_run / "loss.csv").read_text().splitlines()[0]
    assert header == "step,loss,lr,elapsed_s"
    png = (tiny_run / "loss.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def _weights(path):
    from safetensors.torch import load_file

    return load_file(str(path / "pretrained_model" / "model.safetensors"))


def test_resume_continues_exactly_where_it_stopped(tiny_dataset, tmp_path):
    """6 steps stopped at 4 and resumed == 6 steps in one go (weights, optimizer, scheduler and RNG restored)."""
    from policies.training.train import TrainConfig, train

    torch.set_num_threads(1)
    policy = dict(TINY_POLICY, action_target="joint_state_lookahead")

    def cfg(out: str, **kw):
        return TrainConfig(
            dataset=str(tiny_dataset),
            output=str(tmp_path / out),
            steps=6,
            batch_size=8,
            save_every=2,
            policy=policy,
            **kw,
        )

    train(cfg("a"), progress=False)
    stopped = train(cfg("b", stop_at=4), progress=False)
    assert stopped.step == 4 and stopped.stopped_early
    resumed = train(cfg("b", resume=True), progress=False)
    assert resumed.step == 6 and not resumed.stopped_early
    a, b = _weights(tmp_path / "a" / "checkpoints" / "last"), _weights(tmp_path / "b" / "checkpoints" / "last")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    rows = (tmp_path / "b" / "loss.csv").read_text().splitlines()
    assert rows[0] == "step,loss,lr,elapsed_s"
    # a finished run folder is never silently overwritten
    with pytest.raises(FileExistsError, match="resume"):
        train(cfg("b"), progress=False)


def test_pose_targets_are_the_datasets_tcp_targets_with_a_6d_rotation(tiny_dataset):
    """--pose-targets: x y z as recorded, the rotation vector as the first two columns of its matrix."""
    import numpy as np
    import pyarrow.parquet as pq

    from policies.rcs_diffusion.configuration_rcs_diffusion import RcsDiffusionConfig
    from policies.training.data import load_demos
    from rcs.geometry import rotvec_to_matrix

    config = RcsDiffusionConfig(**dict(TINY_POLICY, action_target="tcp_pose_6d"), device="cpu")
    data = load_demos(tiny_dataset, config)
    assert data.action_names == ["x", "y", "z", "r11", "r21", "r31", "r12", "r22", "r32", "gripper"]
    table = pq.read_table(sorted((tiny_dataset / "data").rglob("*.parquet")))
    recorded = np.stack(table.column("action").to_numpy(zero_copy_only=False))
    frames = data.frame_actions.numpy()
    np.testing.assert_allclose(frames[:, :3], recorded[:, :3], atol=1e-6)
    m = rotvec_to_matrix(recorded[:, 3:6])
    np.testing.assert_allclose(frames[:, 3:6], m[:, :, 0], atol=1e-5)
    np.testing.assert_allclose(frames[:, 6:9], m[:, :, 1], atol=1e-5)
    np.testing.assert_allclose(frames[:, 9], recorded[:, 6])


def test_pose_targets_refuse_joint_actions_and_relative_offsets():
    import numpy as np

    from policies.rcs_diffusion.configuration_rcs_diffusion import RcsDiffusionConfig
    from policies.training.data import DatasetFeatureError, _action_targets

    config = RcsDiffusionConfig(**dict(TINY_POLICY, action_target="tcp_pose_6d"), device="cpu")
    joints = [f"joint{i}" for i in range(1, 8)] + ["gripper"]
    with pytest.raises(DatasetFeatureError, match="needs a Cartesian-absolute action"):
        _action_targets(config, {"action": joints}, None, np.zeros((3, 8), dtype=np.float32))
    with pytest.raises(ValueError, match="relative_actions"):
        RcsDiffusionConfig(**dict(TINY_POLICY, action_target="tcp_pose_6d", relative_actions=True), device="cpu")
