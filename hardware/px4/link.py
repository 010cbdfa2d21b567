"""The companion side of a MAVLink 2 link to a PX4 autopilot: one receiver thread, the newest telemetry, command
acknowledgements and status texts, and our own 1 Hz heartbeat (PX4 watches it for its data-link-loss failsafe).

Nothing here converts frames: messages are kept as pymavlink delivered them (PX4's NED/FRD); the driver converts.
The receiver is on the control path (the state a loop's ``read()`` returns is its newest telemetry): it runs
``SCHED_FIFO`` below the loop where permitted (:mod:`rcs.control.priorities`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from hardware.px4.protocol import open_link
from rcs.control.priorities import promote_current_thread

log = logging.getLogger(__name__)

MAV_TYPE_ONBOARD_CONTROLLER, MAV_AUTOPILOT_INVALID, MAV_AUTOPILOT_PX4, MAV_STATE_ACTIVE = 18, 8, 12, 4


@dataclass
class Received:
    """A message and the ``time.monotonic()`` at which the receiver thread took it off the socket."""

    msg: Any
    t: float


class MavlinkLink:
    """A pymavlink connection to one autopilot, served by a daemon thread.

    Args:
        device: pymavlink connection string (``udpin:0.0.0.0:14540``, ``udpout:host:port``, ...).
        target_system: the autopilot's system id (0: the first autopilot whose heartbeat arrives).
        source_system, source_component: our MAVLink ids.
        baud: bit/s of a serial device (ignored for UDP/TCP).

    Attributes:
        last_rx: monotonic time of the newest message from the autopilot (``-inf``: none yet).
    """

    def __init__(
        self, device: str, target_system: int, source_system: int, source_component: int, baud: int = 921600
    ) -> None:
        self.device = device
        self.target_system = int(target_system)
        self.conn = open_link(device, source_system, source_component, baud=baud)
        self.last_rx = float("-inf")
        self.heartbeat: Received | None = None
        self.position: Received | None = None  # LOCAL_POSITION_NED
        self.attitude: Received | None = None  # ATTITUDE_QUATERNION
        self.servo: Received | None = None  # SERVO_OUTPUT_RAW
        self.position_count = 0
        self.acks: dict[int, Received] = {}  # MAV_CMD -> newest COMMAND_ACK
        self.texts: deque[Received] = deque(maxlen=64)  # STATUSTEXT
        self.cv = threading.Condition()
        self._send_lock = threading.Lock()
        self._boot = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="px4-link", daemon=True)
        self._thread.start()

    # -- sending -----------------------------------------------------------------------------------------------
    def boot_ms(self) -> int:
        """Milliseconds since this link opened (the ``time_boot_ms`` of our setpoints)."""
        return int((time.monotonic() - self._boot) * 1000) & 0xFFFFFFFF

    def send(self, name: str, *args: Any) -> None:
        """``conn.mav.<name>_send(*args)`` under the send lock (the receiver thread sends heartbeats too)."""
        with self._send_lock:
            getattr(self.conn.mav, f"{name}_send")(*args)

    def _heartbeat(self) -> None:
        self.send("heartbeat", MAV_TYPE_ONBOARD_CONTROLLER, MAV_AUTOPILOT_INVALID, 0, 0, MAV_STATE_ACTIVE)

    # -- receiving ----------------------------------------------------------------------------------------------
    def _run(self) -> None:
        promote_current_thread("MAVLink receive")
        next_heartbeat = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_heartbeat:
                try:
                    self._heartbeat()
                except OSError as e:  # the network is gone: link loss shows up as silence
                    log.debug("heartbeat not sent: %s", e)
                next_heartbeat = now + 1.0
            try:
                msg = self.conn.recv_match(blocking=True, timeout=0.05)
            except (OSError, ValueError) as e:
                if self._stop.is_set():
                    return
                log.debug("receive failed: %s", e)
                self._stop.wait(0.05)
                continue
            except Exception as e:  # noqa: BLE001 - pymavlink raises odd types on corrupt input; keep listening
                log.debug("unparsable input dropped: %s", e)
                continue
            if msg is not None:
                self._take(msg, time.monotonic())

    def _take(self, msg: Any, t: float) -> None:
        kind = msg.get_type()
        if kind == "BAD_DATA":
            return
        src = msg.get_srcSystem()
        if kind == "HEARTBEAT" and self.target_system == 0:
            if msg.autopilot == MAV_AUTOPILOT_INVALID:
                return  # a ground station or companion, not an autopilot
            self.target_system = src
        if src != self.target_system:
            return
        r = Received(msg, t)
        with self.cv:
            self.last_rx = t
            if kind == "HEARTBEAT":
                if msg.autopilot != MAV_AUTOPILOT_INVALID:
                    self.heartbeat = r
            elif kind == "LOCAL_POSITION_NED":
                self.position = r
                self.position_count += 1
            elif kind == "ATTITUDE_QUATERNION":
                self.attitude = r
            elif kind == "SERVO_OUTPUT_RAW":
                self.servo = r
            elif kind == "COMMAND_ACK":
                self.acks[int(msg.command)] = r
            elif kind == "STATUSTEXT":
                self.texts.append(r)
                log.info("PX4: %s", msg.text)
            else:
                return
            self.cv.notify_all()

    def texts_since(self, t: float) -> list[str]:
        """STATUSTEXT strings received at or after monotonic time ``t``."""
        with self.cv:
            return [str(r.msg.text).strip() for r in self.texts if r.t >= t]

    def close(self) -> None:
        """Stop the thread and close the socket (idempotent, never raises)."""
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(1.0)
        try:
            self.conn.close()
        except OSError as e:
            log.debug("close: %s", e)
