"""lerobot's pi0 (random weights, built offline) behind `rcs serve`, and the projector-width workaround it needs.

The checkpoint comes from :func:`policies.pi0.offline.build_random_pi0`: lerobot's own ``PI0Policy`` (the
smallest configuration its ``PI0Config`` accepts, 1.83 B float32 parameters, 7.3 GB) and its processors with
a PaliGemma-style tokenizer built locally. Those tests are ``slow``: building takes one to two minutes and
loading peaks at about 15 GB of memory. The workaround for lerobot 0.6.1's projector width
(:mod:`policies.pi0.lerobot_workarounds`) is tested end to end there (without it the first inference fails)
and, fast, on lerobot's real ``PaliGemmaWithExpertModel`` built on the ``meta`` device (no memory).
"""

from __future__ import annotations

import gc
import json
import shutil
from collections.abc import Iterator
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
CHUNK = 10
SHIPPED = Path(__file__).resolve().parents[2] / "policies" / "checkpoints" / "pick_cube_rcs_diffusion"


# -- fast: the workaround on lerobot's real class, on the meta device ------------------------------------------


def _projector(paligemma_variant: str, **kwargs) -> torch.nn.Linear:
    """The SigLIP projector of lerobot's PaliGemmaWithExpertModel, built on the meta device (allocates nothing)."""
    from lerobot.policies.pi0.modeling_pi0 import PaliGemmaWithExpertModel, get_gemma_config

    with torch.device("meta"):
        model = PaliGemmaWithExpertModel(
            get_gemma_config(paligemma_variant), get_gemma_config("gemma_300m"), image_size=56, **kwargs
        )
    linear = model.paligemma.model.multi_modal_projector.linear
    assert model.paligemma.config.vision_config.projection_dim == linear.out_features
    return linear


def test_projector_fix_is_idempotent_and_changes_only_a_narrow_language_model():
    from lerobot.policies.pi0.modeling_pi0 import PaliGemmaWithExpertModel

    from policies.pi0.lerobot_workarounds import fix_pi0_projector_width

    fix_pi0_projector_width()
    patched = PaliGemmaWithExpertModel.__init__
    assert fix_pi0_projector_width() is False and PaliGemmaWithExpertModel.__init__ is patched  # wraps once
    real = _projector("gemma_2b")  # real pi0 (lerobot/pi0, openpi): width 2048 already, untouched
    assert (real.in_features, real.out_features) == (1152, 2048)
    small = _projector("gemma_300m")  # the language model is 1024 wide: so must the image tokens be
    assert (small.in_features, small.out_features) == (1152, 1024)
    assert small.weight.dtype == torch.float32 and small.weight.device.type == "meta"
    frozen = _projector("gemma_300m", train_expert_only=True)  # lerobot froze the VLM: the new layer too
    assert frozen.out_features == 1024 and not frozen.weight.requires_grad and not frozen.training


def test_upstream_projector_bug_still_present():
    """lerobot's own __init__ (unpatched) still makes the projector 2048 wide for gemma_300m.

    When this fails, lerobot fixed the bug: delete policies/pi0/lerobot_workarounds.py, its entry point in
    pyproject.toml and its call in policies/pi0/offline.py.
    """
    from lerobot.policies.pi0.modeling_pi0 import PaliGemmaWithExpertModel, get_gemma_config

    init = PaliGemmaWithExpertModel.__init__
    original = getattr(init, "__wrapped__", init)
    model = PaliGemmaWithExpertModel.__new__(PaliGemmaWithExpertModel)
    with torch.device("meta"):
        original(model, get_gemma_config("gemma_300m"), get_gemma_config("gemma_300m"), image_size=56)
    assert model.paligemma.config.text_config.hidden_size == 1024
    assert model.paligemma.model.multi_modal_projector.linear.out_features == 2048


def test_tokenizer_has_paligemma_layout(tmp_path):
    from transformers import AutoTokenizer

    from policies.pi0.offline import NEWLINE, PI0_VOCAB_SIZE, TOKENIZER_MAX_LENGTH, build_tokenizer

    tok = AutoTokenizer.from_pretrained(str(build_tokenizer(tmp_path / "tok")))
    assert (tok.pad_token_id, tok.eos_token_id, tok.bos_token_id, tok.unk_token_id) == (0, 1, 2, 3)
    ids = tok("Pick the RED cube" + NEWLINE)["input_ids"]
    words = [tok.convert_ids_to_tokens(i) for i in ids]
    assert words == ["<bos>", "pick", "the", "red", "cube", NEWLINE]  # bos first, no eos, newline kept
    assert tok("pick the purple cube")["input_ids"][3] == tok.unk_token_id
    padded = tok(
        ["pick the red cube\n"],
        max_length=TOKENIZER_MAX_LENGTH,
        padding="max_length",
        truncation=True,
        return_tensors="pt",
    )
    assert padded["input_ids"].shape == (1, TOKENIZER_MAX_LENGTH) and padded["input_ids"][0, -1] == 0
    assert len(tok) < PI0_VOCAB_SIZE


def test_failing_first_inference_is_a_config_error_naming_the_checkpoint(tmp_path):
    copy = tmp_path / "ckpt"
    shutil.copytree(SHIPPED, copy)
    manifest = json.loads((copy / "rcs_policy.json").read_text())
    # a rename map that hides an input the model reads: lerobot loads it, then fails on the first batch
    manifest["overrides"] = {
        "preprocessor": {
            "rename_observations_processor": {"rename_map": {"observation.environment_state": "observation.env"}}
        }
    }
    (copy / "rcs_policy.json").write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match=r"test inference .* failed: KeyError: .*observation.environment_state") as e:
        load_policy(copy)
    assert str(copy) in str(e.value)


# -- slow: the whole model, built, moved, loaded, served ----------------------------------------------------------


@pytest.fixture(scope="module")
def pi0_dir(tmp_path_factory) -> Iterator[Path]:
    from policies.pi0.offline import build_random_pi0

    built = build_random_pi0(
        tmp_path_factory.mktemp("build") / "pi0", STATE, ACTION, cameras=("front",), chunk_size=CHUNK
    )
    moved = tmp_path_factory.mktemp("moved") / "pi0"
    shutil.move(str(built), moved)  # the checkpoint carries its tokenizer: it can be moved
    yield moved
    shutil.rmtree(moved)  # 7.3 GB: do not leave it in pytest's retained temporary directories


@pytest.fixture(scope="module")
def loaded(pi0_dir: Path) -> Iterator[dict]:
    """``{"policy": the loaded policy}``; the served test takes it out first (two copies would not fit)."""
    torch.manual_seed(12345)  # not the build seed: a model lerobot left randomly initialized cannot match the file
    held = {"policy": load_policy(pi0_dir)}
    yield held
    held.clear()
    gc.collect()


def _obs(schema, text: str, fill: int = 100) -> dict[str, np.ndarray]:
    obs = {s.name: np.full(s.shape, fill, dtype=s.dtype) for s in schema.observation if s.unit != TEXT_UNIT}
    obs["task"] = encode_text(text)
    return obs


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_pi0_checkpoint_takes_the_instruction(loaded):
    policy = loaded["policy"]
    spec = policy.schema.observation_by_name()["task"]
    assert spec.unit == TEXT_UNIT and spec.shape == (256,)
    assert policy.schema.action.names == ACTION and policy.schema.action.shape == (CHUNK, len(ACTION))
    assert policy.checkpoint_id == "pi0-random-0"

    def run(text: str) -> np.ndarray:
        torch.manual_seed(0)  # same flow-matching noise: differences come from the inputs only
        return policy.infer([_obs(policy.schema, text)])[0]

    red, red_again, blue = run("pick the red cube"), run("pick the red cube"), run("pick the blue cube")
    assert red.shape == (CHUNK, len(ACTION)) and np.all(np.isfinite(red))
    np.testing.assert_array_equal(red, red_again)
    assert np.abs(red - blue).max() > 1e-3, "the instruction must condition the actions"


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_pi0_weights_are_the_files_weights(loaded, pi0_dir):
    """lerobot's pi0 ``from_pretrained`` returns a random model when loading fails: check the tensors."""
    from safetensors import safe_open

    state = loaded["policy"].policy.state_dict()
    prefix = "model.paligemma_with_expert."
    checked = [
        prefix + "paligemma.model.multi_modal_projector.linear.weight",  # the layer the workaround replaces
        prefix + "paligemma.model.vision_tower.vision_model.embeddings.patch_embedding.weight",
        prefix + "paligemma.model.language_model.layers.0.self_attn.q_proj.weight",
        prefix + "gemma_expert.model.layers.17.mlp.down_proj.weight",
        "model.action_out_proj.weight",
    ]
    with safe_open(str(pi0_dir / "model.safetensors"), "pt") as f:
        assert set(f.keys()) == set(state), "every tensor of the model is in the file, and nothing else"
        assert tuple(f.get_slice(checked[0]).get_shape()) == (1024, 1152)
        for key in checked:
            assert torch.equal(f.get_tensor(key), state[key]), key


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_pi0_served_over_real_sockets(serve, loaded, pi0_dir):
    expected = loaded.pop("policy").schema  # free this process's copy before the server loads its own
    gc.collect()
    server = serve("--policy", str(pi0_dir))
    client = PolicyClient(server.endpoint, expected)
    welcome = client.handshake(timeout_s=120.0)
    assert welcome.checkpoint_id == "pi0-random-0"
    reply = client.request(_obs(expected, "pick the blue cube"), tick=1, budget_s=120.0)
    assert reply.actions.shape == (CHUNK, len(ACTION)) and np.all(np.isfinite(reply.actions))
    client.close()
