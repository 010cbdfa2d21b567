"""CRTP packets as they travel over cflib's UDP link: one datagram = one header byte + 0..30 payload bytes.

Header byte: ``port << 4 | link bits (0b11 << 2) | channel``; the firmware ignores the link bits. The port and
channel numbers below are the firmware's (``crtp.h`` and each service's source) and cflib 0.1.34's.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_PAYLOAD = 30
"""Bytes of payload a CRTP packet carries at most (firmware ``CRTP_MAX_DATA_SIZE``)."""

# ports
CONSOLE = 0x0
PARAM = 0x2
COMMANDER = 0x3
MEM = 0x4
LOG = 0x5
LOCALIZATION = 0x6
COMMANDER_GENERIC = 0x7
SETPOINT_HL = 0x8
SUPERVISOR = 0x9
PLATFORM = 0xD
LINKCTRL = 0xF

NULL_PACKET = bytes([0xFF])
"""Port 15, channel 3, no payload: the link's keep-alive / cflib's scan probe."""


@dataclass(frozen=True, slots=True)
class Packet:
    """One CRTP packet: ``port`` (0..15), ``channel`` (0..3), ``data`` (0..30 bytes)."""

    port: int
    channel: int
    data: bytes

    def encode(self) -> bytes:
        """The datagram: header byte then payload."""
        return bytes([(self.port & 0xF) << 4 | 0x3 << 2 | (self.channel & 0x3)]) + self.data[:MAX_PAYLOAD]


def decode(datagram: bytes) -> Packet | None:
    """The packet in one datagram, or ``None`` for an empty or oversized datagram (the firmware's radio link
    drops frames longer than a CRTP packet)."""
    if not 1 <= len(datagram) <= 1 + MAX_PAYLOAD:
        return None
    header = datagram[0]
    return Packet(header >> 4 & 0xF, header & 0x3, bytes(datagram[1:]))
