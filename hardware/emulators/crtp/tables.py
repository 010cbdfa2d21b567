"""The log and parameter tables of contents (TOC) of the emulated firmware, in the firmware's encoding.

TOC element (version 2 protocol, answered to ``CMD_GET_ITEM_V2``): ``type byte, group\\0, name\\0``. The TOC
CRC answered with the item count (``CMD_GET_INFO_V2``) keys cflib's TOC cache: it is a CRC-32 over every element,
so a firmware with another table gets another CRC and cflib fetches the table again instead of using a stale
cache file (the firmware computes its CRC over its own table the same way in spirit: any change changes it).

Names, types and units are the firmware's (``stateEstimate`` m, m/s, deg; ``gyro`` deg/s; ``pm.vbat`` V;
``motor.m1..m4`` the motor PWM ratio 0..65535 stored as uint32; ``supervisor.info`` the supervisor bit field).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

# log variable types: id -> (name, struct format)
LOG_TYPES: dict[int, tuple[str, str]] = {
    0x01: ("uint8_t", "<B"),
    0x02: ("uint16_t", "<H"),
    0x03: ("uint32_t", "<I"),
    0x04: ("int8_t", "<b"),
    0x05: ("int16_t", "<h"),
    0x06: ("int32_t", "<i"),
    0x07: ("float", "<f"),
    0x08: ("FP16", "<e"),
}
# parameter types: id -> (name, struct format); 0x40 marks read-only, 0x10 extended type info
PARAM_TYPES: dict[int, tuple[str, str]] = {
    0x08: ("uint8_t", "<B"),
    0x09: ("uint16_t", "<H"),
    0x0A: ("uint32_t", "<I"),
    0x00: ("int8_t", "<b"),
    0x01: ("int16_t", "<h"),
    0x02: ("int32_t", "<i"),
    0x05: ("FP16", "<e"),
    0x06: ("float", "<f"),
}
PARAM_READ_ONLY = 0x40

_U8, _U16, _U32, _I8, _FLOAT = 0x01, 0x02, 0x03, 0x04, 0x07
_PU8, _PU16, _PFLOAT = 0x08, 0x09, 0x06

LOG_VARIABLES: tuple[tuple[str, int], ...] = (
    ("stateEstimate.x", _FLOAT),
    ("stateEstimate.y", _FLOAT),
    ("stateEstimate.z", _FLOAT),
    ("stateEstimate.vx", _FLOAT),
    ("stateEstimate.vy", _FLOAT),
    ("stateEstimate.vz", _FLOAT),
    ("stateEstimate.roll", _FLOAT),
    ("stateEstimate.pitch", _FLOAT),
    ("stateEstimate.yaw", _FLOAT),
    ("stateEstimate.qx", _FLOAT),
    ("stateEstimate.qy", _FLOAT),
    ("stateEstimate.qz", _FLOAT),
    ("stateEstimate.qw", _FLOAT),
    ("gyro.x", _FLOAT),
    ("gyro.y", _FLOAT),
    ("gyro.z", _FLOAT),
    ("pm.vbat", _FLOAT),
    ("pm.state", _I8),
    ("motor.m1", _U32),
    ("motor.m2", _U32),
    ("motor.m3", _U32),
    ("motor.m4", _U32),
    ("supervisor.info", _U16),
    ("stabilizer.thrust", _FLOAT),
    ("sys.armed", _U8),
)
"""(group.name, type id) in TOC order; the id of a variable is its index."""

# (group.name, type id, default, read-only)
PARAMETERS: tuple[tuple[str, int, float, bool], ...] = (
    ("motorPowerSet.enable", _PU8, 0, False),
    ("motorPowerSet.m1", _PU16, 0, False),
    ("motorPowerSet.m2", _PU16, 0, False),
    ("motorPowerSet.m3", _PU16, 0, False),
    ("motorPowerSet.m4", _PU16, 0, False),
    ("flightmode.stabModeRoll", _PU8, 1, False),
    ("flightmode.stabModePitch", _PU8, 1, False),
    ("flightmode.stabModeYaw", _PU8, 0, False),
    ("commander.enHighLevel", _PU8, 1, False),
    ("stabilizer.estimator", _PU8, 2, False),
    ("stabilizer.controller", _PU8, 1, False),
    ("stabilizer.stop", _PU8, 0, False),
    ("supervisor.tmblChckEn", _PU8, 1, False),
    ("pid_attitude.roll_kp", _PFLOAT, 6.0, False),
    ("pid_attitude.pitch_kp", _PFLOAT, 6.0, False),
    ("firmware.revision0", 0x0A | PARAM_READ_ONLY, 0x5EED, True),
    ("cpu.id0", 0x0A | PARAM_READ_ONLY, 0xC0FFEE, True),
)
"""The parameters the emulator knows (the firmware's names and types); the id of a parameter is its index."""


@dataclass(frozen=True)
class TocEntry:
    """One element of a TOC: ``ident`` (index), ``group``, ``name``, ``type_id`` (with access flags for
    parameters) and its struct ``fmt``."""

    ident: int
    group: str
    name: str
    type_id: int
    fmt: str

    @property
    def full_name(self) -> str:
        return f"{self.group}.{self.name}"

    def encode(self) -> bytes:
        """The element as the firmware sends it after the ident: type byte, group\\0, name\\0."""
        return bytes([self.type_id]) + self.group.encode() + b"\0" + self.name.encode() + b"\0"


class Toc:
    """A table of contents: entries by ident and by full name, its item count and CRC."""

    def __init__(self, entries: list[TocEntry]) -> None:
        self.entries = entries
        self.by_name = {e.full_name: e for e in entries}
        self.crc = zlib.crc32(b"".join(struct.pack("<H", e.ident) + e.encode() for e in entries)) & 0xFFFFFFFF

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, ident: int) -> TocEntry | None:
        return self.entries[ident] if 0 <= ident < len(self.entries) else None


def _split(full: str) -> tuple[str, str]:
    group, name = full.split(".")
    return group, name


def log_toc() -> Toc:
    """The log TOC of :data:`LOG_VARIABLES`."""
    return Toc([TocEntry(i, *_split(n), t, LOG_TYPES[t][1]) for i, (n, t) in enumerate(LOG_VARIABLES)])


def param_toc() -> Toc:
    """The parameter TOC of :data:`PARAMETERS`."""
    return Toc([TocEntry(i, *_split(n), t, PARAM_TYPES[t & 0x0F][1]) for i, (n, t, _, _) in enumerate(PARAMETERS)])
