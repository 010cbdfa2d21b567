"""The policy server: a ZeroMQ ROUTER serving many robot sessions (protocol in ``docs/protocol.md``).

Threads:

- the I/O thread (:meth:`PolicyServer.run`) owns the ROUTER socket: it decodes and checks every message,
  answers HELLO/HEARTBEAT/errors itself and keeps only the newest pending observation per session;
- the inference worker takes pending requests (up to ``max_batch`` sessions at once), drops expired ones,
  calls :meth:`Policy.infer` and hands the encoded replies back to the I/O thread over an ``inproc`` socket;
- an optional ZAP authenticator thread (CURVE allow-list).

Fast path: a policy whose last 16 inference calls all took less than ``inline_max_s`` (a scripted or tiny
policy) is run on the I/O thread itself when the worker is idle and nothing else is pending, saving the two
thread hand-offs (~130 us here). A slow call (or a swap) sends it back through the worker; heartbeats are
never delayed by more than ``inline_max_s``. Policy calls are serialized by one lock either way.

Malformed input of any kind is answered with an ERROR naming the field and the limit; nothing a client
sends can stop the server.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zmq

from rcs.control.priorities import promote_current_thread, realtime_io_threads
from rcs.errors import ConfigError
from rcs.serving.keys import KeyPair, curve_server, is_loopback
from rcs.serving.policy import Policy, RequestContext, SessionPolicy
from rcs.serving.protocol import (
    CLIENT_TYPES,
    MAX_TENSOR_BYTES,
    WIRE_DTYPES,
    Header,
    Message,
    MsgType,
    ProtocolError,
    Schema,
    check_observation,
    decode,
    decode_header,
    encode,
    error_message,
    recv_bounded,
)
from rcs.serving.shm import ShmReader

log = logging.getLogger(__name__)


@dataclass
class _Request:
    session_id: int
    identity: bytes
    header: Header
    tensors: dict[str, np.ndarray]
    received: float  # server monotonic (s)
    deadline: float  # server monotonic (s); inf when no budget


@dataclass
class _Session:
    session_id: int
    identity: bytes
    last_seen: float
    address: str = ""  # the peer's network address (ZeroMQ "Peer-Address"); "" where the transport has none
    opened: float = 0.0  # server monotonic (s) of the HELLO
    last_obs: float | None = None  # server monotonic (s) of the last accepted OBS; None: never requested
    last_seq: int = 0
    pending: _Request | None = None
    served: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    last_heartbeat: float = 0.0
    shm: ShmReader | None = None  # the client's shared-memory segment (same host), if it offered one

    def close(self) -> None:
        if self.shm is not None:
            self.shm.close()


class RateLimit:
    """Token buckets per peer identity: ``rate`` events/s with bursts of ``burst``; at most ``peers`` tracked.

    Used so a flooding peer cannot make the server amplify its traffic (an ERROR per garbage frame) or churn
    sessions (a HELLO per message): over the limit, its messages are dropped unanswered.
    """

    def __init__(self, rate: float, burst: float, peers: int = 4096) -> None:
        self.rate = rate
        self.burst = burst
        self.peers = peers
        self._buckets: dict[bytes, tuple[float, float]] = {}

    def allow(self, peer: bytes, now: float) -> bool:
        """Take one token for ``peer``; False when its bucket is empty."""
        tokens, last = self._buckets.pop(peer, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if len(self._buckets) >= self.peers:  # forget the least recently seen peer (dicts keep order)
            del self._buckets[next(iter(self._buckets))]
        ok = tokens >= 1.0
        self._buckets[peer] = (tokens - 1.0 if ok else tokens, now)
        return ok


_Run = Callable[[list[_Request]], Sequence[Any]]


def _runner(policy: Policy) -> tuple[Policy, _Run]:
    """``policy`` and how a batch of requests reaches it, decided once when it is set rather than per batch: a
    :class:`SessionPolicy` is also told each request's session, tick and capture time."""
    if isinstance(policy, SessionPolicy):
        session_policy = policy

        def run_sessions(live: list[_Request]) -> Sequence[Any]:
            contexts = [RequestContext(r.session_id, r.header.obs_tick, r.header.capture_time) for r in live]
            return session_policy.infer_sessions([r.tensors for r in live], contexts)

        return policy, run_sessions

    def run(live: list[_Request]) -> Sequence[Any]:
        return policy.infer([r.tensors for r in live])

    return policy, run


def _peer_address(frame: Any) -> str:
    """The sending connection's network address: libzmq's ``Peer-Address`` property of a received frame (the
    IP of a TCP peer, as the kernel reported it at accept; no client can set it). "" when the transport has
    none (ipc, inproc) or the frame is not a ZeroMQ frame (in-process callers)."""
    try:
        return str(frame.get("Peer-Address") or "")
    except (AttributeError, zmq.ZMQError, UnicodeDecodeError):
        return ""


class PolicyServer:
    """Serves one :class:`Policy` to many robot sessions.

    Args:
        policy: the policy to serve.
        bind: endpoint (``tcp://127.0.0.1:5555`` default; port ``*`` or ``0`` picks a free one, see
            :attr:`endpoint`).
        curve: the server's CURVE key pair (enables encryption + authentication), or ``None``.
        allow: Z85 client public keys allowed to connect (required with ``curve``).
        max_batch: most sessions' requests given to one :meth:`Policy.infer` call.
        batch_window_s: how long (s) the worker waits for more requests before a batch of fewer than
            ``max_batch`` (0: never waits).
        session_timeout_s: a session silent this long (s) is dropped.
        heartbeat_s: heartbeat period (s) advertised to clients.
        loader: re-creates the policy on :meth:`request_reload` (e.g. from the ``--policy`` path on SIGHUP).
        max_sessions: most sessions open at once; a HELLO beyond it evicts an idle session (see
            ``idle_evict_s``) or is answered ``too_many_sessions``.
        max_sessions_per_address: most sessions open from one network address (``Peer-Address`` of the
            connection; one bucket for transports without addresses); 0: no per-address limit.
        idle_evict_s: when a HELLO finds the table (or its address's share) full, a session that never sent
            an OBS is evicted first (oldest first), then one whose last OBS is at least this old (s, longest
            idle first); the evicted client gets ``ERROR code="evicted"``. Sessions that request keep their slot.
        error_rate: ERROR replies per second per peer; beyond it bad messages are dropped unanswered.
        hello_rate: HELLOs per second per peer; beyond it HELLOs are dropped unanswered (no session churn).
        inline_max_s: run the policy on the I/O thread while its recent calls are all shorter than this (s);
            0 disables the fast path. Only with ``max_batch == 1``.
        realtime: the policy is on a real-time loop's control path on this machine (a flight policy beside
            ``rcs robot``): where permitted, the I/O thread (the thread calling :meth:`run`), the inference
            worker and ZeroMQ's I/O threads run ``SCHED_FIFO`` below the loop (:mod:`rcs.control.priorities`).
    """

    def __init__(
        self,
        policy: Policy,
        bind: str = "tcp://127.0.0.1:5555",
        *,
        curve: KeyPair | None = None,
        allow: frozenset[bytes] | None = None,
        max_batch: int = 1,
        batch_window_s: float = 0.0,
        session_timeout_s: float = 10.0,
        heartbeat_s: float = 0.25,
        loader: Callable[[], Policy] | None = None,
        max_sessions: int = 256,
        max_sessions_per_address: int = 64,
        idle_evict_s: float = 10.0,
        error_rate: float = 100.0,
        hello_rate: float = 5.0,
        inline_max_s: float = 0.0005,
        realtime: bool = False,
    ) -> None:
        if max_batch < 1:
            raise ConfigError(f"max_batch={max_batch} must be >= 1")
        if max_sessions < 1 or max_sessions_per_address < 0:
            raise ConfigError(
                f"max_sessions={max_sessions} must be >= 1 and max_sessions_per_address="
                f"{max_sessions_per_address} >= 0 (0: no per-address limit)"
            )
        if not idle_evict_s >= 0:
            raise ConfigError(f"idle_evict_s={idle_evict_s} must be >= 0 (s)")
        if (curve is None) != (allow is None):
            raise ConfigError("CURVE needs both the server secret key and an allow-list of client keys")
        if curve is not None and curve.secret is None:
            raise ConfigError("the server CURVE key pair has no secret key")
        self._serving = _runner(policy)
        self._bind = bind[:-2] + ":*" if bind.endswith(":0") else bind
        self.curve = curve
        self.allow = allow
        self.max_batch = max_batch
        self.batch_window_s = batch_window_s
        self.session_timeout_s = session_timeout_s
        self.heartbeat_s = heartbeat_s
        self.loader = loader
        self.max_sessions = max_sessions
        self.max_sessions_per_address = max_sessions_per_address
        self.idle_evict_s = idle_evict_s
        self.realtime = realtime
        self.ctx = zmq.Context()
        if realtime:
            realtime_io_threads(self.ctx)
        self._lock = threading.Condition()
        self._sessions: dict[int, _Session] = {}
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._ready = threading.Event()
        self._results_addr = f"inproc://rcs-results-{id(self)}"
        self._auth_release: Callable[[], None] | None = None
        self._router: zmq.Socket | None = None
        self._worker: threading.Thread | None = None
        self._io_thread: threading.Thread | None = None
        self.endpoint = ""
        self.counters: dict[str, int] = {}
        self.inline_max_s = inline_max_s if max_batch == 1 else 0.0
        self._infer_lock = threading.Lock()  # one Policy.infer at a time (worker or inline)
        self._costs: deque[float] = deque(maxlen=16)  # recent inference times (s) of the current policy
        self.inline_served = 0
        self._error_limit = RateLimit(rate=error_rate, burst=max(1.0, error_rate))
        self._hello_limit = RateLimit(rate=hello_rate, burst=max(1.0, hello_rate))

    # -- public API -------------------------------------------------------------------------------------
    @property
    def policy(self) -> Policy:
        """The policy being served."""
        return self._serving[0]

    def swap(self, policy: Policy) -> None:
        """Serve ``policy`` from the next batch on; sessions are kept (any thread).

        If its schema differs, requests carrying the old schema hash are answered ``schema_hash`` and the
        clients must re-handshake (where the robot side decides whether the new schema is acceptable).
        """
        old = self.policy
        if policy.schema.hash != old.schema.hash:
            log.warning(
                "swapped to checkpoint %s with a different schema: sessions must re-handshake", policy.checkpoint_id
            )
        with self._lock:
            self._serving = _runner(policy)
            self._costs.clear()  # the new policy earns the fast path anew
        log.info("serving checkpoint %s (was %s)", policy.checkpoint_id, old.checkpoint_id)

    def request_reload(self) -> None:
        """Ask for the policy to be re-created by ``loader`` and swapped in (signal-handler safe)."""
        self._reload.set()

    def sessions(self) -> dict[int, dict[str, Any]]:
        """Snapshot of the sessions: id -> served count and drops by reason."""
        with self._lock:
            return {s.session_id: {"served": s.served, "dropped": dict(s.dropped)} for s in self._sessions.values()}

    def start(self) -> str:
        """Bind and run the I/O loop in a background thread; returns the bound endpoint."""
        self._io_thread = threading.Thread(target=self.run, name="rcs-serve-io", daemon=True)
        self._io_thread.start()
        if not self._ready.wait(10.0):
            raise RuntimeError("policy server did not start within 10 s")
        if not self.endpoint:
            raise RuntimeError("policy server failed to bind (see the log)")
        return self.endpoint

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the I/O loop and the worker, close the sockets."""
        self._stop.set()
        with self._lock:
            self._lock.notify_all()
        if self._io_thread is not None and self._io_thread is not threading.current_thread():
            self._io_thread.join(timeout)

    # -- I/O thread -------------------------------------------------------------------------------------
    def run(self) -> None:
        """Bind and serve until :meth:`stop` (blocks; call from the thread that should do the I/O; with
        ``realtime`` that thread stays ``SCHED_FIFO`` afterwards)."""
        if self.realtime:
            promote_current_thread("policy server I/O")
        router = self.ctx.socket(zmq.ROUTER)
        results = self.ctx.socket(zmq.PULL)
        try:
            self._setup(router, results)
        except Exception:
            log.exception("policy server setup failed")
            router.close(0)
            results.close(0)
            self._ready.set()
            raise
        self._ready.set()
        poller = zmq.Poller()
        poller.register(router, zmq.POLLIN)
        poller.register(results, zmq.POLLIN)
        next_sweep = time.monotonic() + 0.1
        try:
            while not self._stop.is_set():
                events = dict(poller.poll(50))
                if results in events:
                    while True:
                        try:
                            out = results.recv_multipart(zmq.NOBLOCK, copy=False)
                        except zmq.Again:
                            break
                        router.send_multipart(out, copy=False)
                if router in events:
                    for _ in range(256):
                        try:  # frame by frame: an oversized message is released as it is read, never decoded
                            frames, too_big = recv_bounded(router, zmq.NOBLOCK, envelope=1)
                        except zmq.Again:
                            break
                        self._on_message(router, frames, too_big)
                now = time.monotonic()
                if now >= next_sweep:
                    next_sweep = now + min(0.1, self.heartbeat_s / 2)
                    self._sweep(router, now)
                    if self._reload.is_set():
                        self._reload.clear()
                        threading.Thread(target=self._do_reload, name="rcs-serve-reload", daemon=True).start()
        finally:
            self._stop.set()
            with self._lock:
                self._lock.notify_all()
            if self._worker is not None:
                self._worker.join(5.0)
            router.close(0)
            results.close(0)
            if self._auth_release is not None:
                self._auth_release()
            if self._worker is None or not self._worker.is_alive():
                self.ctx.term()
            log.info("policy server stopped")

    def _setup(self, router: zmq.Socket, results: zmq.Socket) -> None:
        router.setsockopt(zmq.LINGER, 0)
        router.setsockopt(zmq.MAXMSGSIZE, MAX_TENSOR_BYTES + 4096)
        router.setsockopt(zmq.RCVHWM, 1000)
        if self.curve is not None:
            self._auth_release = curve_server(router, self.curve, self.allow or frozenset())
        elif not is_loopback(self._bind):
            log.warning("serving on %s WITHOUT CurveZMQ: anyone reaching this port can use the policy", self._bind)
        router.bind(self._bind)
        self.endpoint = router.getsockopt_string(zmq.LAST_ENDPOINT)
        results.bind(self._results_addr)
        self._worker = threading.Thread(target=self._work, name="rcs-serve-infer", daemon=True)
        self._worker.start()
        log.info(
            "serving %s (checkpoint %s) on %s%s",
            type(self.policy).__name__,
            self.policy.checkpoint_id,
            self.endpoint,
            " with CURVE" if self.curve else "",
        )

    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    def _on_message(self, router: zmq.Socket, frames: list[Any], too_big: ProtocolError | None = None) -> None:
        """Handle one message (``frames[0]``: the routing identity); ``too_big``: it was cut off on receipt."""
        identity = frames[0].bytes
        body = frames[1:]
        header: Header | None = None
        try:
            if body:
                header = decode_header(body[0])  # kept to echo session/seq in an ERROR about the rest
            if too_big is not None:
                raise too_big
            msg = decode(body, CLIENT_TYPES, header)
            self._dispatch(router, identity, msg, _peer_address(body[0]))
        except ProtocolError as e:
            self._count(e.code)
            log.debug("bad message from %r: %s", identity, e)
            if not self._error_limit.allow(identity, time.monotonic()):
                self._count("rate_limited")
                return
            router.send_multipart([identity, *error_message(header, e)], copy=False)
        except Exception as e:  # a server bug must not stop the server
            self._count("internal")
            log.exception("internal error handling a message")
            err = ProtocolError("internal", "server", f"{type(e).__name__}", "")
            try:
                router.send_multipart([identity, *error_message(header, err)], copy=False)
            except zmq.ZMQError:
                pass

    def _dispatch(self, router: zmq.Socket, identity: bytes, msg: Message, address: str = "") -> None:
        h = msg.header
        now = time.monotonic()
        if h.type is MsgType.HELLO:
            self._hello(router, identity, msg, now, address)
            return
        with self._lock:
            session = self._sessions.get(h.session_id)
            if session is not None and session.identity != identity:
                session = None
            if session is not None:
                session.last_seen = now
        if h.type is MsgType.HEARTBEAT:
            if session is None and h.session_id != 0:
                raise ProtocolError("unknown_session", "session_id", f"{h.session_id} unknown", "handshake first")
            router.send_multipart([identity, *encode(Header(MsgType.HEARTBEAT, h.session_id, h.seq), {})])
            return
        if session is None:
            raise ProtocolError("unknown_session", "session_id", f"{h.session_id} unknown", "handshake first")
        if h.type is MsgType.BYE:
            with self._lock:
                closed = self._sessions.pop(h.session_id, None)
            if closed is not None:
                closed.close()
            log.info("session %x closed by the client", h.session_id)
            return
        self._obs(router, identity, session, msg, now)

    def _hello(self, router: zmq.Socket, identity: bytes, msg: Message, now: float, address: str = "") -> None:
        if not self._hello_limit.allow(identity, now):
            self._count("rate_limited")
            return
        policy = self.policy
        wanted = msg.meta.get("schema")
        if wanted is not None:
            try:
                client_schema = Schema.from_dict(wanted)
                if client_schema.hash != policy.schema.hash:
                    log.warning("HELLO from %r expects a different schema (the robot will refuse to arm)", identity)
            except ProtocolError as e:
                log.warning("HELLO from %r with an unreadable schema: %s", identity, e)
        sid = secrets.randbits(63) | 1
        session = _Session(sid, identity, now, address=address, opened=now, last_heartbeat=now)
        shm_note = self._attach_shm(session, msg.meta.get("shm"), policy)
        with self._lock:
            # one session per connection: a client that says HELLO again has given up its previous session
            replaced = [s for s in self._sessions.values() if s.identity == identity]
            for s in replaced:
                del self._sessions[s.session_id]
            try:
                victim = self._admit(address, now)
            except ProtocolError:
                session.close()
                for s in replaced:  # a refused HELLO takes nothing away
                    self._sessions[s.session_id] = s
                raise
            self._sessions[sid] = session
        for s in replaced:
            s.close()
            log.info("session %x replaced by a new HELLO on the same connection", s.session_id)
        if victim is not None:
            self._evict(router, victim, now)
        meta = {
            "schema": policy.schema.as_dict(),
            "checkpoint_id": policy.checkpoint_id,
            "chunk_size": policy.schema.chunk_size,
            "policy_dt": policy.schema.policy_dt,
            "heartbeat_s": self.heartbeat_s,
            "session_timeout_s": self.session_timeout_s,
            "shm": session.shm is not None,
            **({"shm_error": shm_note} if shm_note else {}),
        }
        header = Header(MsgType.WELCOME, sid, msg.header.seq, 0, 0.0, 0, policy.schema.hash)
        router.send_multipart([identity, *encode(header, meta)])
        log.info("session %x opened (client %s)", sid, str(msg.meta.get("client", ""))[:128])

    def _admit(self, address: str, now: float) -> _Session | None:
        """Room for one more session from ``address`` (caller holds the lock): the session to evict for it,
        ``None`` when there is room, or ``ProtocolError("too_many_sessions")`` when only busy sessions hold
        the slots. The evicted session is removed from the table."""
        cap = self.max_sessions_per_address
        same = [s for s in self._sessions.values() if s.address == address]
        if cap and len(same) >= cap:
            victim = self._evictable(same, now)
            if victim is None:
                raise ProtocolError(
                    "too_many_sessions",
                    "peer_address",
                    f"{len(same)} sessions open from {address or 'this transport'}, all requesting",
                    f"<= {cap} sessions per address",
                )
        elif len(self._sessions) >= self.max_sessions:
            victim = self._evictable(self._sessions.values(), now)
            if victim is None:
                raise ProtocolError(
                    "too_many_sessions",
                    "session_id",
                    f"{len(self._sessions)} open, all requesting",
                    f"<= {self.max_sessions} sessions",
                )
        else:
            return None
        del self._sessions[victim.session_id]
        return victim

    def _evictable(self, sessions: Any, now: float) -> _Session | None:
        """The session to give up first: never requested (oldest HELLO first), else idle for at least
        ``idle_evict_s`` (longest idle first); ``None`` if every session is requesting."""
        never = [s for s in sessions if s.last_obs is None]
        if never:
            return min(never, key=lambda s: s.opened)
        idle = [s for s in sessions if s.last_obs is not None and now - s.last_obs >= self.idle_evict_s]
        return min(idle, key=lambda s: s.last_obs) if idle else None

    def _evict(self, router: zmq.Socket, victim: _Session, now: float) -> None:
        """Tell an evicted session's client why (it re-handshakes when it needs the server again)."""
        victim.close()
        self._count("evicted")
        idle = "never sent an OBS" if victim.last_obs is None else f"no OBS for {now - victim.last_obs:.1f} s"
        log.info("session %x evicted (%s) to admit a new HELLO while full", victim.session_id, idle)
        err = ProtocolError(
            "evicted",
            "session_id",
            f"session {victim.session_id:x} {idle} while the server was full",
            f"an OBS at least every {self.idle_evict_s:g} s keeps a session",
        )
        try:
            router.send_multipart(
                [victim.identity, *error_message(Header(MsgType.ERROR, victim.session_id), err)], zmq.NOBLOCK
            )
        except zmq.ZMQError:
            pass  # its queue is full or it is gone: its next message is answered unknown_session

    @staticmethod
    def _attach_shm(session: _Session, offer: Any, policy: Policy) -> str:
        """Map the segment a HELLO offers (``{"name": ...}``); returns why not, or "" (none offered / ok)."""
        if offer is None:
            return ""
        if not isinstance(offer, dict):
            return "hello.shm must be a map"
        try:
            session.shm = ShmReader(offer.get("name"), policy.schema)
        except ProtocolError as e:
            log.info("session %x: shared memory refused (%s); frames are used", session.session_id, e)
            return str(e)
        return ""

    def _obs(self, router: zmq.Socket, identity: bytes, session: _Session, msg: Message, now: float) -> None:
        h = msg.header
        schema = self.policy.schema
        if h.schema_hash != schema.hash:
            raise ProtocolError(
                "schema_hash", "schema_hash", f"got {h.schema_hash.hex()}", f"{schema.hash.hex()} (re-handshake)"
            )
        tensors = msg.tensors
        slot = msg.meta.get("shm_slot")
        if slot is not None:
            if session.shm is None:
                raise ProtocolError("shm", "shm_slot", "this session has no shared memory", "tensor frames")
            if h.seq <= session.last_seq:  # checked again below; before reading, so a replay reads nothing
                raise ProtocolError("stale_seq", "seq", f"got {h.seq}", f"> {session.last_seq}")
            tensors = {**session.shm.read(h.seq, slot), **tensors}
        check_observation(schema, tensors)
        with self._lock:
            session.last_obs = now  # a requesting session keeps its slot (see _evictable)
        deadline = now + h.budget_us * 1e-6 if h.budget_us else float("inf")
        request = _Request(session.session_id, identity, h, tensors, now, deadline)
        if self._try_inline(router, session, request):
            return
        superseded: _Request | None = None
        with self._lock:
            if h.seq <= session.last_seq:
                raise ProtocolError("stale_seq", "seq", f"got {h.seq}", f"> {session.last_seq}")
            session.last_seq = h.seq
            superseded, session.pending = session.pending, request
            if superseded is not None:
                session.dropped["superseded"] = session.dropped.get("superseded", 0) + 1
            self._lock.notify()
        if superseded is not None:
            self._count("superseded")
            err = ProtocolError(
                "superseded", "seq", f"request {superseded.header.seq} replaced by {h.seq}", "latest observation only"
            )
            router.send_multipart([identity, *error_message(superseded.header, err)])

    def _inline_ok(self) -> bool:
        costs = self._costs
        return self.inline_max_s > 0 and len(costs) == costs.maxlen and max(costs) < self.inline_max_s

    def _try_inline(self, router: zmq.Socket, session: _Session, request: _Request) -> bool:
        """Serve ``request`` on the I/O thread if the fast path applies (see the module docstring)."""
        if not self._inline_ok():
            return False
        with self._lock:
            if request.header.seq <= session.last_seq:
                raise ProtocolError("stale_seq", "seq", f"got {request.header.seq}", f"> {session.last_seq}")
            if session.pending is not None or any(s.pending for s in self._sessions.values()):
                return False
            if not self._infer_lock.acquire(blocking=False):  # the worker is busy: queue as usual
                return False
            session.last_seq = request.header.seq
        try:
            self.inline_served += 1
            self._infer([request], router, locked=True)
        finally:
            self._infer_lock.release()
        return True

    def _sweep(self, router: zmq.Socket, now: float) -> None:
        """Drop silent sessions; send every live session a HEARTBEAT each ``heartbeat_s`` (server liveness)."""
        with self._lock:
            dead = [s for s in self._sessions.values() if now - s.last_seen > self.session_timeout_s]
            for s in dead:
                del self._sessions[s.session_id]
            due = [s for s in self._sessions.values() if now - s.last_heartbeat >= self.heartbeat_s]
            for s in due:
                s.last_heartbeat = now
        for s in dead:
            s.close()
            log.info("session %x timed out after %.1f s of silence", s.session_id, self.session_timeout_s)
        for s in due:
            try:
                router.send_multipart(
                    [s.identity, *encode(Header(MsgType.HEARTBEAT, s.session_id, 0), {})], zmq.NOBLOCK
                )
            except zmq.ZMQError:
                pass  # peer's queue full or gone: its session times out

    def _do_reload(self) -> None:
        if self.loader is None:
            log.warning("reload requested but the server has no loader")
            return
        try:
            policy = self.loader()
        except Exception:
            log.exception("reload failed; still serving %s", self.policy.checkpoint_id)
            return
        self.swap(policy)

    # -- inference worker -------------------------------------------------------------------------------
    def _take_batch(self) -> list[_Request]:
        with self._lock:
            while not self._stop.is_set() and not any(s.pending for s in self._sessions.values()):
                self._lock.wait(0.1)
            if self._stop.is_set():
                return []
            if self.max_batch > 1 and self.batch_window_s > 0:
                end = time.monotonic() + self.batch_window_s
                while (
                    sum(1 for s in self._sessions.values() if s.pending) < self.max_batch
                    and (left := end - time.monotonic()) > 0
                ):
                    self._lock.wait(left)
            pending = sorted(
                ((s.pending, s) for s in self._sessions.values() if s.pending), key=lambda rs: rs[0].received
            )
            batch = []
            for request, s in pending[: self.max_batch]:
                batch.append(request)
                s.pending = None
            return batch

    def _work(self) -> None:
        if self.realtime:
            promote_current_thread("policy inference")
        out = self.ctx.socket(zmq.PUSH)
        out.setsockopt(zmq.LINGER, 0)
        out.connect(self._results_addr)
        try:
            while not self._stop.is_set():
                batch = self._take_batch()
                if batch:
                    try:
                        self._infer(batch, out)
                    except Exception:  # never let the worker die
                        log.exception("inference worker error")
        finally:
            out.close(0)

    def _drop(self, out: zmq.Socket, req: _Request, code: str, message: str, limit: str = "") -> None:
        self._count(code)
        with self._lock:
            s = self._sessions.get(req.session_id)
            if s is not None:
                s.dropped[code] = s.dropped.get(code, 0) + 1
        err = ProtocolError(code, "budget_us" if code == "expired" else "action", message, limit)
        out.send_multipart([req.identity, *error_message(req.header, err)])

    def _infer(self, batch: list[_Request], out: zmq.Socket, locked: bool = False) -> None:
        """Run the policy on ``batch`` and send replies on ``out`` (``locked``: caller holds the infer lock)."""
        if not locked:
            with self._infer_lock:
                self._infer(batch, out, locked=True)
            return
        policy, run = self._serving  # one read: a swap between two reads would pair the wrong policy and call
        schema = policy.schema
        now = time.monotonic()
        live = []
        for r in batch:
            if now > r.deadline:
                self._drop(
                    out,
                    r,
                    "expired",
                    f"waited {1e3 * (now - r.received):.1f} ms before inference",
                    f"{r.header.budget_us} us",
                )
            elif r.header.schema_hash != schema.hash:
                self._drop(out, r, "schema_hash", "the checkpoint was swapped to another schema", "re-handshake")
            else:
                live.append(r)
        if not live:
            return
        t0 = time.monotonic()
        try:
            chunks = run(live)
            if len(chunks) != len(live):
                raise ValueError(f"returned {len(chunks)} chunks for {len(live)} observations")
        except Exception as e:
            log.exception("policy %s failed", policy.checkpoint_id)
            for r in live:
                self._drop(out, r, "policy", f"{type(e).__name__}: {e}"[:200])
            return
        t1 = time.monotonic()
        if policy is self.policy:
            self._costs.append(t1 - t0)
        infer_ms = 1e3 * (t1 - t0)
        for r, chunk in zip(live, chunks, strict=True):
            a = np.asarray(chunk)
            if a.shape != schema.action.shape or a.dtype != WIRE_DTYPES[schema.action.dtype]:
                self._drop(
                    out, r, "policy", f"chunk {a.dtype.name}{a.shape}", f"{schema.action.dtype}{schema.action.shape}"
                )
                continue
            if t1 > r.deadline:
                self._drop(
                    out,
                    r,
                    "expired",
                    f"inference finished {1e3 * (t1 - r.deadline):.1f} ms late",
                    f"{r.header.budget_us} us",
                )
                continue
            h = r.header
            header = Header(MsgType.CHUNK, h.session_id, h.seq, h.obs_tick, h.capture_time, 0, schema.hash)
            meta = {"checkpoint_id": policy.checkpoint_id, "policy_dt": schema.policy_dt, "infer_ms": infer_ms}
            with self._lock:  # counted before the reply leaves: a client that has its chunk sees it counted
                s = self._sessions.get(r.session_id)
                if s is not None:
                    s.served += 1
            out.send_multipart([r.identity, *encode(header, meta, {"action": a})], copy=False)
