"""Latency of the hw/px4 link against the PX4 emulator (one machine, loopback UDP; a figure, not a test)::

    python -m hardware.px4.benchmark [--samples 300]

Measured with ``time.monotonic()``, one clock for every process on a Linux host:

- setpoint: ``command_position`` called -> the emulator's MAVLink thread has it (``received``) -> the emulator's
  firmware first uses it on a physics tick (``applied``), in OFFBOARD, the vehicle hovering at 0.3 m;
- telemetry: the emulator stamps LOCAL_POSITION_NED with ``time_boot_ms`` when it sends it; a pymavlink peer takes it
  off the socket (transport, 1 ms resolution); and ``read()``: how long it blocks for a fresh sample and how old
  the returned state is when it returns.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import numpy as np

from hardware.emulators.px4 import Px4Emulator
from hardware.px4.driver import Px4Quadrotor
from hardware.px4.protocol import open_link


def _summary(name: str, values_s: list[float]) -> str:
    v = np.asarray(values_s) * 1e3
    return (
        f"{name:<44} n={len(v):4d}  p50 {np.percentile(v, 50):6.2f} ms  p90 {np.percentile(v, 90):6.2f} ms  "
        f"p99 {np.percentile(v, 99):6.2f} ms  max {v.max():6.2f} ms"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hardware.px4.benchmark", description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=300)
    args = parser.parse_args(argv)
    emulator = Px4Emulator()
    try:
        px4 = Px4Quadrotor(**emulator.robot_config)
        with px4:
            px4.arm()
            target = np.array([0.0, 0.0, 0.3])
            deadline = time.monotonic() + 20
            while emulator.state()["mode"] != "Offboard":
                if time.monotonic() > deadline:
                    raise SystemExit("never reached OFFBOARD")
                px4.command_position(target)
                px4.read()
                time.sleep(0.02)
            received, applied, waits, ages = [], [], [], []
            for i in range(args.samples):
                sent = time.monotonic()
                px4.command_position(target + [0.001 * (i % 2), 0.0, 0.0])
                while True:
                    rx, used = emulator.setpoint_timing()
                    if rx >= sent and used >= rx:
                        break
                received.append(rx - sent)
                applied.append(used - sent)
                t0 = time.monotonic()
                s = px4.read()
                done = time.monotonic()
                waits.append(done - t0)
                ages.append(done - s.timestamp)
                time.sleep(max(0.0, sent + 0.02 - time.monotonic()))  # a 50 Hz offboard loop
            peer = open_link(f"udpout:{emulator.address}", 250, 190)
            transport = []
            next_heartbeat, deadline = 0.0, time.monotonic() + 60
            try:
                while len(transport) < args.samples and time.monotonic() < deadline:
                    if time.monotonic() > next_heartbeat:  # the emulator answers peers heard within 2 s
                        peer.mav.heartbeat_send(6, 8, 0, 0, 4)
                        next_heartbeat = time.monotonic() + 0.5
                    px4.command_position(target)  # keep PX4 in offboard meanwhile
                    msg = peer.recv_match(type="LOCAL_POSITION_NED", blocking=True, timeout=1.0)
                    if msg is not None:
                        transport.append(time.monotonic() - (emulator.boot_time + msg.time_boot_ms / 1000))
            finally:
                peer.close()
        lines = [
            f"hw/px4 link benchmark, {args.samples} samples, loopback UDP, emulator telemetry 100 Hz",
            _summary("setpoint sent -> emulator received", received),
            _summary("setpoint sent -> applied on a physics tick", applied),
            _summary("telemetry sent -> taken off the socket", transport),
            _summary("read(): wait for a fresh sample", waits),
            _summary("read(): age of the state when returned", ages),
        ]
        sys.stdout.write("\n".join(lines) + "\n")
    finally:
        emulator.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
