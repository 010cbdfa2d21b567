"""Build a lerobot SmolVLA checkpoint without the hub: a tiny SmolVLM backbone with a locally built tokenizer.

A real user downloads ``lerobot/smolvla_base`` (and its backbone ``HuggingFaceTB/SmolVLM2-500M-Video-Instruct``)
once and points ``rcs serve`` at the checkpoint directory. This module makes the same directory layout
offline, with random weights, so the whole serving path (lerobot's ``SmolVLAPolicy.from_pretrained``, its
processors with the ``TokenizerProcessorStep``, language input over the wire) runs in tests and CI:

* ``vlm/``: a SmolVLM config (Llama text model + SmolVLM vision encoder, both tiny), a word-level tokenizer
  trained on a few instructions with SmolVLM's special tokens, image/video processor configs;
* the checkpoint itself (``config.json``, ``model.safetensors``, processor files) saved by lerobot;
* ``rcs_policy.json`` naming the backbone as ``@/vlm`` (relative to the checkpoint) in the overrides of the
  config and of the tokenizer step, so the directory can be moved; :mod:`policies.lerobot_adapter` resolves it.

The policy is untrained: its actions are random but deterministic, finite, and depend on the image, the state
and the instruction. Nothing here downloads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

SPECIAL_TOKENS = (
    "<pad>",
    "<unk>",
    "<|im_start|>",
    "<end_of_utterance>",
    "<image>",
    "<fake_token_around_image>",
    "<global-img>",
    "<video>",
)
#: attributes SmolVLM's processor and lerobot's SmolVLA read from the tokenizer.
NAMED_TOKENS = {
    "fake_image_token": "<fake_token_around_image>",
    "image_token": "<image>",
    "global_image_token": "<global-img>",
    "end_of_utterance_token": "<end_of_utterance>",
    "video_token": "<video>",
}
DEFAULT_CORPUS = (
    "pick the red cube",
    "pick the blue cube",
    "pick the cube and bring it to the target",
    "place put move lift grasp open close left right up down green yellow",
)


def build_tiny_vlm(directory: Path, corpus: Sequence[str] = DEFAULT_CORPUS, image_size: int = 64) -> Path:
    """Write a tiny SmolVLM (config, tokenizer, processors; no weights) to ``directory``."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, SmolVLMConfig, SmolVLMImageProcessor, SmolVLMProcessor
    from transformers.models.smolvlm.video_processing_smolvlm import SmolVLMVideoProcessor

    directory.mkdir(parents=True, exist_ok=True)
    words = Tokenizer(models.WordLevel(unk_token="<unk>"))
    words.normalizer = normalizers.Lowercase()
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    words.train_from_iterator(list(corpus), trainers.WordLevelTrainer(special_tokens=list(SPECIAL_TOKENS)))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=words,
        unk_token="<unk>",
        pad_token="<pad>",
        bos_token="<|im_start|>",
        eos_token="<end_of_utterance>",
        extra_special_tokens=dict(NAMED_TOKENS),
    )
    tokenizer.save_pretrained(directory)
    images = SmolVLMImageProcessor(
        do_image_splitting=False, size={"longest_edge": image_size}, max_image_size={"longest_edge": image_size}
    )
    SmolVLMProcessor(
        image_processor=images, tokenizer=tokenizer, video_processor=SmolVLMVideoProcessor(), image_seq_len=4
    ).save_pretrained(directory)
    SmolVLMConfig(
        text_config={
            "model_type": "llama",
            "vocab_size": max(64, len(tokenizer)),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 16,
            "max_position_embeddings": 512,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": image_size,
            "patch_size": 16,
        },
        scale_factor=2,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
    ).save_pretrained(directory)
    return directory


def build_random_smolvla(
    directory: Path,
    state_names: Sequence[str],
    action_names: Sequence[str],
    cameras: Sequence[str] = ("front",),
    image_size: int = 64,
    chunk_size: int = 10,
    policy_dt: float = 0.05,
    stats: Mapping[str, Mapping[str, np.ndarray]] | None = None,
    seed: int = 0,
) -> Path:
    """Write a random-weight SmolVLA checkpoint (with ``vlm/`` and ``rcs_policy.json``) to ``directory``.

    Args:
        state_names: components of ``observation.state`` (joint order).
        action_names: components of ``action`` (joint order).
        cameras: one ``observation.images.<camera>`` input each, ``image_size`` square.
        stats: normalization statistics (default: zero mean, unit std for state and action, 0.5/0.25 images).
    """
    import torch
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.factory import make_pre_post_processors
    from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig
    from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy

    directory.mkdir(parents=True, exist_ok=True)
    vlm = build_tiny_vlm(directory / "vlm", image_size=image_size)
    inputs = {"observation.state": PolicyFeature(FeatureType.STATE, (len(state_names),))}
    inputs.update(
        {f"observation.images.{c}": PolicyFeature(FeatureType.VISUAL, (3, image_size, image_size)) for c in cameras}
    )
    cfg = SmolVLAConfig(
        vlm_model_name=str(vlm),
        load_vlm_weights=False,
        input_features=inputs,
        output_features={"action": PolicyFeature(FeatureType.ACTION, (len(action_names),))},
        chunk_size=chunk_size,
        n_action_steps=chunk_size,
        num_steps=4,
        resize_imgs_with_padding=(image_size, image_size),
        tokenizer_max_length=16,
        num_vlm_layers=2,
        device="cpu",
    )
    torch.manual_seed(seed)
    policy = SmolVLAPolicy(cfg)
    if stats is None:
        stats = {
            "observation.state": {"mean": np.zeros(len(state_names)), "std": np.ones(len(state_names))},
            "action": {"mean": np.zeros(len(action_names)), "std": np.ones(len(action_names))},
        }
        stats.update(
            {
                f"observation.images.{c}": {"mean": np.full((3, 1, 1), 0.5), "std": np.full((3, 1, 1), 0.25)}
                for c in cameras
            }
        )
    pre, post = make_pre_post_processors(cfg, dataset_stats=dict(stats))
    for part in (policy, pre, post):
        part.save_pretrained(str(directory))
    manifest = {
        "kind": "lerobot",
        "policy_dt": policy_dt,
        "checkpoint_id": f"smolvla-random-{seed}",
        "names": {"action": list(action_names), "observation.state": list(state_names)},
        "text": {"name": "task", "max_bytes": 256},
        "overrides": {
            "config": {"vlm_model_name": "@/vlm"},
            "preprocessor": {"tokenizer_processor": {"tokenizer_name": "@/vlm"}},
        },
    }
    (directory / "rcs_policy.json").write_text(json.dumps(manifest, indent=1))
    return directory
