"""Feetech serial protocol 0 (STS/SMS series): packet layout, checksum, stream parsing and wire timing.

Instruction packet: ``FF FF id len instr params... checksum``; status packet: ``FF FF id len error params...
checksum``; ``len`` counts the bytes after it (instr/error + params + checksum);
``checksum = ~(id + len + instr + sum(params)) & 0xFF``. Id 0xFE is the broadcast id (no servo replies, except
to PING). On the wire every byte costs 10 bit times (start + 8 data + stop).
"""

from __future__ import annotations

import array
import fcntl
import struct
from dataclasses import dataclass

BROADCAST = 0xFE
PING, READ, WRITE, REG_WRITE, ACTION, SYNC_READ, SYNC_WRITE = 0x01, 0x02, 0x03, 0x04, 0x05, 0x82, 0x83
BITS_PER_BYTE = 10
MAX_LENGTH = 250  # the longest length byte a servo buffers; longer headers are noise


def checksum(body: bytes) -> int:
    """Checksum of ``id len instr/error params...`` (the bytes between header and checksum)."""
    return ~sum(body) & 0xFF


def instruction_packet(servo_id: int, instruction: int, params: bytes = b"") -> bytes:
    """A host-to-servo packet."""
    body = bytes([servo_id, len(params) + 2, instruction]) + bytes(params)
    return b"\xff\xff" + body + bytes([checksum(body)])


def status_packet(servo_id: int, params: bytes = b"", error: int = 0) -> bytes:
    """A servo-to-host reply carrying the servo's error bits."""
    body = bytes([servo_id, len(params) + 2, error]) + bytes(params)
    return b"\xff\xff" + body + bytes([checksum(body)])


def transfer_time(n_bytes: int, baud: int) -> float:
    """Seconds ``n_bytes`` occupy a serial line at ``baud`` bit/s."""
    return n_bytes * BITS_PER_BYTE / baud


@dataclass(frozen=True)
class Packet:
    """A decoded instruction packet; ``size`` is its length on the wire (bytes)."""

    servo_id: int
    instruction: int
    params: bytes
    size: int


class PacketParser:
    """Splits a byte stream into instruction packets as a servo's receiver does: it hunts for ``FF FF``, drops
    packets whose checksum is wrong (counted in :attr:`checksum_errors`, never answered) and keeps a partial
    packet until its remaining bytes arrive (or :meth:`reset` drops it)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.checksum_errors = 0

    def feed(self, data: bytes) -> list[Packet]:
        """Append received bytes; return the complete, valid packets they finish."""
        self._buf.extend(data)
        packets: list[Packet] = []
        buf = self._buf
        while True:
            start = buf.find(b"\xff\xff")
            if start < 0:
                del buf[: max(len(buf) - 1, 0)]  # keep a trailing FF: it may start a header
                return packets
            del buf[:start]
            if len(buf) < 4:
                return packets
            servo_id, length = buf[2], buf[3]
            if servo_id == 0xFF or length < 2 or length > MAX_LENGTH:
                del buf[:1]  # not a header (FF FF FF ... or a bad length): resynchronise one byte later
                continue
            if len(buf) < 4 + length:
                return packets
            packet = bytes(buf[: 4 + length])
            if checksum(packet[2:-1]) != packet[-1]:
                self.checksum_errors += 1
                del buf[:2]
                continue
            del buf[: 4 + length]
            packets.append(Packet(servo_id, packet[4], packet[5:-1], len(packet)))

    def reset(self) -> None:
        """Drop a partial packet (the servo's inter-byte timeout)."""
        self._buf.clear()

    @property
    def pending(self) -> int:
        """Bytes buffered of an incomplete packet."""
        return len(self._buf)


_TCGETS2 = 0x802C542A  # Linux ioctl: struct termios2, whose c_ispeed/c_ospeed hold any baud rate
_TERMIOS2 = struct.Struct("4I20B2I")


def line_baud(fd: int) -> int | None:
    """The baud rate the host set on the pty (read through the master ``fd``), or None where unavailable."""
    buf = array.array("B", bytes(_TERMIOS2.size))
    try:
        fcntl.ioctl(fd, _TCGETS2, buf)
    except OSError:
        return None
    ospeed = _TERMIOS2.unpack(buf.tobytes())[-1]
    return int(ospeed) or None
