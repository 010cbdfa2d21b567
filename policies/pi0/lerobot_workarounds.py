"""Workaround for lerobot's pi0 projector width (the one place this project patches lerobot's pi0).

The bug: lerobot 0.6.1's ``lerobot.policies.pi0.modeling_pi0.PaliGemmaWithExpertModel.__init__`` sets
``vlm_config_hf.vision_config.projection_dim = 2048`` whatever ``paligemma_variant`` says. The SigLIP
projector (``paligemma.model.multi_modal_projector.linear``, 1152 -> ``projection_dim``) must output the
language model's width, because ``PI0Pytorch.embed_prefix`` concatenates image tokens with word embeddings.
With ``paligemma_variant="gemma_300m"`` (width 1024) the model builds, saves and loads, and then its first
inference fails in ``torch.cat``: ``Expected size 2048 but got size 1024``. openpi has the same code and
the same report: openpi issue #1049 (https://github.com/Physical-Intelligence/openpi/issues/1049; cited
from the project's notes, not re-read here). No lerobot issue or pull request for it was found in a
search of lerobot's tracker (the nearest, lerobot #825, is about the vocabulary size).

The fix: after lerobot's ``__init__``, if the projector's output width differs from
``text_config.hidden_size``, replace that ``Linear`` with one of the language model's width (same input
width, bias, dtype, device, ``requires_grad`` and train/eval mode) and set ``projection_dim`` in the
PaliGemma config and its vision config to match. Its weights are torch's default initialization; a
checkpoint's weights replace them on load.

Why it is a no-op for real pi0 checkpoints: ``lerobot/pi0`` and openpi's pi0 use ``gemma_2b`` (width
2048), where 2048 is already right, so the projector is left untouched. It matters only for the
``gemma_300m`` language model, which this project uses for its random-weight test checkpoint
(:mod:`policies.pi0.offline`).

How it is applied: nothing patches on import. :func:`fix_pi0_projector_width` is named in the
``rcs.lerobot_policies`` entry points for policy type ``pi0`` (``pyproject.toml``), so
:mod:`policies.lerobot_adapter` calls it before loading any pi0 checkpoint;
:func:`policies.pi0.offline.build_random_pi0` calls it before building one. The patch is process-wide
and idempotent.

When to delete it: when the lerobot version pinned in ``pyproject.toml`` builds ``projection_dim`` from
the language model's width. ``tests/serving/test_pi0_serving.py::test_upstream_projector_bug_still_present``
fails at that point (it checks lerobot's own ``__init__``, unpatched); delete this module, its entry
point and the calls then. Seen in lerobot 0.6.1 (transformers 5.5.4).
"""

from __future__ import annotations

import functools
import logging
from typing import Any

log = logging.getLogger(__name__)

#: attribute set on the wrapping ``__init__`` so a second call does not wrap twice.
_MARK = "_rcs_fixes_projector_width"


def match_projector_to_language_model(paligemma: Any) -> bool:
    """Give ``paligemma``'s multi-modal projector the language model's output width.

    Args:
        paligemma: a transformers ``PaliGemmaForConditionalGeneration`` (as built by lerobot's pi0).

    Returns:
        Whether the projector was replaced (``False``: its width was already right).
    """
    import torch

    config = paligemma.config
    width = int(config.text_config.hidden_size)
    projector = paligemma.model.multi_modal_projector
    old = projector.linear
    if old.out_features == width:
        return False
    new = torch.nn.Linear(
        old.in_features, width, bias=old.bias is not None, device=old.weight.device, dtype=old.weight.dtype
    )
    new.requires_grad_(old.weight.requires_grad)
    new.train(old.training)
    projector.linear = new
    config.projection_dim = width
    config.vision_config.projection_dim = width
    log.debug("pi0: SigLIP projector width %d -> %d (language model width)", old.out_features, width)
    return True


def fix_pi0_projector_width() -> bool:
    """Make lerobot's ``PaliGemmaWithExpertModel`` build its projector at the language model's width.

    Wraps ``PaliGemmaWithExpertModel.__init__`` (lerobot's code runs unchanged, then
    :func:`match_projector_to_language_model`). Idempotent; entry point of the ``rcs.lerobot_policies``
    group for policy type ``pi0``.

    Returns:
        Whether this call installed the wrapper (``False``: already installed).
    """
    from lerobot.policies.pi0 import modeling_pi0

    cls = modeling_pi0.PaliGemmaWithExpertModel
    original = cls.__init__
    if getattr(original, _MARK, False):
        return False

    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        match_projector_to_language_model(self.paligemma)

    setattr(__init__, _MARK, True)
    cls.__init__ = __init__
    log.info("lerobot pi0: projector width follows the language model (workaround for openpi #1049)")
    return True
