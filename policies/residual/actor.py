"""The residual actor: a deterministic, bounded correction that is exactly zero at initialisation.

``forward`` maps the residual's observation (:meth:`policies.residual.features.ResidualSpace.observe`) to the
residual ``tanh(head(trunk(obs)))`` in [-1, 1] per action entry (scaled by the space's ``scale`` when composed).
The head's weights and bias start at zero, so the composed policy starts exactly at the base, and learning moves
it away only as far as the critics ask.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def mlp(sizes: Sequence[int], layer_norm: bool = False, activate_last: bool = False) -> nn.Sequential:
    """Linear layers of ``sizes``, each but the last (all with ``activate_last``) followed by ReLU, with LayerNorm
    before the ReLU if asked (it keeps off-policy critics from diverging at high update-to-data ratios)."""
    layers: list[nn.Module] = []
    for k in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[k], sizes[k + 1]))
        if k < len(sizes) - 2 or activate_last:
            if layer_norm:
                layers.append(nn.LayerNorm(sizes[k + 1]))
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class ResidualActor(nn.Module):
    """Observation (``obs_dim``) -> residual (``act_dim``, in [-1, 1]).

    Args:
        obs_dim: length of the residual's observation.
        act_dim: action entries.
        hidden: hidden layer widths.
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int] = (256, 256)) -> None:
        super().__init__()
        self.obs_dim, self.act_dim, self.hidden = int(obs_dim), int(act_dim), tuple(int(h) for h in hidden)
        self.trunk = mlp([self.obs_dim, *self.hidden], layer_norm=True, activate_last=True)
        self.head = nn.Linear(self.hidden[-1], self.act_dim)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """(..., obs_dim) -> (..., act_dim) residual in [-1, 1]."""
        return torch.tanh(self.head(self.trunk(obs)))
