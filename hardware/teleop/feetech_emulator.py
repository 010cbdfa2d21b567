"""A protocol-level emulator of a Feetech STS3215 servo bus on a pseudo-terminal (for tests and demos).

It answers the Feetech serial protocol (protocol 0, little-endian words) the way a bus of STS3215 servos does,
so lerobot's ``FeetechMotorsBus`` (and through it lerobot's SO-101 leader class) runs unmodified against it:
packets ``FF FF id len instr params... checksum`` with ``checksum = ~(id + len + instr + sum(params)) & 0xFF``;
status packets ``FF FF id len error params... checksum``. Instructions: PING (1), READ (2), WRITE (3),
SYNC_READ (0x82), SYNC_WRITE (0x83); broadcast id 0xFE for PING and writes. Each servo is a 256-byte register
file laid out like the STS3215 control table (model number 777 at address 3, firmware at 0/1, present position
at 56). :meth:`set_position` moves a joint; :meth:`unplug` closes the bus (reads then fail like a pulled cable).
"""

from __future__ import annotations

import os
import select
import threading
import tty

STS3215_MODEL = 777
BROADCAST = 0xFE
PING, READ, WRITE, SYNC_READ, SYNC_WRITE = 0x01, 0x02, 0x03, 0x82, 0x83
PRESENT_POSITION = 56


def checksum(body: bytes) -> int:
    return ~sum(body) & 0xFF


def status_packet(motor_id: int, params: bytes = b"", error: int = 0) -> bytes:
    body = bytes([motor_id, len(params) + 2, error]) + params
    return b"\xff\xff" + body + bytes([checksum(body)])


class FeetechBusEmulator:
    """STS3215 servos with ids ``ids`` behind the pty at :attr:`port`."""

    def __init__(self, ids: tuple[int, ...] = (1, 2, 3, 4, 5, 6), firmware: tuple[int, int] = (3, 10)) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.port = os.ttyname(self.slave)
        self.regs = {i: bytearray(256) for i in ids}
        for i, r in self.regs.items():
            r[0], r[1] = firmware
            r[3:5] = STS3215_MODEL.to_bytes(2, "little")
            r[5] = i
            r[11:13] = (4095).to_bytes(2, "little")  # Max_Position_Limit
            r[PRESENT_POSITION : PRESENT_POSITION + 2] = (2048).to_bytes(2, "little")
        self.packets = 0
        self._buf = bytearray()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="feetech-emulator", daemon=True)
        self._thread.start()

    # -- test controls ------------------------------------------------------------------------------------
    def set_word(self, motor_id: int, addr: int, value: int) -> None:
        with self._lock:
            self.regs[motor_id][addr : addr + 2] = int(value).to_bytes(2, "little")

    def word(self, motor_id: int, addr: int) -> int:
        with self._lock:
            return int.from_bytes(self.regs[motor_id][addr : addr + 2], "little")

    def set_position(self, motor_id: int, ticks: int) -> None:
        """Present position (0..4095 ticks) of one servo."""
        self.set_word(motor_id, PRESENT_POSITION, ticks)

    def unplug(self) -> None:
        """Stop answering and close the bus side of the pty (the host's reads then fail)."""
        self._stop.set()
        self._thread.join(2)
        for fd in (self.master,):
            try:
                os.close(fd)
            except OSError:
                pass
        self.master = -1

    def close(self) -> None:
        if self.master != -1:
            self.unplug()
        try:
            os.close(self.slave)
        except OSError:
            pass

    # -- protocol -------------------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self.master, 4096)
            except OSError:
                return
            self._buf.extend(data)
            for reply in self._parse():
                os.write(self.master, reply)

    def _parse(self) -> list[bytes]:
        replies = []
        while True:
            start = self._buf.find(b"\xff\xff")
            if start < 0 or len(self._buf) < start + 4:
                return replies
            del self._buf[:start]
            motor_id, length = self._buf[2], self._buf[3]
            if len(self._buf) < 4 + length:
                return replies
            packet = bytes(self._buf[: 4 + length])
            del self._buf[: 4 + length]
            if checksum(packet[2:-1]) != packet[-1]:
                continue  # a real servo ignores a corrupted packet
            self.packets += 1
            replies.extend(self._handle(motor_id, packet[4], packet[5:-1]))

    def _handle(self, motor_id: int, instr: int, params: bytes) -> list[bytes]:
        with self._lock:
            targets = list(self.regs) if motor_id == BROADCAST else ([motor_id] if motor_id in self.regs else [])
            if instr == PING:
                return [status_packet(i) for i in targets]
            if instr == READ:
                addr, n = params[0], params[1]
                return [status_packet(i, bytes(self.regs[i][addr : addr + n])) for i in targets]
            if instr == WRITE:
                addr, data = params[0], params[1:]
                for i in targets:
                    self.regs[i][addr : addr + len(data)] = data
                return [] if motor_id == BROADCAST else [status_packet(i) for i in targets]
            if instr == SYNC_READ:
                addr, n, ids = params[0], params[1], params[2:]
                return [status_packet(i, bytes(self.regs[i][addr : addr + n])) for i in ids if i in self.regs]
            if instr == SYNC_WRITE:
                addr, n = params[0], params[1]
                for k in range(2, len(params), n + 1):
                    i = params[k]
                    if i in self.regs:
                        self.regs[i][addr : addr + n] = params[k + 1 : k + 1 + n]
                return []
            return [status_packet(i, error=0x08) for i in targets]  # instruction error
