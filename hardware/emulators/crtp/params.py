"""The firmware's parameter subsystem (port 2): TOC, reads (channel 1) and writes (channel 2), version 2 protocol.

Read request ``id (uint16)`` -> reply ``id, status 0, value``; write ``id, value`` -> reply ``id, new value`` (the
firmware echoes the stored value). A write to a read-only parameter or an unknown id is ignored (no reply), as
the firmware does. Misc channel (3): ``MISC_GET_EXTENDED_TYPE_V2`` / default value requests are answered with
``ENOENT`` (no persistent parameters are emulated).
"""

from __future__ import annotations

import errno
import math
import struct
from collections.abc import Callable

from hardware.emulators.crtp.packets import PARAM, Packet
from hardware.emulators.crtp.tables import PARAMETERS, Toc

CHAN_TOC, CHAN_READ, CHAN_WRITE, CHAN_MISC = 0, 1, 2, 3
CMD_TOC_ELEMENT, CMD_TOC_INFO, CMD_GET_ITEM_V2, CMD_GET_INFO_V2 = 0, 1, 2, 3


class ParamService:
    """Parameter values of one emulated firmware. ``on_write(name, value)`` runs after each accepted write."""

    def __init__(self, toc: Toc, on_write: Callable[[str, float], None] | None = None) -> None:
        self.toc = toc
        self.values: dict[str, float] = {name: float(default) for name, _, default, _ in PARAMETERS}
        self._read_only = {name for name, _, _, ro in PARAMETERS if ro}
        self._on_write = on_write

    def get(self, name: str) -> float:
        return self.values[name]

    def handle(self, packet: Packet) -> list[Packet]:
        """Replies to one packet on the parameter port (malformed ones raise ``struct.error``/``IndexError``)."""
        data = packet.data
        if packet.channel == CHAN_TOC:
            cmd = data[0]
            if cmd == CMD_GET_INFO_V2:
                return [Packet(PARAM, CHAN_TOC, struct.pack("<BHI", cmd, len(self.toc), self.toc.crc))]
            if cmd == CMD_GET_ITEM_V2:
                ident = struct.unpack_from("<H", data, 1)[0]
                entry = self.toc.get(ident)
                return (
                    [] if entry is None else [Packet(PARAM, CHAN_TOC, struct.pack("<BH", cmd, ident) + entry.encode())]
                )
            return []
        if packet.channel == CHAN_READ:
            ident = struct.unpack_from("<H", data)[0]
            entry = self.toc.get(ident)
            if entry is None:
                return [Packet(PARAM, CHAN_READ, struct.pack("<HB", ident, errno.ENOENT))]
            return [Packet(PARAM, CHAN_READ, struct.pack("<HB", ident, 0) + self._pack(entry.fmt, entry.full_name))]
        if packet.channel == CHAN_WRITE:
            ident = struct.unpack_from("<H", data)[0]
            entry = self.toc.get(ident)
            if entry is None or entry.full_name in self._read_only:
                return []
            (value,) = struct.unpack(entry.fmt, data[2 : 2 + struct.calcsize(entry.fmt)])
            if not math.isfinite(value):
                return []
            self.values[entry.full_name] = float(value)
            if self._on_write is not None:
                self._on_write(entry.full_name, float(value))
            return [Packet(PARAM, CHAN_WRITE, struct.pack("<H", ident) + self._pack(entry.fmt, entry.full_name))]
        if packet.channel == CHAN_MISC and len(data) >= 3:
            return [Packet(PARAM, CHAN_MISC, bytes(data[:3]) + bytes([errno.ENOENT]))]
        return []

    def _pack(self, fmt: str, name: str) -> bytes:
        value = self.values[name]
        return struct.pack(fmt, value if fmt in ("<f", "<e") else int(value))
