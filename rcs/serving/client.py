"""Robot side of the policy server: :class:`PolicyClient` (DEALER) and :class:`RobotBridge`.

:class:`PolicyClient` does the handshake (refusing a server whose schema differs from the robot's),
sends observations with a relative deadline, and detects a dead server (no message for
``server_timeout_s``). It is used from one thread at a time.

:class:`RobotBridge` runs a client in its own thread at the policy rate: observe, request, turn the reply
into an :class:`rcs.control.chunking.ActionChunk` and :meth:`ChunkExecutor.submit` it. While the server is
unreachable it submits nothing, so the control loop's watchdog holds, stops and disarms the robot; after the
server returns the bridge re-arms only once a fresh handshake succeeded with a matching schema.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

import numpy as np
import zmq

from rcs.control.chunking import ActionChunk, ChunkExecutor
from rcs.errors import RcsError
from rcs.serving import shm
from rcs.serving.keys import KeyPair, curve_client
from rcs.serving.shm import ShmWriter
from rcs.serving.protocol import (
    COMMITTED,
    SERVER_TYPES,
    WIRE_DTYPES,
    Header,
    Message,
    MsgType,
    ProtocolError,
    Schema,
    decode,
    encode,
    schema_differences,
)

log = logging.getLogger(__name__)

#: Server error codes that end this client's session: the bridge re-handshakes at once (``evicted``: the server
#: admitted a newer session in its place, see docs/protocol.md "Sessions").
SESSION_ENDED_CODES = ("unknown_session", "schema_hash", "evicted")


class ServingError(RcsError):
    """Base class of the client's errors."""


class SchemaMismatchError(ServingError):
    """The server's schema differs from the robot's: the robot must not arm.

    Attributes:
        differences: one line per differing field.
    """

    def __init__(self, differences: list[str]) -> None:
        self.differences = differences
        super().__init__("server schema differs from the robot's: " + "; ".join(differences))


class HandshakeTimeout(ServingError, TimeoutError):
    """No WELCOME in time (server down, unreachable, or CURVE key refused)."""


class DeadlineExceeded(ServingError, TimeoutError):
    """No reply within the request's budget."""


class ServerError(ServingError):
    """The server answered ERROR.

    Attributes:
        code: the error code (``docs/protocol.md``).
        meta: the whole error metadata (``field``, ``message``, ``limit``).
    """

    def __init__(self, meta: Mapping[str, Any]) -> None:
        self.code = str(meta.get("code", ""))
        self.meta = dict(meta)
        super().__init__(f"server error {self.code}: {meta.get('field', '')}: {meta.get('message', '')}"
                         f" (limit: {meta.get('limit', '')})")


class SessionLost(ServingError):
    """The session is gone (server restarted, session timed out, schema swapped): re-handshake."""


@dataclass(frozen=True)
class Welcome:
    """What the server said in WELCOME.

    Attributes:
        session_id: this session.
        schema: the server's schema.
        checkpoint_id: the loaded checkpoint.
        heartbeat_s: heartbeat period the server expects (s).
    """

    session_id: int
    schema: Schema
    checkpoint_id: str
    heartbeat_s: float


@dataclass(frozen=True)
class Reply:
    """An action chunk received for a request.

    Attributes:
        actions: ``(chunk_size, D)`` array (units of the action schema).
        seq: request number it answers.
        obs_tick: control tick of the observation (the chunk's start tick).
        capture_time: client monotonic capture time of the observation (s).
        checkpoint_id: checkpoint that produced it.
        infer_ms: server-side inference time (ms).
        rtt_s: round trip measured by the client (s).
    """

    actions: np.ndarray
    seq: int
    obs_tick: int
    capture_time: float
    checkpoint_id: str
    infer_ms: float
    rtt_s: float


class PolicyClient:
    """A DEALER connection to a :class:`~rcs.serving.server.PolicyServer`.

    Args:
        endpoint: server endpoint, e.g. ``tcp://127.0.0.1:5555``.
        expected: the schema the robot needs; the handshake refuses any other (``None``: accept any; only
            for benchmarks and tools, never for a robot).
        server_key: the server's Z85 CURVE public key (enables CURVE).
        client_keys: this client's CURVE key pair (required with ``server_key``).
        server_timeout_s: no message from the server for this long (s) means it is gone.
        heartbeat_s: send a heartbeat when nothing was sent for this long (s).
        name: free text sent in HELLO (logged by the server).
        shared_memory: offer the same-host shared-memory fast path (:mod:`rcs.serving.shm`); used only if the
            server can map the segment (same host, same user), else tensor frames as usual. Needs ``expected``.
    """

    def __init__(
        self,
        endpoint: str,
        expected: Schema | None = None,
        *,
        server_key: bytes | None = None,
        client_keys: KeyPair | None = None,
        server_timeout_s: float = 1.0,
        heartbeat_s: float = 0.25,
        name: str = "",
        shared_memory: bool = False,
    ) -> None:
        if shared_memory and expected is None:
            raise ServingError("shared_memory needs the expected schema (it defines the segment layout)")
        if (server_key is None) != (client_keys is None) or (client_keys is not None and client_keys.secret is None):
            raise ServingError("CURVE needs the server's public key and this client's key pair (with secret)")
        self.endpoint = endpoint
        self.expected = expected
        self.server_key = server_key
        self.client_keys = client_keys
        self.server_timeout_s = server_timeout_s
        self.heartbeat_s = heartbeat_s
        self.name = name
        self.ctx = zmq.Context.instance()
        self.sock: zmq.Socket | None = None
        self.welcome: Welcome | None = None
        self.seq = 0
        self.last_rx = 0.0
        self.last_tx = 0.0
        self.handshakes = 0
        self.shared_memory = shared_memory
        self._shm: ShmWriter | None = None
        self.shm_active = False

    # -- connection -------------------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        """Whether a handshake succeeded and the session has not been lost since."""
        return self.welcome is not None

    def _new_socket(self) -> zmq.Socket:
        self._close_socket()
        s = self.ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.RCVHWM, 100)
        s.setsockopt(zmq.SNDHWM, 4)
        s.setsockopt(zmq.IMMEDIATE, 1)  # queue nothing to a peer that is not connected
        if self.server_key is not None and self.client_keys is not None:
            curve_client(s, self.server_key, self.client_keys)
        s.connect(self.endpoint)
        self.sock = s
        return s

    def _close_socket(self) -> None:
        if self.sock is not None:
            self.sock.close(0)
            self.sock = None

    def reset(self) -> None:
        """Forget the session and drop the socket (the next call must be :meth:`handshake`)."""
        self.welcome = None
        self._close_socket()

    def close(self) -> None:
        """Say BYE (best effort) and close."""
        if self.sock is not None and self.welcome is not None:
            try:
                self._send(encode(Header(MsgType.BYE, self.welcome.session_id), {}), zmq.NOBLOCK)
            except zmq.ZMQError:
                pass
        self.reset()
        if self._shm is not None:
            self._shm.close()
            self._shm = None
            self.shm_active = False

    def handshake(self, timeout_s: float = 2.0) -> Welcome:
        """Open a fresh socket, send HELLO, wait for WELCOME and compare schemas.

        Raises:
            HandshakeTimeout: no WELCOME within ``timeout_s``.
            SchemaMismatchError: the server's schema differs from :attr:`expected` (the session is closed).
        """
        self.welcome = None
        self._new_socket()
        self.seq += 1
        hello_seq = self.seq
        meta = {"schema": self.expected.as_dict() if self.expected else None, "client": self.name[:128]}
        self.shm_active = False
        if self.shared_memory and shm.SUPPORTED and self.expected is not None:
            if self._shm is None:
                self._shm = ShmWriter(self.expected)
            meta["shm"] = {"name": self._shm.name}
        hello = encode(Header(MsgType.HELLO, 0, hello_seq), meta)
        end = time.monotonic() + timeout_s
        # IMMEDIATE: nothing is queued before the connection is up, so retry the send until it is taken.
        while not self._send(hello) and time.monotonic() < end:
            time.sleep(0.005)
        while True:
            msg = self._recv(end - time.monotonic())
            if msg is None:
                self._close_socket()
                raise HandshakeTimeout(f"no WELCOME from {self.endpoint} within {timeout_s} s "
                                       "(server down, unreachable, or this CURVE key is not allowed)")
            if msg.header.type is MsgType.WELCOME and msg.header.seq == hello_seq:
                break
            if msg.header.type is MsgType.ERROR and msg.header.seq == hello_seq:
                self._close_socket()
                raise ServerError(msg.meta)
        schema = Schema.from_dict(msg.meta.get("schema"), "welcome.schema")
        if schema.hash != msg.header.schema_hash:
            self._close_socket()
            raise ProtocolError("schema_hash", "welcome.schema_hash", msg.header.schema_hash.hex(),
                                f"hash of the sent schema {schema.hash.hex()}")
        if self.expected is not None:
            diffs = schema_differences(self.expected, schema)
            if diffs:
                self.welcome = Welcome(msg.header.session_id, schema, "", 0.0)
                self.close()
                raise SchemaMismatchError(diffs)
        hb = msg.meta.get("heartbeat_s", self.heartbeat_s)
        self.welcome = Welcome(msg.header.session_id, schema, str(msg.meta.get("checkpoint_id", "")),
                               float(hb) if isinstance(hb, (int, float)) else self.heartbeat_s)
        self.handshakes += 1
        self.shm_active = self._shm is not None and msg.meta.get("shm") is True
        if self._shm is not None and not self.shm_active:
            log.info("shared memory not used: %s", msg.meta.get("shm_error", "server declined"))
        log.info("session %x with %s (checkpoint %s)", self.welcome.session_id, self.endpoint,
                 self.welcome.checkpoint_id)
        return self.welcome

    # -- requests ---------------------------------------------------------------------------------------
    def send_observation(self, observation: Mapping[str, np.ndarray], tick: int, capture_time: float,
                         budget_s: float) -> int:
        """Send an OBS without waiting; returns its ``seq``. ``budget_s``: server-side time budget (s).

        ``observation`` may carry :data:`~rcs.serving.protocol.COMMITTED`, the frozen prefix of real-time
        chunking, for policies that continue from it.
        """
        w = self._require_session()
        self.seq += 1
        budget_us = max(1, min(int(budget_s * 1e6), 2**32 - 1)) if budget_s > 0 else 0
        header = Header(MsgType.OBS, w.session_id, self.seq, int(tick), float(capture_time), budget_us,
                        w.schema.hash)
        if self.shm_active and self._shm is not None:
            slot = self._shm.write(self.seq, observation)
            extra = {COMMITTED: observation[COMMITTED]} if COMMITTED in observation else None
            self._send(encode(header, {"shm_slot": slot}, extra), copy=False)
        else:
            self._send(encode(header, {}, observation), copy=False)
        return self.seq

    def request(self, observation: Mapping[str, np.ndarray], tick: int, capture_time: float | None = None,
                budget_s: float = 0.1) -> Reply:
        """Send an observation and wait up to ``budget_s`` for its chunk.

        Raises:
            DeadlineExceeded: no reply within ``budget_s``.
            SessionLost: the server does not know this session any more (re-handshake).
            ServerError: the server refused the request (code names why).
        """
        t0 = time.monotonic()
        seq = self.send_observation(observation, tick, t0 if capture_time is None else capture_time, budget_s)
        return self.wait_reply(seq, t0 + budget_s, t0)

    def wait_reply(self, seq: int, deadline: float, sent_at: float) -> Reply:
        """Wait for the reply to ``seq`` until ``deadline`` (client monotonic, s); see :meth:`request`."""
        while True:
            msg = self._recv(deadline - time.monotonic())
            if msg is None:
                raise DeadlineExceeded(f"no reply to request {seq} within {1e3 * (deadline - sent_at):.0f} ms")
            h = msg.header
            if self.welcome is None or h.session_id != self.welcome.session_id:
                continue  # a leftover of an older session
            if h.type is MsgType.ERROR:
                code = msg.meta.get("code")
                if code in SESSION_ENDED_CODES:
                    self.welcome = None
                    raise SessionLost(f"session lost: {msg.meta.get('message', code)}")
                if h.seq == seq:
                    raise ServerError(msg.meta)
                continue  # e.g. "superseded" for an older request
            if h.type is MsgType.CHUNK and h.seq == seq:
                action = msg.tensors.get("action")
                if action is None or action.shape != self.welcome.schema.action.shape:
                    raise ProtocolError("schema", "action", "missing or misshapen in CHUNK",
                                        str(self.welcome.schema.action.shape))
                return Reply(action, h.seq, h.obs_tick, h.capture_time, str(msg.meta.get("checkpoint_id", "")),
                             float(msg.meta.get("infer_ms", 0.0)), time.monotonic() - sent_at)

    def heartbeat(self) -> None:
        """Send a HEARTBEAT if nothing was sent for ``heartbeat_s`` and drain what arrived."""
        w = self._require_session()
        if time.monotonic() - self.last_tx >= self.heartbeat_s:
            self._send(encode(Header(MsgType.HEARTBEAT, w.session_id), {}), zmq.NOBLOCK)
        while (msg := self._recv(0.0)) is not None:
            if msg.header.type is MsgType.ERROR and msg.meta.get("code") in SESSION_ENDED_CODES:
                self.welcome = None
                raise SessionLost(f"session ended by the server: {msg.meta.get('message', msg.meta.get('code'))}")

    def silent_for(self) -> float:
        """Seconds since the last message from the server."""
        return time.monotonic() - self.last_rx

    @property
    def alive(self) -> bool:
        """Whether the server spoke within ``server_timeout_s``."""
        return self.silent_for() <= self.server_timeout_s

    # -- low level --------------------------------------------------------------------------------------
    def _require_session(self) -> Welcome:
        if self.welcome is None or self.sock is None:
            raise SessionLost("no session: call handshake() first")
        return self.welcome

    def _send(self, frames: list[Any], flags: int = 0, copy: bool = True) -> bool:
        """Send without blocking; False when not connected (IMMEDIATE) or the queue is full (a drop)."""
        assert self.sock is not None
        try:
            self.sock.send_multipart(frames, flags | zmq.NOBLOCK, copy=copy)
        except zmq.Again:
            log.debug("send dropped: server not connected")
            return False
        self.last_tx = time.monotonic()
        return True

    def _recv(self, timeout_s: float) -> Message | None:
        """Next valid message (malformed ones are logged and skipped) or ``None`` after ``timeout_s``."""
        assert self.sock is not None
        end = time.monotonic() + max(0.0, timeout_s)
        while True:
            left = end - time.monotonic()
            if not self.sock.poll(max(0, int(left * 1000)) if left > 0 else 0, zmq.POLLIN):
                return None
            frames = self.sock.recv_multipart(copy=False)
            try:
                msg = decode(frames, SERVER_TYPES)
            except ProtocolError as e:
                log.warning("malformed message from the server skipped: %s", e)
                continue
            self.last_rx = time.monotonic()
            return msg


class ActionMap(Protocol):
    """Converts action chunks between a policy's layout and the executor's (see :class:`RobotBridge`)."""

    names_in: tuple[str, ...]
    names_out: tuple[str, ...]

    def to_executor(self, actions: np.ndarray, seed: np.ndarray | None) -> np.ndarray:
        """(H, len(names_in)) -> (H, len(names_out)); ``seed``: the executor's values at the chunk start
        (``None`` before anything was commanded). Raises ValueError for a chunk it cannot convert."""

    def from_executor(self, values: np.ndarray) -> np.ndarray:
        """(K, len(names_out)) -> (K, len(names_in))."""


class BridgeState(str, Enum):
    """Where a :class:`RobotBridge` stands."""

    CONNECTING = "connecting"  # no session: chunks are not submitted
    ARMED = "armed"  # handshake done, schema matches: chunks are submitted
    REFUSED = "refused"  # the server's schema differs: never arms (terminal)
    STOPPED = "stopped"


#: ``observe()`` returns (control tick of the observation, monotonic capture time (s), tensors by name).
Observe = Callable[[], tuple[int, float, dict[str, np.ndarray]]]


class RobotBridge:
    """Feeds a :class:`ChunkExecutor` from a :class:`PolicyClient`, in its own thread.

    Args:
        client: the client (its :attr:`PolicyClient.expected` schema must be set; its action ``names``
            must equal the executor's joint names and order).
        executor: the control loop's executor.
        observe: called at the policy rate from the bridge thread.
        period_s: time between requests (s); default the schema's ``policy_dt``.
        budget_s: per-request time budget (s).
        handshake_timeout_s: wait for WELCOME this long per attempt (s).
        retry_s: pause between handshake attempts (s).
        on_arm: called (bridge thread) after every successful handshake, e.g. ``task.engage``. The first
            chunk is submitted after it returns.
        on_lost: called (bridge thread) when the server is declared lost.
        send_committed: send the executor's committed actions from the observation's tick (the frozen prefix
            of real-time chunking, subsampled to the policy rate) with each request, as
            :data:`~rcs.serving.protocol.COMMITTED`; policies that inpaint continue from them.
        action_map: converts chunks from the policy's action layout to the executor's and back (e.g.
            :class:`rcs.control.cartesian.PoseChunkToJoints` for a policy that outputs TCP poses); the
            server's action names must then be ``action_map.names_in``. A chunk it refuses is counted
            (``rejected_action_map``) and dropped.
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
    ) -> None:
        if client.expected is None:
            raise ServingError("a robot bridge needs the robot's expected schema (refuses to arm otherwise)")
        names = client.expected.action.names
        if action_map is not None and action_map.names_out != executor.names:
            raise SchemaMismatchError([f"action map output {action_map.names_out} differs from the executor's "
                                       f"{executor.names}"])
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
        self.state = BridgeState.CONNECTING
        self.refusal: SchemaMismatchError | None = None
        self.counters: dict[str, int] = {"submitted": 0, "handshakes": 0, "lost": 0, "deadline_missed": 0}
        self.events: list[tuple[float, str]] = []  # (monotonic s, what) for diagnostics and tests
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    def _event(self, what: str) -> None:
        self.events.append((time.monotonic(), what))

    def start(self) -> RobotBridge:
        """Start the bridge thread."""
        self._thread = threading.Thread(target=self._run, name="rcs-robot-bridge", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and close the client."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.client.close()
        if self.state is not BridgeState.REFUSED:
            self.state = BridgeState.STOPPED

    @property
    def armed(self) -> bool:
        """Whether chunks are being submitted."""
        return self.state is BridgeState.ARMED

    def _run(self) -> None:
        next_t = time.monotonic()
        while not self._stop.is_set():
            if self.state is BridgeState.CONNECTING:
                self._connect()
                next_t = time.monotonic()
                continue
            if self.state is not BridgeState.ARMED:
                return
            self._step()
            next_t += self.period_s
            self._idle_until(next_t)
            next_t = max(next_t, time.monotonic())

    def _idle_until(self, t: float) -> None:
        """Wait until ``t`` (monotonic s), heartbeating when the wait is longer than the heartbeat period."""
        while self.state is BridgeState.ARMED and (left := t - time.monotonic()) > 0:
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
            self.state = BridgeState.REFUSED
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
        self.state = BridgeState.ARMED
        self._event("armed")

    def _lost(self, why: str) -> None:
        self._count("lost")
        self._event(f"lost: {why}")
        log.warning("policy server lost (%s): holding, no chunks until a fresh handshake", why)
        self.state = BridgeState.CONNECTING
        self.client.reset()
        if self.on_lost is not None:
            self.on_lost()

    def _map_seed(self, tick: int) -> np.ndarray | None:
        """Executor values to start an action map from: the plan at ``tick``, else the last command executed,
        else ``None`` (nothing commanded yet: the map starts from the device's measured state)."""
        committed = self.executor.request(tick).committed
        if len(committed):
            return committed[0]
        last = self.executor.history.values[-1:]  # a copy of the list: the control thread may append meanwhile
        return last[0] if last else None

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
        except Exception:  # a failing sensor read must not kill the bridge: no chunk, the watchdog acts
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
        if self.state is not BridgeState.ARMED or self._stop.is_set():
            return
        schema = self.client.expected
        assert schema is not None
        actions = np.asarray(reply.actions, dtype=np.float64)
        if self.action_map is not None:
            try:
                actions = self.action_map.to_executor(actions, self._map_seed(int(reply.obs_tick)))
            except ValueError as e:
                self._count("rejected_action_map")
                log.warning("chunk refused by the action map: %s", e)
                return
        chunk = ActionChunk(
            start_tick=int(reply.obs_tick),
            actions=actions,
            names=self.executor.names,
            policy_dt=schema.policy_dt,
            control_dt=self.executor.config.control_dt,
            timestamp=reply.capture_time,
        )
        rejection = self.executor.submit(chunk)
        if rejection is None:
            self._count("submitted")
        else:
            self._count(f"rejected_{rejection.reason}")
