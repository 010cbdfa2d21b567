"""``rcs list``: what is registered (robots, cameras, teleops, emulators, benchmarks, batched envs, reality shifts from entry points; gymnasium env ids)."""

from __future__ import annotations

import argparse
import json
import sys

from rcs import registry


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from rcs.envs.registration import ENVS

    found = {
        "robots": registry.robots.names(),
        "cameras": registry.cameras.names(),
        "teleops": registry.teleops.names(),
        "emulators": registry.emulators.names(),
        "benchmarks": registry.benchmarks.names(),
        "vector_envs": registry.vector_envs.names(),
        "shifts": registry.shifts.names(),
        "envs": sorted(ENVS),
    }
    if args.json:
        sys.stdout.write(json.dumps(found) + "\n")
    else:
        for kind, names in found.items():
            sys.stdout.write(f"{kind}: {', '.join(names) if names else '(none)'}\n")
    return 0
