"""Feeding a robot's chunk executor from a policy server: :class:`ChunkFeed`.

A :class:`ChunkFeed` runs a :class:`rcs.serving.client.PolicyClient` in its own thread at the request period:
observe, request, turn the reply into an :class:`rcs.control.chunking.ActionChunk` and
:meth:`ChunkExecutor.submit` it. While the server is unreachable it submits nothing, so the control loop's
watchdog holds, stops and disarms the robot; after the server returns the feed re-arms only once a fresh
handshake succeeded with a matching schema. (Not to be confused with the ROS 2 ``robot_bridge`` node, which
bridges a robot server to ROS topics.)
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from enum import Enum
from typing import Protocol

import numpy as np

from rcs.control.chunking import ActionChunk, ChunkExecutor
from rcs.control.priorities import promote_current_thread
from rcs.errors import RcsError
from rcs.serving.client import (
    DeadlineExceeded,
    HandshakeTimeout,
    PolicyClient,
    SchemaMismatchError,
    ServerError,
    ServingError,
    SessionLost,
)
from rcs.serving.protocol import COMMITTED, WIRE_DTYPES, ProtocolError

log = logging.getLogger(__name__)


class ActionMap(Protocol):
    """Converts action chunks between a policy's layout and the executor's (see :class:`ChunkFeed`)."""

    names_in: tuple[str, ...]
    names_out: tuple[str, ...]

    def to_executor(self, actions: np.ndarray, seed: np.ndarray | None) -> np.ndarray:
        """(H, len(names_in)) -> (H, len(names_out)); ``seed``: the executor's values at the chunk start
        (``None`` before anything was commanded). Raises ValueError for a chunk it cannot convert."""

    def from_executor(self, values: np.ndarray) -> np.ndarray:
        """(K, len(names_out)) -> (K, len(names_in))."""


def map_seed(executor: ChunkExecutor, tick: int) -> np.ndarray | None:
    """Executor values to start an action map from: the plan at ``tick``, else the last command executed, else
    ``None`` (nothing commanded yet: the map starts from the device's measured state)."""
    committed = executor.request(tick).committed
    if len(committed):
        return committed[0]
    last = executor.history.values[-1:]  # a copy of the list: the control thread may append meanwhile
    return last[0] if last else None


def submit_chunk(
    executor: ChunkExecutor,
    action_map: ActionMap | None,
    actions: np.ndarray,
    obs_tick: int,
    policy_dt: float,
    capture_time: float,
) -> str:
    """Hand a policy's chunk for the observation of ``obs_tick`` to the executor: converted by ``action_map``
    (a TCP-pose policy's IK) from the executor's plan at that tick, starting at that tick. Returns ``"submitted"``,
    ``"rejected_action_map"`` or ``"rejected_<reason>"`` (the executor's), the counter a feed keeps."""
    actions = np.asarray(actions, dtype=np.float64)
    if action_map is not None:
        try:
            actions = action_map.to_executor(actions, map_seed(executor, obs_tick))
        except ValueError as e:
            log.warning("chunk refused by the action map: %s", e)
            return "rejected_action_map"
    chunk = ActionChunk(
        start_tick=int(obs_tick),
        actions=actions,
        names=executor.names,
        policy_dt=policy_dt,
        control_dt=executor.config.control_dt,
        timestamp=capture_time,
    )
    rejection = executor.submit(chunk)
    return "submitted" if rejection is None else f"rejected_{rejection.reason}"


#: replies whose round trip a feed keeps for its latency percentiles
ROUND_TRIPS_KEPT = 2000


class FeedState(str, Enum):
    """Where a :class:`ChunkFeed` stands."""

    CONNECTING = "connecting"  # no session: chunks are not submitted
    ARMED = "armed"  # handshake done, schema matches: chunks are submitted
    REFUSED = "refused"  # the server's schema differs: never arms (terminal)
    STOPPED = "stopped"


#: ``observe()`` returns (control tick of the observation, monotonic capture time (s), tensors by name).
Observe = Callable[[], tuple[int, float, dict[str, np.ndarray]]]


class ChunkFeed:
    """Feeds a robot's :class:`ChunkExecutor` with chunks from a policy server (a :class:`PolicyClient`), in its
    own thread (see the module docstring).

    Args:
        client: the client (its :attr:`PolicyClient.expected` schema must be set; its action ``names``
            must equal the executor's joint names and order).
        executor: the control loop's executor.
        observe: called every request period from the feed thread.
        period_s: time between requests (s); default the schema's ``policy_dt``.
        budget_s: per-request time budget (s).
        handshake_timeout_s: wait for WELCOME this long per attempt (s).
        retry_s: pause between handshake attempts (s).
        on_arm: called (feed thread) after every successful handshake, e.g. ``task.engage``. The first
            chunk is submitted after it returns.
        on_lost: called (feed thread) when the server is declared lost.
        send_committed: send the executor's committed actions from the observation's tick (the frozen prefix
            of real-time chunking, subsampled to the policy rate) with each request, as
            :data:`~rcs.serving.protocol.COMMITTED`; policies that inpaint continue from them.
        action_map: converts chunks from the policy's action layout to the executor's and back (e.g.
            :class:`rcs.control.cartesian.PoseChunkToJoints` for a policy that outputs TCP poses); the
            server's action names must then be ``action_map.names_in``. A chunk it refuses is counted
            (``rejected_action_map``) and dropped.
        thread_priority: ``SCHED_FIFO`` priority of the feed thread (:mod:`rcs.control.priorities`; the policy link
            is on a real-time loop's control path), or ``None`` for the default scheduler.
    """

    def __init__(
        self,
        client: PolicyClient,
        executor: ChunkExecutor,
        observe: Observe,
        *,
        period_s: float | None = None,
        budget_s: float = 0.1,
        handshake_timeout_s: float = 0.5,
        retry_s: float = 0.1,
        on_arm: Callable[[], None] | None = None,
        on_lost: Callable[[], None] | None = None,
        send_committed: bool = True,
        action_map: ActionMap | None = None,
        thread_priority: int | None = None,
    ) -> None:
        if client.expected is None:
            raise ServingError("a chunk feed needs the robot's expected schema (refuses to arm otherwise)")
        names = client.expected.action.names
        if action_map is not None and action_map.names_out != executor.names:
            raise SchemaMismatchError(
                [f"action map output {action_map.names_out} differs from the executor's {executor.names}"]
            )
        wanted = executor.names if action_map is None else action_map.names_in
        if names != wanted:
            raise SchemaMismatchError([f"action names {names} differ from the robot's {wanted}"])
        self.action_map = action_map
        self.client = client
        self.executor = executor
        self.observe = observe
        self.period_s = period_s if period_s is not None else client.expected.policy_dt
        self.budget_s = budget_s
        self.handshake_timeout_s = handshake_timeout_s
        self.retry_s = retry_s
        self.on_arm = on_arm
        self.on_lost = on_lost
        self.send_committed = send_committed
        self.thread_priority = thread_priority
        self.state = FeedState.CONNECTING
        self.refusal: SchemaMismatchError | None = None
        self.counters: dict[str, int] = {"submitted": 0, "handshakes": 0, "lost": 0, "deadline_missed": 0}
        self.events: list[tuple[float, str]] = []  # (monotonic s, what) for diagnostics and tests
        #: round trips (observation sent -> chunk received, s) of the latest replies, oldest first
        self.round_trips: deque[float] = deque(maxlen=ROUND_TRIPS_KEPT)
        self.replies = 0  # replies received (every one's round trip was appended)
        self.last_observe_error = ""  # why the latest refused observation was refused
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    def _event(self, what: str) -> None:
        self.events.append((time.monotonic(), what))

    def start(self) -> ChunkFeed:
        """Start the feed thread."""
        self._thread = threading.Thread(target=self._run, name="rcs-chunk-feed", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and close the client."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.client.close()
        if self.state is not FeedState.REFUSED:
            self.state = FeedState.STOPPED

    @property
    def armed(self) -> bool:
        """Whether chunks are being submitted."""
        return self.state is FeedState.ARMED

    def _run(self) -> None:
        if self.thread_priority is not None:
            promote_current_thread("policy feed", self.thread_priority)
        next_t = time.monotonic()
        while not self._stop.is_set():
            if self.state is FeedState.CONNECTING:
                self._connect()
                next_t = time.monotonic()
                continue
            if self.state is not FeedState.ARMED:
                return
            self._step()
            next_t += self.period_s
            self._idle_until(next_t)
            next_t = max(next_t, time.monotonic())

    def _idle_until(self, t: float) -> None:
        """Wait until ``t`` (monotonic s), heartbeating when the wait is longer than the heartbeat period."""
        while self.state is FeedState.ARMED and (left := t - time.monotonic()) > 0:
            if self._stop.wait(min(left, self.client.heartbeat_s)):
                return
            if t - time.monotonic() <= 0:
                return
            try:
                self.client.heartbeat()
            except SessionLost as e:
                self._lost(str(e))
                return
            if not self.client.alive:
                self._lost(f"silent for {self.client.silent_for():.2f} s")
                return

    def _connect(self) -> None:
        try:
            welcome = self.client.handshake(self.handshake_timeout_s)
        except SchemaMismatchError as e:
            self.refusal = e
            self.state = FeedState.REFUSED
            self._event("refused")
            log.error("refusing to arm: %s", e)
            return
        except (HandshakeTimeout, ServerError, ProtocolError) as e:
            log.debug("handshake failed: %s", e)
            self._stop.wait(self.retry_s)
            return
        self._count("handshakes")
        self._event(f"handshake {welcome.session_id:x}")
        if self.on_arm is not None:
            self.on_arm()
        self.state = FeedState.ARMED
        self._event("armed")

    def _lost(self, why: str) -> None:
        self._count("lost")
        self._event(f"lost: {why}")
        log.warning("policy server lost (%s): holding, no chunks until a fresh handshake", why)
        self.state = FeedState.CONNECTING
        self.client.reset()
        if self.on_lost is not None:
            self.on_lost()

    def committed_prefix(self, tick: int) -> np.ndarray | None:
        """The executor's committed actions from ``tick`` at the policy rate, ``(K, D)``; None if none."""
        schema = self.client.expected
        assert schema is not None
        ticks = self.executor.request(tick).committed
        stride = max(1, round(schema.policy_dt / self.executor.config.control_dt))
        prefix = ticks[::stride][: schema.chunk_size]
        if len(prefix) == 0:
            return None
        if self.action_map is not None:
            prefix = self.action_map.from_executor(prefix)
        return np.ascontiguousarray(prefix, dtype=WIRE_DTYPES[schema.action.dtype])

    def _step(self) -> None:
        try:
            tick, capture_time, obs = self.observe()
        except RcsError as e:  # a sensor that says why (a stale camera, a lost tracker): one line, no chunk
            self._count("observe_error")
            self.last_observe_error = str(e)
            log.warning("observation refused: %s", e)
            return
        except Exception:  # a failing sensor read must not kill the feed: no chunk, the watchdog acts
            self._count("observe_error")
            log.exception("observe() failed")
            return
        if self.send_committed:
            committed = self.committed_prefix(tick)
            if committed is not None:
                obs = {**obs, COMMITTED: committed}
        try:
            reply = self.client.request(obs, tick, capture_time, self.budget_s)
        except DeadlineExceeded:
            self._count("deadline_missed")
            if not self.client.alive:
                self._lost(f"silent for {self.client.silent_for():.2f} s")
            return
        except SessionLost as e:
            self._lost(str(e))
            return
        except ServerError as e:
            self._count(f"server_{e.code}")
            return
        except ProtocolError as e:
            self._count("bad_reply")
            log.warning("bad reply: %s", e)
            return
        self.round_trips.append(float(reply.rtt_s))
        self.replies += 1
        if self.state is not FeedState.ARMED or self._stop.is_set():
            return
        schema = self.client.expected
        assert schema is not None
        self._count(
            submit_chunk(
                self.executor, self.action_map, reply.actions, int(reply.obs_tick), schema.policy_dt, reply.capture_time
            )
        )
