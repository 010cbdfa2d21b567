"""Robot side of the policy server: :class:`PolicyClient` (DEALER).

:class:`PolicyClient` does the handshake (refusing a server whose schema differs from the robot's),
sends observations with a relative deadline, and detects a dead server (no message for
``server_timeout_s``). It is used from one thread at a time; :class:`rcs.serving.chunk_feed.ChunkFeed` runs
one in its own thread to feed a robot's chunk executor.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import zmq

from rcs.errors import RcsError
from rcs.serving import shm
from rcs.serving.keys import KeyPair, curve_client
from rcs.serving.protocol import (
    COMMITTED,
    SERVER_TYPES,
    Header,
    Message,
    MsgType,
    ProtocolError,
    Schema,
    decode,
    encode,
    schema_differences,
)
from rcs.serving.shm import ShmWriter

log = logging.getLogger(__name__)

#: Server error codes that end this client's session: a chunk feed re-handshakes at once (``evicted``: the server
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
        super().__init__(
            f"server error {self.code}: {meta.get('field', '')}: {meta.get('message', '')}"
            f" (limit: {meta.get('limit', '')})"
        )


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
class ChunkReply:
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
        context: the ZeroMQ context of its socket (default: the process's shared one); a real-time robot server
            passes its own, whose I/O threads run ``SCHED_FIFO``.
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
        context: zmq.Context | None = None,
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
        self.ctx: zmq.Context = context if context is not None else zmq.Context.instance()
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
                raise HandshakeTimeout(
                    f"no WELCOME from {self.endpoint} within {timeout_s} s "
                    "(server down, unreachable, or this CURVE key is not allowed)"
                )
            if msg.header.type is MsgType.WELCOME and msg.header.seq == hello_seq:
                break
            if msg.header.type is MsgType.ERROR and msg.header.seq == hello_seq:
                self._close_socket()
                raise ServerError(msg.meta)
        schema = Schema.from_dict(msg.meta.get("schema"), "welcome.schema")
        if schema.hash != msg.header.schema_hash:
            self._close_socket()
            raise ProtocolError(
                "schema_hash",
                "welcome.schema_hash",
                msg.header.schema_hash.hex(),
                f"hash of the sent schema {schema.hash.hex()}",
            )
        if self.expected is not None:
            diffs = schema_differences(self.expected, schema)
            if diffs:
                self.welcome = Welcome(msg.header.session_id, schema, "", 0.0)
                self.close()
                raise SchemaMismatchError(diffs)
        hb = msg.meta.get("heartbeat_s", self.heartbeat_s)
        self.welcome = Welcome(
            msg.header.session_id,
            schema,
            str(msg.meta.get("checkpoint_id", "")),
            float(hb) if isinstance(hb, (int, float)) else self.heartbeat_s,
        )
        self.handshakes += 1
        self.shm_active = self._shm is not None and msg.meta.get("shm") is True
        if self._shm is not None and not self.shm_active:
            log.info("shared memory not used: %s", msg.meta.get("shm_error", "server declined"))
        log.info(
            "session %x with %s (checkpoint %s)", self.welcome.session_id, self.endpoint, self.welcome.checkpoint_id
        )
        return self.welcome

    # -- requests ---------------------------------------------------------------------------------------
    def send_observation(
        self, observation: Mapping[str, np.ndarray], tick: int, capture_time: float, budget_s: float
    ) -> int:
        """Send an OBS without waiting; returns its ``seq``. ``budget_s``: server-side time budget (s).

        ``observation`` may carry :data:`~rcs.serving.protocol.COMMITTED`, the frozen prefix of real-time
        chunking, for policies that continue from it.
        """
        w = self._require_session()
        self.seq += 1
        budget_us = max(1, min(int(budget_s * 1e6), 2**32 - 1)) if budget_s > 0 else 0
        header = Header(MsgType.OBS, w.session_id, self.seq, int(tick), float(capture_time), budget_us, w.schema.hash)
        if self.shm_active and self._shm is not None:
            slot = self._shm.write(self.seq, observation)
            extra = {COMMITTED: observation[COMMITTED]} if COMMITTED in observation else None
            self._send(encode(header, {"shm_slot": slot}, extra), copy=False)
        else:
            self._send(encode(header, {}, observation), copy=False)
        return self.seq

    def request(
        self, observation: Mapping[str, np.ndarray], tick: int, capture_time: float | None = None, budget_s: float = 0.1
    ) -> ChunkReply:
        """Send an observation and wait up to ``budget_s`` for its chunk.

        Raises:
            DeadlineExceeded: no reply within ``budget_s``.
            SessionLost: the server does not know this session any more (re-handshake).
            ServerError: the server refused the request (code names why).
        """
        t0 = time.monotonic()
        seq = self.send_observation(observation, tick, t0 if capture_time is None else capture_time, budget_s)
        return self.wait_reply(seq, t0 + budget_s, t0)

    def wait_reply(self, seq: int, deadline: float, sent_at: float) -> ChunkReply:
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
                    raise ProtocolError(
                        "schema", "action", "missing or misshapen in CHUNK", str(self.welcome.schema.action.shape)
                    )
                return ChunkReply(
                    action,
                    h.seq,
                    h.obs_tick,
                    h.capture_time,
                    str(msg.meta.get("checkpoint_id", "")),
                    float(msg.meta.get("infer_ms", 0.0)),
                    time.monotonic() - sent_at,
                )

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
