"""Latency of the hw/px4 link against the PX4 emulator (one machine, loopback UDP; a figure, not a test), for
``rcs bench links`` (:mod:`sim.bench.links`). Measured with ``time.monotonic()``, one clock for every process on a Linux host:

- setpoint: ``command_position`` called -> the emulator's MAVLink thread has it (``received``) -> the emulator's
  firmware first uses it on a physics tick (``applied``), in OFFBOARD, the vehicle hovering at 0.3 m;
- telemetry: the emulator stamps LOCAL_POSITION_NED with ``time_boot_ms`` when it sends it; a pymavlink peer takes it
  off the socket (transport, 1 ms resolution); and ``read()``: how long it blocks for a fresh sample and how old
  the returned state is when it returns.
"""

from __future__ import annotations

import time

import numpy as np

from hardware.emulators.px4 import Px4Emulator
from hardware.px4.driver import Px4Quadrotor
from hardware.px4.protocol import open_link
from rcs.errors import RcsError


def measure(samples: int) -> dict[str, list[float]]:
    """``samples`` position setpoints in a 50 Hz offboard loop, then ``samples`` telemetry messages; values in s."""
    emulator = Px4Emulator()
    try:
        px4 = Px4Quadrotor(**emulator.robot_config)
        with px4:
            px4.arm()
            target = np.array([0.0, 0.0, 0.3])
            deadline = time.monotonic() + 20
            while emulator.state()["mode"] != "Offboard":
                if time.monotonic() > deadline:
                    raise RcsError("hw/px4 emulator: never reached OFFBOARD within 20 s")
                px4.command_position(target)
                px4.read()
                time.sleep(0.02)
            received, applied, waits, ages = [], [], [], []
            for i in range(samples):
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
                while len(transport) < samples and time.monotonic() < deadline:
                    if time.monotonic() > next_heartbeat:  # the emulator answers peers heard within 2 s
                        peer.mav.heartbeat_send(6, 8, 0, 0, 4)
                        next_heartbeat = time.monotonic() + 0.5
                    px4.command_position(target)  # keep PX4 in offboard meanwhile
                    msg = peer.recv_match(type="LOCAL_POSITION_NED", blocking=True, timeout=1.0)
                    if msg is not None:
                        transport.append(time.monotonic() - (emulator.boot_time + msg.time_boot_ms / 1000))
            finally:
                peer.close()
        return {
            "setpoint_sent_to_received": received,
            "setpoint_sent_to_applied": applied,
            "telemetry_sent_to_received": transport,
            "read_wait_for_fresh_sample": waits,
            "state_age_at_read": ages,
        }
    finally:
        emulator.close()
