"""The pick-cube task as the residual learner sees it: the base acts inside, the residual is the action.

The robot runs the deployed path in lockstep (:class:`rcs.eval.lockstep.LockstepEpisode`: the arm's IK, chunk
executor, watchdog and safety filter at the control rate, as under ``rcs eval``), so the residual learns to
correct what the base does *through that path* on the shifted robot. Each step takes the base's actions for this
step and the next (:class:`policies.residual.base_follower.BaseFollower`, the base served by ``rcs serve``), moves
both by the residual in the normalized space (:meth:`policies.residual.features.ResidualSpace.compose`) and hands
them to the robot as one chunk, exactly what the served composed policy sends (:mod:`policies.residual.policy`).

- observation: :meth:`~policies.residual.features.ResidualSpace.observe` (float32), i.e. the normalized vector
  inputs and the base's normalized action for this step (and, if the space reads it, the step within the base's
  chunk);
- action: the residual in [-1, 1] per action entry (``scale`` applies in the composition);
- reward: sparse, 1 when ``is_success`` has held for ``success_hold_s`` of simulated time (as ``rcs eval``
  counts a success), which ends the episode; 0 otherwise;
- info: ``is_success``, ``base_action`` and ``action`` (the executed pose, action units), ``failure``, and
  ``cube_drops``: how often this episode a lifted cube fell back onto the table (:class:`~policies.residual.outcomes.CubeDrops`; how most
  failures on a shifted robot happen, docs/sim2real.md).

Training is not real time: the simulation waits for the base. A base that does not answer within its budget is
asked again ``base_retries`` times for the same observation; after that :class:`BaseUnavailable` propagates and
the learner drops the step (nothing of it is stored).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

import gymnasium as gym
import numpy as np

from rcs.eval.episodes import SnapshotRenderer
from rcs.eval.lockstep import LockstepEpisode
from rcs.recording.features import IMAGE_PREFIX, observation_to_features
from rcs.serving.policy import RequestContext

from .base_follower import BaseFollower, BaseUnavailable
from .checkpoint import CHUNK_STEPS
from .features import ResidualSpace
from .outcomes import CubeDrops


class _LazyImages(Mapping[str, np.ndarray]):
    """An observation whose camera images are rendered on first access: the base needs them only on the steps
    it is asked for a chunk (one in ``replan_steps``), the residual never."""

    def __init__(self, vectors: dict[str, np.ndarray], render: Callable[[], dict[str, np.ndarray]], keys: list[str]):
        self._vectors, self._render, self._keys = vectors, render, [*vectors, *keys]
        self._images: dict[str, np.ndarray] | None = None

    def __getitem__(self, key: str) -> np.ndarray:
        if key in self._vectors:
            return self._vectors[key]
        if key not in self._keys:
            raise KeyError(key)
        if self._images is None:
            self._images = self._render()
        return self._images[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


class ResidualTaskEnv(gym.Env):
    """A pick-cube task on the lockstep robot path behind the residual's view; the base's camera images are
    rendered from the simulation at its sizes (like ``rcs eval`` renders them) when the base is asked.

    Args:
        episode: the lockstep robot path over the task's env (its action names are the base's).
        space: the residual space.
        follower: the base's per-step actions.
        cameras: the base's image inputs ``(name, height, width)`` (``observation.images.<name>``).
        latency_s: (low, high) s: simulated time between an observation and the robot receiving the chunk made
            from it, drawn uniformly per step: on the real-time path the robot has executed one or two more
            control ticks of its previous plan by then (the reply takes milliseconds, the observation is up to a
            tick old), and the shifted robot's success is sensitive to exactly that (docs/sim2real.md).
        base_latency_s: added to ``latency_s`` on the steps that asked the base (its inference). The sum is kept
            below one policy period (a later chunk would arrive after the next observation).
        base_retries: extra requests for one observation before :class:`BaseUnavailable` propagates.
    """

    def __init__(
        self,
        episode: LockstepEpisode,
        space: ResidualSpace,
        follower: BaseFollower,
        cameras: Sequence[tuple[str, int, int]],
        latency_s: tuple[float, float] = (0.0, 0.0),
        base_latency_s: float = 0.0,
        base_retries: int = 2,
    ) -> None:
        self.episode = episode
        self.space = space
        self.follower = follower
        self.cameras = tuple(cameras)
        self.env_state = tuple(episode.u.environment_state_layout)
        self.dt = float(episode.policy_dt)
        self._renderer = SnapshotRenderer(episode.robot, fast=True) if self.cameras else None
        low, high = (float(x) for x in latency_s)
        if not 0.0 <= low <= high:
            raise ValueError(f"latency_s={latency_s}: expected 0 <= low <= high (s)")
        self.latency_s = (low, high)
        self._rng = np.random.default_rng(0)
        self.base_latency_s = float(base_latency_s)
        self._max_latency_s = episode.policy_dt - episode.control_dt
        self.base_retries = int(base_retries)
        self._asked_base = False  # the base was asked for this observation's chunk
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (space.observation_dim,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (space.action_dim,), np.float32)
        self._episode = 0
        self._step = 0
        self._base = np.zeros((CHUNK_STEPS, space.action_dim))
        self._drops: CubeDrops | None = None  # None: this task has no cube
        #: the task's last observation as the env gives it (base frame; what a scripted expert reads)
        self.task_observation: dict[str, np.ndarray] = {}

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        obs = self.episode.reset(seed=seed)
        self._rng = np.random.default_rng(seed)  # the latencies of an episode follow from its seed
        self._episode += 1  # a new session for the follower: the base is asked afresh
        self._step = 0
        self.follower.reset()
        self._drops = CubeDrops(float(obs["cube_position"][2])) if "cube_position" in obs else None
        return self._observe(obs), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        chunk = np.stack([self.space.compose(base, action) for base in self._base])
        latency = self._rng.uniform(*self.latency_s) + (self.base_latency_s if self._asked_base else 0.0)
        result = self.episode.step(chunk, min(latency, self._max_latency_s))
        self._step += 1
        cube = result.observation.get("cube_position")
        info = {
            **result.measures,
            "is_success": result.success,
            "failure": result.failure,
            "base_action": self._base[0],
            "action": chunk[0],
            "cube_drops": 0 if self._drops is None or cube is None else self._drops.update(float(cube[2])),
        }
        next_obs = self._observe(result.observation)
        terminated = result.success or result.failure is not None
        return next_obs, float(result.success), terminated, result.timeout and not terminated, info

    @property
    def base_action(self) -> np.ndarray:
        """The base's action (action units) for the step about to be taken."""
        return self._base[0].copy()

    def _observe(self, obs: dict) -> np.ndarray:
        """The residual's observation; asks the follower for this step's base action (retrying a late base)."""
        self.task_observation = obs
        vectors = observation_to_features(obs, [], self.env_state)
        features = _LazyImages(vectors, self._render, [IMAGE_PREFIX + name for name, _, _ in self.cameras])
        context = RequestContext(self._episode, self._step, self._step * self.dt)  # simulated time: not real time
        asked = self.follower.requests
        for attempt in range(self.base_retries + 1):
            try:
                self._base = self.follower.actions(features, context, CHUNK_STEPS)
                self._asked_base = self.follower.requests > asked
                break
            except BaseUnavailable:
                if attempt == self.base_retries:
                    raise
        return self.space.observe(features, self._base[0], self.follower.chunk_step(self._episode))

    def _render(self) -> dict[str, np.ndarray]:
        assert self._renderer is not None
        images = self._renderer.render(self._renderer.snapshot(), self.cameras)
        return {IMAGE_PREFIX + name: image for name, image in images.items()}

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
        self.episode.u.close()
