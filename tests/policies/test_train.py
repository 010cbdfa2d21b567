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
    for name in ("config.json", "model.safetensors", "policy_preprocessor.json", "policy_postprocessor.json",
                 "rcs_policy.json"):
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
        return TrainConfig(dataset=str(tiny_dataset), output=str(tmp_path / out), steps=6, batch_size=8,
                           save_every=2, policy=policy, **kw)

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
