"""Pre/post-processors of ``rcs_diffusion``: lerobot's default pipeline (rename, batch, device, normalize;
unnormalize, to CPU), with lerobot's relative/absolute action steps around the (un)normalizers when
``relative_actions`` is set. Saved next to the weights as ``policy_preprocessor.json`` /
``policy_postprocessor.json`` (+ their ``.safetensors`` stats)."""

from __future__ import annotations

from typing import Any

import torch
from lerobot.processor import PolicyAction, PolicyProcessorPipeline
from lerobot.processor.factory import make_default_policy_processor_steps, make_policy_processor_pipelines
from lerobot.processor.relative_action_processor import AbsoluteActionsProcessorStep, RelativeActionsProcessorStep

from policies.rcs_diffusion.configuration_rcs_diffusion import RcsDiffusionConfig


def make_rcs_diffusion_pre_post_processors(
    config: RcsDiffusionConfig,
    dataset_stats: dict[str, dict[str, torch.Tensor]] | None = None,
) -> tuple[
    PolicyProcessorPipeline[dict[str, Any], dict[str, Any]], PolicyProcessorPipeline[PolicyAction, PolicyAction]
]:
    """The (preprocessor, postprocessor) pair for ``config`` normalized with ``dataset_stats``.

    Order (as lerobot's pi0): raw -> relative -> normalize -> model -> unnormalize -> absolute.
    """
    steps = make_default_policy_processor_steps(config, dataset_stats)
    relative = RelativeActionsProcessorStep(
        enabled=config.relative_actions,
        exclude_joints=list(config.relative_exclude),
        action_names=list(config.action_names) or None,
    )
    return make_policy_processor_pipelines(
        input_steps=[steps.rename_observations, steps.add_batch_dim, steps.to_device, relative, steps.normalize],
        output_steps=[
            steps.unnormalize,
            AbsoluteActionsProcessorStep(enabled=config.relative_actions, relative_step=relative),
            steps.to_cpu,
        ],
    )
