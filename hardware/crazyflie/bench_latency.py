"""Setpoint latency and telemetry age of ``hw/crazyflie`` against its emulator (one host, one clock), for
``rcs bench links`` (:mod:`sim.bench.links`):

- setpoint latency: host monotonic time just before ``command_position`` -> the emulator's firmware handles the
  packet (its link thread, under the physics lock: the next physics tick uses it);
- telemetry transit: the emulator sends the last log block of a sample -> the driver has assembled the sample
  (its capture timestamp);
- telemetry age at read: ``read()`` returns -> minus the sample's capture timestamp.

A figure for the docs, never a test assertion.
"""

from __future__ import annotations

import time

import numpy as np

import rcs
from hardware.emulators.crazyflie import CrazyflieEmulator


def measure(samples: int) -> dict[str, list[float]]:
    """``samples`` position setpoints and reads at the log rate (100 Hz); each measure's values in s."""
    with CrazyflieEmulator() as emu:
        robot = rcs.make_robot("hw/crazyflie", uri=emu.uri)
        with robot:
            ground = robot.read().position
            robot.arm()
            sent: dict[float, float] = {}
            ages, transit_pairs = [], []
            for i in range(samples):
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
    return {
        "setpoint_sent_to_firmware": latencies,
        "telemetry_sent_to_sample": transit,
        "state_age_at_read": ages,
    }
