"""The training loop of ``rcs train-residual``: TD3 (:mod:`policies.residual.td3`) or SAC
(:mod:`policies.residual.sac`) on the residual env.

One process: the base runs behind its own ``rcs serve`` child, the env steps the simulation (a named reality shift or
a calibrated robot config), the learner updates ``utd`` times per step once ``learning_starts`` steps are stored.
Every ``eval_every`` environment steps the deterministic residual is evaluated on ``eval_episodes`` fixed seeds
(``eval_seed`` onwards, apart from the seeds figures are reported on) and the composed checkpoint and the full
training state (learner, buffers, counters, curve) are written, so a killed run resumes where its last checkpoint
left it. The first evaluation, before any update, is the base alone (the residual starts at zero). ``progress``
gets one line per evaluation. With ``scratch`` no base is served: the learner acts from the middle of the action
range (:class:`policies.residual.base_follower.MidRangeBase`), the baseline the residual is compared with; such a
run writes no composed checkpoint (there is no base to name), only its curve and training state.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from rcs.errors import ConfigError

from .sac import Sac, SacConfig
from .td3 import NStepReplay, Td3, Td3Config

T = TypeVar("T")

STATE_NAME = "training_state.pt"
CURVE_NAME = "success.csv"
#: the folder of the run's latest composed checkpoint
LATEST_NAME = "checkpoint"
#: the folder of the composed checkpoint of the best evaluation so far (beside the latest)
BEST_NAME = "best"
#: times a run starts its base server again after it exited; one more exit ends the run (its last checkpoint
#: resumes it)
BASE_RESTARTS = 3


@dataclass
class ResidualTrainConfig:
    """What ``rcs train-residual`` trains.

    Attributes:
        base: the base checkpoint folder (served unchanged).
        out: the run folder (``checkpoint/``, the training state, ``success.csv``, ``success.png``).
        env: env id (its robot takes ``robot_config``).
        robot_config: the robot's options (a named shift's, or a calibrated config's).
        label: what the robot is (``"reality-a"``, ``"calibrated: <file>"``), recorded in the checkpoint.
        total_steps: environment steps of the run (policy steps).
        learning_starts: steps stored before the first update.
        eval_every: environment steps between evaluations and checkpoints.
        eval_episodes: episodes per evaluation.
        eval_seed: first seed of the evaluation episodes.
        scale: the residual's bound (normalized action units).
        entry_scales: other bounds for some action entries, by the base's action names (e.g. ``{"gripper": 2.0}``).
        chunk_phase: the residual also reads the step within the base's chunk
            (:attr:`policies.residual.features.ResidualSpace.phase_steps`).
        latency_s: (low, high) s from an observation to its chunk, drawn per step
            (:class:`policies.residual.env.ResidualTaskEnv`).
        base_latency_s: added on the steps that ask the base (its inference).
        seed: seeds the training episodes (``seed * 1_000_000 + episode``), torch and the learner.
        learner: the learner and its hyperparameters (:class:`Td3Config` or :class:`SacConfig`).
        scratch: no base: the learner acts alone (``scale`` should then be 1: the whole action range).
        final_episodes: episodes of the evaluation after the last step (0: none), from ``final_seed``.
        demo_episodes: expert-guided episodes run before training (:mod:`policies.residual.demos`), from
            ``demo_seed``; the successful ones are the demonstrations mixed into every batch (0: none).
    """

    base: Path
    out: Path
    env: str = "rcs/PandaPickCube-v0"
    robot_config: dict[str, Any] = field(default_factory=dict)
    label: str = "nominal"
    total_steps: int = 100_000
    learning_starts: int = 2_000
    eval_every: int = 5_000
    eval_episodes: int = 20
    eval_seed: int = 20_000
    scale: float = 0.1
    entry_scales: dict[str, float] = field(default_factory=dict)
    chunk_phase: bool = False
    latency_s: tuple[float, float] = (0.01, 0.02)
    base_latency_s: float = 0.02
    seed: int = 0
    learner: Td3Config | SacConfig = field(default_factory=Td3Config)
    scratch: bool = False
    final_episodes: int = 0
    final_seed: int = 10_000
    demo_episodes: int = 0
    demo_seed: int = 30_000


@dataclass
class TrainState:
    """Counters and the curve (saved with the learner)."""

    env_steps: int = 0
    episodes: int = 0
    dropped_steps: int = 0  # steps without a base action (the base was late): never stored
    curve: list[tuple[int, float]] = field(default_factory=list)  # (env steps, evaluation success rate)
    wall_s: float = 0.0
    final: float | None = None  # success rate of the evaluation after the last step
    demo_steps: int = 0  # environment steps of the expert-guided episodes (not counted in env_steps)
    demos_kept: int = 0  # of those episodes, the successful ones (the demonstrations)


def make_env(cfg: ResidualTrainConfig, space: Any, follower: Any) -> Any:
    """The residual env over ``cfg.env`` on the lockstep robot path, the base's cameras rendered at its sizes."""
    from rcs.envs.registration import build_env, register_envs
    from rcs.eval.inputs import read_policy_inputs
    from rcs.eval.lockstep import LockstepEpisode

    from .env import ResidualTaskEnv

    inputs = read_policy_inputs(cfg.base)
    register_envs()
    env = build_env(cfg.env, robot_config=cfg.robot_config)
    episode = LockstepEpisode(env, inputs.action_names, follower.policy_dt)
    return ResidualTaskEnv(
        episode, space, follower, inputs.cameras, latency_s=cfg.latency_s, base_latency_s=cfg.base_latency_s
    )


class ServedBase:
    """The base behind its own ``rcs serve`` child for one training run, started again when that child exits.

    Args:
        base: the base checkpoint.
        log_dir: where the servers' logs go (``base_serve.log``, then ``base_serve.<n>.log`` per restart).
    """

    def __init__(self, base: Any, log_dir: Path) -> None:
        self.base, self.log_dir = base, log_dir
        self.starts = 0
        self.client, self.server = self._start()

    def _start(self) -> tuple[Any, Any]:
        from .policy import connect_base

        self.starts += 1
        name = "base_serve.log" if self.starts == 1 else f"base_serve.{self.starts - 1}.log"
        return connect_base(self.base, None, self.log_dir / name)

    def restart_if_exited(self) -> bool:
        """Start the server again if it exited (True); False if it still runs.

        Raises:
            BaseUnavailable: it exited more than :data:`BASE_RESTARTS` times.
        """
        from .base_follower import BaseUnavailable

        if not self.server.exited:
            return False
        if self.starts > BASE_RESTARTS:
            raise BaseUnavailable(f"the base server exited {self.starts} times (logs in {self.log_dir})")
        self.close()
        self.client, self.server = self._start()
        return True

    def close(self) -> None:
        self.client.close()
        self.server.stop()


def make_follower(base: Any, space: Any, client: Any | None) -> Any:
    """Each step's base action: from the base's server through ``client`` (a
    :class:`~policies.residual.base_follower.BaseFollower`, 2 s per chunk), or, for ``None`` (``--scratch``), the
    middle of the action range (:class:`~policies.residual.base_follower.MidRangeBase`)."""
    from .base_follower import BaseFollower, MidRangeBase

    if client is None:
        return MidRangeBase(space.action, base.replan_steps, base.policy_dt)
    return BaseFollower(client, base.replan_steps, base.policy_dt, budget_s=2.0)


def evaluate_outcomes(env: Any, agent: Td3 | Sac, episodes: int, seed: int) -> dict[str, int]:
    """How many of the deterministic residual's episodes over ``episodes`` seeds from ``seed`` (training env path)
    end each way (:data:`policies.residual.outcomes.OUTCOMES`)."""
    from .outcomes import OUTCOMES, episode_outcome

    counts = dict.fromkeys(OUTCOMES, 0)
    for k in range(episodes):
        obs, _ = env.reset(seed=seed + k)
        while True:
            obs, reward, terminated, truncated, info = env.step(agent.act(obs, explore=False))
            if terminated or truncated:
                break
        counts[episode_outcome(reward > 0, info)] += 1
    return counts


def evaluate(env: Any, agent: Td3 | Sac, episodes: int, seed: int) -> float:
    """Success rate of the deterministic residual over ``episodes`` seeds from ``seed`` (training env path)."""
    return evaluate_outcomes(env, agent, episodes, seed)["success"] / episodes


def evaluate_composed(
    directory: Path,
    robot_config: dict[str, Any],
    episodes: int,
    seed: int,
    out: Path,
    env_id: str = "rcs/PandaPickCube-v0",
) -> dict[str, int]:
    """How the episodes of a composed checkpoint end (:func:`evaluate_outcomes`) on the training env's path
    (:func:`make_env` on the robot ``robot_config`` describes, its base served by a new ``rcs serve``): ``episodes``
    seeds from ``seed``.

    Simulated time and the training latency model, so unlike ``rcs eval`` (real time) it does not depend on the
    machine's load; the base's own sampling still varies run to run.
    """
    import torch

    from . import checkpoint

    torch.set_num_threads(1)
    composed = checkpoint.load(directory)
    cfg = ResidualTrainConfig(base=composed.base.directory, out=out, env=env_id, robot_config=robot_config)
    out.mkdir(parents=True, exist_ok=True)
    served = ServedBase(composed.base, out)
    env = None
    try:
        env = make_env(cfg, composed.space, make_follower(composed.base, composed.space, served.client))
        agent = Td3Config(hidden=composed.hidden).build(composed.space.observation_dim, composed.space.action_dim, 0)
        agent.actor.load_state_dict(composed.state_dict)
        return evaluate_outcomes(env, agent, episodes, seed)
    finally:
        if env is not None:
            env.close()
        served.close()


def train(
    cfg: ResidualTrainConfig,
    progress: Callable[[str], None] | None = None,
    workers: int = 0,
    ray_address: str | None = None,
) -> TrainState:
    """Run (or resume) the training ``cfg`` describes; returns the final counters and curve.

    Args:
        cfg: what to train.
        progress: gets one line per evaluation and per event (a dropped step, a restarted base).
        workers: 0: the training episodes run in this process, one step then ``utd`` updates; N: on N Ray
            workers (:mod:`policies.residual.rollouts_on_ray`), the learner and the evaluations stay here.
        ray_address: with ``workers``, an existing Ray cluster (``None``: a local one).
    """
    import torch

    torch.set_num_threads(1)
    run = _Run(cfg, progress or (lambda line: None))
    try:
        run.start()
        if workers:
            run.collect_on_ray(workers, ray_address)
        else:
            run.collect_here()
        if cfg.final_episodes:
            run.state.final = run.evaluation(cfg.final_episodes, cfg.final_seed)
            run.say(
                f"final: success {100 * run.state.final:.0f} % ({cfg.final_episodes} episodes from seed "
                f"{cfg.final_seed})"
            )
        return run.state
    finally:
        run.close()


class _Run:
    """One training run: the base (served, or the middle of the range), the env this process evaluates (and,
    without workers, trains) on, the learner, the replays and the counters."""

    def __init__(self, cfg: ResidualTrainConfig, say: Callable[[str], None]) -> None:
        from . import checkpoint

        self.cfg, self.say = cfg, say
        self.base = checkpoint.base_ref(cfg.base)
        self.space = checkpoint.initial_space(self.base, cfg.scale, cfg.entry_scales, cfg.chunk_phase)
        self.out = Path(cfg.out)
        latest = self.out / LATEST_NAME
        if not cfg.scratch and (latest / checkpoint.RESIDUAL_NAME).is_file():
            # a resumed actor trained under other bounds would act differently than it learned to
            trained = checkpoint.load(latest).space
            if trained.scale != self.space.scale:
                raise ConfigError(
                    f"{self.out}: its residual was trained with bounds {list(trained.scale)}, this command asks for "
                    f"{list(self.space.scale)} (--scale, --entry-scale): resume with the run's, or use a new --output"
                )
            if trained.phase_steps != self.space.phase_steps:
                raise ConfigError(
                    f"{self.out}: its residual was trained {'with' if trained.phase_steps else 'without'} the chunk "
                    f"phase (--chunk-phase): resume with the run's, or use a new --output"
                )
        self.served: ServedBase | None = None
        self.env: Any = None

    def start(self) -> None:
        """Start the base, build env, learner and replays, resume, collect demonstrations, evaluate at step 0."""
        cfg, space, base = self.cfg, self.space, self.base
        self.out.mkdir(parents=True, exist_ok=True)
        self.served = None if cfg.scratch else ServedBase(base, self.out)
        self.follower = make_follower(base, space, None if self.served is None else self.served.client)
        self.env = make_env(cfg, space, self.follower)
        self.agent = cfg.learner.build(space.observation_dim, space.action_dim, cfg.seed)
        self.online, self.demos = (
            NStepReplay(
                space.observation_dim, space.action_dim, cfg.learner.buffer_size, cfg.learner.n_step, cfg.learner.gamma
            )
            for _ in range(2)
        )
        self.state = _resume(self.out, self.agent, self.online, self.demos) or TrainState()
        if self.state.env_steps:
            self.say(
                f"resumed at {self.state.env_steps} env steps ({len(self.online)} transitions, "
                f"{len(self.demos)} demonstrated)"
            )
        if cfg.demo_episodes and not self.state.demo_steps:
            from .demos import collect

            self.state.demos_kept, self.state.demo_steps = collect(
                self.env, cfg.demo_episodes, cfg.demo_seed, self.demos
            )
            self.say(
                f"demonstrations: {self.state.demos_kept} of {cfg.demo_episodes} expert-guided episodes succeeded "
                f"({len(self.demos)} transitions, {self.state.demo_steps} env steps not counted in the budget)"
            )
        self.t0 = time.monotonic() - self.state.wall_s
        if not self.state.curve:  # the base alone (the residual is zero): the curve's first point
            self.state.curve.append((0, self.evaluation(cfg.eval_episodes, cfg.eval_seed)))
            alone = "the untrained learner" if cfg.scratch else "the base alone"
            self.say(
                f"0 env steps: eval success {100 * self.state.curve[0][1]:.0f} % ({cfg.eval_episodes} episodes, "
                f"{alone})"
            )

    # -- the base ---------------------------------------------------------------------------------------------
    def restart_exited_base(self) -> bool:
        """Start the base server again if it exited (True); False if it runs (or there is none)."""
        if self.served is None or not self.served.restart_if_exited():
            return False
        self.follower.client = self.served.client
        self.say(f"the base server had exited: started again ({self.served.starts - 1} of {BASE_RESTARTS} restarts)")
        return True

    def begin_episode(self) -> Any:
        """The first observation of training episode ``state.episodes`` here (asking a restarted base once more;
        a base that is alive and still does not answer ends the run, which the last checkpoint resumes)."""
        seed = self.cfg.seed * 1_000_000 + self.state.episodes
        return self.again_after_restart("episode start", lambda: self.env.reset(seed=seed)[0])

    def evaluation(self, episodes: int, seed: int) -> float:
        """:func:`evaluate` here, run again from its start after a restart of the base server."""
        return self.again_after_restart("evaluation", lambda: evaluate(self.env, self.agent, episodes, seed))

    def again_after_restart(self, what: str, action: Callable[[], T]) -> T:
        """``action()``; if it met no base action because the base server had exited, once more after starting
        the server again (a base that is alive and does not answer raises :class:`BaseUnavailable`)."""
        from .base_follower import BaseUnavailable

        try:
            return action()
        except BaseUnavailable as e:
            self.say(f"{what} without a base action: {e}")
            if not self.restart_exited_base():
                raise
            return action()

    # -- learning ----------------------------------------------------------------------------------------------
    def learn(self, steps: int) -> bool:
        """Count ``steps`` new environment steps (their transitions are stored), make ``utd`` updates for each
        once ``learning_starts`` transitions are stored, then evaluate and save if an ``eval_every`` multiple
        (or the end) was reached. True if it evaluated."""
        cfg, state = self.cfg, self.state
        before = state.env_steps
        state.env_steps += steps
        if len(self.online) >= cfg.learning_starts:
            for _ in range(cfg.learner.utd * steps):
                self.agent.update(self.agent.batch(self.online, self.demos))
        if state.env_steps // cfg.eval_every == before // cfg.eval_every and state.env_steps < cfg.total_steps:
            return False
        rate = self.evaluation(cfg.eval_episodes, cfg.eval_seed)
        state.curve.append((state.env_steps, rate))
        state.wall_s = time.monotonic() - self.t0
        _save(cfg, self.out, self.agent, self.online, self.demos, state, self.base, self.space)
        self.say(
            f"{state.env_steps} env steps, {state.episodes} episodes: eval success {100 * rate:.0f} % "
            f"({cfg.eval_episodes} episodes), {state.wall_s:.0f} s"
        )
        return True

    def collect_here(self) -> None:
        """The training episodes in this process: one step, then its updates."""
        from .base_follower import BaseUnavailable

        cfg, state, env, agent = self.cfg, self.state, self.env, self.agent
        obs = self.begin_episode()
        while state.env_steps < cfg.total_steps:
            act = agent.act(obs, explore=True)
            try:
                next_obs, reward, terminated, truncated, _ = env.step(act)
            except BaseUnavailable as e:  # no base action for the next step: nothing of this step is stored
                state.dropped_steps += 1
                self.online.drop_pending()
                self.say(f"step dropped: {e}")
                self.restart_exited_base()
                state.episodes += 1
                obs = self.begin_episode()
                continue
            self.online.add(obs, act, reward, next_obs, terminated, truncated)
            obs = next_obs
            ended = terminated or truncated
            state.episodes += int(ended)
            if self.learn(1) and not ended:  # the evaluation used the env: this episode ends here, unfinished
                self.online.drop_pending()
                state.episodes += 1
                ended = True
            if ended:
                obs = self.begin_episode()

    def collect_on_ray(self, workers: int, address: str | None) -> None:
        """The training episodes on ``workers`` Ray workers, in segments of at most ``SEGMENT_STEPS`` steps each
        made with the actor's weights at its dispatch; the updates for a segment run here while the next ones
        are collected."""
        from .base_follower import BaseUnavailable
        from .rollouts_on_ray import SEGMENT_STEPS, RayRollouts

        cfg, state = self.cfg, self.state
        endpoint = None if self.served is None else self.served.client.endpoint
        rollouts = RayRollouts(cfg, self.space, self.base, endpoint, workers, address, state.episodes, self.say)
        try:
            dispatched = state.env_steps

            def dispatch(k: int) -> None:
                nonlocal dispatched
                steps = min(SEGMENT_STEPS, cfg.total_steps - dispatched)
                if steps > 0:
                    rollouts.dispatch(k, self.agent.acting_state(), steps)
                    dispatched += steps

            for k in range(workers):
                dispatch(k)
            while rollouts.running:
                segment = rollouts.next()
                if segment.result is None:  # its worker lost the base or died: none of the segment is stored
                    dispatched -= segment.steps
                    self.say(
                        f"rollout worker {segment.worker}: a segment of {segment.steps} steps lost ({segment.error})"
                    )
                    if segment.died:
                        rollouts.replace(segment.worker, state.episodes)
                    elif not segment.stale:  # a base met since the latest restart: start it again, or give up
                        if not self.restart_exited_base():
                            raise BaseUnavailable(segment.error)
                        assert self.served is not None
                        rollouts.rebase(self.served.client.endpoint)
                    dispatch(segment.worker)
                    continue
                self.online.extend(segment.result["transitions"])
                state.episodes += segment.result["episodes"]
                state.dropped_steps += segment.result["dropped"]
                dispatch(segment.worker)
                self.learn(segment.result["steps"])
        finally:
            rollouts.close()

    def close(self) -> None:
        if self.env is not None:
            self.env.close()
        if self.served is not None:
            self.served.close()


def best_point(curve: list[tuple[int, float]]) -> tuple[int, float] | None:
    """The evaluation of a trained residual (env steps > 0) with the highest success rate, the latest of equals
    (the one trained longest); ``None`` before the first. Its seeds (``eval_seed``...) are not the report seeds,
    so a figure on those is not biased by this choice."""
    trained = [(rate, steps) for steps, rate in curve if steps > 0]
    if not trained:
        return None
    rate, steps = max(trained)
    return steps, rate


def _save(
    cfg: ResidualTrainConfig,
    out: Path,
    agent: Td3 | Sac,
    online: NStepReplay,
    demos: NStepReplay,
    state: TrainState,
    base: Any,
    space: Any,
) -> None:
    """The composed checkpoint (``out/checkpoint``; not from scratch; also ``out/best`` if this evaluation is
    :func:`best_point`), the curve and the training state, each written atomically."""
    import torch

    from . import checkpoint

    training = {
        "env": cfg.env,
        "robot": cfg.label,
        "robot_config": cfg.robot_config,
        "env_steps": state.env_steps,
        "episodes": state.episodes,
        "seed": cfg.seed,
        "learner": cfg.learner.as_dict(),
        "curve": state.curve,
    }
    if not cfg.scratch:
        checkpoint_id = f"residual/{Path(cfg.base).name}/{cfg.label}/{state.env_steps:06d}"
        weights = agent.deployed_actor().state_dict()
        checkpoint.save(out / LATEST_NAME, weights, space, cfg.learner.hidden, base, checkpoint_id, training)
        best = best_point(state.curve)
        if best is not None and best[0] == state.env_steps:
            selected = {**training, "selected": f"the best of the run's evaluations so far ({100 * best[1]:.0f} %)"}
            checkpoint.save(out / BEST_NAME, weights, space, cfg.learner.hidden, base, checkpoint_id, selected)
    tmp = out / (STATE_NAME + ".tmp")
    torch.save(
        {"agent": agent.state_dict(), "online": online.state(), "demos": demos.state(), "state": state.__dict__}, tmp
    )
    tmp.replace(out / STATE_NAME)
    (out / CURVE_NAME).write_text("env_steps,success_rate\n" + "".join(f"{s},{r:.4f}\n" for s, r in state.curve))


def _resume(out: Path, agent: Td3 | Sac, online: NStepReplay, demos: NStepReplay) -> TrainState | None:
    """The saved training state of ``out`` loaded into ``agent``, ``online`` and ``demos``; ``None`` if there is
    none."""
    import torch

    path = out / STATE_NAME
    if not path.is_file():
        return None
    try:
        saved = torch.load(path, weights_only=False)
        agent.load_state_dict(saved["agent"])
        online.load(saved["online"])
        if "demos" in saved:
            demos.load(saved["demos"])
        data = dict(saved["state"])
        data["curve"] = [tuple(c) for c in data.get("curve", [])]
        return TrainState(**data)
    except (OSError, KeyError, RuntimeError, TypeError, ValueError) as e:
        raise ConfigError(f"{path}: cannot resume from it ({type(e).__name__}: {e}); remove it to start over") from None
