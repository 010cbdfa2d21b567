"""lerobot checkpoints behind `rcs serve`: loaded with lerobot's own code, checked, served over real sockets.

The checkpoints are real lerobot ACT checkpoints with random weights, built offline and saved with lerobot's
own ``save_pretrained`` (model, config and both processor pipelines).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from rcs.errors import ConfigError
from rcs.serving.client import PolicyClient, SchemaMismatchError
from rcs.serving.policy import load_policy
from rcs.serving.protocol import Schema, TensorSpec

torch = pytest.importorskip("torch")

JOINTS = ("j1", "j2", "j3", "j4", "j5", "j6", "gripper")
STATE_NAMES = tuple(f"s{i}" for i in range(8))


def _save_act(directory: Path, stats: dict) -> Path:
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.act.configuration_act import ACTConfig
    from lerobot.policies.act.modeling_act import ACTPolicy
    from lerobot.policies.factory import make_pre_post_processors

    cfg = ACTConfig(
        input_features={
            "observation.state": PolicyFeature(FeatureType.STATE, (8,)),
            "observation.images.front": PolicyFeature(FeatureType.VISUAL, (3, 32, 32)),
        },
        output_features={"action": PolicyFeature(FeatureType.ACTION, (7,))},
        pretrained_backbone_weights=None,
        dim_model=32,
        n_heads=2,
        dim_feedforward=64,
        n_encoder_layers=1,
        n_decoder_layers=1,
        chunk_size=10,
        n_action_steps=10,
        use_vae=False,
        device="cpu",
    )
    torch.manual_seed(0)
    policy = ACTPolicy(cfg)
    pre, post = make_pre_post_processors(cfg, dataset_stats=stats)
    for part in (policy, pre, post):
        part.save_pretrained(str(directory))
    (directory / "rcs_policy.json").write_text(
        json.dumps(
            {
                "kind": "lerobot",
                "policy_dt": 0.05,
                "checkpoint_id": "act-test",
                "names": {"action": list(JOINTS), "observation.state": list(STATE_NAMES)},
                "units": {"action": "rad", "observation.state": "rad"},
            }
        )
    )
    return directory


def _stats(drop: str | None = None) -> dict:
    stats = {
        "observation.state": {"mean": np.zeros(8), "std": np.ones(8)},
        "observation.images.front": {"mean": np.full((3, 1, 1), 0.5), "std": np.full((3, 1, 1), 0.25)},
        "action": {"mean": np.full(7, 0.3), "std": np.full(7, 2.0)},
    }
    if drop:
        del stats[drop]
    return stats


@pytest.fixture(scope="module")
def act_dir(tmp_path_factory) -> Path:
    return _save_act(tmp_path_factory.mktemp("act"), _stats())


def _obs(schema: Schema, fill: int = 0) -> dict[str, np.ndarray]:
    return {s.name: np.full(s.shape, fill, dtype=s.dtype) for s in schema.observation}


def test_lerobot_checkpoint_loads_with_names_units_and_wire_image_layout(act_dir):
    policy = load_policy(act_dir)
    s = policy.schema
    assert policy.checkpoint_id == "act-test"
    assert s.action == TensorSpec("action", (10, 7), "float32", "rad", JOINTS)
    obs = s.observation_by_name()
    assert obs["observation.images.front"] == TensorSpec("observation.images.front", (32, 32, 3), "uint8", "px")
    assert obs["observation.state"].names == STATE_NAMES
    assert s.policy_dt == 0.05
    a, b = policy.infer([_obs(s, 0), _obs(s, 200)])
    assert a.shape == (10, 7) and a.dtype == np.float32 and np.all(np.isfinite(a))
    assert not np.allclose(a, b), "different images must give different chunks"
    # batch of one equals the same observation inside a batch of two (no cross-talk between sessions)
    np.testing.assert_allclose(policy.infer([_obs(s, 200)])[0], b, atol=1e-5)


def test_postprocessor_unnormalizes_actions(act_dir, tmp_path):
    """Same weights, action stats shifted by +10: every action shifts by 10 * std = +10 (std=1 here: 2.0)."""
    shifted = tmp_path / "shifted"
    shutil.copytree(act_dir, shifted)
    base = load_policy(act_dir)
    stats = _stats()
    stats["action"]["mean"] = stats["action"]["mean"] + 10.0
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.policies.factory import make_pre_post_processors

    _, post = make_pre_post_processors(PreTrainedConfig.from_pretrained(str(act_dir)), dataset_stats=stats)
    post.save_pretrained(str(shifted))
    moved = load_policy(shifted)
    o = _obs(base.schema, 50)
    np.testing.assert_allclose(moved.infer([o])[0] - base.infer([o])[0], 10.0, atol=1e-4)


@pytest.mark.parametrize("missing", ["observation.state", "action", "observation.images.front"])
def test_missing_normalization_stats_are_refused_not_silently_skipped(tmp_path, missing):
    d = _save_act(tmp_path, _stats(drop=missing))
    with pytest.raises(ConfigError) as info:
        load_policy(d)
    assert f"{missing}: no stats" in str(info.value) and "4446" in str(info.value)


def test_bad_checkpoints_give_clear_errors(act_dir, tmp_path):
    corrupt = tmp_path / "corrupt"
    shutil.copytree(act_dir, corrupt)
    weights = corrupt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 3])
    with pytest.raises(ConfigError, match="lerobot could not load it"):
        load_policy(corrupt)

    wrong_names = tmp_path / "names"
    shutil.copytree(act_dir, wrong_names)
    m = json.loads((wrong_names / "rcs_policy.json").read_text())
    m["names"]["action"] = ["a", "b"]
    (wrong_names / "rcs_policy.json").write_text(json.dumps(m))
    with pytest.raises(ConfigError, match="names.action has 2 names, the policy outputs 7"):
        load_policy(wrong_names)

    no_dt = tmp_path / "nodt"
    shutil.copytree(act_dir, no_dt)
    m = json.loads((no_dt / "rcs_policy.json").read_text())
    del m["policy_dt"]  # a manifest without the control period
    (no_dt / "rcs_policy.json").write_text(json.dumps(m))
    with pytest.raises(ConfigError, match="rcs_policy.json must give policy_dt > 0"):
        load_policy(no_dt)
    (no_dt / "rcs_policy.json").unlink()  # a bare lerobot directory whose training data is unknown
    with pytest.raises(ConfigError, match=r"no rcs_policy.json, and its training config: .*train_config.json does"):
        load_policy(no_dt)

    not_lerobot = tmp_path / "empty"
    not_lerobot.mkdir()
    (not_lerobot / "rcs_policy.json").write_text(json.dumps({"kind": "lerobot", "policy_dt": 0.05}))
    with pytest.raises(ConfigError, match="no config.json"):
        load_policy(not_lerobot)

    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"kind": "tensorflow"}))
    with pytest.raises(ConfigError, match="known: .*'lerobot'"):
        load_policy(unknown)


def test_served_over_real_sockets_and_joint_order_mismatch_refused(serve, act_dir):
    server = serve("--policy", str(act_dir))
    expected = load_policy(act_dir).schema
    client = PolicyClient(server.endpoint, expected)
    welcome = client.handshake(timeout_s=10.0)
    assert welcome.checkpoint_id == "act-test"
    reply = client.request(_obs(expected, 80), tick=1, budget_s=5.0)
    assert reply.actions.shape == (10, 7) and np.all(np.isfinite(reply.actions))
    client.close()

    # the robot's joint order differs from the checkpoint's: refused at the handshake, before any motion
    swapped = Schema(
        expected.observation,
        TensorSpec("action", (10, 7), "float32", "rad", JOINTS[1::-1] + JOINTS[2:]),
        expected.policy_dt,
    )
    robot = PolicyClient(server.endpoint, swapped)
    with pytest.raises(SchemaMismatchError) as info:
        robot.handshake(timeout_s=10.0)
    assert any("joint order" in d for d in info.value.differences)
    robot.close()


def test_weights_the_file_lacks_or_the_model_ignores_are_refused(act_dir, tmp_path):
    """lerobot's loader is non-strict: a tensor missing from model.safetensors keeps its random initial value
    and an extra one is ignored, with only a log line. The adapter refuses both, naming the tensor."""
    from safetensors.torch import load_file, save_file

    weights = load_file(str(act_dir / "model.safetensors"))
    dropped = "model.action_head.weight"
    assert dropped in weights

    lacking = tmp_path / "lacking"
    shutil.copytree(act_dir, lacking)
    save_file(
        {k: v for k, v in weights.items() if k != dropped},
        str(lacking / "model.safetensors"),
        metadata={"format": "pt"},
    )
    with pytest.raises(ConfigError, match=r"1 model tensor\(s\) not in the file .*model\.action_head\.weight"):
        load_policy(lacking)

    extra = tmp_path / "extra"
    shutil.copytree(act_dir, extra)
    save_file(
        {**weights, "model.leftover.weight": torch.zeros(3)},
        str(extra / "model.safetensors"),
        metadata={"format": "pt"},
    )
    with pytest.raises(ConfigError, match=r"1 file tensor\(s\) the model does not use: model\.leftover\.weight"):
        load_policy(extra)


def test_weight_gaps_catches_a_model_left_at_random_values(act_dir):
    """The check behind the refusal compares values too: a model that kept its initialization (what lerobot's
    pi0 family returns after swallowing a loading error) differs from the file; tied weights saved once are
    not reported as missing."""
    from lerobot.policies.act.modeling_act import ACTPolicy
    from safetensors.torch import save_model

    from policies.lerobot_weights import weight_gaps

    loaded = ACTPolicy.from_pretrained(str(act_dir))
    assert weight_gaps(loaded, act_dir / "model.safetensors") == []
    torch.manual_seed(1)
    fresh = ACTPolicy(loaded.config)
    gaps = weight_gaps(fresh, act_dir / "model.safetensors")
    assert len(gaps) == 1 and "whose loaded values differ from the file" in gaps[0], gaps

    class Tied(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = torch.nn.Embedding(5, 3)
            self.head = torch.nn.Linear(3, 5, bias=False)
            self.head.weight = self.embed.weight

    tied = Tied()
    path = act_dir.parent / "tied.safetensors"
    save_model(tied, str(path))  # stores the shared tensor once
    assert weight_gaps(tied, path) == []
