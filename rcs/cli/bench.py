"""``rcs bench NAME``: run one benchmark module and print its result as one JSON object on stdout.

A benchmark module exposes ``add_arguments(parser)`` and ``run(args) -> dict``. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys

BENCHMARKS: dict[str, str] = {
    "sim": "rcs.bench.sim",
    "loop": "rcs.bench.loop",
    "chunks": "rcs.bench.chunks",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", choices=sorted(BENCHMARKS), help="which benchmark")
    parser.add_argument("--json", action="store_true", help="print JSON (the default and only format)")
    parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    module = importlib.import_module(BENCHMARKS[args.name])
    parser = argparse.ArgumentParser(prog=f"rcs bench {args.name}")
    parser.add_argument("--json", action="store_true", help="print JSON (the default and only format)")
    module.add_arguments(parser)
    result = module.run(parser.parse_args(args.rest))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0
