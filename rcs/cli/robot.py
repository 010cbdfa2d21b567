"""``rcs robot``: run a robot server (control loop + state publisher + command endpoint) from a config.

Examples::

    rcs robot --config launch/robots/sim_panda.yaml
    rcs robot --config launch/robots/hw_so101.yaml --robot-option port=/dev/ttyACM0
    rcs robot --robot sim/so101 --rate 30 --state-endpoint tcp://127.0.0.1:5610 --command-endpoint tcp://127.0.0.1:5611

Command-line options override the config file. When the server is up, one JSON line
``{"ready": true, "robot": ..., "state_endpoint": ..., "command_endpoint": ..., "rate_hz": ...}`` is printed on
stdout (process supervisors such as ``rcs up`` wait for it). SIGINT/SIGTERM stop the robot in a controlled way
(the loop brakes, then every thread and socket is closed). Protocol: docs/ros2.md ("Robot channel").
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from rcs.cli.main import add_view_option
from rcs.errors import ConfigError, RcsError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="robot server config (YAML or JSON), e.g. launch/robots/sim_panda.yaml")
    parser.add_argument("--robot", help="registered robot name (overrides the config's 'robot')")
    parser.add_argument(
        "--robot-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="robot factory option merged into the config's robot_config (repeatable), e.g. port=/dev/ttyACM0",
    )
    parser.add_argument("--rate", type=float, help="control and state rate (Hz)")
    parser.add_argument("--state-endpoint", help="ZeroMQ PUB endpoint to bind (default tcp://127.0.0.1:5600)")
    parser.add_argument("--command-endpoint", help="ZeroMQ ROUTER endpoint to bind (default tcp://127.0.0.1:5601)")
    parser.add_argument("--no-realtime", action="store_true", help="do not ask for SCHED_FIFO / mlockall")
    parser.add_argument(
        "--curve-secret",
        metavar="FILE",
        help="CurveZMQ server key pair (.key_secret from rcs keygen) for both endpoints; with --allow",
    )
    parser.add_argument(
        "--allow",
        metavar="FILE",
        help="allow-list of client public keys (Z85 per line, or a dir of .key files); with --curve-secret",
    )
    parser.add_argument(
        "--max-frame-bytes",
        type=int,
        help="largest frame a client may send to the command endpoint (bytes, default 1048576)",
    )
    parser.add_argument("--duration", type=float, help="stop after this many seconds (default: until SIGINT/SIGTERM)")
    add_view_option(parser)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rcs.cli.main import key_values
    from rcs.remote.config import load_mapping, resolve_paths, server_config
    from rcs.remote.server import RobotServer
    from rcs.viewer.process import ViewProcess

    try:
        data = resolve_paths(load_mapping(args.config), Path(args.config).parent) if args.config else {}
        overrides = {
            "robot": args.robot,
            "rate_hz": args.rate,
            "state_endpoint": args.state_endpoint,
            "command_endpoint": args.command_endpoint,
            "curve_secret": args.curve_secret,
            "allow": args.allow,
            "max_frame_bytes": args.max_frame_bytes,
        }
        data.update({k: v for k, v in overrides.items() if v is not None})
        if args.robot_option:
            data["robot_config"] = {
                **(data.get("robot_config") or {}),
                **key_values(args.robot_option, "--robot-option"),
            }
        if args.no_realtime:
            data["realtime"] = False
        if args.view is not None and (data.get("curve_secret") or data.get("allow")):
            raise ConfigError("--view: the viewer has no CurveZMQ keys; run rcs view with a plain local server")
        if "robot" not in data:
            raise ConfigError("no robot: give --robot NAME or a --config with 'robot: NAME'")
        config = server_config(data)
        server = RobotServer(config)
    except (RcsError, OSError) as e:
        prefix = f"{args.config}: " if args.config and str(args.config) not in str(e) else ""
        raise SystemExit(f"rcs robot: {prefix}{e}") from None

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        server.start()
    except Exception as e:  # noqa: BLE001 any start-up failure: stop what started, exit with the reason
        server.stop(0.0)
        raise SystemExit(f"rcs robot: {e}") from None
    # before the ready line: a client that starts moving the robot on it is seen by the view from the start
    viewer = ViewProcess(args.view, config.state_endpoint, config.command_endpoint) if args.view is not None else None
    sys.stdout.write(
        json.dumps(
            {
                "ready": True,
                "robot": config.robot,
                "state_endpoint": config.state_endpoint,
                "command_endpoint": config.command_endpoint,
                "rate_hz": server.rate_hz,
            }
        )
        + "\n"
    )
    sys.stdout.flush()
    if args.duration is not None:
        threading.Timer(args.duration, stop.set).start()
    try:
        error = server.wait(stop)
    finally:
        if viewer is not None:
            viewer.stop()
        server.stop()
    if error is not None:  # the robot stopped the loop (link lost, device fault): exit non-zero, saying why
        prefix = "" if config.robot in str(error) else f"{config.robot}: "
        raise SystemExit(f"rcs robot: {prefix}{error}")
    return 0
