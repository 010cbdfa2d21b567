"""``rcs view``: a running robot server's stream in rerun, from a process of its own (docs/ros2.md).

Examples::

    rcs view                                   # the robot server on the default endpoints, into a running
                                               # rerun viewer, else outputs/view/rcs-<time>.rrd
    rcs view --save run.rrd --duration 30      # into a file (open it later with `rerun run.rrd`)
    rcs robot --config launch/robots/sim_panda.yaml --view      # starts this beside the robot server

The view subscribes to what the server publishes anyway, so the control loop does not change (measured in
docs/benchmarks.md). When it is up, one JSON line ``{"ready": true, "sink": <file or viewer URL>}`` is printed
on stdout. SIGINT/SIGTERM (or ``--duration``) stop it and close the file.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from rcs.child_process import report_to_parent
from rcs.cli.main import greater_than, json_line
from rcs.errors import RcsError

DEFAULT_STATE = "tcp://127.0.0.1:5600"
DEFAULT_COMMAND = "tcp://127.0.0.1:5601"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-endpoint", default=DEFAULT_STATE, help=f"the server's PUB (default {DEFAULT_STATE})")
    parser.add_argument(
        "--command-endpoint", default=DEFAULT_COMMAND, help=f"the server's ROUTER (default {DEFAULT_COMMAND})"
    )
    parser.add_argument("--save", metavar="FILE.rrd", help="write a rerun recording file instead of a viewer")
    parser.add_argument("--connect", metavar="URL", help="a rerun viewer's URL (default: the local viewer if running)")
    parser.add_argument("--duration", type=greater_than(0.0), help="stop after this many seconds")


def run(args: argparse.Namespace) -> int:
    from rcs.remote.client import RobotClient
    from rcs.remote.wire import TOPIC_CAMERA, TOPIC_STATE, TOPIC_STATUS
    from rcs.viewer.robot_view import RobotView, open_recording

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):  # first: a stop during start-up still closes the file
        signal.signal(sig, lambda *_: stop.set())
    topics = (TOPIC_STATE, TOPIC_STATUS, TOPIC_CAMERA)
    try:
        recording, sink = open_recording(args.save, args.connect)
        client = RobotClient(args.command_endpoint, args.state_endpoint, topics=topics, receive_hwm=200)
        description = client.describe(timeout_s=10.0)
    except (RcsError, OSError) as e:
        raise SystemExit(f"rcs view: {e}") from None
    sys.stdout.write(json_line({"ready": True, "sink": sink, "robot": description.get("name")}))
    sys.stdout.flush()
    view = RobotView(client, description, recording)
    try:
        view.run(stop, args.duration)
    finally:
        recording.flush()
        recording.disconnect()
        client.close()
    summary = {"done": True, "sink": sink, "states": view.states, "statuses": view.statuses, "images": view.images}
    report_to_parent(json_line(summary), sys.stdout)  # the file is closed: a parent gone is no error
    return 0
