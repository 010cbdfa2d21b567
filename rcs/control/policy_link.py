"""The policy link: observe -> request a chunk -> chunk executor -> watchdog -> safety filter -> device.

One object wires a served policy (``rcs serve``) to a robot's :class:`rcs.control.task.PolicyTask`, for every
user of that chain: the robot server's policy link (``rcs robot`` / ``rcs up``, :mod:`rcs.remote.server`) and
the evaluation of a checkpoint in simulation (``rcs eval`` / ``rcs demo``, :mod:`rcs.eval`)::

    read() -> PolicyLink.observe (observation assembly, per the schema) -> ChunkFeed thread -> PolicyClient
        ==== ZeroMQ ====> policy server;  chunk -> [action map: TCP poses -> joints] -> ChunkExecutor
    ControlLoop thread: ChunkExecutor -> Watchdog -> SafetyFilter -> device         (rcs.control.task)

What the link decides:

- **request schedule**: a chunk every ``replan_steps`` policy periods (:class:`LinkSchedule`; default the
  checkpoint's ``n_action_steps``, the open-loop horizon it was trained and evaluated with);
- **watchdog timeouts** from that period (:meth:`LinkSchedule.watchdog`): the robot stops once the next chunk is
  ``overdue_s`` late, never between two chunks that arrive on schedule;
- **observation assembly** (:meth:`PolicyLink.assemble`): each schema entry from the caller's feature tensors
  (cast to the schema's dtype, shape checked), the instruction text encoded for policies that take one;
- **action map**: a policy whose actions are TCP poses or joint deltas gets the device kind's robot-side
  conversion to joint targets (:attr:`rcs.control.task.DeviceKind.action_map`).

Where the features come from is the caller's part (``read``): the robot server takes its latest published
state and camera frames, the evaluation takes the task's observation and renders the cameras from a simulator
snapshot.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from rcs.control.cartesian import pose_layout_of
from rcs.control.joint_deltas import is_joint_delta_layout
from rcs.control.task import PolicyTask, device_kind
from rcs.errors import ConfigError
from rcs.percentiles import spread
from rcs.safety.watchdog import DEFAULT_CHUNK_OVERDUE_S, watchdog_for
from rcs.serving.chunk_feed import ChunkFeed, FeedState
from rcs.serving.client import PolicyClient, SchemaMismatchError
from rcs.serving.protocol import TEXT_UNIT, Schema, encode_text

log = logging.getLogger(__name__)

#: ``read()`` returns (control tick of the state, monotonic capture time (s), feature tensors by name).
Read = Callable[[], tuple[int, float, Mapping[str, np.ndarray]]]


def check_replan_steps(field: str, value: int, chunk_size: int) -> int:
    """``value`` if it is a valid number of policy steps per request, else a ConfigError naming ``field``."""
    if not 1 <= value <= chunk_size:
        raise ConfigError(f"{field}={value}: must be in [1, {chunk_size}] (the chunk length)")
    return value


@dataclass(frozen=True)
class LinkSchedule:
    """When the robot asks for a chunk.

    Attributes:
        replan_steps: policy-rate actions executed from each chunk before the next request (1: every period).
        policy_dt: s between two actions of a chunk (the schema's ``policy_dt``).
    """

    replan_steps: int
    policy_dt: float

    @property
    def period_s(self) -> float:
        """s between two requests: ``replan_steps * policy_dt``."""
        return self.replan_steps * self.policy_dt

    def watchdog(
        self, configured: Mapping[str, Any] | None = None, overdue_s: float = DEFAULT_CHUNK_OVERDUE_S
    ) -> dict[str, Any]:
        """:class:`rcs.safety.watchdog.WatchdogConfig` fields: ``configured`` ones, and the timeouts it leaves
        out from the request period (:func:`rcs.safety.watchdog.watchdog_for`). A ``stop_after_s`` (s) not
        longer than the period is refused: the robot would stop between two chunks that arrive on time."""
        merged = {**watchdog_for(self.period_s, overdue_s), **(configured or {})}
        stop = merged["stop_after_s"]
        if isinstance(stop, (int, float)) and stop <= self.period_s:
            raise ConfigError(
                f"watchdog.stop_after_s={stop}: must exceed the policy link's request period "
                f"{self.period_s:.3f} s (replan_steps x policy_dt), or the arm stops between chunks"
            )
        return merged


class PolicyLink:
    """A served policy driving ``task``'s executor (see the module docstring).

    Args:
        task: the robot's control pipeline (its executor receives the chunks; it is engaged on every handshake
            unless ``on_arm`` says otherwise).
        robot: the device (its kind gives the action map of TCP-pose policies).
        client: the policy client; its expected schema is what the robot requires (a server with another one
            is refused before any motion).
        schedule: the request schedule.
        read: the caller's features (see :data:`Read`), called from the feed thread once per request.
        budget_s: the server's time budget per request (s).
        instruction: the task text for policies that take one (a ``utf8`` schema entry).
        on_arm: called (feed thread) after every successful handshake; default ``task.engage``.
        measured_state: the device's latest state (any thread), for the action map's IK start; needed only
            for TCP-pose policies.
        thread_priority: ``SCHED_FIFO`` priority of the feed thread (:mod:`rcs.control.priorities`), or
            ``None`` for the default scheduler.
    """

    def __init__(
        self,
        task: PolicyTask,
        robot: Any,
        client: PolicyClient,
        schedule: LinkSchedule,
        read: Read,
        *,
        budget_s: float,
        instruction: str | None = None,
        on_arm: Callable[[], None] | None = None,
        measured_state: Callable[[], Any] | None = None,
        thread_priority: int | None = None,
    ) -> None:
        schema = client.expected
        if schema is None:
            raise SchemaMismatchError(["a policy link needs the robot's expected schema"])
        self.schema: Schema = schema
        self.task = task
        self.schedule = schedule
        self.read = read
        self.instruction = instruction
        self.action_map: Any = None
        names = schema.action.names
        if pose_layout_of(names) is not None or is_joint_delta_layout(names):
            builder = device_kind(robot).action_map
            if builder is None:
                raise ConfigError(
                    f"policy action {list(names)}: TCP-pose and joint-delta actions need an arm "
                    f"(this robot is a {type(robot).__name__})"
                )
            if measured_state is None:
                raise ConfigError("a TCP-pose or joint-delta policy needs the robot's measured state")
            # in the feed thread; IK on a private copy of the kinematics (the loop's safety filter uses FK)
            self.action_map = builder(robot, measured_state, names)
        self.feed = ChunkFeed(
            client,
            task.executor,
            self.observe,
            period_s=schedule.period_s,
            budget_s=budget_s,
            on_arm=on_arm or task.engage,
            action_map=self.action_map,
            thread_priority=thread_priority,
        )

    # -- observation ------------------------------------------------------------------------------------
    def assemble(self, features: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The request's observation: each schema entry from ``features`` (cast to its dtype), text entries
        from :attr:`instruction`. Raises ConfigError for a missing or misshapen feature, ValueError for a
        text entry without an instruction."""
        out: dict[str, np.ndarray] = {}
        for spec in self.schema.observation:
            if spec.unit == TEXT_UNIT:
                if self.instruction is None:
                    raise ValueError("the policy takes an instruction but neither --instruction nor the env gives one")
                out[spec.name] = encode_text(self.instruction, spec.shape[0], spec.name)
                continue
            if spec.name not in features:
                raise ConfigError(f"policy observation {spec.name!r}: the robot gives {sorted(features)}")
            value = np.asarray(features[spec.name], dtype=spec.dtype)
            if value.shape != spec.shape:
                raise ConfigError(
                    f"policy observation {spec.name!r}: robot gives shape {value.shape}, schema {spec.shape}"
                )
            out[spec.name] = value
        return out

    def observe(self) -> tuple[int, float, dict[str, np.ndarray]]:
        """(tick of the state, monotonic capture time (s), the request's observation), from ``read``."""
        tick, captured, features = self.read()
        return tick, captured, self.assemble(features)

    # -- lifecycle and counters -------------------------------------------------------------------------
    def start(self) -> PolicyLink:
        """Start the feed thread (handshake, then a request every ``schedule.period_s``)."""
        self.feed.start()
        return self

    def stop(self) -> None:
        """Stop the feed thread and close the client."""
        self.feed.stop()

    @property
    def state(self) -> FeedState:
        """Where the feed stands (connecting, armed, refused, stopped)."""
        return self.feed.state

    @property
    def refusal(self) -> SchemaMismatchError | None:
        """Why the server was refused (its schema differs), if it was."""
        return self.feed.refusal

    @property
    def counters(self) -> dict[str, int]:
        """The feed's counters (submitted, handshakes, lost, deadline_missed, rejections by reason)."""
        return self.feed.counters

    @property
    def last_observe_error(self) -> str:
        """Why the latest refused observation was refused (a stale camera...), ``""`` if none was."""
        return self.feed.last_observe_error

    @property
    def replies(self) -> int:
        """Replies received since the link started."""
        return self.feed.replies

    def latency_ms(self, last: int | None = None) -> dict[str, float]:
        """Round trip (observation sent -> chunk received, ms) of the ``last`` replies (default: every reply kept,
        at most :data:`rcs.serving.chunk_feed.ROUND_TRIPS_KEPT`): ``p50``, ``p99``, ``max`` and ``replies`` (how
        many); empty before the first reply."""
        trips = list(self.feed.round_trips)  # one atomic copy under the GIL (the feed thread appends)
        if last is not None:
            trips = trips[len(trips) - min(max(last, 0), len(trips)) :]
        latency = spread(trips, scale=1e3)
        return {**latency, "replies": len(trips)} if latency else {}

    def report(self) -> dict[str, Any]:
        """The link's counters: the feed's (``bridge``), its state, the round-trip latency and, for TCP-pose
        policies, the IK's (``ik``)."""
        out: dict[str, Any] = {"bridge": dict(self.feed.counters), "state": self.feed.state.value}
        latency = self.latency_ms()
        if latency:
            out["latency_ms"] = latency
        if hasattr(self.action_map, "ik_misses"):  # a TCP-pose map (joint deltas need no IK)
            out["ik"] = {"waypoints": self.action_map.waypoints, "misses": self.action_map.ik_misses}
        return out
