"""``rcs train-residual --workers N``: the training episodes run on N Ray workers, the learner stays in the driver.

An actor-learner split (Ape-X, SERL): each worker is a Ray actor with its own residual env
(:func:`policies.residual.train.make_env`: the same robot path, latency model and reward as the single-process
path), a client of the run's one base server (each client its own session there), and a copy of the learner to
act with. The driver sends a worker the actor's current weights and asks for a segment of at most
:data:`SEGMENT_STEPS` environment steps; the worker explores with the learner's own ``act`` (TD3's noise, SAC's
sampling), builds the n-step transitions of its episodes in a replay of its own (an episode's steps are never mixed
with another worker's; an episode goes on across segments) and returns the finished ones with its counters. The
driver stores them, sends that worker its next segment and makes the ``utd`` updates for the steps received while
the workers collect.

Bad input: a step without a base action is dropped by the worker as on the single-process path; a worker whose
base is gone (its episode start fails) loses its segment (nothing of it is stored) and the driver starts the base
again and points every worker at it; a worker whose process dies loses its segment the same way and the driver
starts a new one in its place (at most :data:`WORKER_RESTARTS` times a run; then the run stops with one line and
the last checkpoint resumes it); a worker that fails otherwise (an error in its code) stops the run at once.
Ray is imported only here, when asked for (``pip install rcs-stack[ray]``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rcs.errors import ConfigError, RcsError
from rcs.eval.on_ray import await_ready, connect_ray, run_at_niceness

#: the most environment steps a worker runs with one set of weights
SEGMENT_STEPS = 200
#: s a segment may take before the driver gives up on the workers (a step takes milliseconds)
SEGMENT_TIMEOUT_S = 600.0
#: rollout workers started in place of dead ones in one run (each one's segment under way is lost)
WORKER_RESTARTS = 3


class RolloutActor:
    """The body of one Ray rollout worker (see the module docstring).

    Args:
        cfg: the run's :class:`policies.residual.train.ResidualTrainConfig`.
        space: the residual space.
        base: the base (:class:`policies.residual.checkpoint.BaseRef`).
        endpoint: the run's base server; ``None`` from scratch (no base).
        index: this worker's number (seeds its episodes and its exploration).
        first_episode: the run's episodes so far (this worker's episode seeds continue after them).
        niceness: the driver's (Ray starts workers at 15).
    """

    def __init__(
        self,
        cfg: Any,
        space: Any,
        base: Any,
        endpoint: str | None,
        index: int,
        first_episode: int,
        niceness: int = 0,
    ) -> None:
        run_at_niceness(niceness)
        import torch

        from .td3 import NStepReplay
        from .train import make_env, make_follower

        torch.set_num_threads(1)
        self.cfg, self.base, self.index = cfg, base, index
        self._error = ""
        self._client: Any = None
        self._episode = first_episode
        self._obs: np.ndarray | None = None
        try:
            self._client = None if endpoint is None else self._connect(endpoint)
            self._follower = make_follower(base, space, self._client)
            self._env = make_env(cfg, space, self._follower)
        except RcsError as e:
            self._error = str(e)
            return
        self._learner = cfg.learner.build(space.observation_dim, space.action_dim, cfg.seed * 1_000 + index + 1)
        self._replay = NStepReplay(
            space.observation_dim,
            space.action_dim,
            SEGMENT_STEPS + cfg.learner.n_step,
            cfg.learner.n_step,
            cfg.learner.gamma,
        )

    def _connect(self, endpoint: str) -> Any:
        from .policy import connect_base

        return connect_base(self.base, endpoint, Path(os.devnull))[0]  # an existing server: nothing is logged

    def ready(self) -> dict[str, Any]:
        """``{"error": ...}`` or this worker's process id."""
        return {"error": self._error} if self._error else {"pid": os.getpid()}

    def collect(self, acting_state: dict[str, Any], steps: int) -> dict[str, Any]:
        """Run ``steps`` environment steps with the actor ``acting_state``; returns the finished transitions
        (``transitions``) and the counts of ``steps``, ended ``episodes`` and ``dropped`` steps.

        Raises:
            BaseUnavailable: an episode could not start (the base is gone or does not answer).
        """
        from .base_follower import BaseUnavailable

        if self._error:
            raise ConfigError(self._error)
        self._learner.load_acting_state(acting_state)
        done = episodes = dropped = 0
        while done < steps:
            if self._obs is None:
                seed = self.cfg.seed * 1_000_000 + (self.index + 1) * 100_000 + self._episode
                self._obs = self._env.reset(seed=seed)[0]
            act = self._learner.act(self._obs, explore=True)
            try:
                next_obs, reward, terminated, truncated, _ = self._env.step(act)
            except BaseUnavailable:  # no base action for the next step: nothing of this step is stored
                self._replay.drop_pending()
                self._obs, self._episode = None, self._episode + 1
                dropped += 1
                episodes += 1
                continue
            self._replay.add(self._obs, act, reward, next_obs, terminated, truncated)
            self._obs = next_obs
            done += 1
            if terminated or truncated:
                self._obs, self._episode = None, self._episode + 1
                episodes += 1
        return {"transitions": self._replay.drain(), "steps": done, "episodes": episodes, "dropped": dropped}

    def rebase(self, endpoint: str) -> None:
        """Use the base server at ``endpoint`` (started again by the driver); the episode under way is dropped."""
        if self._client is not None:
            self._client.close()
        self._client = self._connect(endpoint)
        self._follower.client = self._client
        self._replay.drop_pending()
        self._obs = None


@dataclass
class Segment:
    """A worker's answer to one :meth:`RolloutActor.collect`.

    Attributes:
        worker: the worker's number.
        steps: the steps asked for.
        result: :meth:`RolloutActor.collect`'s dict; ``None`` if the worker lost the base or died meanwhile.
        error: why ``result`` is ``None``.
        stale: it was asked for before the latest :meth:`RayRollouts.rebase` (so it may have met the base that
            was replaced since).
        died: the worker's process is gone (:meth:`RayRollouts.replace` starts another).
    """

    worker: int
    steps: int
    result: dict[str, Any] | None
    error: str = ""
    stale: bool = False
    died: bool = False


class RayRollouts:
    """The driver's side: ``workers`` :class:`RolloutActor` s on a Ray cluster (a local one for ``address`` None).

    Raises:
        ConfigError: Ray missing, no cluster at ``address``, or a worker that could not start (one line).
    """

    def __init__(
        self,
        cfg: Any,
        space: Any,
        base: Any,
        endpoint: str | None,
        workers: int,
        address: str | None,
        first_episode: int,
        say: Callable[[str], None],
    ) -> None:
        if workers < 1:
            raise ConfigError(f"--workers={workers} must be >= 1")
        self.ray = connect_ray(address, workers)
        self.say, self.endpoint = say, endpoint
        self.actors: list[Any] = []
        self.running: dict[Any, tuple[int, int, int]] = {}  # collect call -> (worker, steps asked, rebases then)
        self.rebases = self.replaced = 0
        remote = self.ray.remote(RolloutActor).options(num_cpus=1, max_restarts=0)
        niceness = os.getpriority(os.PRIO_PROCESS, 0)
        self._start = lambda k, episode: remote.remote(cfg, space, base, self.endpoint, k, episode, niceness)
        try:
            self.actors = [self._start(k, first_episode) for k in range(workers)]
            pids = [info["pid"] for info in await_ready(self.ray, self.actors)]
        except BaseException:
            self.close()
            raise
        say(f"{workers} Ray rollout workers ready (pids {', '.join(map(str, pids))})")

    def dispatch(self, worker: int, acting_state: dict[str, Any], steps: int) -> None:
        """Ask ``worker`` for a segment of ``steps`` steps made with ``acting_state``."""
        self.running[self.actors[worker].collect.remote(acting_state, steps)] = (worker, steps, self.rebases)

    def next(self) -> Segment:
        """The next segment to finish.

        Raises:
            ConfigError: no segment finished within :data:`SEGMENT_TIMEOUT_S`, or a worker failed in its code.
        """
        from .base_follower import BaseUnavailable

        done, _ = self.ray.wait(list(self.running), num_returns=1, timeout=SEGMENT_TIMEOUT_S)
        if not done:
            raise ConfigError(f"no Ray rollout worker finished a segment within {SEGMENT_TIMEOUT_S:.0f} s")
        worker, steps, rebases = self.running.pop(done[0])
        try:
            return Segment(worker, steps, self.ray.get(done[0]))
        except BaseUnavailable as e:  # Ray's task error derives from the worker's exception
            why = str(e).strip().splitlines()[-1][:300]
            return Segment(worker, steps, None, why, stale=rebases < self.rebases)
        except self.ray.exceptions.RayActorError as e:  # the worker's process is gone (killed, out of memory)
            why = str(e).strip().splitlines()[0][:300]
            return Segment(worker, steps, None, why, died=True)
        except self.ray.exceptions.RayTaskError as e:
            why = str(e).strip().splitlines()[-1][:300]
            raise ConfigError(
                f"Ray rollout worker {worker} failed ({why}): the run stops; the same command resumes it from its "
                f"last checkpoint"
            ) from None

    def replace(self, worker: int, first_episode: int) -> None:
        """Start a new worker in place of ``worker``, whose process died; its episode seeds continue after the
        run's ``first_episode`` episodes so far.

        Raises:
            ConfigError: this run replaced :data:`WORKER_RESTARTS` workers already, or the new one did not start.
        """
        if self.replaced >= WORKER_RESTARTS:
            raise ConfigError(
                f"Ray rollout worker {worker} died after {WORKER_RESTARTS} workers were started again: the run "
                f"stops; the same command resumes it from its last checkpoint"
            )
        self.replaced += 1
        self.ray.kill(self.actors[worker], no_restart=True)
        self.actors[worker] = self._start(worker, first_episode)
        pid = await_ready(self.ray, [self.actors[worker]])[0]["pid"]
        self.say(
            f"Ray rollout worker {worker} started again: pid {pid} ({self.replaced} of {WORKER_RESTARTS} restarts)"
        )

    def rebase(self, endpoint: str) -> None:
        """Point every worker at the base server at ``endpoint`` (after the driver started it again); a worker
        started later connects to it too."""
        self.rebases += 1
        self.endpoint = endpoint
        # queued behind each worker's running segment (which then fails or finishes with the old base)
        for actor in self.actors:
            actor.rebase.remote(endpoint)

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor, no_restart=True)
        self.actors, self.running = [], {}
        self.ray.shutdown()
