"""Pre/post-processors of ``rcs_diffusion``: lerobot's default pipeline (rename, batch, device, normalize;
unnormalize, to CPU) with the policy's dataset statistics. Saved next to the weights as
``policy_preprocessor.json`` / ``policy_postprocessor.json`` (+ their ``.safetensors`` stats)."""

from __future__ import annotations

from typing import Any

import torch

from lerobot.processor import PolicyAction, PolicyProcessorPipeline, make_default_pre_post_processors
from policies.rcs_diffusion.configuration_rcs_diffusion import RcsDiffusionConfig


def make_rcs_diffusion_pre_post_processors(
    config: RcsDiffusionConfig,
    dataset_stats: dict[str, dict[str, torch.Tensor]] | None = None,
) -> tuple[PolicyProcessorPipeline[dict[str, Any], dict[str, Any]], PolicyProcessorPipeline[PolicyAction, PolicyAction]]:
    """The (preprocessor, postprocessor) pair for ``config`` normalized with ``dataset_stats``."""
    return make_default_pre_post_processors(config, dataset_stats)
