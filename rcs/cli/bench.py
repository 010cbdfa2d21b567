"""``rcs bench NAME``: run one benchmark module and print its result as one JSON object on stdout.

Benchmarks are plugins, found like robots through entry points (group ``rcs.benchmarks``, the value names a
module exposing ``add_arguments(parser)`` and ``run(args) -> dict``), so a backend ships its own benchmarks
without the core naming it. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import sys

from rcs.cli.main import Parser, json_line
from rcs.registry import benchmarks


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", choices=benchmarks.names(), help="which benchmark")
    parser.add_argument("--json", action="store_true", help="print JSON (the default and only format)")
    parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    module = benchmarks.factory(args.name)
    parser = Parser(prog=f"rcs bench {args.name}")
    parser.add_argument("--json", action="store_true", help="print JSON (the default and only format)")
    module.add_arguments(parser)
    result = module.run(parser.parse_args(args.rest))
    sys.stdout.write(json_line(result))
    return 0
