"""``rcs serve``: serve a policy to robots over ZeroMQ (protocol: ``docs/protocol.md``).

``--policy`` is ``null``, ``constant`` or a manifest path; ``SIGHUP`` re-reads it and swaps the checkpoint
without dropping sessions. Binds loopback by default; ``--curve-secret`` with ``--allow`` enables CurveZMQ
encryption and a client-key allow-list (keys from ``rcs keygen``).
"""

from __future__ import annotations

import argparse
import logging
import signal

from rcs.errors import ConfigError

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", default="null", help="null | constant | PATH of a policy manifest (default null)")
    parser.add_argument("--bind", default="tcp://127.0.0.1:5555", help="endpoint (default tcp://127.0.0.1:5555)")
    parser.add_argument("--curve-secret", metavar="FILE", help="server key pair (.key_secret from rcs keygen)")
    parser.add_argument("--allow", metavar="FILE", help="allow-list: Z85 client public keys, or a dir of .key files")
    parser.add_argument("--max-batch", type=int, default=1, help="sessions per inference call (default 1)")
    parser.add_argument("--batch-window-ms", type=float, default=0.0, help="wait for a fuller batch (ms)")
    parser.add_argument("--session-timeout", type=float, default=10.0, help="drop silent sessions after (s)")
    parser.add_argument("--heartbeat", type=float, default=0.25, help="server heartbeat period (s, default 0.25)")
    parser.add_argument(
        "--error-rate",
        type=float,
        default=100.0,
        help="ERROR replies per second per peer; beyond it bad messages are dropped (default 100)",
    )
    parser.add_argument(
        "--inline-max-ms",
        type=float,
        default=0.5,
        help="run policies faster than this on the I/O thread (ms, default 0.5; 0 disables)",
    )
    parser.add_argument(
        "--hello-rate",
        type=float,
        default=5.0,
        help="HELLOs per second per peer; beyond it HELLOs are dropped (default 5)",
    )
    parser.add_argument("--max-sessions", type=int, default=256, help="sessions open at once (default 256)")
    parser.add_argument(
        "--max-sessions-per-address",
        type=int,
        default=64,
        help="sessions open from one IP address (default 64; 0: no limit)",
    )
    parser.add_argument(
        "--idle-evict",
        type=float,
        default=10.0,
        help="when full, a HELLO evicts a session that never sent an observation, else one "
        "silent for this long (s, default 10); sessions that keep requesting stay",
    )
    parser.add_argument(
        "--realtime",
        action="store_true",
        help="SCHED_FIFO (below the control loop) for the serving threads where permitted: a policy on the "
        "control path of a robot on this machine, e.g. a motor-level flight policy",
    )


def run(args: argparse.Namespace) -> int:
    from rcs.serving import keys
    from rcs.serving.policy import LoadOptions, load_policy
    from rcs.serving.server import PolicyServer

    try:
        curve, allow = keys.load_server_keys(args.curve_secret, args.allow, ("--curve-secret", "--allow"))
        options = LoadOptions(realtime=args.realtime)
        policy = load_policy(args.policy, options)
        server = PolicyServer(
            policy,
            args.bind,
            curve=curve,
            allow=allow,
            max_batch=args.max_batch,
            batch_window_s=args.batch_window_ms / 1e3,
            session_timeout_s=args.session_timeout,
            heartbeat_s=args.heartbeat,
            error_rate=args.error_rate,
            hello_rate=args.hello_rate,
            inline_max_s=args.inline_max_ms / 1e3,
            max_sessions=args.max_sessions,
            max_sessions_per_address=args.max_sessions_per_address,
            idle_evict_s=args.idle_evict,
            realtime=args.realtime,
            loader=lambda: load_policy(args.policy, options),
        )
    except ConfigError as e:
        raise SystemExit(f"rcs serve: {e}") from None
    signal.signal(signal.SIGHUP, lambda *_: server.request_reload())
    signal.signal(signal.SIGTERM, lambda *_: server.stop())
    try:
        server.run()
    except KeyboardInterrupt:
        server.stop()
    finally:
        close = getattr(policy, "close", None)  # a policy that owns processes or devices (e.g. a composed one)
        if callable(close):
            close()
    return 0
