"""The firmware's log subsystem (port 5): TOC access, log blocks and the log data they stream.

Settings channel (1) commands and their replies ``(cmd, block id, status)`` follow the firmware (``log.c``):
create (``CMD_CREATE_BLOCK_V2``: ``id, (type byte, var id lo, var id hi)*``), append, start (``id, period in
10 ms``), stop, delete, reset. Status codes are errno values: ``EEXIST`` (block id taken), ``ENOENT`` (no such
block or variable), ``E2BIG`` (more than 26 bytes of data), ``ENOMEM`` (more than 16 blocks or 128 variables).
The low nibble of a variable's type byte is the type it is sent as ("fetch as"); values are converted to it.

Data channel (2): ``block id, 24-bit firmware time stamp (ms, little endian), values``.
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from hardware.emulators.crtp.packets import LOG, Packet
from hardware.emulators.crtp.tables import LOG_TYPES, Toc

CHAN_TOC, CHAN_SETTINGS, CHAN_DATA = 0, 1, 2
CMD_TOC_ELEMENT, CMD_TOC_INFO, CMD_GET_ITEM_V2, CMD_GET_INFO_V2 = 0, 1, 2, 3
CMD_CREATE, CMD_APPEND, CMD_DELETE, CMD_START, CMD_STOP, CMD_RESET, CMD_CREATE_V2, CMD_APPEND_V2 = range(8)
MAX_BLOCKS = 16
MAX_VARIABLES = 128
MAX_DATA = 26  # bytes of values per log data packet


@dataclass
class LogBlock:
    """One log block: its variables as (variable name, struct format to send it as), period (s), and when it
    is next due (firmware time, s; ``None`` while stopped)."""

    ident: int
    variables: list[tuple[str, str]] = field(default_factory=list)
    period: float = 0.1
    next_due: float | None = None

    @property
    def size(self) -> int:
        return sum(struct.calcsize(fmt) for _, fmt in self.variables)


class LogService:
    """Log blocks of one emulated firmware. ``now`` gives the firmware time (s)."""

    def __init__(self, toc: Toc, now: Callable[[], float]) -> None:
        self.toc = toc
        self._now = now
        self.blocks: dict[int, LogBlock] = {}

    def handle(self, packet: Packet) -> list[Packet]:
        """Replies to one packet on the log port (malformed ones raise ``struct.error``/``IndexError``)."""
        if packet.channel == CHAN_TOC:
            return self._toc(packet.data)
        if packet.channel == CHAN_SETTINGS:
            cmd = packet.data[0]
            if cmd == CMD_RESET:
                self.blocks.clear()
                return [self._reply(cmd, 0, 0)]
            block_id = packet.data[1]
            return [self._reply(cmd, block_id, self._settings(cmd, block_id, packet.data[2:]))]
        return []

    def _reply(self, cmd: int, block_id: int, status: int) -> Packet:
        return Packet(LOG, CHAN_SETTINGS, bytes([cmd, block_id, status]))

    def _toc(self, data: bytes) -> list[Packet]:
        cmd = data[0]
        if cmd == CMD_GET_INFO_V2:
            return [Packet(LOG, CHAN_TOC, struct.pack("<BHIBB", cmd, len(self.toc), self.toc.crc, MAX_BLOCKS, 128))]
        if cmd == CMD_GET_ITEM_V2:
            ident = struct.unpack_from("<H", data, 1)[0]
            entry = self.toc.get(ident)
            if entry is None:
                return []
            return [Packet(LOG, CHAN_TOC, struct.pack("<BH", cmd, ident) + entry.encode())]
        if cmd == CMD_TOC_INFO and len(self.toc) < 256:
            return [Packet(LOG, CHAN_TOC, struct.pack("<BBIBB", cmd, len(self.toc), self.toc.crc, MAX_BLOCKS, 128))]
        if cmd == CMD_TOC_ELEMENT:
            entry = self.toc.get(data[1])
            return [] if entry is None else [Packet(LOG, CHAN_TOC, bytes([cmd, data[1]]) + entry.encode())]
        return []

    def _variables(self, cmd: int, items: bytes) -> list[tuple[str, str]] | int:
        """Parse (type, id) items; an errno on failure."""
        v2 = cmd in (CMD_CREATE_V2, CMD_APPEND_V2)
        step = 3 if v2 else 2
        if len(items) % step:
            return errno.ENOEXEC
        out = []
        for i in range(0, len(items), step):
            type_byte = items[i]
            ident = items[i + 1] | (items[i + 2] << 8 if v2 else 0)
            entry = self.toc.get(ident)
            fetch = type_byte & 0x0F
            if type_byte == 0xFF or entry is None:  # 0xFF: raw memory address, not emulated
                return errno.ENOENT
            if fetch not in LOG_TYPES:
                return errno.ENOEXEC
            out.append((entry.full_name, LOG_TYPES[fetch][1]))
        return out

    def _settings(self, cmd: int, block_id: int, args: bytes) -> int:
        if cmd in (CMD_CREATE, CMD_CREATE_V2):
            if block_id in self.blocks:
                return errno.EEXIST
            if len(self.blocks) >= MAX_BLOCKS:
                return errno.ENOMEM
            variables = self._variables(cmd, args)
            if isinstance(variables, int):
                return variables
            block = LogBlock(block_id, variables)
            if block.size > MAX_DATA:
                return errno.E2BIG
            if sum(len(b.variables) for b in self.blocks.values()) + len(variables) > MAX_VARIABLES:
                return errno.ENOMEM
            self.blocks[block_id] = block
            return 0
        block = self.blocks.get(block_id)
        if block is None:
            return errno.ENOENT
        if cmd in (CMD_APPEND, CMD_APPEND_V2):
            variables = self._variables(cmd, args)
            if isinstance(variables, int):
                return variables
            if block.size + LogBlock(block_id, variables).size > MAX_DATA:
                return errno.E2BIG
            block.variables.extend(variables)
            return 0
        if cmd == CMD_START:
            block.period = max(int(args[0]), 1) * 0.01  # 10 ms units; the firmware's fastest is 10 ms
            block.next_due = self._now() + block.period  # a timer: the first packet one period later
            return 0
        if cmd == CMD_STOP:
            block.next_due = None
            return 0
        if cmd == CMD_DELETE:
            del self.blocks[block_id]
            return 0
        return errno.ENOEXEC

    def due(self, now: float) -> list[LogBlock]:
        """Started blocks due at firmware time ``now`` (s); each is rescheduled one period later."""
        out = []
        for block in self.blocks.values():
            if block.next_due is not None and now >= block.next_due - 1e-9:
                out.append(block)
                block.next_due += block.period
                if block.next_due < now:  # fell behind (a stalled host): no burst of stale packets
                    block.next_due = now + block.period
        return out

    @staticmethod
    def data_packet(block: LogBlock, timestamp_ms: int, values: Mapping[str, float]) -> Packet:
        """The log data packet of ``block`` with ``values`` (by variable name), converted to each variable's type."""
        out = bytearray([block.ident]) + struct.pack("<I", timestamp_ms & 0xFFFFFF)[:3]
        for name, fmt in block.variables:
            value = values[name]
            if fmt in ("<f", "<e"):
                out += struct.pack(fmt, float(value))
            else:
                lo, hi = _INT_RANGE[fmt]
                out += struct.pack(fmt, min(max(int(round(value)), lo), hi))
        return Packet(LOG, CHAN_DATA, bytes(out))


_INT_RANGE = {
    "<B": (0, 0xFF),
    "<H": (0, 0xFFFF),
    "<I": (0, 0xFFFFFFFF),
    "<b": (-0x80, 0x7F),
    "<h": (-0x8000, 0x7FFF),
    "<i": (-0x80000000, 0x7FFFFFFF),
}
