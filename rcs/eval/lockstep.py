"""Episodes of the robot path in lockstep: the robot side of ``rcs eval`` without threads, pacing or a server.

The chain is the one a served policy drives (:mod:`rcs.eval.episodes`): the action map (a TCP-pose policy's IK,
:func:`rcs.serving.chunk_feed.submit_chunk`), the chunk executor, the watchdog, the safety filter and the simulated
robot at the control rate (:func:`rcs.control.task.make_policy_task`). Here the caller hands over the policy's
chunk for the current observation and :meth:`LockstepEpisode.step` runs one policy period of control ticks, then
returns the next observation. What differs from ``rcs eval``: inference latency is what the caller says
(``latency_s``: the reply arrives that much simulated time after its observation; 0 by default), there is no
scheduling jitter, and it runs as fast as the CPU allows.
Learning in the pipeline a policy is deployed through (``rcs train-residual``) needs exactly that.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rcs.control.policy_link import LinkSchedule
from rcs.control.task import device_kind, make_policy_task
from rcs.errors import ConfigError
from rcs.serving.chunk_feed import submit_chunk


@dataclass(frozen=True)
class StepResult:
    """What one policy period produced.

    Attributes:
        observation: the task's observation after it (``RobotEnv.observe``).
        measures: the task's measures of it (``is_success`` and its numbers).
        success: ``is_success`` has held for ``success_hold_s``: the episode succeeded.
        failure: the task's failure reason (the episode ended), else ``None``.
        timeout: the env's ``max_episode_steps`` of simulated time are over.
        submitted: what became of the chunk (``"submitted"`` or ``"rejected_<reason>"``).
    """

    observation: dict[str, np.ndarray]
    measures: dict[str, Any]
    success: bool
    failure: str | None
    timeout: bool
    submitted: str


class LockstepEpisode:
    """An env's simulated robot under the policy task, stepped one policy period at a time.

    Args:
        env: an rcs env on a simulated robot (``robot.advance``); never stepped, only reset and observed.
        action_names: the policy's action entry names (a TCP-pose layout is converted with the arm's IK).
        policy_dt: s between two actions of a chunk (the policy's period).
        rate_hz: control rate (Hz; ``rcs eval``'s default).
        success_hold_s: s of simulated time ``is_success`` must hold (as ``rcs eval`` counts a success).
    """

    def __init__(
        self,
        env: Any,
        action_names: Sequence[str],
        policy_dt: float,
        rate_hz: float = 100.0,
        success_hold_s: float = 0.25,
    ) -> None:
        self.u = env.unwrapped
        self.robot = self.u.robot
        if not callable(getattr(self.robot, "advance", None)):
            raise ConfigError(f"lockstep episodes need a simulated robot (advance), not a {type(self.robot).__name__}")
        self.action_names = tuple(action_names)
        self.policy_dt = float(policy_dt)
        self.rate_hz = float(rate_hz)
        self.control_dt = 1.0 / self.rate_hz
        self.ticks_per_step = round(self.policy_dt / self.control_dt)
        if abs(self.ticks_per_step * self.control_dt - self.policy_dt) > 1e-9:
            raise ConfigError(f"policy_dt={policy_dt} s is not a whole number of control periods at {rate_hz} Hz")
        self.hold_steps = max(1, round(success_hold_s / self.u.dt))
        self.max_time = self.u.config.max_episode_steps * self.u.dt
        self.task: Any = None
        self.action_map: Any = None
        self.tick = 0
        self._held = 0

    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]:
        """Reset the env's scene from ``seed``, build a fresh policy task, engage it; returns the observation."""
        self.u.reset(seed=seed)
        schedule = LinkSchedule(1, self.policy_dt)
        self.task = make_policy_task(self.robot, self.rate_hz, watchdog=schedule.watchdog())
        builder = device_kind(self.robot).action_map
        names = self.task.executor.names
        self.action_map = None
        if tuple(self.action_names) != tuple(names):
            if builder is None:
                raise ConfigError(f"policy actions {list(self.action_names)}: this robot takes {list(names)}")
            self.action_map = builder(self.robot, self.robot.read, self.action_names)
        self.tick, self._held = 0, 0
        self.task.engage()
        self._run(1)  # the engage request is applied at a tick: the executor holds the measured pose from here
        return self.u.observe()

    def step(self, chunk: np.ndarray, latency_s: float = 0.0) -> StepResult:
        """Hand ``chunk`` ((H, D) in the policy's action names; its first action is for the observation's tick) to
        the robot side ``latency_s`` after the observation (the robot keeps executing its previous plan
        meanwhile, as when a served policy's reply arrives that late), run the rest of the policy period, observe.

        Raises:
            ValueError: ``latency_s`` not within [0, policy_dt) (a reply later than the next observation).
        """
        if self.task is None:
            raise RuntimeError("reset() first")
        if not 0.0 <= latency_s < self.policy_dt:
            raise ValueError(f"latency_s={latency_s} must be in [0, policy_dt={self.policy_dt}) s")
        late = round(latency_s / self.control_dt)
        obs_tick = self.tick
        self._run(late)
        # stamped now: the executor refuses chunks whose observation is old on the host's clock; in lockstep the
        # host time between the observation and this point is only the simulation's
        now = time.monotonic()
        submitted = submit_chunk(self.task.executor, self.action_map, chunk, obs_tick, self.policy_dt, now)
        self._run(self.ticks_per_step - late)
        obs = self.u.observe()
        measures = self.u.task_measures(obs)
        self._held = self._held + 1 if measures.get("is_success") else 0
        return StepResult(
            obs,
            measures,
            self._held >= self.hold_steps,
            self.u.failure_reason(obs, measures),
            self.sim_time >= self.max_time - 1e-9,
            submitted,
        )

    @property
    def sim_time(self) -> float:
        """s of simulated time since the reset (control ticks run)."""
        return self.tick * self.control_dt

    def _run(self, ticks: int) -> None:
        task, robot = self.task, self.robot
        for _ in range(ticks):
            state = task.read(self.tick)
            task.write(self.tick, task.compute(self.tick, state))
            robot.advance(self.control_dt)
            self.tick += 1
