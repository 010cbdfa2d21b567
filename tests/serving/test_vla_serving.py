"""A vision-language-action checkpoint (lerobot's SmolVLA, random weights, built offline) behind `rcs serve`.

The checkpoint comes from :func:`policies.smolvla.offline.build_random_smolvla`: lerobot's own SmolVLAPolicy
and processors (including its tokenizer step) over a tiny local SmolVLM with a locally built tokenizer, so
nothing touches the hub. The instruction travels as a ``utf8`` text tensor.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from rcs.errors import ConfigError
from rcs.serving.client import PolicyClient
from rcs.serving.policy import load_policy
from rcs.serving.protocol import TEXT_UNIT, encode_text

torch = pytest.importorskip("torch")

STATE = tuple(f"joint{i}" for i in range(6)) + ("gripper",)
ACTION = STATE


@pytest.fixture(scope="module")
def vla_dir(tmp_path_factory) -> Path:
    from policies.smolvla.offline import build_random_smolvla

    built = build_random_smolvla(tmp_path_factory.mktemp("build") / "smolvla", STATE, ACTION, cameras=("front",))
    moved = tmp_path_factory.mktemp("moved") / "smolvla"
    shutil.move(str(built), moved)  # the checkpoint carries its backbone and tokenizer: it can be moved
    return moved


def _obs(schema, text: str, fill: int = 100) -> dict[str, np.ndarray]:
    obs = {s.name: np.full(s.shape, fill, dtype=s.dtype) for s in schema.observation if s.unit != TEXT_UNIT}
    obs["task"] = encode_text(text)
    return obs


def test_vla_checkpoint_takes_the_instruction(vla_dir):
    policy = load_policy(vla_dir)
    spec = policy.schema.observation_by_name()["task"]
    assert spec.unit == TEXT_UNIT and spec.shape == (256,)
    assert policy.schema.action.names == ACTION and policy.schema.action.shape == (10, 7)

    def run(text: str) -> np.ndarray:
        torch.manual_seed(0)  # same flow-matching noise: differences come from the inputs only
        return policy.infer([_obs(policy.schema, text)])[0]

    red, red_again, blue = run("pick the red cube"), run("pick the red cube"), run("pick the blue cube")
    assert np.all(np.isfinite(red))
    np.testing.assert_array_equal(red, red_again)
    assert np.abs(red - blue).max() > 1e-3, "the instruction must condition the actions"


def test_vla_served_over_real_sockets(serve, vla_dir):
    server = serve("--policy", str(vla_dir))
    expected = load_policy(vla_dir).schema
    client = PolicyClient(server.endpoint, expected)
    client.handshake(timeout_s=30.0)
    reply = client.request(_obs(expected, "pick the blue cube"), tick=1, budget_s=30.0)
    assert reply.actions.shape == (10, 7) and np.all(np.isfinite(reply.actions))
    client.close()


def test_override_paths_must_stay_inside_the_checkpoint(vla_dir, tmp_path):
    copy = tmp_path / "ckpt"
    shutil.copytree(vla_dir, copy)
    manifest = json.loads((copy / "rcs_policy.json").read_text())
    manifest["overrides"]["config"]["vlm_model_name"] = "@/../../etc"
    (copy / "rcs_policy.json").write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match="does not exist inside the checkpoint"):
        load_policy(copy)
    manifest["overrides"]["config"] = {"no_such_field": 1}
    (copy / "rcs_policy.json").write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match="no such field"):
        load_policy(copy)
