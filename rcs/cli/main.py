"""The ``rcs`` command. Each subcommand lives in its own module with ``add_arguments`` and ``run``.

The core's own commands are listed here; the outer packages add theirs through entry points (group
``rcs.commands``, the value names a module with ``SUMMARY``, ``add_arguments`` and ``run``: ``rcs train`` lives in
``policies/training/cli.py``, ``rcs sysid`` in ``sim/sysid/cli.py``), so the core never imports them. Subcommand
modules are imported only when chosen (``rcs --help`` imports the plugins' command modules, which import nothing
heavy at module level).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import math
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import rcs
from rcs.errors import ConfigError, RcsError, RegistryCollisionError
from rcs.registry import commands

#: the core's commands: name -> (module, the line ``rcs --help`` shows)
CORE_COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("rcs.cli.demo", "run the main demo on the simulated default robots"),
    "bench": ("rcs.cli.bench", "run a benchmark and print one JSON object"),
    "list": ("rcs.cli.listing", "list registered robots, cameras, teleops and envs"),
    "serve": ("rcs.cli.serve", "serve a policy to robots over ZeroMQ (docs/protocol.md)"),
    "keygen": ("rcs.cli.keygen", "write a CurveZMQ key pair for rcs serve"),
    "record": ("rcs.cli.record", "record teleoperated or scripted episodes into a crash-safe LeRobotDataset"),
    "replay": ("rcs.cli.replay", "replay a recorded episode on a simulated robot and report the tracking error"),
    "dataset": ("rcs.cli.dataset", "inspect a dataset (info) or finish an interrupted recording commit (repair)"),
    "emulate": ("rcs.cli.emulate", "run the wire-protocol emulator of a physical robot (docs/hardware.md)"),
    "robot": ("rcs.cli.robot", "run a robot server: control loop, state publisher, command endpoint (docs/ros2.md)"),
    "view": ("rcs.cli.view", "show a running robot server's stream in rerun, or save it to .rrd"),
    "up": ("rcs.cli.up", "start a stack composition from launch/*.yaml with one command (docs/ros2.md)"),
    "eval": ("rcs.cli.eval", "evaluate a checkpoint in sim through rcs serve + the real-time control loop"),
    "deploy": ("rcs.cli.deploy", "deploy a checkpoint onto a robot: preflight, shadow run, engage, logged run"),
}


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (``rcs train: argument --steps: ...``), exit code 2.

    argparse's default prints the whole usage block first, which for commands with 20 options buries the one
    line that says what is wrong.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def at_least(minimum: float, kind: type = int) -> Callable[[str], Any]:
    """An argparse ``type``: a number of ``kind`` that is >= ``minimum`` (the error names the limit)."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if not value >= minimum:  # `not >=` also refuses NaN
            raise argparse.ArgumentTypeError(f"{text} must be >= {minimum:g}")
        return value

    return parse


def add_view_option(parser: argparse.ArgumentParser) -> None:
    """``--view [FILE.rrd]``: a live view of the robot in rerun (``rcs view`` in its own process), into a running
    viewer, else into FILE.rrd (``args.view``: ``None`` without the option, ``""`` without a file)."""
    parser.add_argument(
        "--view",
        nargs="?",
        const="",
        metavar="FILE.rrd",
        help="live view in rerun (its own process), else into FILE.rrd (default outputs/view/rcs-<time>.rrd)",
    )


def greater_than(minimum: float) -> Callable[[str], float]:
    """An argparse ``type``: a finite float strictly greater than ``minimum``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (value > minimum and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"{text} must be > {minimum:g} (and finite)")
        return value

    return parse


def writable_folder(text: str) -> Path:
    """An argparse ``type`` for a folder that is created or appended to: refused if it, or the nearest part of the
    path that exists, is not a directory (checked before anything is created next to it)."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} exists and is not a directory")
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise argparse.ArgumentTypeError(f"{text!r}: {parent} is not a directory")
            break
    return path


def existing_folder(text: str) -> Path:
    """An argparse ``type`` for a folder that must already exist."""
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text!r} does not exist")
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is not a directory")
    return path


def key_values(pairs: list[str], flag: str) -> dict[str, object]:
    """``KEY=VALUE`` pairs as a dict, each value parsed as YAML (numbers, booleans, lists, strings)."""
    import yaml

    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"{flag} {pair!r}: expected KEY=VALUE")
        try:
            out[key] = yaml.safe_load(text)
        except yaml.YAMLError:
            raise ConfigError(f"{flag} {pair!r}: the value is not a YAML scalar or list") from None
    return out


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, inf) replaced by None, so that it prints as valid JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def json_line(value: Any, default: Callable[[Any], Any] | None = None) -> str:
    """One line of strict JSON (RFC 8259: no NaN/Infinity; those become null) with a trailing newline."""
    if default is not None:  # apply ``default`` first so that what it returns is made safe too
        value = json.loads(json.dumps(value, default=default))
    return json.dumps(json_safe(value), allow_nan=False) + "\n"


def arm_env_ids(task_less: bool = False) -> list[str]:
    """The registered rcs env ids whose env drives an arm (``env.arm``) with a task: what ``rcs eval`` and
    ``rcs record`` run; with ``task_less``, also the task-less arm env (``rcs record`` only: nothing to evaluate)."""
    from gymnasium.envs.registration import load_env_creator

    from rcs.envs.arm_teleop import ArmTeleopEnv
    from rcs.envs.pick_cube import PickCubeEnv
    from rcs.envs.registration import ENVS

    kinds = (PickCubeEnv, ArmTeleopEnv) if task_less else (PickCubeEnv,)
    out = []
    for env_id, (entry, _) in ENVS.items():
        creator = load_env_creator(entry)
        if isinstance(creator, type) and issubclass(creator, kinds):
            out.append(env_id)
    return out


def check_arm_env(flag: str, env_id: str, command: str, task_less: bool = False) -> None:
    """Raise a one-line :class:`RcsError` unless ``env_id`` is a registered rcs env that ``command`` can run
    (``task_less``: the task-less arm env too, see :func:`arm_env_ids`)."""
    from rcs.envs.registration import ENVS

    if env_id not in ENVS:
        raise ConfigError(f"{flag}={env_id!r}: unknown env id; known env ids: {', '.join(sorted(ENVS))}")
    arms = arm_env_ids(task_less)
    if env_id not in arms:
        raise ConfigError(f"{flag}={env_id!r}: {command} supports arm envs only: {', '.join(arms)}")


def command_names() -> list[str]:
    """Every command: the core's, then the ``rcs.commands`` entry points (sorted); a plugin may not reuse a core
    command's name."""
    plugins = commands.names()
    taken = sorted(set(plugins) & set(CORE_COMMANDS))
    if taken:
        raise RegistryCollisionError(f"entry-point group 'rcs.commands' redefines core commands {taken}")
    return [*CORE_COMMANDS, *plugins]


def command_module(name: str) -> ModuleType:
    """The module of command ``name`` (imported now): ``add_arguments(parser)`` and ``run(args) -> int | None``."""
    if name in CORE_COMMANDS:
        return importlib.import_module(CORE_COMMANDS[name][0])
    module = commands.factory(name)
    if not isinstance(module, ModuleType) or not all(hasattr(module, f) for f in ("add_arguments", "run")):
        raise ConfigError(
            f"command {name!r}: its rcs.commands entry point must name a module with add_arguments and run"
        )
    return module


def command_summary(name: str) -> str:
    """The line ``rcs --help`` shows for command ``name``."""
    if name in CORE_COMMANDS:
        return CORE_COMMANDS[name][1]
    return str(getattr(command_module(name), "SUMMARY", ""))


def build_parser() -> argparse.ArgumentParser:
    names = command_names()
    width = max(len(name) for name in names)
    listing = "\n".join(f"  {name:<{width}}  {command_summary(name)}" for name in names)
    parser = Parser(
        prog="rcs",
        description="Robot learning stack command line.",
        epilog=f"commands:\n{listing}\n\nrun 'rcs COMMAND --help' for a command's options",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"rcs {rcs.__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("command", choices=sorted(names), metavar="COMMAND", help="one of the commands below")
    parser.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:  # the command table itself comes from entry points: an installation defect is one line too
        top = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
        module = command_module(top.command)
    except RcsError as e:
        sys.stderr.write(f"rcs: {e}\n")
        return 2
    parser = Parser(prog=f"rcs {top.command}", description=command_summary(top.command))
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
