"""The base policy's action for each policy step of each robot, from the base served by ``rcs serve``.

The base (e.g. the diffusion checkpoint) predicts a chunk of actions and was trained and tuned to execute
``replan_steps`` of them (lerobot's ``n_action_steps``) before it is asked again. The residual acts every step,
so :class:`BaseFollower` keeps the base's last chunk per robot session and hands out the entry of the current step:

    k = round((t - t_chunk) / policy_dt)

with ``t`` the robot's capture time of the observation and ``t_chunk`` that of the observation the chunk was
predicted from. A new chunk is asked for when ``k`` leaves ``[0, replan_steps)``, for a session's first step,
or when its control tick goes backwards (a new episode). A base that does not answer within ``budget_s`` raises
:class:`BaseUnavailable` and forgets the chunk: nothing downstream ever acts on a base action older than its
horizon.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from rcs.errors import RcsError
from rcs.serving.policy import RequestContext

from .features import MinMax

log = logging.getLogger(__name__)


class BaseUnavailable(RcsError):
    """The base policy did not answer in time (or refused): this step has no base action."""


@dataclass
class _Chunk:
    actions: np.ndarray  # (H, D) action units
    tick: int
    capture_time: float  # s, robot clock of the observation it was predicted from


class BaseFollower:
    """Per-step base actions for each robot session, from a :class:`rcs.serving.client.PolicyClient` of the base.

    Args:
        client: a client of the base's server (handshake done or not).
        replan_steps: base actions executed per chunk (the base's ``n_action_steps``).
        policy_dt: the base's period (s).
        budget_s: the longest wait for a base chunk (s).
    """

    def __init__(self, client: object, replan_steps: int, policy_dt: float, budget_s: float) -> None:
        if replan_steps < 1:
            raise ValueError(f"replan_steps={replan_steps} must be >= 1")
        self.client = client
        self.replan_steps = int(replan_steps)
        self.policy_dt = float(policy_dt)
        self.budget_s = float(budget_s)
        self._chunks: dict[int, _Chunk] = {}  # by robot session: robots sharing a composed server keep their own
        self._last_tick: dict[int, int] = {}
        self._chunk_step: dict[int, int] = {}  # by robot session: k of its last action
        #: chunks asked of the base, and the requests it did not answer in time
        self.requests = 0
        self.failures = 0

    def reset(self) -> None:
        """Forget every session's chunk (each session's next step asks the base)."""
        self._chunks.clear()

    def action(self, observation: Mapping[str, np.ndarray], context: RequestContext) -> np.ndarray:
        """The base's action (action units, (D,) float64) for the step observed in ``observation``.

        Raises:
            BaseUnavailable: the base did not answer within ``budget_s`` or refused the observation.
        """
        return self.actions(observation, context, 1)[0]

    def actions(self, observation: Mapping[str, np.ndarray], context: RequestContext, n: int) -> np.ndarray:
        """The base's actions ((n, D) float64) for this step and the ``n - 1`` after it, from the same chunk (its
        last row repeated where the chunk ends). Raises like :meth:`action`."""
        previous = self._last_tick.get(context.session_id)
        self._last_tick[context.session_id] = context.tick
        chunk = self._chunks.get(context.session_id)
        k = -1
        if chunk is not None and previous is not None:
            if context.tick > previous:
                k = round((context.capture_time - chunk.capture_time) / self.policy_dt)
        if not 0 <= k < min(self.replan_steps, len(chunk.actions) if chunk else 0):
            chunk = self._fetch(observation, context)
            k = 0
        self._chunk_step[context.session_id] = k
        rows = np.minimum(np.arange(k, k + n), len(chunk.actions) - 1)
        return np.asarray(chunk.actions[rows], dtype=np.float64)

    def chunk_step(self, session_id: int) -> int:
        """``k`` of the session's last :meth:`actions`: its first row's index in the base's chunk, in
        ``[0, replan_steps)`` (0: the chunk was predicted from that step's observation).

        Raises:
            KeyError: the session has not asked for an action yet.
        """
        return self._chunk_step[session_id]

    def _fetch(self, observation: Mapping[str, np.ndarray], context: RequestContext) -> _Chunk:
        from rcs.serving.client import ServingError

        self._chunks.pop(context.session_id, None)
        self.requests += 1
        try:
            if not self.client.connected:
                self.client.handshake(max(self.budget_s, 2.0))
            reply = self.client.request(observation, context.tick, context.capture_time, self.budget_s)
        except ServingError as e:
            self.failures += 1
            raise BaseUnavailable(f"base policy: {e}") from None
        actions = np.asarray(reply.actions, dtype=np.float64)
        if actions.ndim != 2 or not np.isfinite(actions).all():
            self.failures += 1
            raise BaseUnavailable(f"base policy: chunk {actions.shape} with non-finite values refused")
        chunk = _Chunk(actions, context.tick, context.capture_time)
        self._chunks[context.session_id] = chunk
        return chunk


class MidRangeBase:
    """No base: every step's "base action" is the middle of the base data's action range (normalized 0).

    ``rcs train-residual --scratch`` trains with it and ``scale`` 1, so the learner's action alone spans the whole
    range of the base's data: RL from scratch on exactly the residual's observation, robot path and reward.

    Args:
        action: the base's action statistics (:class:`policies.residual.features.MinMax`).
        replan_steps, policy_dt: as :class:`BaseFollower`'s (the env reads them).
    """

    def __init__(self, action: MinMax, replan_steps: int, policy_dt: float) -> None:
        self.middle = np.asarray(action.unnormalize(np.zeros_like(action.low)), dtype=np.float64)
        self.replan_steps = int(replan_steps)
        self.policy_dt = float(policy_dt)
        self.requests = 0  # never asks anything: no inference latency is simulated
        self.failures = 0

    def reset(self) -> None:
        """Nothing to forget."""

    def actions(self, observation: Mapping[str, np.ndarray], context: RequestContext, n: int) -> np.ndarray:
        """``n`` copies of the middle of the action range ((n, D) float64, action units)."""
        return np.tile(self.middle, (n, 1))

    def chunk_step(self, session_id: int) -> int:
        """Always 0: there are no chunks (every step is the start of one)."""
        return 0
