"""``rcs emulate NAME``: run the wire-protocol emulator of a physical robot, backed by simulated physics.

Example::

    rcs emulate hw/so101                      # a Feetech bus on a pseudo-terminal, servos moved by MuJoCo
    rcs robot --robot hw/so101 --robot-option port=/dev/pts/7 ...   # the driver, as on the real arm

When the emulator is up, one JSON line ``{"ready": true, "robot": ..., "robot_config": {...}}`` is printed on
stdout: ``robot_config`` holds the options that connect ``make_robot(robot, ...)`` to it (the same keys a user
sets for the real robot). SIGINT/SIGTERM (or ``--duration``) stop it. The emulators (docs/hardware.md) are what
the drivers are tested against; nothing here has run on a physical robot.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from rcs.cli.main import greater_than, json_line, key_values
from rcs.errors import RcsError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("robot", help="registered physical robot with an emulator (rcs list: emulators)")
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="emulator option (repeatable; values are YAML: seed=3, calibrate=false)",
    )
    parser.add_argument("--duration", type=greater_than(0.0), help="stop after this many seconds")


def run(args: argparse.Namespace) -> int:
    from rcs.registry import start_emulator

    try:
        emulator = start_emulator(args.robot, **key_values(args.option, "--option"))
    except (RcsError, OSError) as e:
        raise SystemExit(f"rcs emulate: {e}") from None
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        sys.stdout.write(json_line({"ready": True, "robot": emulator.robot, "robot_config": emulator.robot_config}))
        sys.stdout.flush()
        stop.wait(args.duration)
    finally:
        emulator.close()
    return 0
