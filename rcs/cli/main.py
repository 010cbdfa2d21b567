"""The ``rcs`` command. Each subcommand lives in its own module with ``add_arguments`` and ``run``.

Subcommand modules are imported only when chosen, so ``rcs --help`` stays light.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

import rcs
from rcs.errors import RcsError

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("rcs.cli.demo", "run the main demo on the simulated default robots"),
    "bench": ("rcs.cli.bench", "run a benchmark and print one JSON object"),
    "list": ("rcs.cli.listing", "list registered robots, cameras, teleops and envs"),
    "serve": ("rcs.cli.serve", "serve a policy to robots over ZeroMQ (docs/protocol.md)"),
    "keygen": ("rcs.cli.keygen", "write a CurveZMQ key pair for rcs serve"),
    "record": ("rcs.cli.record", "record teleoperated or scripted episodes into a crash-safe LeRobotDataset"),
    "replay": ("rcs.cli.replay", "replay a recorded episode on a simulated robot and report the tracking error"),
    "dataset": ("rcs.cli.dataset", "inspect a dataset (info) or finish an interrupted recording commit (repair)"),
    "robot": ("rcs.cli.robot", "run a robot server: control loop, state publisher, command endpoint (docs/ros2.md)"),
    "up": ("rcs.cli.up", "start a stack composition from launch/*.yaml with one command (docs/ros2.md)"),
    "train": ("rcs.cli.train", "train a policy on a LeRobotDataset (checkpoints, resume, loss curve)"),
    "eval": ("rcs.cli.eval", "evaluate a checkpoint in sim through rcs serve + the real-time control loop"),
}


def build_parser() -> argparse.ArgumentParser:
    listing = "\n".join(f"  {name:<8} {text}" for name, (_, text) in SUBCOMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="rcs",
        description="Robot learning stack command line.",
        epilog=f"commands:\n{listing}\n\nrun 'rcs COMMAND --help' for a command's options",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"rcs {rcs.__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("command", choices=sorted(SUBCOMMANDS), metavar="COMMAND")
    parser.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    top = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    module_name, help_text = SUBCOMMANDS[top.command]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"rcs {top.command}", description=help_text)
    module.add_arguments(parser)
    args = parser.parse_args(top.args)
    logging.basicConfig(
        level=logging.DEBUG if top.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    if not top.verbose:
        logging.getLogger("OpenGL").setLevel(logging.WARNING)  # PyOpenGL's import-time INFO chatter
    try:
        return int(module.run(args) or 0)
    except RcsError as e:  # a bad name, file, shape or limit: one clear line (the traceback with -v)
        if top.verbose:
            raise
        sys.stderr.write(f"rcs {top.command}: {e}\n")
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
