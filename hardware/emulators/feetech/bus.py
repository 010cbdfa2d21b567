"""The bus engine: STS3215 servos answering Feetech protocol 0 on a pseudo-terminal, with wire timing.

The host (lerobot's ``FeetechMotorsBus``, scservo_sdk, any serial client) opens :attr:`FeetechBus.port` as a
serial port. A pty delivers bytes instantly, so the engine adds what the wire costs: a request is complete
``size * 10 / baud`` s after the host wrote it, each servo waits its ``Return_Delay_Time`` (2 us units), and each
status packet is written when its last byte would have arrived (``10 / baud`` s per byte, replies one after the
other on the half-duplex line). The baud is the one the host set on its side of the pty; a servo whose
``Baud_Rate`` register differs hears noise and does not answer, as on a real bus. A corrupted packet is
ignored (no reply). Broadcast (0xFE) writes are not answered; a broadcast PING is answered by every servo.

:class:`FeetechBusEmulator` is a register-only bus (no physics) for tests of host code: present positions are
set directly.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
import tty
from collections.abc import Iterable

from hardware.emulators.feetech.protocol import (
    ACTION,
    BROADCAST,
    PING,
    READ,
    REG_WRITE,
    SYNC_READ,
    SYNC_WRITE,
    WRITE,
    Packet,
    PacketParser,
    line_baud,
    status_packet,
    transfer_time,
)
from hardware.emulators.feetech.registers import BAUD_RATES, ERR_INSTRUCTION, STS3215_FIRMWARE
from hardware.emulators.feetech.servo import Servo

log = logging.getLogger(__name__)

INTER_BYTE_TIMEOUT = 0.05  # s: a partial packet older than this is dropped, as the servo's receiver does


class FeetechBus:
    """Servos ``servos`` behind a new pty (:attr:`port`); :attr:`lock` guards every servo's state (hold it
    when the physics reads goals or writes feedback). Serving starts with :meth:`start`."""

    def __init__(self, servos: Iterable[Servo], lock: threading.Lock | None = None) -> None:
        self.servos: dict[int, Servo] = {s.id: s for s in servos}
        self.lock = lock or threading.Lock()
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.port = os.ttyname(self.slave)
        self.packets = 0  # valid packets received
        self.parser = PacketParser()
        self._wire_free = 0.0  # monotonic time the line is next idle
        self._last_rx = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="feetech-bus", daemon=True)

    @property
    def checksum_errors(self) -> int:
        """Packets dropped for a wrong checksum."""
        return self.parser.checksum_errors

    def start(self) -> None:
        """Serve from a thread of its own (otherwise the owner calls :meth:`serve_once` in its loop)."""
        self._thread.start()

    def unplug(self) -> None:
        """Stop answering and close the bus side of the pty: the host's reads then fail (a pulled cable)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2)
        if self.master != -1:
            try:
                os.close(self.master)
            except OSError:
                pass
            self.master = -1

    def close(self) -> None:
        """Unplug and release the pty (idempotent)."""
        self.unplug()
        if self.slave != -1:
            try:
                os.close(self.slave)
            except OSError:
                pass
            self.slave = -1

    # -- serving ---------------------------------------------------------------------------------------------
    def _serve(self) -> None:
        while not self._stop.is_set() and self.serve_once(0.02):
            pass

    def serve_once(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for bytes from the host and answer the packets they complete (the caller's
        thread does the wire-time waits). Returns False once the bus is unplugged."""
        if self.master == -1:
            time.sleep(timeout)
            return False
        try:
            ready, _, _ = select.select([self.master], [], [], timeout)
        except (OSError, ValueError):
            return False
        now = time.monotonic()
        if not ready:
            if self.parser.pending and now - self._last_rx > INTER_BYTE_TIMEOUT:
                self.parser.reset()
            return True
        try:
            data = os.read(self.master, 4096)
        except OSError:
            return False
        self._last_rx = now
        baud = line_baud(self.master)
        for packet in self.parser.feed(data):
            self.packets += 1
            self._answer(packet, now, baud)
        return True

    def _answer(self, packet: Packet, received: float, baud: int | None) -> None:
        wire_baud = baud or BAUD_RATES[0]
        request_end = max(received, self._wire_free) + transfer_time(packet.size, wire_baud)
        self._wire_free = request_end
        with self.lock:
            replies = self._handle(packet, baud)
        for delay, reply in replies:
            start = max(self._wire_free, request_end + delay)
            end = start + transfer_time(len(reply), wire_baud)
            pause = end - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            try:
                os.write(self.master, reply)
            except OSError:
                return
            self._wire_free = end

    def _listening(self, ids: Iterable[int], baud: int | None) -> list[Servo]:
        """The servos among ``ids`` that understand the line (same baud rate)."""
        out = []
        for i in ids:
            servo = self.servos.get(i)
            if servo is not None and (baud is None or BAUD_RATES.get(servo.table.get("Baud_Rate")) == baud):
                out.append(servo)
        return out

    def _handle(self, p: Packet, baud: int | None) -> list[tuple[float, bytes]]:
        """Apply one instruction; return the replies as (return delay s, status packet) in wire order."""
        broadcast = p.servo_id == BROADCAST
        targets = self._listening(sorted(self.servos) if broadcast else [p.servo_id], baud)

        def reply(servo: Servo, params: bytes = b"", error: int = 0) -> tuple[float, bytes]:
            delay = 2e-6 * servo.table.get("Return_Delay_Time")
            return delay, status_packet(servo.id, params, servo.error_bits() | error)

        def acknowledge(servos: list[Servo]) -> list[tuple[float, bytes]]:
            if broadcast:
                return []
            return [reply(s) for s in servos if s.table.get("Response_Status_Level") >= 1]

        params = p.params
        if p.instruction == PING:
            return [reply(s) for s in targets]
        if p.instruction == READ:
            if broadcast or len(params) != 2:
                return []
            return [reply(s, s.table.read(params[0], params[1])) for s in targets]
        if p.instruction == WRITE:
            if len(params) < 2:
                return [] if broadcast else [reply(s, error=ERR_INSTRUCTION) for s in targets]
            for s in targets:
                s.bus_write(params[0], params[1:])
            self._rekey()
            return acknowledge(targets)
        if p.instruction == REG_WRITE:
            for s in targets:
                s.pending = (params[0], params[1:]) if len(params) >= 2 else None
            return acknowledge(targets)
        if p.instruction == ACTION:
            for s in targets:
                if s.pending is not None:
                    s.bus_write(*s.pending)
                    s.pending = None
            self._rekey()
            return acknowledge(targets)
        if p.instruction == SYNC_WRITE:
            if len(params) < 2 or params[1] == 0:
                return []
            address, n = params[0], params[1]
            for k in range(2, len(params) - n, n + 1):
                for s in self._listening([params[k]], baud):
                    s.bus_write(address, params[k + 1 : k + 1 + n])
            self._rekey()
            return []
        if p.instruction == SYNC_READ:
            if len(params) < 3:
                return []
            address, n = params[0], params[1]
            return [reply(s, s.table.read(address, n)) for s in self._listening(params[2:], baud)]
        return [] if broadcast else [reply(s, error=ERR_INSTRUCTION) for s in targets]

    def _rekey(self) -> None:
        """A write to the ID register renames the servo on the bus."""
        if any(i != s.id for i, s in self.servos.items()):
            self.servos = {s.id: s for s in self.servos.values()}


class FeetechBusEmulator(FeetechBus):
    """A register-only bus of STS3215 servos ``ids`` (no physics), serving from construction: host code reads
    the registers it sets (:meth:`set_word`, :meth:`set_position`)."""

    def __init__(self, ids: tuple[int, ...] = (1, 2, 3, 4, 5, 6), firmware: tuple[int, int] = STS3215_FIRMWARE) -> None:
        servos = [Servo(i) for i in ids]
        for s in servos:
            s.table.set("Firmware_Major_Version", firmware[0])
            s.table.set("Firmware_Minor_Version", firmware[1])
            s.table.set("Present_Position", 2048)
        super().__init__(servos)
        self.start()

    @property
    def regs(self) -> dict[int, bytearray]:
        """Each servo's raw register file, by id."""
        return {i: s.table.memory for i, s in self.servos.items()}

    def set_word(self, motor_id: int, addr: int, value: int) -> None:
        """Store a 2-byte little-endian ``value`` at ``addr`` of servo ``motor_id``."""
        with self.lock:
            self.servos[motor_id].table.memory[addr : addr + 2] = int(value).to_bytes(2, "little")

    def word(self, motor_id: int, addr: int) -> int:
        """The 2-byte word at ``addr`` of servo ``motor_id``."""
        with self.lock:
            return int.from_bytes(self.servos[motor_id].table.memory[addr : addr + 2], "little")

    def set_position(self, motor_id: int, ticks: int) -> None:
        """Present position (0..4095 ticks) of one servo."""
        self.set_word(motor_id, 56, ticks)
