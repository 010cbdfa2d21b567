"""TD3 for a residual on a frozen base, readable top to bottom.

The learner of ``rcs train-residual``: twin-delayed deterministic policy gradients (Fujimoto et al., 2018) with
the changes that make off-policy RL sample-efficient on sparse-reward manipulation (RLPD, Ball et al. 2023;
ResFiT, Ankile et al. 2025):

- a **critic ensemble** of ``critics`` Q-networks with LayerNorm; the target takes the minimum over a random pair
  of target critics (REDQ), the actor maximises the ensemble mean;
- **n-step returns**: ``y = sum_{k<m} g^k r_k + g^m (1 - done) min Q'(s_m, pi'(s_m) + noise)``, ``m <= n_step``
  (fewer where the episode ended);
- an **update-to-data ratio** ``utd``: gradient steps on the critics per environment step (the actor every
  ``policy_delay`` of them);
- **demonstrations mixed in**: a fixed ``demo_fraction`` of every batch is drawn from a demonstration buffer
  (symmetric sampling), the rest from the online buffer;
- actions are the residual in [-1, 1] (:class:`policies.residual.actor.ResidualActor`, zero at the start), so
  exploration noise ``explore_noise`` is in those units;
- keeping the base while nothing is learnt: the actor waits ``actor_starts`` critic updates, and its loss adds
  ``residual_penalty * mean(r^2)``.

Everything here is torch on the CPU; one :class:`Td3` holds the networks, optimisers and update counter, and
``state_dict`` / ``load_state_dict`` carry all of it for resuming.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from .actor import ResidualActor, mlp
from .averaging import ActorAverage, load_average


@dataclass(frozen=True)
class OffPolicyConfig:
    """What TD3 and SAC (:mod:`policies.residual.sac`) share (defaults: what the shipped residual was trained with).

    Attributes:
        hidden: hidden widths of actor and critics.
        critics: critics in the ensemble (>= 2).
        gamma: discount per policy step.
        n_step: steps of the n-step return.
        utd: critic updates per environment step.
        batch_size: transitions per update.
        demo_fraction: share of each batch drawn from the demonstrations (0 without demonstrations).
        actor_lr, critic_lr: Adam learning rates.
        tau: Polyak factor of the target networks.
        policy_delay: critic updates per actor update.
        buffer_size: online transitions kept.
        actor_starts: critic updates before the first actor update (the critics first learn the base's values,
            so the actor's first steps follow a critic that has seen data rather than its initialisation).
        residual_penalty: weight of ``mean(r^2)`` in the actor's loss: the residual stays near zero (the base)
            where the critics see no gain in moving it.
        average_tau: > 0: the evaluated and saved residual is a moving average of the actor's weights, this step
            per actor update (:mod:`policies.residual.averaging`; about ``1 / average_tau`` actor updates long);
            0: the online actor.
    """

    hidden: tuple[int, ...] = (256, 256)
    critics: int = 2
    gamma: float = 0.99
    n_step: int = 3
    utd: int = 1
    batch_size: int = 256
    demo_fraction: float = 0.25
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    tau: float = 0.005
    policy_delay: int = 2
    buffer_size: int = 200_000
    actor_starts: int = 5_000
    residual_penalty: float = 0.1
    average_tau: float = 0.0

    #: the learner's name in a checkpoint's training record
    algorithm: ClassVar[str] = ""

    def checks(self) -> dict[str, bool]:
        """Each field with a range, and whether it is in it (a learner's config adds its own)."""
        return {
            "critics": self.critics >= 2,
            "gamma": 0.0 < self.gamma <= 1.0,
            "n_step": self.n_step >= 1,
            "utd": self.utd >= 1,
            "batch_size": self.batch_size >= 1,
            "demo_fraction": 0.0 <= self.demo_fraction < 1.0,
            "policy_delay": self.policy_delay >= 1,
            "buffer_size": self.buffer_size >= self.batch_size,
            "actor_starts": self.actor_starts >= 0,
            "residual_penalty": self.residual_penalty >= 0.0,
            "average_tau": 0.0 <= self.average_tau <= 1.0,
        }

    def __post_init__(self) -> None:
        bad = [k for k, ok in self.checks().items() if not ok]
        if bad:
            name = type(self).__name__
            raise ValueError(f"{name}: out of range: {', '.join(f'{k}={getattr(self, k)!r}' for k in bad)}")

    def as_dict(self) -> dict[str, Any]:
        fields = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        return {"algorithm": self.algorithm, **fields}


@dataclass(frozen=True)
class Td3Config(OffPolicyConfig):
    """TD3's hyperparameters: :class:`OffPolicyConfig`'s and

    Attributes:
        explore_noise: std of the Gaussian exploration noise on the residual (in [-1, 1] units).
        target_noise, target_noise_clip: target policy smoothing (same units).
    """

    explore_noise: float = 0.2
    target_noise: float = 0.2
    target_noise_clip: float = 0.5

    algorithm: ClassVar[str] = "td3"

    def checks(self) -> dict[str, bool]:
        return {**super().checks(), "explore_noise": self.explore_noise >= 0.0}

    def build(self, obs_dim: int, act_dim: int, seed: int) -> Td3:
        return Td3(obs_dim, act_dim, self, seed)


#: the arrays of a stored n-step transition
TRANSITION_KEYS = ("obs", "act", "ret", "next_obs", "done", "discount")


# -- replay: n-step transitions ------------------------------------------------------------------------------
class NStepReplay:
    """A ring buffer of n-step transitions ``(s, a, R, s_m, done, g^m)``, built from single steps as they come.

    :meth:`add` takes one environment step; once ``n_step`` steps are pending (or the episode ends) the oldest
    becomes a stored transition with its discounted return over the pending steps.
    """

    def __init__(self, obs_dim: int, act_dim: int, capacity: int, n_step: int, gamma: float) -> None:
        self.capacity, self.n_step, self.gamma = int(capacity), int(n_step), float(gamma)
        self.obs = np.zeros((capacity, obs_dim), np.float32)
        self.act = np.zeros((capacity, act_dim), np.float32)
        self.ret = np.zeros(capacity, np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), np.float32)
        self.done = np.zeros(capacity, np.float32)
        self.discount = np.zeros(capacity, np.float32)
        self.size = 0
        self._next = 0
        self._pending: list[tuple[np.ndarray, np.ndarray, float]] = []

    def __len__(self) -> int:
        return self.size

    def add(
        self, obs: np.ndarray, act: np.ndarray, reward: float, next_obs: np.ndarray, terminated: bool, truncated: bool
    ) -> None:
        """One step. ``terminated``: the task ended (no bootstrap); ``truncated``: time ran out (bootstrap)."""
        self._pending.append((np.asarray(obs, np.float32), np.asarray(act, np.float32), float(reward)))
        if len(self._pending) == self.n_step:
            self._store(next_obs, terminated)
        if terminated or truncated:
            while self._pending:
                self._store(next_obs, terminated)

    def drop_pending(self) -> None:
        """Forget the steps not stored yet (an episode that was cut off by a failure, not by the task)."""
        self._pending.clear()

    def _store(self, next_obs: np.ndarray, terminated: bool) -> None:
        obs, act, _ = self._pending[0]
        ret = sum(self.gamma**k * r for k, (_, _, r) in enumerate(self._pending))
        i = self._next
        self.obs[i], self.act[i], self.ret[i] = obs, act, ret
        self.next_obs[i], self.done[i] = next_obs, float(terminated)
        self.discount[i] = self.gamma ** len(self._pending)
        self._pending.pop(0)
        self._next = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def extend(self, transitions: dict[str, np.ndarray]) -> None:
        """Store finished n-step transitions (as :meth:`state` or :meth:`drain` give them), oldest first."""
        for k in range(len(transitions["obs"])):
            i = self._next
            for key in TRANSITION_KEYS:
                getattr(self, key)[i] = transitions[key][k]
            self._next = (i + 1) % self.capacity
            self.size = min(self.size + 1, self.capacity)

    def drain(self) -> dict[str, np.ndarray]:
        """The stored transitions (oldest first), removed; the steps still pending stay (their episode goes on)."""
        out = self.state()
        self.size, self._next = 0, 0
        return out

    def sample(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        idx = rng.integers(0, self.size, n)
        return {
            "obs": self.obs[idx],
            "act": self.act[idx],
            "ret": self.ret[idx],
            "next_obs": self.next_obs[idx],
            "done": self.done[idx],
            "discount": self.discount[idx],
        }

    def state(self) -> dict[str, np.ndarray]:
        """The stored transitions (for resuming), oldest first."""
        order = np.roll(np.arange(self.size), -self._next if self.size == self.capacity else 0)
        return {k: getattr(self, k)[order] for k in TRANSITION_KEYS}

    def load(self, data: dict[str, np.ndarray]) -> None:
        n = min(len(data["obs"]), self.capacity)
        for k in TRANSITION_KEYS:
            getattr(self, k)[:n] = data[k][-n:]
        self.size, self._next = n, n % self.capacity
        self._pending.clear()


def mixed_batch(
    rng: np.random.Generator, size: int, demo_fraction: float, online: NStepReplay, demos: NStepReplay | None
) -> dict[str, torch.Tensor]:
    """``size`` transitions: ``round(size * demo_fraction)`` from ``demos`` (when it has any), the rest from
    ``online`` (symmetric sampling, RLPD)."""
    n_demo = int(round(size * demo_fraction)) if demos is not None and len(demos) else 0
    parts = [online.sample(rng, size - n_demo)]
    if n_demo:
        parts.append(demos.sample(rng, n_demo))
    return {k: torch.as_tensor(np.concatenate([p[k] for p in parts])) for k in parts[0]}


# -- networks --------------------------------------------------------------------------------------------------
class CriticEnsemble(nn.Module):
    """``critics`` independent Q(s, a) networks with LayerNorm; forward gives (critics, batch)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...], critics: int) -> None:
        super().__init__()
        self.qs = nn.ModuleList(mlp([obs_dim + act_dim, *hidden, 1], layer_norm=True) for _ in range(critics))

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        x = torch.cat([obs, act], dim=-1)
        return torch.stack([q(x).squeeze(-1) for q in self.qs])


# -- the learner ------------------------------------------------------------------------------------------------
class Td3:
    """Actor, critic ensemble, their targets and optimisers; :meth:`update` is one gradient step.

    Args:
        obs_dim, act_dim: sizes of the residual's observation and action.
        config: hyperparameters.
        seed: seeds torch and the sampling generator.
    """

    def __init__(self, obs_dim: int, act_dim: int, config: Td3Config, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.config = config
        self.rng = np.random.default_rng(seed)
        self.actor = ResidualActor(obs_dim, act_dim, config.hidden)
        self.critic = CriticEnsemble(obs_dim, act_dim, config.hidden, config.critics)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.average = ActorAverage(self.actor, config.average_tau) if config.average_tau > 0 else None
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=config.actor_lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=config.critic_lr)
        self.updates = 0

    def deployed_actor(self) -> ResidualActor:
        """The actor that is evaluated and saved: the weights' average with ``average_tau``, else the online one."""
        return self.actor if self.average is None else self.average.actor

    def act(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        """The residual for one observation (float32): the online actor's with exploration noise if ``explore``,
        else :meth:`deployed_actor`'s."""
        actor = self.actor if explore else self.deployed_actor()
        with torch.no_grad():
            a = actor(torch.as_tensor(obs, dtype=torch.float32)[None])[0].numpy()
        if explore and self.config.explore_noise > 0:
            a = a + self.rng.normal(0.0, self.config.explore_noise, a.shape)
        return np.clip(a, -1.0, 1.0).astype(np.float32)

    def batch(self, online: NStepReplay, demos: NStepReplay | None) -> dict[str, torch.Tensor]:
        """A training batch: ``demo_fraction`` of it from ``demos`` (when it has any), the rest online."""
        return mixed_batch(self.rng, self.config.batch_size, self.config.demo_fraction, online, demos)

    def update(self, b: dict[str, torch.Tensor]) -> dict[str, float]:
        """One critic step; every ``policy_delay`` of them an actor step (after ``actor_starts`` critic steps)
        and the targets' Polyak update. Returns the losses."""
        cfg = self.config
        with torch.no_grad():
            noise = (torch.randn_like(b["act"]) * cfg.target_noise).clamp(-cfg.target_noise_clip, cfg.target_noise_clip)
            next_act = (self.actor_target(b["next_obs"]) + noise).clamp(-1.0, 1.0)
            pair = self.rng.choice(cfg.critics, 2, replace=False)
            q_next = self.critic_target(b["next_obs"], next_act)[pair].min(dim=0).values
            target = b["ret"] + b["discount"] * (1.0 - b["done"]) * q_next
        q = self.critic(b["obs"], b["act"])
        critic_loss = ((q - target) ** 2).mean(dim=1).sum()
        self.critic_opt.zero_grad()
        critic_loss.backward()
        self.critic_opt.step()
        self.updates += 1
        out = {"critic_loss": float(critic_loss.detach()), "q": float(q.detach().mean())}
        if self.updates % cfg.policy_delay:
            return out
        if self.updates > cfg.actor_starts:
            residual = self.actor(b["obs"])
            actor_loss = -self.critic(b["obs"], residual).mean() + cfg.residual_penalty * (residual**2).mean()
            self.actor_opt.zero_grad()
            actor_loss.backward()
            self.actor_opt.step()
            if self.average is not None:
                self.average.update(self.actor)
            out["actor_loss"] = float(actor_loss.detach())
        with torch.no_grad():
            for net, target_net in ((self.actor, self.actor_target), (self.critic, self.critic_target)):
                for p, tp in zip(net.parameters(), target_net.parameters(), strict=True):
                    tp.lerp_(p, cfg.tau)
        return out

    def acting_state(self) -> dict[str, Any]:
        """What :meth:`act` needs (the actor's weights): what a rollout worker is sent."""
        return {"actor": self.actor.state_dict()}

    def load_acting_state(self, state: dict[str, Any]) -> None:
        self.actor.load_state_dict(state["actor"])

    def state_dict(self) -> dict[str, Any]:
        return {
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "actor_target": self.actor_target.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            **({} if self.average is None else {"actor_average": self.average.state_dict()}),
            "updates": self.updates,
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in ("actor", "critic", "actor_target", "critic_target", "actor_opt", "critic_opt"):
            getattr(self, name).load_state_dict(state[name])
        load_average(self.average, state)
        self.updates = int(state["updates"])
        self.rng.bit_generator.state = state["rng"]
