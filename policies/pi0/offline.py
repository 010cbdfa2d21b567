"""Build a lerobot pi0 checkpoint without the hub: lerobot's own PI0Policy, random weights, a local tokenizer.

A real user does not need this module: they download a pi0 checkpoint in lerobot's format once (e.g.
``lerobot/pi0``, lerobot's port of openpi's weights, or their own fine-tune saved by lerobot), put a copy of
the PaliGemma tokenizer (``google/paligemma-3b-pt-224``, a gated hub repository) inside the checkpoint
directory, write an ``rcs_policy.json`` like the one written here (``policy_dt``, joint names, the tokenizer
override) and point ``rcs serve --policy`` at the directory. The weights written here are **random**: the actions mean
nothing; the checkpoint exists so the whole serving path (lerobot's ``PI0Policy.from_pretrained``, its
processors with the PaliGemma-style tokenizer step, the instruction over the wire) runs offline in tests.

The model is the smallest one lerobot's ``PI0Config`` accepts, unchanged: a ``gemma_300m`` language model
and a ``gemma_300m`` action expert over PaliGemma's SigLIP tower, with PaliGemma's 257152-token embedding
table: 1.83 billion float32 parameters (7.3 GB on disk; lerobot also keeps two 263 M lm_heads that pi0
never uses). Only the settings that real pi0 checkpoints also vary are lowered: the image resolution
(square, a multiple of SigLIP's 14-px patch), the chunk size and the tokenized prompt length.

lerobot 0.6.1 builds this model with a SigLIP projector 2048 wide while its ``gemma_300m`` language model is
1024 wide, so its first inference would fail (openpi issue #1049): the build applies
:func:`policies.pi0.lerobot_workarounds.fix_pi0_projector_width`, and the server applies it too before
loading any pi0 checkpoint (``rcs.lerobot_policies`` entry point). It changes nothing for ``gemma_2b``.
Memory: building holds one float32 copy (8.7 GB peak RSS measured); lerobot's ``from_pretrained`` builds a random model
and then reads the file, so loading peaks at about two copies.

Directory layout:

* ``config.json``, ``model.safetensors``, ``policy_{pre,post}processor*.json`` / ``.safetensors``: saved by
  lerobot (``PI0Policy.save_pretrained`` and its processor pipelines);
* ``tokenizer/``: a word-level tokenizer trained on a few instructions that behaves like PaliGemma's where
  pi0 relies on it: ``<pad>`` = 0, ``<eos>`` = 1, ``<bos>`` = 2 prepended to every prompt, ``<unk>`` = 3,
  and ``"\\n"`` (lerobot's ``Pi0NewLineProcessor`` ends each prompt with it) a token of its own;
  every id is below the model's vocabulary size;
* ``rcs_policy.json``: kind ``lerobot``, joint names, the ``task`` text input, and the tokenizer step's
  ``tokenizer_name`` overridden with ``@/tokenizer`` (a path relative to the checkpoint, resolved by
  :mod:`policies.lerobot_adapter`), so the directory can be moved.

Nothing here downloads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: PaliGemma's special tokens, in PaliGemma's id order (0..3).
SPECIAL_TOKENS = ("<pad>", "<eos>", "<bos>", "<unk>")
#: what lerobot's pi0 processor appends to every task before tokenizing (Pi0NewLineProcessor).
NEWLINE = "\n"
#: embedding rows of pi0's language model (hard-coded in lerobot's PaliGemmaWithExpertModel); ids must be below.
PI0_VOCAB_SIZE = 257152
#: SigLIP patch size (px): the image resolution must be a multiple of it.
SIGLIP_PATCH_PX = 14
#: tokens of the padded prompt (lerobot's default is 48; the instructions here are short).
TOKENIZER_MAX_LENGTH = 16
DEFAULT_CORPUS = (
    "pick the red cube",
    "pick the blue cube",
    "pick the cube and bring it to the target",
    "place put move lift grasp open close left right up down green yellow",
)


def build_tokenizer(directory: Path, corpus: Sequence[str] = DEFAULT_CORPUS) -> Path:
    """Write a word-level tokenizer with PaliGemma's special-token layout to ``directory``.

    Encoding ``"pick the red cube\\n"`` gives ``[<bos>, pick, the, red, cube, \\n]``, like PaliGemma's
    tokenizer does for pi0 (which prepends ``<bos>``, adds no ``<eos>``, and pads with ``<pad>`` = 0).
    """
    from tokenizers import (
        AddedToken,
        Tokenizer,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    words = Tokenizer(models.WordLevel(unk_token="<unk>"))
    words.normalizer = normalizers.Lowercase()
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    words.train_from_iterator(list(corpus), trainers.WordLevelTrainer(special_tokens=list(SPECIAL_TOKENS)))
    words.add_tokens([AddedToken(NEWLINE, normalized=False, special=False)])
    bos = SPECIAL_TOKENS.index("<bos>")
    words.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", bos)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=words, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>", unk_token="<unk>"
    )
    ids = [tokenizer.convert_tokens_to_ids(t) for t in (*SPECIAL_TOKENS, NEWLINE)]
    if ids[:4] != [0, 1, 2, 3] or len(tokenizer) > PI0_VOCAB_SIZE:
        raise ValueError(
            f"tokenizer layout: special ids {ids[:4]} (PaliGemma: 0..3), {len(tokenizer)} tokens "
            f"(pi0 embeds at most {PI0_VOCAB_SIZE})"
        )
    tokenizer.save_pretrained(directory)
    return directory


def _processors(cfg: Any, stats: Mapping[str, Mapping[str, np.ndarray]], tokenizer_dir: Path) -> tuple[Any, Any]:
    """lerobot's pi0 processor pipelines, with the tokenizer step reading ``tokenizer_dir``.

    The steps and their order are those of ``lerobot.policies.pi0.processor_pi0.make_pi0_pre_post_processors``;
    that factory hard-codes the hub tokenizer ``google/paligemma-3b-pt-224`` and would download it, so the
    pipelines are assembled here from the same lerobot steps. The tokenizer step is built from a tokenizer
    object, so the saved step config names no tokenizer: the checkpoint's ``rcs_policy.json`` supplies it.
    """
    from lerobot.policies.pi0.processor_pi0 import Pi0NewLineProcessor
    from lerobot.processor import (
        AbsoluteActionsProcessorStep,
        RelativeActionsProcessorStep,
        TokenizerProcessorStep,
        make_default_policy_processor_steps,
        make_policy_processor_pipelines,
    )
    from transformers import AutoTokenizer

    relative = RelativeActionsProcessorStep(
        enabled=cfg.use_relative_actions,
        exclude_joints=list(cfg.relative_exclude_joints),
        action_names=cfg.action_feature_names,
    )
    steps = make_default_policy_processor_steps(cfg, dict(stats))
    tokenize = TokenizerProcessorStep(
        tokenizer=AutoTokenizer.from_pretrained(str(tokenizer_dir)),
        max_length=cfg.tokenizer_max_length,
        padding_side="right",
        padding="max_length",
    )
    return make_policy_processor_pipelines(
        input_steps=[
            steps.rename_observations,
            steps.add_batch_dim,
            Pi0NewLineProcessor(),
            tokenize,
            steps.to_device,
            relative,
            steps.normalize,
        ],
        output_steps=[
            steps.unnormalize,
            AbsoluteActionsProcessorStep(enabled=cfg.use_relative_actions, relative_step=relative),
            steps.to_cpu,
        ],
    )


def default_stats(state_dim: int, action_dim: int) -> dict[str, dict[str, np.ndarray]]:
    """Zero mean, unit std for ``observation.state`` and ``action`` (pi0 does not normalize images)."""
    return {
        "observation.state": {"mean": np.zeros(state_dim), "std": np.ones(state_dim)},
        "action": {"mean": np.zeros(action_dim), "std": np.ones(action_dim)},
    }


def build_random_pi0(
    directory: Path,
    state_names: Sequence[str],
    action_names: Sequence[str],
    cameras: Sequence[str] = ("front",),
    image_size: int = 56,
    chunk_size: int = 10,
    policy_dt: float = 0.05,
    stats: Mapping[str, Mapping[str, np.ndarray]] | None = None,
    seed: int = 0,
) -> Path:
    """Write a random-weight lerobot pi0 checkpoint (with ``tokenizer/`` and ``rcs_policy.json``) to ``directory``.

    Args:
        state_names: components of ``observation.state`` (joint order), at most 32 (pi0's ``max_state_dim``).
        action_names: components of ``action`` (joint order), at most 32 (pi0's ``max_action_dim``).
        cameras: one ``observation.images.<camera>`` input each, ``image_size`` px square.
        image_size: SigLIP input resolution (px), a multiple of 14; ``(image_size / 14)**2`` tokens per camera.
        chunk_size: actions per chunk (all of them executed: ``n_action_steps = chunk_size``).
        policy_dt: seconds between consecutive actions of a chunk.
        stats: normalization statistics of ``observation.state`` and ``action`` (default: :func:`default_stats`).
        seed: torch seed of the random weights.

    Returns:
        ``directory``. Peak memory is about one float32 copy of the model (8.7 GB RSS measured).
    """
    import torch
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.pi0.configuration_pi0 import PI0Config
    from lerobot.policies.pi0.modeling_pi0 import PI0Policy

    from policies.pi0.lerobot_workarounds import fix_pi0_projector_width

    if image_size <= 0 or image_size % SIGLIP_PATCH_PX:
        raise ValueError(f"image_size={image_size}: must be a positive multiple of {SIGLIP_PATCH_PX} px (SigLIP patch)")
    inputs = {"observation.state": PolicyFeature(FeatureType.STATE, (len(state_names),))}
    inputs.update(
        {f"observation.images.{c}": PolicyFeature(FeatureType.VISUAL, (3, image_size, image_size)) for c in cameras}
    )
    cfg = PI0Config(
        paligemma_variant="gemma_300m",
        action_expert_variant="gemma_300m",
        dtype="float32",
        input_features=inputs,
        output_features={"action": PolicyFeature(FeatureType.ACTION, (len(action_names),))},
        chunk_size=chunk_size,
        n_action_steps=chunk_size,
        image_resolution=(image_size, image_size),
        tokenizer_max_length=TOKENIZER_MAX_LENGTH,
        device="cpu",
    )
    if len(state_names) > cfg.max_state_dim or len(action_names) > cfg.max_action_dim:
        raise ValueError(
            f"{len(state_names)} state / {len(action_names)} action components: pi0 pads to at most "
            f"{cfg.max_state_dim} / {cfg.max_action_dim}"
        )
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer_dir = build_tokenizer(directory / "tokenizer")
    stats = default_stats(len(state_names), len(action_names)) if stats is None else stats
    pre, post = _processors(cfg, stats, tokenizer_dir)
    fix_pi0_projector_width()
    torch.manual_seed(seed)
    policy = PI0Policy(cfg)
    policy.save_pretrained(str(directory))
    del policy
    for part in (pre, post):
        part.save_pretrained(str(directory))
    manifest = {
        "kind": "lerobot",
        "policy_dt": policy_dt,
        "checkpoint_id": f"pi0-random-{seed}",
        "names": {"action": list(action_names), "observation.state": list(state_names)},
        "text": {"name": "task", "max_bytes": 256},
        "overrides": {"preprocessor": {"tokenizer_processor": {"tokenizer_name": "@/tokenizer"}}},
    }
    (directory / "rcs_policy.json").write_text(json.dumps(manifest, indent=1))
    return directory
