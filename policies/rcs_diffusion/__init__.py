"""``rcs_diffusion``: a compact CPU flow-matching policy with action chunks, as a lerobot policy plugin.

Importing this package registers the type ``"rcs_diffusion"`` with lerobot (its config class), so lerobot's
``PreTrainedConfig.from_pretrained`` / ``get_policy_class`` load our checkpoints. The modeling module (torch)
is imported lazily by lerobot's factory, or explicitly from :mod:`.modeling_rcs_diffusion`.
"""

from policies.rcs_diffusion.configuration_rcs_diffusion import RcsDiffusionConfig

__all__ = ["RcsDiffusionConfig"]
