"""Same-host shared-memory fast path for observations (``docs/protocol.md``, "Shared memory").

A robot client on the server's host may put its observation tensors into a shared-memory segment instead of
ZeroMQ frames; the ``OBS`` message then carries only the header and ``{"shm_slot": k}``. The segment is a
file ``/dev/shm/rcs-<32 hex>`` created by the client (:class:`ShmWriter`) and mapped read-only by the server
(:class:`ShmReader`), which opens it only if the name matches, it is a regular file (no symlink) owned by the
server's own user, and its size is exactly the schema's layout.

Layout (derived from the schema alone, so both sides agree without negotiation): ``SLOTS`` slots; each slot
is a 16-byte guard (``seq_begin``, ``seq_end``: little-endian u64) followed by the observation tensors in name
order, each at a 64-byte-aligned offset. The client writes slot ``seq % SLOTS``: ``seq_begin = seq``, the
tensors, then ``seq_end = seq``. The server copies the tensors out and accepts them only if ``seq_end`` read
before the copy and ``seq_begin`` read after it both equal the request's ``seq`` (a seqlock): a slot being
rewritten during the copy is detected and answered ``ERROR code="shm_torn"``, never served half old, half
new. Ordering relies on x86-64's total store order; weakly ordered CPUs (ARM) need the fences this
pure-Python writer does not issue, so there the fast path is disabled by default (:data:`SUPPORTED`).
"""

from __future__ import annotations

import mmap
import os
import platform
import re
import secrets
import stat
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rcs.serving.protocol import WIRE_DTYPES, ProtocolError, Schema

SEGMENT_DIR = Path("/dev/shm")
NAME_PATTERN = re.compile(r"^rcs-[0-9a-f]{32}$")
SLOTS = 2
ALIGN = 64
GUARD = struct.Struct("<QQ")
#: machines whose store order makes the seqlock sound without explicit fences.
SUPPORTED = platform.machine().lower() in ("x86_64", "amd64") and SEGMENT_DIR.is_dir()


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


@dataclass(frozen=True)
class Layout:
    """Where each observation tensor lives in a slot: ``(name, dtype, shape, offset)``; sizes in bytes."""

    entries: tuple[tuple[str, np.dtype, tuple[int, ...], int], ...]
    slot_size: int

    @classmethod
    def for_schema(cls, schema: Schema) -> Layout:
        offset = _align(GUARD.size)
        entries = []
        for spec in sorted(schema.observation, key=lambda s: s.name):
            dtype = WIRE_DTYPES[spec.dtype]
            entries.append((spec.name, dtype, spec.shape, offset))
            offset = _align(offset + int(np.prod(spec.shape, dtype=np.int64)) * dtype.itemsize)
        return cls(tuple(entries), offset)

    @property
    def size(self) -> int:
        """Bytes of the whole segment."""
        return SLOTS * self.slot_size


class ShmWriter:
    """Client side: creates the segment and writes observations into it.

    Args:
        schema: the observation schema (the robot's expected schema).
    """

    def __init__(self, schema: Schema) -> None:
        self.layout = Layout.for_schema(schema)
        self.name = f"rcs-{secrets.token_hex(16)}"
        self.path = SEGMENT_DIR / self.name
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            os.ftruncate(fd, self.layout.size)
            self._map = mmap.mmap(fd, self.layout.size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        finally:
            os.close(fd)
        self._slots = [self._views(k) for k in range(SLOTS)]

    def _views(self, slot: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        base = slot * self.layout.slot_size
        guard: np.ndarray = np.ndarray((2,), dtype="<u8", buffer=self._map, offset=base)
        arrays: dict[str, np.ndarray] = {
            name: np.ndarray(shape, dtype=dtype, buffer=self._map, offset=base + off)
            for name, dtype, shape, off in self.layout.entries
        }
        return guard, arrays

    def write(self, seq: int, observation: Mapping[str, np.ndarray]) -> int:
        """Write ``observation`` for request ``seq``; returns the slot. Shapes/dtypes are checked by numpy's
        assignment (a wrong shape raises ``ValueError``); the server checks the rest."""
        slot = seq % SLOTS
        guard, arrays = self._slots[slot]
        guard[0] = seq
        for name, dst in arrays.items():
            dst[...] = observation[name]
        guard[1] = seq
        return slot

    def close(self) -> None:
        """Unmap and remove the segment (idempotent)."""
        if self._map is not None:
            self._slots = []
            self._map.close()
            self._map = None  # type: ignore[assignment]  # closed: typed as open for the hot path, never used again
            self.path.unlink(missing_ok=True)


def _kind(mode: int) -> str:
    """A file type in words, for refusals."""
    for test, word in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISLNK, "a symlink"),
    ):
        if test(mode):
            return word
    return f"mode {stat.S_IFMT(mode):o}"


class ShmReader:
    """Server side: maps a client's segment read-only after checking it.

    Raises:
        ProtocolError: ``code="shm"`` naming what is wrong (name, owner, type, size).
    """

    def __init__(self, name: object, schema: Schema) -> None:
        # ``name`` comes from the client's HELLO unchecked: any type is refused here with a ProtocolError
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise ProtocolError("shm", "hello.shm.name", repr(name)[:60], "rcs-<32 hex digits>")
        self.layout = Layout.for_schema(schema)
        try:
            # O_NONBLOCK: opening a FIFO (or a device) planted under the offered name must not wait for a
            # writer; the type is checked on the opened descriptor, so it cannot be swapped after the check.
            fd = os.open(SEGMENT_DIR / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError as e:
            raise ProtocolError(
                "shm", "hello.shm.name", f"cannot open: {e.strerror}", "a segment on this host"
            ) from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise ProtocolError(
                    "shm",
                    "hello.shm.name",
                    f"not a regular file ({_kind(st.st_mode)})",
                    "a regular file created by the client",
                )
            if st.st_uid != os.getuid():
                raise ProtocolError(
                    "shm", "hello.shm.name", f"owned by uid {st.st_uid}", f"owned by the server's uid {os.getuid()}"
                )
            if st.st_size != self.layout.size:
                raise ProtocolError("shm", "hello.shm.size", f"{st.st_size} bytes", f"{self.layout.size} bytes")
            self._map = mmap.mmap(fd, self.layout.size, mmap.MAP_SHARED, mmap.PROT_READ)
        finally:
            os.close(fd)

    def read(self, seq: int, slot: object) -> dict[str, np.ndarray]:
        """Copies of the tensors of request ``seq`` in ``slot``; ``ProtocolError`` if the slot was not (fully)
        written for ``seq`` or is being rewritten."""
        if not isinstance(slot, int) or isinstance(slot, bool) or not 0 <= slot < SLOTS:
            raise ProtocolError("shm", "shm_slot", repr(slot)[:20], f"0..{SLOTS - 1}")
        base = slot * self.layout.slot_size
        _, end = GUARD.unpack_from(self._map, base)
        out = {
            name: np.frombuffer(self._map, dtype=dtype, count=int(np.prod(shape, dtype=np.int64)), offset=base + off)
            .reshape(shape)
            .copy()
            for name, dtype, shape, off in self.layout.entries
        }
        begin, _ = GUARD.unpack_from(self._map, base)
        if end != seq or begin != seq:
            raise ProtocolError("shm_torn", "shm_slot", f"slot {slot} holds seq {begin}..{end}", f"seq {seq}")
        return out

    def close(self) -> None:
        """Unmap (idempotent)."""
        if self._map is not None:
            self._map.close()
            self._map = None  # type: ignore[assignment]  # closed: typed as open for the hot path, never used again
