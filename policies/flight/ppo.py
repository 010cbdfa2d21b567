"""PPO for learned quadrotor hover at the per-motor level, readable top to bottom (CleanRL style).

Environment: :class:`sim.batch.hover_env.HoverVectorEnv` (``num_envs`` domain-randomized vehicles in numpy, the
task of :mod:`rcs.flight.hover_task`). Policy: a Gaussian over per-rotor actions in [-1, 1] (normalized thrust
``(a + 1) / 2``) whose mean is a tanh MLP; a separate value MLP. The loop:

1. roll out ``rollout_steps`` control steps of every vehicle with the stochastic policy (same-step autoreset;
   at a time-limit truncation the value of the final observation is bootstrapped into the reward);
2. generalized advantage estimation (``gamma``, ``gae_lambda``);
3. ``epochs`` passes of clipped-surrogate PPO over ``minibatches`` shuffled minibatches, value loss, gradient
   norm clip, Adam with a learning rate annealed linearly over the time (or step) budget;
4. log, and write the checkpoint (numpy-loadable, :mod:`policies.flight.model`) every ``checkpoint_every_s``.

Stops at ``max_seconds`` of wall time or ``max_steps`` environment steps (vehicle-steps), whichever first.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from policies.flight import model as flight_model
from rcs.spec import DomainRandomization, QuadrotorSpec
from sim.batch.hover_env import HoverStarts, HoverVectorEnv, MovingTargets

log = logging.getLogger(__name__)


@dataclass
class PpoConfig:
    """Hyperparameters (defaults: the shipped checkpoint's run)."""

    seed: int = 0
    max_seconds: float = 120.0
    max_steps: int = 50_000_000
    num_envs: int = 256
    rollout_steps: int = 64
    epochs: int = 5
    minibatches: int = 4
    learning_rate: float = 1e-3
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip: float = 0.2
    value_coef: float = 0.5
    entropy_coef: float = 0.0
    max_grad_norm: float = 0.5
    hidden: int = 64
    init_log_std: float = -1.0
    control_rate_hz: float = 100.0
    physics_dt: float = 0.001
    episode_s: float = 5.0
    target: tuple[float, float, float] = (0.0, 0.0, 1.0)
    starts: HoverStarts = field(default_factory=HoverStarts)
    nominal_fraction: float = 0.25
    disturbance: tuple[float, float] = (0.0, 0.35)
    action_delay_s: tuple[float, float] = (0.0, 0.004)
    moving: MovingTargets = field(default_factory=lambda: MovingTargets(fraction=0.5))
    checkpoint_every_s: float = 30.0
    threads: int = 1


def mlp(sizes: list[int]) -> nn.Sequential:
    """tanh MLP, orthogonal init (CleanRL's), small last layer."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        lin = nn.Linear(sizes[i], sizes[i + 1])
        last = i == len(sizes) - 2
        nn.init.orthogonal_(lin.weight, 0.01 if last else math.sqrt(2))
        nn.init.zeros_(lin.bias)
        layers.append(lin)
        if not last:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


class ActorCritic(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, hidden: int, init_log_std: float) -> None:
        super().__init__()
        self.actor = mlp([obs_dim, hidden, hidden, act_dim])
        self.critic = mlp([obs_dim, hidden, hidden, 1])
        self.log_std = nn.Parameter(torch.full((act_dim,), float(init_log_std)))

    def dist(self, obs: torch.Tensor) -> torch.distributions.Normal:
        return torch.distributions.Normal(self.actor(obs), self.log_std.exp())

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(obs).squeeze(-1)

    def actor_weights(self) -> dict[str, np.ndarray]:
        """The actor's linear layers as ``layers.{i}.weight|bias`` numpy arrays (the checkpoint's names)."""
        lins = [m for m in self.actor if isinstance(m, nn.Linear)]
        out = {}
        for i, lin in enumerate(lins):
            out[f"layers.{i}.weight"] = lin.weight.detach().cpu().numpy().copy()
            out[f"layers.{i}.bias"] = lin.bias.detach().cpu().numpy().copy()
        return out


@dataclass
class TrainResult:
    """What a run did: checkpoint folder, curve points (env steps, mean episode return), wall time, steps."""

    checkpoint: Path
    steps: list[int]
    returns: list[float]
    seconds: float
    env_steps: int


def train(
    spec: QuadrotorSpec,
    randomization: DomainRandomization,
    output: str | Path,
    config: PpoConfig | None = None,
    progress: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train a hover policy for ``spec`` under ``randomization``; write checkpoints to ``output``. Torch runs on
    ``config.threads`` threads meanwhile (torch's setting is process-wide: it is put back afterwards)."""
    cfg = config or PpoConfig()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(max(1, cfg.threads))
    try:
        return _train(spec, randomization, Path(output), cfg, progress or log.info)
    finally:
        torch.set_num_threads(previous_threads)


def _train(
    spec: QuadrotorSpec,
    randomization: DomainRandomization,
    out: Path,
    cfg: PpoConfig,
    say: Callable[[str], None],
) -> TrainResult:
    torch.manual_seed(cfg.seed)
    env = HoverVectorEnv(
        spec,
        cfg.num_envs,
        randomization,
        target=cfg.target,
        control_rate_hz=cfg.control_rate_hz,
        physics_dt=cfg.physics_dt,
        episode_s=cfg.episode_s,
        starts=cfg.starts,
        nominal_fraction=cfg.nominal_fraction,
        disturbance=cfg.disturbance,
        action_delay_s=cfg.action_delay_s,
        moving=cfg.moving,
    )
    obs_dim = env.single_observation_space.shape[0]
    act_dim = env.single_action_space.shape[0]
    agent = ActorCritic(obs_dim, act_dim, cfg.hidden, cfg.init_log_std)
    opt = torch.optim.Adam(agent.parameters(), lr=cfg.learning_rate, eps=1e-5)

    n, t_len = cfg.num_envs, cfg.rollout_steps
    obs_buf = torch.zeros((t_len, n, obs_dim))
    act_buf = torch.zeros((t_len, n, act_dim))
    logp_buf = torch.zeros((t_len, n))
    rew_buf = torch.zeros((t_len, n))
    done_buf = torch.zeros((t_len, n))
    val_buf = torch.zeros((t_len, n))

    obs_np, _ = env.reset(seed=cfg.seed)
    obs = torch.as_tensor(obs_np)
    ep_return = np.zeros(n)
    finished: list[float] = []
    curve_steps: list[int] = []
    curve_returns: list[float] = []
    env_steps = 0
    start = time.perf_counter()
    last_ckpt = start
    iteration = 0

    def save() -> Path:
        meta = flight_model.layout(
            spec,
            cfg.control_rate_hz,
            cfg.target,
            training={
                "algorithm": "PPO (policies.flight.ppo)",
                "env_steps": env_steps,
                "wall_s": round(time.perf_counter() - start, 1),
                "randomization": dataclasses.asdict(randomization),
                "config": json.loads(json.dumps(dataclasses.asdict(cfg))),
            },
        )
        return flight_model.save(out, agent.actor_weights(), meta)

    while True:
        elapsed = time.perf_counter() - start
        if elapsed >= cfg.max_seconds or env_steps >= cfg.max_steps:
            break
        # annealed over whichever budget runs out first (with a step budget the run is deterministic)
        frac = max(0.0, 1.0 - max(elapsed / cfg.max_seconds, env_steps / cfg.max_steps))
        for g in opt.param_groups:
            g["lr"] = cfg.learning_rate * max(frac, 0.05)

        # 1. rollout
        with torch.no_grad():
            for t in range(t_len):
                d = agent.dist(obs)
                action = d.sample()
                obs_buf[t], act_buf[t] = obs, action
                logp_buf[t] = d.log_prob(action).sum(-1)
                val_buf[t] = agent.value(obs)
                next_obs, reward, terminated, truncated, info = env.step(action.numpy())
                reward = reward.astype(np.float64)
                if truncated.any():  # time limit: the episode would go on, bootstrap its value
                    final = torch.as_tensor(info["final_observation"][truncated])
                    reward[truncated] += cfg.gamma * agent.value(final).numpy()
                ep_return += reward
                done = terminated | truncated
                for i in np.flatnonzero(done):
                    finished.append(float(ep_return[i]))
                ep_return[done] = 0.0
                rew_buf[t] = torch.as_tensor(reward, dtype=torch.float32)
                done_buf[t] = torch.as_tensor(done, dtype=torch.float32)
                obs = torch.as_tensor(next_obs)
            next_value = agent.value(obs)
        env_steps += n * t_len

        # 2. GAE
        with torch.no_grad():
            adv = torch.zeros_like(rew_buf)
            gae = torch.zeros(n)
            for t in reversed(range(t_len)):
                nv = next_value if t == t_len - 1 else val_buf[t + 1]
                nonterminal = 1.0 - done_buf[t]
                delta = rew_buf[t] + cfg.gamma * nv * nonterminal - val_buf[t]
                gae = delta + cfg.gamma * cfg.gae_lambda * nonterminal * gae
                adv[t] = gae
            ret = adv + val_buf

        # 3. PPO update
        b_obs, b_act = obs_buf.reshape(-1, obs_dim), act_buf.reshape(-1, act_dim)
        b_logp, b_adv, b_ret = logp_buf.reshape(-1), adv.reshape(-1), ret.reshape(-1)
        batch = b_obs.shape[0]
        mb = batch // cfg.minibatches
        for _ in range(cfg.epochs):
            perm = torch.randperm(batch)
            for k in range(cfg.minibatches):
                idx = perm[k * mb : (k + 1) * mb]
                d = agent.dist(b_obs[idx])
                logp = d.log_prob(b_act[idx]).sum(-1)
                ratio = (logp - b_logp[idx]).exp()
                a = b_adv[idx]
                a = (a - a.mean()) / (a.std() + 1e-8)
                pg_loss = torch.max(-a * ratio, -a * ratio.clamp(1 - cfg.clip, 1 + cfg.clip)).mean()
                v_loss = 0.5 * (agent.value(b_obs[idx]) - b_ret[idx]).pow(2).mean()
                entropy = d.entropy().sum(-1).mean()
                loss = pg_loss + cfg.value_coef * v_loss - cfg.entropy_coef * entropy
                opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), cfg.max_grad_norm)
                opt.step()

        # 4. log and checkpoint
        iteration += 1
        mean_ret = float(np.mean(finished[-200:])) if finished else float("nan")
        if finished:
            curve_steps.append(env_steps)
            curve_returns.append(mean_ret)
        now = time.perf_counter()
        say(
            f"iter {iteration:4d}  t {now - start:6.1f} s  steps {env_steps:9d}  episodes {len(finished):6d}  "
            f"return {mean_ret:8.2f}  reward/step {float(rew_buf.mean()):6.3f}  v_loss {float(v_loss.detach()):8.4f}  "
            f"std {float(agent.log_std.detach().exp().mean()):.3f}"
        )
        if now - last_ckpt >= cfg.checkpoint_every_s:
            save()
            last_ckpt = now
    path = save()
    return TrainResult(path, curve_steps, curve_returns, time.perf_counter() - start, env_steps)
