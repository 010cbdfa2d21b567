"""``rcs bench NAME``: run one benchmark module and print its result as one JSON object on stdout.

Benchmarks are plugins, found like robots through entry points (group ``rcs.benchmarks``, the value names a
module exposing ``add_arguments(parser)`` and ``run(args) -> dict``), so a backend ships its own benchmarks
without the core naming it (this project's own benchmarks live in ``sim/bench/``, which the core never imports).
Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Any, Protocol, runtime_checkable

from rcs.cli.main import Parser, json_line
from rcs.errors import ConfigError
from rcs.registry import benchmarks


@runtime_checkable
class Benchmark(Protocol):
    """What a ``rcs.benchmarks`` entry point names: a module with these two functions."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> dict[str, Any]: ...


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", choices=benchmarks.names(), help="which benchmark")
    parser.add_argument("--json", action="store_true", help="print JSON (the default and only format)")
    parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    module: object = benchmarks.factory(args.name)
    if not isinstance(module, Benchmark):
        raise ConfigError(f"benchmark {args.name!r}: its entry point must name a module with add_arguments and run")
    parser = Parser(prog=f"rcs bench {args.name}")
    parser.add_argument("--json", action="store_true", help="print JSON (the default and only format)")
    module.add_arguments(parser)
    bench_args = parser.parse_args(args.rest)
    # stdout carries the JSON alone: what a benchmark or a library it loads prints (lerobot's from_pretrained
    # prints "Loading weights ..." with print()) goes to stderr with the progress
    with contextlib.redirect_stdout(sys.stderr):
        result = module.run(bench_args)
    sys.stdout.write(json_line(result))
    return 0
