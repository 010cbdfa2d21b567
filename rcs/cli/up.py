"""``rcs up STACK.yaml``: start a stack composition (several ``rcs`` processes) with one command, no ROS.

A composition file (see ``launch/*.yaml``) lists processes, started in order::

    description: simulated Panda served over ZeroMQ
    processes:
      - name: robot
        rcs: [robot, --config, "${here}/robots/sim_panda.yaml"]   # arguments of an rcs subcommand
        ready: '"ready": true'                                     # wait for this stdout text before the next

``${here}`` is the directory of the composition file. Each child's output is forwarded line by line with a
``[name]`` prefix. SIGINT/SIGTERM stop every child (SIGTERM, in reverse order, SIGKILL after
``--grace`` seconds); if one child exits, the others are stopped too and its exit code is returned. A killed
``rcs up`` (SIGKILL) still stops its children: the kernel sends each SIGTERM (:mod:`rcs.child_process`).
``--dry-run`` prints the commands without running them.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from rcs.child_process import terminate_with_parent
from rcs.cli.main import at_least
from rcs.errors import ConfigError

#: Subcommands a composition may start (anything else is a typo or not an rcs process).
ALLOWED = ("robot", "serve", "record", "replay", "eval", "demo")


@dataclass(frozen=True)
class Process:
    """One process of a composition: ``rcs <args>``; ``ready`` is stdout text that means it is up."""

    name: str
    args: tuple[str, ...]
    ready: str | None = None
    ready_timeout_s: float = 120.0


def load_composition(path: str | Path) -> tuple[str, list[Process]]:
    """Parse and check a composition file; returns (description, processes)."""
    from rcs.remote.config import load_mapping

    p = Path(path)
    data = load_mapping(p)
    unknown = sorted(set(data) - {"description", "processes"})
    if unknown:
        raise ConfigError(f"{p}: unknown key(s) {unknown}; accepted: description, processes")
    items = data.get("processes")
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{p}: 'processes' must be a non-empty list")
    here = str(p.resolve().parent)
    out: list[Process] = []
    for i, item in enumerate(items):
        where = f"{p}: processes[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{where} must be a mapping")
        bad = sorted(set(item) - {"name", "rcs", "ready", "ready_timeout_s"})
        if bad:
            raise ConfigError(f"{where}: unknown key(s) {bad}; accepted: name, rcs, ready, ready_timeout_s")
        args = item.get("rcs")
        if not isinstance(args, list) or not args or not all(isinstance(a, (str, int, float)) for a in args):
            raise ConfigError(f"{where}.rcs must be a list of arguments of an rcs subcommand")
        if args[0] not in ALLOWED:
            raise ConfigError(f"{where}.rcs[0]={args[0]!r}: one of {list(ALLOWED)}")
        name = str(item.get("name", args[0]))
        if any(q.name == name for q in out):
            raise ConfigError(f"{where}: duplicate name {name!r}")
        ready = item.get("ready")
        out.append(
            Process(
                name,
                tuple(str(a).replace("${here}", here) for a in args),
                None if ready is None else str(ready),
                float(item.get("ready_timeout_s", 120.0)),
            )
        )
    return str(data.get("description", "")), out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("composition", help="stack composition file, e.g. launch/sim_robot.yaml")
    parser.add_argument("--dry-run", action="store_true", help="print the commands and exit")
    parser.add_argument(
        "--grace", type=at_least(0.0, float), default=10.0, help="seconds between SIGTERM and SIGKILL (default 10)"
    )


def rcs_command() -> list[str]:
    """How to start ``rcs`` from any shell: the absolute path of the ``rcs`` script of this interpreter's environment
    (a bare ``rcs`` is on PATH only inside the activated venv), else ``python -m rcs.cli.main``, which _Child runs."""
    script = Path(sys.executable).with_name("rcs")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "rcs.cli.main"]


class _Child:
    def __init__(self, spec: Process) -> None:
        self.spec = spec
        self.ready = threading.Event()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rcs.cli.main", *spec.args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,
            # a killed ``rcs up`` (SIGKILL: no cleanup) still stops its stack: the kernel sends each child SIGTERM
            preexec_fn=terminate_with_parent(),
        )
        if spec.ready is None:
            self.ready.set()
        self.thread = threading.Thread(target=self._forward, daemon=True)
        self.thread.start()

    def _forward(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            sys.stdout.write(f"[{self.spec.name}] {line}")
            sys.stdout.flush()
            if self.spec.ready is not None and self.spec.ready in line:
                self.ready.set()

    def terminate(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)


def run(args: argparse.Namespace) -> int:
    try:
        description, processes = load_composition(args.composition)
    except ConfigError as e:
        raise SystemExit(f"rcs up: {e}") from None
    if args.dry_run:
        for p in processes:
            sys.stdout.write(f"{p.name}: {shlex.join([*rcs_command(), *p.args])}\n")
        return 0
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    sys.stdout.write(f"rcs up {args.composition}: {description}\n")
    children: list[_Child] = []
    code = 0
    try:
        for p in processes:
            child = _Child(p)
            children.append(child)
            end = time.monotonic() + p.ready_timeout_s
            while not child.ready.wait(0.1):
                if stop.is_set() or child.proc.poll() is not None or time.monotonic() > end:
                    break
            if not child.ready.is_set():
                if child.proc.poll() is not None:
                    code = child.proc.returncode or 1
                    sys.stdout.write(f"rcs up: {p.name} exited with code {child.proc.returncode} before it was ready\n")
                elif not stop.is_set():
                    code = 1
                    sys.stdout.write(f"rcs up: {p.name} not ready within {p.ready_timeout_s} s\n")
                stop.set()
                break
        while not stop.wait(0.2):
            for child in children:
                if child.proc.poll() is not None:
                    code = child.proc.returncode
                    sys.stdout.write(f"rcs up: {child.spec.name} exited with code {code}: stopping the stack\n")
                    stop.set()
                    break
    finally:
        for child in reversed(children):
            child.terminate()
        deadline = time.monotonic() + args.grace
        for child in reversed(children):
            try:
                child.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                sys.stdout.write(f"rcs up: {child.spec.name} ignored SIGTERM for {args.grace} s: SIGKILL\n")
                os.killpg(child.proc.pid, signal.SIGKILL)
                child.proc.wait()
            child.thread.join(timeout=2.0)
    sys.stdout.flush()
    return code
