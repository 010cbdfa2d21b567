"""``rcs_diffusion``: image encoder + state MLP (+ frozen sentence embedding) -> flow-matching action head.

The head learns a rectified flow from Gaussian noise to the (normalized) action chunk: ``x_t = (1 - t) x_0 +
t x_1``; it predicts the clean chunk ``x_1`` (default) or the velocity ``x_1 - x_0``, and inference integrates
``dx/dt = v`` with a few Euler steps from a fixed noise draw. Everything
is small enough for a CPU: a 3-layer conv encoder with a spatial softmax per camera, MLPs elsewhere.

Batches follow lerobot's convention after the preprocessor (normalized tensors): ``observation.state`` (B, S),
``observation.environment_state`` (B, E), ``observation.images.<cam>`` (B, 3, H, W), ``action`` (B, horizon, D)
and ``action_is_pad`` (B, horizon) when training, ``task`` (list of B strings) with ``use_language``.
A singleton time axis (B, 1, ...) on observations is accepted too.
"""

from __future__ import annotations

import math
from collections import deque
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from lerobot.configs.types import FeatureType
from lerobot.policies.pretrained import PreTrainedPolicy
from torch import Tensor, nn

from policies.rcs_diffusion.configuration_rcs_diffusion import RcsDiffusionConfig
from policies.rcs_diffusion.text import SentenceEncoder

ACTION = "action"


class CheckpointError(ValueError):
    """A checkpoint directory is incomplete or does not match the policy's parameters."""


class SpatialSoftmax(nn.Module):
    """Expected (x, y) image coordinates of each channel's softmax: (B, C, H, W) -> (B, 2C), in [-1, 1]."""

    def __init__(self, height: int, width: int) -> None:
        super().__init__()
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width), indexing="ij")
        self.register_buffer("grid", torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        attention = F.softmax(x.reshape(b, c, h * w), dim=-1)
        return (attention @ self.grid).reshape(b, 2 * c)


class ImageEncoder(nn.Module):
    """Small conv stack + spatial softmax keypoints + linear: (B, 3, S, S) -> (B, out_dim)."""

    def __init__(self, image_size: int, channels: int, out_dim: int) -> None:
        super().__init__()
        c = channels
        self.conv = nn.Sequential(
            nn.Conv2d(3, c // 2, 5, stride=2, padding=2),
            nn.SiLU(),
            nn.Conv2d(c // 2, c, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv2d(c, c, 3, stride=1, padding=1),
            nn.SiLU(),
            nn.Conv2d(c, c, 1),
        )
        side = image_size // 4
        self.keypoints = SpatialSoftmax(side, side)
        self.out = nn.Sequential(nn.Linear(2 * c, out_dim), nn.SiLU())

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.keypoints(self.conv(x)))


def time_embedding(t: Tensor, dim: int) -> Tensor:
    """Sinusoidal embedding of flow time ``t`` in [0, 1]: (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=t.dtype, device=t.device) / half)
    angles = 1000.0 * t[:, None] * freqs[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class ResidualBlock(nn.Module):
    """LayerNorm -> Linear -> SiLU -> Linear, plus a FiLM shift/scale from the conditioning vector."""

    def __init__(self, hidden: int, cond_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.film = nn.Linear(cond_dim, 2 * hidden)
        self.fc1 = nn.Linear(hidden, hidden)
        self.fc2 = nn.Linear(hidden, hidden)

    def forward(self, h: Tensor, cond: Tensor) -> Tensor:
        scale, shift = self.film(cond).chunk(2, dim=-1)
        y = self.norm(h) * (1 + scale) + shift
        return h + self.fc2(F.silu(self.fc1(y)))


class FlowHead(nn.Module):
    """Velocity field ``v(x_t, t | cond)`` over a flattened action chunk."""

    def __init__(self, horizon: int, action_dim: int, cond_dim: int, hidden: int, layers: int, time_dim: int) -> None:
        super().__init__()
        self.horizon, self.action_dim, self.time_dim = horizon, action_dim, time_dim
        flat = horizon * action_dim
        self.cond = nn.Sequential(nn.Linear(cond_dim + time_dim, cond_dim), nn.SiLU())
        self.inp = nn.Linear(flat + cond_dim, hidden)
        self.blocks = nn.ModuleList(ResidualBlock(hidden, cond_dim) for _ in range(layers))
        self.out_norm = nn.LayerNorm(hidden)
        self.out = nn.Linear(hidden, flat)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        c = self.cond(torch.cat([cond, time_embedding(t, self.time_dim)], dim=-1))
        h = self.inp(torch.cat([x.flatten(1), c], dim=-1))
        for block in self.blocks:
            h = block(h, c)
        return self.out(F.silu(self.out_norm(h))).reshape(-1, self.horizon, self.action_dim)


class RcsDiffusionPolicy(PreTrainedPolicy):
    """A lerobot policy: ``forward`` (training loss), ``predict_action_chunk`` (B, horizon, D), ``select_action``.

    Args:
        config: the policy's configuration with ``input_features`` / ``output_features`` set.
    """

    config_class = RcsDiffusionConfig
    name = "rcs_diffusion"

    def __init__(self, config: RcsDiffusionConfig, **kwargs: Any) -> None:
        super().__init__(config)
        config.validate_features()
        self.config = config
        self.vector_keys = [
            k for k, f in config.input_features.items() if f.type in (FeatureType.STATE, FeatureType.ENV)
        ]
        self.image_keys = sorted(config.image_features)
        action_dim = config.output_features[ACTION].shape[0]
        self.action_dim = action_dim
        self.vector_index: dict[str, list[int]] = {}
        for k in self.vector_keys:
            names = config.feature_names.get(k) or []
            size = config.input_features[k].shape[0]
            self.vector_index[k] = [i for i in range(size) if i >= len(names) or names[i] not in config.ignore_entries]
        vector_dim = sum(len(v) for v in self.vector_index.values())
        text_width = 128
        self.early_text = bool(config.use_language and config.language_fusion == "early" and vector_dim)
        parts = 0
        if vector_dim:
            self.state_mlp = nn.Sequential(
                nn.Linear(vector_dim + (text_width if self.early_text else 0), config.state_hidden),
                nn.SiLU(),
                nn.Linear(config.state_hidden, config.state_hidden),
                nn.SiLU(),
            )
            parts += config.state_hidden
        self.image_encoders = nn.ModuleDict(
            {
                k.replace(".", "_"): ImageEncoder(config.image_size, config.vision_channels, config.vision_dim)
                for k in self.image_keys
            }
        )
        parts += config.vision_dim * len(self.image_keys)
        if config.use_language:
            self.text_proj = nn.Sequential(nn.Linear(config.text_dim, text_width), nn.SiLU())
            parts += text_width
        self.fuse = nn.Sequential(nn.Linear(parts, config.cond_dim), nn.SiLU())
        self.head = FlowHead(
            config.horizon, action_dim, config.cond_dim, config.head_hidden, config.head_layers, config.time_embed_dim
        )
        self._text: SentenceEncoder | None = None
        self._queue: deque[Tensor] = deque(maxlen=config.n_action_steps)

    # -- lerobot interface ------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, pretrained_name_or_path: str | Path, *, strict: bool = True, **kwargs: Any):  # type: ignore[override]
        """lerobot's loader, but strict by default and with a clear error for a missing or corrupt file."""
        path = Path(pretrained_name_or_path)
        if path.is_dir():
            for name in ("config.json", "model.safetensors"):
                if not (path / name).is_file():
                    raise CheckpointError(f"checkpoint {path}: missing {name}")
        try:
            return super().from_pretrained(pretrained_name_or_path, strict=strict, **kwargs)
        except Exception as e:  # safetensors header/size errors, missing/unexpected keys, shape mismatches
            raise CheckpointError(
                f"checkpoint {path}: model.safetensors does not load into this policy ({type(e).__name__}: {e})"
            ) from None

    def get_optim_params(self) -> Any:
        return self.parameters()

    def reset(self) -> None:
        """Forget queued actions (call at every episode start)."""
        self._queue.clear()

    @torch.no_grad()
    def select_action(self, batch: dict[str, Any], **kwargs: Any) -> Tensor:
        """One (B, D) action: the next of the queued chunk, predicting a new chunk when the queue is empty."""
        if not self._queue:
            chunk = self.predict_action_chunk(batch)[:, : self.config.n_action_steps]
            self._queue.extend(chunk.transpose(0, 1))
        return self._queue.popleft()

    @torch.no_grad()
    def predict_action_chunk(self, batch: dict[str, Any], **kwargs: Any) -> Tensor:
        """(B, horizon, D) normalized actions: integrate the flow from noise with ``num_inference_steps`` steps."""
        cond = self.condition(batch)
        b = cond.shape[0]
        shape = (b, self.config.horizon, self.action_dim)
        if self.config.noise_seed is None:
            x = torch.randn(shape, device=cond.device, dtype=cond.dtype)
        else:  # the same noise every call: a deterministic policy whose consecutive chunks agree
            g = torch.Generator(device="cpu").manual_seed(self.config.noise_seed)
            x = torch.randn(shape[1:], generator=g).to(cond.device, cond.dtype).expand(shape).clone()
        steps = self.config.num_inference_steps
        for i in range(steps):
            t = torch.full((b,), i / steps, device=cond.device, dtype=cond.dtype)
            x = x + self._velocity(x, t, cond) / steps
        return x

    def _velocity(self, x: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        out = self.head(x, t, cond)
        if self.config.prediction == "velocity":
            return out
        return (out - x) / (1 - t).clamp_min(1.0 / self.config.num_inference_steps)[:, None, None]

    def forward(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, float]]:
        """Flow-matching loss (MSE of the predicted chunk or velocity, padded steps masked out) for logging."""
        target = batch[ACTION]
        if target.ndim != 3 or target.shape[1:] != (self.config.horizon, self.action_dim):
            raise ValueError(
                f"batch['action'].shape={tuple(target.shape)} must be (B, {self.config.horizon}, {self.action_dim})"
            )
        cond = self.condition(batch)
        b = target.shape[0]
        noise = torch.randn_like(target)
        t = torch.rand(b, device=target.device, dtype=target.dtype)
        xt = (1 - t)[:, None, None] * noise + t[:, None, None] * target
        wanted = target if self.config.prediction == "sample" else target - noise
        error = (self.head(xt, t, cond) - wanted) ** 2
        pad = batch.get("action_is_pad")
        if pad is not None:
            keep = (~pad.bool()).unsqueeze(-1).to(error.dtype)
            loss = (error * keep).sum() / (keep.sum() * self.action_dim).clamp_min(1.0)
        else:
            loss = error.mean()
        return loss, {"loss": float(loss.detach())}

    # -- conditioning -----------------------------------------------------------------------------------
    def condition(self, batch: dict[str, Any]) -> Tensor:
        """The (B, cond_dim) conditioning vector from the observation (and task text)."""
        parts: list[Tensor] = []
        text = None
        if self.config.use_language:
            text = self.text_proj(self._task_embedding(batch, _batch_size(batch, self.vector_keys + self.image_keys)))
        if self.vector_keys:
            vec = torch.cat([_one_step(batch, k, 2)[:, self.vector_index[k]] for k in self.vector_keys], dim=-1)
            parts.append(self.state_mlp(torch.cat([vec, text], dim=-1) if self.early_text else vec))
        for key in self.image_keys:
            parts.append(self.image_encoders[key.replace(".", "_")](self._image(_one_step(batch, key, 4))))
        if text is not None:
            parts.append(text)
        return self.fuse(torch.cat(parts, dim=-1))

    def _image(self, img: Tensor) -> Tensor:
        s = self.config.image_size
        if img.shape[-2:] != (s, s):
            img = F.interpolate(img, size=(s, s), mode="bilinear", align_corners=False, antialias=True)
        pad = self.config.crop_pad
        if self.training and pad > 0:  # random shift: pad by replication, crop back at a random offset
            b = img.shape[0]
            padded = F.pad(img, (pad, pad, pad, pad), mode="replicate")
            dx = torch.randint(0, 2 * pad + 1, (b,))
            dy = torch.randint(0, 2 * pad + 1, (b,))
            rows = dy[:, None] + torch.arange(s)[None, :]  # (B, s)
            cols = dx[:, None] + torch.arange(s)[None, :]
            img = padded[
                torch.arange(b)[:, None, None, None],
                torch.arange(3)[None, :, None, None],
                rows[:, None, :, None],
                cols[:, None, None, :],
            ]
        return img

    def _task_embedding(self, batch: dict[str, Any], b: int) -> Tensor:
        task = batch.get("task")
        if task is None:
            raise ValueError("this rcs_diffusion policy is language-conditioned: the batch needs 'task' (B strings)")
        texts = [task] if isinstance(task, str) else list(task)
        if len(texts) == 1 and b > 1:
            texts = texts * b
        if len(texts) != b or not all(isinstance(t, str) for t in texts):
            raise ValueError(f"batch['task'] must be {b} strings, got {task!r}")
        if self._text is None:
            self._text = SentenceEncoder(self.config.text_encoder)
        return self._text.encode(texts).to(next(self.parameters()).device)


def _one_step(batch: dict[str, Any], key: str, ndim: int) -> Tensor:
    """``batch[key]`` without a singleton observation-time axis; a clear error when missing."""
    if key not in batch:
        raise KeyError(f"rcs_diffusion: observation {key!r} missing from the batch (has {sorted(batch)})")
    x = batch[key]
    if x.ndim == ndim + 1 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != ndim:
        raise ValueError(f"{key}: expected {ndim} dims (batch first), got shape {tuple(x.shape)}")
    return x


def _batch_size(batch: dict[str, Any], keys: list[str]) -> int:
    """Batch size of the first observation tensor among ``keys`` (1 when there is none)."""
    for key in keys:
        if key in batch:
            return int(batch[key].shape[0])
    return 1
