"""``rcs bench view``: the robot server's control loop with and without a live rerun view, side by side.

Runs ``rcs robot --robot ROBOT`` (real-time setup where permitted) for ``--seconds``, twice in one run: plain, then
with ``--view FILE.rrd`` (the view in its own process, saving headless). A client subscribed to the server's STATUS
keeps the last report of each run: the loop's wake-up lateness (p50/p99/max, us), missed ticks and achieved rate.
For the view run it also counts the state samples (the TCP entity) the saved file holds against the states the server published:
whether the view kept up (it drops, the robot never waits).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from rcs.loopback import free_endpoint
from rcs.remote.client import RobotClient
from rcs.remote.wire import TOPIC_STATUS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--robot", default="sim/panda", help="registered robot (default sim/panda)")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds per run")


def _run(robot: str, seconds: float, view: Path | None) -> dict[str, Any]:
    state, command = free_endpoint(), free_endpoint()
    cmd = [sys.executable, "-m", "rcs.cli.main", "robot", "--robot", robot, "--state-endpoint", state]
    cmd += ["--command-endpoint", command, "--duration", str(seconds), *(["--view", str(view)] if view else [])]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    proc.stdout.readline()  # the ready line
    last: dict[str, Any] = {}
    client = RobotClient(command, state, topics=(TOPIC_STATUS,))
    stop = threading.Event()

    def listen() -> None:
        while not stop.is_set():
            got = client.receive(timeout_s=0.5)
            if got is not None:
                last.update(got[1].meta)

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    proc.wait(seconds + 60)
    stop.set()
    listener.join(5)
    client.close()
    loop = last.get("loop", {})
    return {
        "achieved_rate_hz": loop.get("achieved_rate_hz"),
        "lateness_us": loop.get("lateness_us"),
        "missed_ticks": loop.get("missed_ticks"),
        "rt_scheduling": loop.get("rt_scheduling"),
        "states_published": last.get("states_published"),
    }


def _rows(path: Path, entity: str) -> int:
    from rerun.chunk import RrdReader

    return sum(c.num_rows for c in RrdReader(path).stream() if c.entity_path == entity)


def run(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"robot": args.robot, "seconds": args.seconds}
    out["without_view"] = _run(args.robot, args.seconds, None)
    with tempfile.TemporaryDirectory() as tmp:
        rrd = Path(tmp) / "view.rrd"
        t0 = time.monotonic()
        out["with_view"] = _run(args.robot, args.seconds, rrd)
        out["with_view"]["wall_s"] = round(time.monotonic() - t0, 1)
        out["with_view"]["view_state_samples"] = _rows(rrd, "/robot/tcp") if rrd.exists() else 0
    out["loop_p99_lateness_us"] = {
        "without_view": (out["without_view"]["lateness_us"] or {}).get("p99"),
        "with_view": (out["with_view"]["lateness_us"] or {}).get("p99"),
    }
    return out
