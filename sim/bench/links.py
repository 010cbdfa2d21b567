"""``rcs bench links``: setpoint latency and telemetry age of the quadrotor links, each driver against its emulator.

Both ends run on this host, so one monotonic clock times every hop (Linux: ``time.monotonic`` is shared by
processes). Per link:

- ``hw/crazyflie`` (cflib over its UDP CRTP link, :mod:`hardware.crazyflie.bench_latency`): position setpoint sent ->
  handled by the emulated firmware; last log block of a sample sent -> the driver has the sample; the state's age
  when ``read()`` returns (100 Hz log rate).
- ``hw/px4`` (pymavlink over UDP, :mod:`hardware.px4.benchmark`): setpoint sent -> received by the emulated
  autopilot -> first used on a physics tick (2 ms ticks); telemetry sent -> taken off the socket (1 ms resolution);
  ``read()``'s wait for a fresh sample and the state's age when it returns (100 Hz telemetry, 50 Hz caller).

The measuring thread runs with the control loop's real-time setup (``rcs.control.loop.realtime``: SCHED_FIFO 80,
locked memory, where permitted), as the loop that calls ``read()`` does; ``rt_scheduling`` says whether it took.
Figures in ms (p50, p90, p99, max). Over a Crazyradio or a serial telemetry link expect more per hop; never
measured here (no radio, no vehicle).
"""

from __future__ import annotations

import argparse
import importlib
import logging
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: emulated robot -> module whose ``measure(samples) -> {name: [s, ...]}`` times its link
LINKS = {"hw/crazyflie": "hardware.crazyflie.bench_latency", "hw/px4": "hardware.px4.benchmark"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--links", nargs="+", choices=sorted(LINKS), default=sorted(LINKS), help="links to measure")
    parser.add_argument("--samples", type=int, default=300, help="setpoints (and reads) per link")


def _percentiles_ms(values_s: list[float]) -> dict[str, float]:
    ms = np.asarray(values_s, dtype=np.float64) * 1e3
    if ms.size == 0:
        return {"n": 0}
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return {
        "n": int(ms.size),
        "p50": round(p50, 3),
        "p90": round(p90, 3),
        "p99": round(p99, 3),
        "max": round(ms.max(), 3),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from rcs.control.loop import RtConfig, realtime

    out: dict[str, Any] = {"samples": args.samples, "unit": "ms", "links": {}}
    with realtime(RtConfig()) as status:
        out["rt_scheduling"] = status.fifo
        for name in args.links:
            log.info("rcs bench links: %s: starting its emulator", name)
            measured = importlib.import_module(LINKS[name]).measure(args.samples)
            out["links"][name] = {key: _percentiles_ms(values) for key, values in measured.items()}
    return out
