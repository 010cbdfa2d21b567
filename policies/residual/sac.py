"""SAC on the residual env, readable top to bottom: the baseline ``rcs train-residual --learner sac`` trains.

Soft actor-critic (Haarnoja et al., 2018) with automatic entropy tuning, on the same pieces as
:mod:`policies.residual.td3` so the two differ only in how they explore and what the actor optimises:

- the actor is a :class:`policies.residual.actor.ResidualActor` (its ``tanh(head(trunk(obs)))`` is the
  deterministic action: what evaluation and the composed checkpoint use) plus a ``log_std`` head on the same
  trunk; exploring samples ``a = tanh(u)``, ``u ~ N(head(h), std(h)^2)``, with
  ``log pi(a|s) = log N(u) - sum log(1 - a^2)``;
- the critics are the same LayerNorm ensemble with n-step returns; the target is
  ``y = R + g^m (1 - done) (min_{pair} Q'(s_m, a') - alpha log pi(a'|s_m))``, ``a' ~ pi(s_m)``;
- the actor minimises ``alpha log pi(a|s) - mean_i Q_i(s, a)`` (+ ``residual_penalty * mean(tanh(mean)^2)``) and
  ``alpha`` follows ``target_entropy`` (default ``-act_dim`` nats);
- ``utd``, ``policy_delay``, ``actor_starts``, demonstrations in the batch and the replay are TD3's.

With ``rcs train-residual --scratch`` the "base" is the middle of the action range and ``scale`` 1, so the actor
alone spans the whole range of the base's data: plain SAC from scratch, the comparison the residual is measured
against.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from .actor import ResidualActor
from .averaging import ActorAverage, load_average
from .td3 import CriticEnsemble, NStepReplay, OffPolicyConfig, mixed_batch

#: bounds of the actor's log standard deviation (of ``u``, before the tanh)
LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


@dataclass(frozen=True)
class SacConfig(OffPolicyConfig):
    """SAC's hyperparameters: :class:`policies.residual.td3.OffPolicyConfig`'s (shared with TD3) and

    Attributes:
        alpha_lr: Adam learning rate of ``log alpha``.
        initial_alpha: the entropy temperature at the start.
        target_entropy: the entropy ``alpha`` steers to (nats); ``None``: ``-act_dim``.
    """

    alpha_lr: float = 1e-3
    initial_alpha: float = 0.1
    target_entropy: float | None = None

    algorithm: ClassVar[str] = "sac"

    def checks(self) -> dict[str, bool]:
        return {**super().checks(), "alpha_lr": self.alpha_lr > 0.0, "initial_alpha": self.initial_alpha > 0.0}

    def build(self, obs_dim: int, act_dim: int, seed: int) -> Sac:
        return Sac(obs_dim, act_dim, self, seed)


class Sac:
    """Actor (with its ``log_std`` head), critic ensemble and its target, ``log alpha``, their optimisers;
    :meth:`update` is one gradient step. The interface is :class:`policies.residual.td3.Td3`'s.

    Args:
        obs_dim, act_dim: sizes of the observation and the action (in [-1, 1]).
        config: hyperparameters.
        seed: seeds torch and the sampling generator.
    """

    def __init__(self, obs_dim: int, act_dim: int, config: SacConfig, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.config = config
        self.rng = np.random.default_rng(seed)
        self.actor = ResidualActor(obs_dim, act_dim, config.hidden)
        self.log_std = nn.Linear(config.hidden[-1], act_dim)
        self.critic = CriticEnsemble(obs_dim, act_dim, config.hidden, config.critics)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.average = ActorAverage(self.actor, config.average_tau) if config.average_tau > 0 else None
        self.log_alpha = torch.tensor(math.log(config.initial_alpha), requires_grad=True)
        self.target_entropy = -float(act_dim) if config.target_entropy is None else float(config.target_entropy)
        self.actor_opt = torch.optim.Adam([*self.actor.parameters(), *self.log_std.parameters()], lr=config.actor_lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=config.critic_lr)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=config.alpha_lr)
        self.updates = 0

    def sample(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(action in (-1, 1), its log-probability) for each observation, reparameterised."""
        h = self.actor.trunk(obs)
        mean = self.actor.head(h)
        # squashing the raw head into [LOG_STD_MIN, LOG_STD_MAX] keeps the gradients finite (CleanRL's choice)
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (torch.tanh(self.log_std(h)) + 1.0)
        u = mean + log_std.exp() * torch.randn_like(mean)
        a = torch.tanh(u)
        log_prob = (-0.5 * ((u - mean) / log_std.exp()) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_prob = log_prob - torch.log(1.0 - a.pow(2) + 1e-6).sum(-1)
        return a, log_prob

    def deployed_actor(self) -> ResidualActor:
        """The actor that is evaluated and saved: the weights' average with ``average_tau``, else the online one."""
        return self.actor if self.average is None else self.average.actor

    def act(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        """One action (float32): sampled from the online actor if ``explore``, else :meth:`deployed_actor`'s
        ``tanh(mean)``."""
        with torch.no_grad():
            x = torch.as_tensor(obs, dtype=torch.float32)[None]
            a = self.sample(x)[0] if explore else self.deployed_actor()(x)
        return a[0].numpy().astype(np.float32)

    def batch(self, online: NStepReplay, demos: NStepReplay | None) -> dict[str, torch.Tensor]:
        """A training batch: ``demo_fraction`` of it from ``demos`` (when it has any), the rest online."""
        return mixed_batch(self.rng, self.config.batch_size, self.config.demo_fraction, online, demos)

    def update(self, b: dict[str, torch.Tensor]) -> dict[str, float]:
        """One critic step and the target's Polyak update; every ``policy_delay`` of them (after ``actor_starts``)
        an actor and a temperature step. Returns the losses."""
        cfg = self.config
        alpha = self.log_alpha.exp().detach()
        with torch.no_grad():
            next_act, next_log_prob = self.sample(b["next_obs"])
            pair = self.rng.choice(cfg.critics, 2, replace=False)
            q_next = self.critic_target(b["next_obs"], next_act)[pair].min(dim=0).values - alpha * next_log_prob
            target = b["ret"] + b["discount"] * (1.0 - b["done"]) * q_next
        q = self.critic(b["obs"], b["act"])
        critic_loss = ((q - target) ** 2).mean(dim=1).sum()
        self.critic_opt.zero_grad()
        critic_loss.backward()
        self.critic_opt.step()
        self.updates += 1
        with torch.no_grad():
            for p, tp in zip(self.critic.parameters(), self.critic_target.parameters(), strict=True):
                tp.lerp_(p, cfg.tau)
        out = {"critic_loss": float(critic_loss.detach()), "q": float(q.detach().mean()), "alpha": float(alpha)}
        if self.updates % cfg.policy_delay or self.updates <= cfg.actor_starts:
            return out
        act, log_prob = self.sample(b["obs"])
        penalty = cfg.residual_penalty * (self.actor(b["obs"]) ** 2).mean() if cfg.residual_penalty else 0.0
        actor_loss = (alpha * log_prob - self.critic(b["obs"], act).mean(dim=0)).mean() + penalty
        self.actor_opt.zero_grad()
        actor_loss.backward()
        self.actor_opt.step()
        if self.average is not None:
            self.average.update(self.actor)
        alpha_loss = -(self.log_alpha * (log_prob.detach() + self.target_entropy)).mean()
        self.alpha_opt.zero_grad()
        alpha_loss.backward()
        self.alpha_opt.step()
        out["actor_loss"] = float(actor_loss.detach())
        return out

    def acting_state(self) -> dict[str, Any]:
        """What :meth:`act` needs (the actor's and ``log_std``'s weights): what a rollout worker is sent."""
        return {"actor": self.actor.state_dict(), "log_std": self.log_std.state_dict()}

    def load_acting_state(self, state: dict[str, Any]) -> None:
        self.actor.load_state_dict(state["actor"])
        self.log_std.load_state_dict(state["log_std"])

    def state_dict(self) -> dict[str, Any]:
        return {
            "actor": self.actor.state_dict(),
            "log_std": self.log_std.state_dict(),
            "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "log_alpha": self.log_alpha.detach().clone(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "alpha_opt": self.alpha_opt.state_dict(),
            **({} if self.average is None else {"actor_average": self.average.state_dict()}),
            "updates": self.updates,
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in ("actor", "log_std", "critic", "critic_target", "actor_opt", "critic_opt", "alpha_opt"):
            getattr(self, name).load_state_dict(state[name])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        load_average(self.average, state)
        self.updates = int(state["updates"])
        self.rng.bit_generator.state = state["rng"]
