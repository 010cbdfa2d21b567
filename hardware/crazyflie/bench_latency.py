"""Benchmark: setpoint latency and telemetry age of ``hw/crazyflie`` against the emulator (one host, one clock).

    .venv/bin/python -m hardware.crazyflie.bench_latency [--n 500]

- setpoint latency: host monotonic time just before ``command_position`` -> the emulator's firmware handles the
  packet (its link thread, under the physics lock: the next physics tick uses it);
- telemetry transit: the emulator sends the last log block of a sample -> the driver has assembled the sample
  (its capture timestamp);
- telemetry age at read: ``read()`` returns -> minus the sample's capture timestamp.

Prints percentiles in ms (a figure for the docs, never a test assertion).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import rcs
from hardware.emulators.crazyflie import CrazyflieEmulator


def _summary(name: str, values_s: list[float]) -> str:
    ms = np.asarray(values_s) * 1e3
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return f"{name:28s} n={len(ms):4d}  p50 {p50:6.2f}  p90 {p90:6.2f}  p99 {p99:6.2f}  max {ms.max():6.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=500, help="setpoints and reads (at 100 Hz)")
    args = parser.parse_args()
    with CrazyflieEmulator() as emu:
        robot = rcs.make_robot("hw/crazyflie", uri=emu.uri)
        with robot:
            ground = robot.read().position
            robot.arm()
            sent: dict[float, float] = {}
            ages, transit_pairs = [], []
            for i in range(args.n):
                x = float(ground[0] + 1e-5 * (i + 1))  # a unique value per setpoint, 10 um steps
                t = time.monotonic()
                robot.command_position(np.array([x, ground[1], ground[2]]), 0.0)
                sent[round(x, 7)] = t
                state = robot.read()  # waits for the next log sample (100 Hz): paces the loop
                ages.append(time.monotonic() - state.timestamp)
                sample = robot.last_sample
                if sample is not None:
                    transit_pairs.append((sample.firmware_ms, state.timestamp))
            robot.disarm()
            stats = emu.stats()
        latencies = [
            recv - sent[round(values[0], 7)]
            for recv, kind, values in stats["setpoints"]
            if kind.startswith("generic") and values and round(values[0], 7) in sent
        ]
        sent_at: dict[int, float] = {}
        for ms, t in stats["log_packets"]:
            sent_at[int(ms)] = float(t)  # the last of the sample's blocks
        transit = [cap - sent_at[ms] for ms, cap in transit_pairs if ms in sent_at]
    for name, values in (
        ("setpoint -> firmware", latencies),
        ("log sent -> sample assembled", transit),
        ("sample age at read()", ages),
    ):
        sys.stdout.write(_summary(name, values) + "\n")


if __name__ == "__main__":
    main()
