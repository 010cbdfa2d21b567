"""Crash-safe commits of a dataset folder: copy-on-write staging, fsync, atomic swap, recovery.

The dataset folder ``root`` is only ever replaced as a whole, atomically, by a complete, fsynced folder, so a
SIGKILL or power cut at any moment leaves either the previous complete dataset or the new one. The work area
is a sibling folder ``.<root name>.rcs/`` on the same file system:

- ``lock``: an exclusive ``flock`` held by the one recorder writing ``root``.
- ``staging/``: the next version of ``root`` being built. Unchanged files are hard links into ``root``
  (never written in place: the writer only adds new files and rewrites files it copied), the rest copies.
- ``staging.complete``: written (and fsynced) once ``staging/`` is complete; the swap may proceed.
- ``old/``: the previous version during the fallback (non-exchange) swap, then deleted.
- ``encoding/``: per-episode temporary video files of the episode in progress.
- ``pending/``: finished episodes waiting for their commit, one folder ``episode_<index>/`` each (data, videos,
  statistics and a manifest, built in a dot-named temporary folder, fsynced, then renamed: a folder under its final
  name is complete). :func:`recover` rolls complete ones forward into ``root`` (:mod:`rcs.recording.writer`), so a
  crash during a commit loses only the episode still being recorded, not the finished one being committed.

The swap is ``renameat2(RENAME_EXCHANGE)`` (Linux >= 3.15 on ext4, xfs, btrfs, tmpfs, overlayfs) where the
file system supports it; otherwise two renames, ``root -> old`` and ``staging -> root``, whose one-instant gap
(``root`` missing) :func:`recover` closes at the next open (``rcs dataset repair`` runs the same). Versions are
ordered by their episode count (``meta/info.json``): recovery only ever swaps in a staged version that is complete
(marker) and newer than the dataset, so the previous version that sits in ``staging/`` right after an exchange is
never put back.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import logging
import os
import shutil
import signal
from pathlib import Path

from rcs.errors import RcsError

log = logging.getLogger(__name__)

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100

#: Fault injection for the crash tests (tests/recording/test_crash.py): ``RCS_RECORD_KILL_AT=<point>@<n>`` makes
#: the process SIGKILL itself at that point of its n-th commit (0-based); ``RCS_RECORD_NO_EXCHANGE=1`` forces the
#: two-rename swap. Unset (always, outside tests), they do nothing.
KILL_POINTS = ("packaging", "packaged", "cloned", "written", "marked", "between_renames", "swapped")
_commits_started = 0


def count_commit() -> None:
    """Count one more commit of this process (the ``<n>`` of ``RCS_RECORD_KILL_AT``)."""
    global _commits_started
    _commits_started += 1


def kill_point(name: str) -> None:
    """SIGKILL this process if ``RCS_RECORD_KILL_AT`` names this point of the current commit (tests only)."""
    _kill_point(name)


def _kill_point(name: str) -> None:
    spec = os.environ.get("RCS_RECORD_KILL_AT")
    if spec:
        point, _, n = spec.partition("@")
        if point == name and _commits_started - 1 == int(n or 0):
            os.kill(os.getpid(), signal.SIGKILL)


class DatasetLockedError(RcsError):
    """Another process is recording into the same dataset folder."""


def work_dir(root: Path) -> Path:
    """The recorder's work area next to ``root``."""
    root = Path(root)
    return root.parent / f".{root.name}.rcs"


def fsync_path(path: Path) -> None:
    """fsync a file or a directory (its entries)."""
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path: Path, skip_inodes: set[tuple[int, int]] | None = None) -> None:
    """fsync every file and folder under ``path`` (files whose (dev, inode) is in ``skip_inodes`` excepted)."""
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            p = Path(dirpath) / name
            st = p.stat()
            if skip_inodes is None or (st.st_dev, st.st_ino) not in skip_inodes:
                fsync_path(p)
        fsync_path(Path(dirpath))


def inodes(path: Path) -> set[tuple[int, int]]:
    """(dev, inode) of every file under ``path`` (used to skip re-fsyncing hard-linked, already durable files)."""
    out = set()
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            st = (Path(dirpath) / name).stat()
            out.add((st.st_dev, st.st_ino))
    return out


def clone_tree(src: Path, dst: Path, copy_dirs: tuple[str, ...]) -> None:
    """Copy-on-write clone: hard links for every file, except real copies of the files directly inside the
    folders named in ``copy_dirs`` (relative to ``src``), which the writer rewrites in place."""
    copied = {(src / d).resolve() for d in copy_dirs}
    for dirpath, _dirnames, filenames in os.walk(src):
        rel = Path(dirpath).relative_to(src)
        (dst / rel).mkdir(parents=True, exist_ok=True)
        for name in filenames:
            s, d = Path(dirpath) / name, dst / rel / name
            if Path(dirpath).resolve() in copied:
                shutil.copy2(s, d)
            else:
                try:
                    os.link(s, d)
                except OSError as exc:  # file system without hard links: fall back to a copy
                    if exc.errno not in (errno.EPERM, errno.EXDEV, errno.EMLINK, errno.ENOTSUP):
                        raise
                    shutil.copy2(s, d)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths with renameat2(RENAME_EXCHANGE); False if unsupported here."""
    if os.environ.get("RCS_RECORD_NO_EXCHANGE") == "1":
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EPERM):
        return False
    raise OSError(err, f"renameat2({a}, {b}, RENAME_EXCHANGE): {os.strerror(err)}")


class DatasetStore:
    """Owns ``root`` and its work area; builds each new version in ``staging/`` and swaps it in atomically."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).absolute()
        self.work = work_dir(self.root)
        self.staging = self.work / "staging"
        self.marker = self.work / "staging.complete"
        self.old = self.work / "old"
        self.encoding = self.work / "encoding"
        self.pending = self.work / "pending"
        self._lock_fd: int | None = None

    # -- lifecycle ------------------------------------------------------------------------------------
    def open(self) -> list[str]:
        """Take the lock and recover from any interrupted commit. Returns what recovery did."""
        self.work.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.work / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DatasetLockedError(
                f"{self.root} is being written by another process (lock {self.work / 'lock'})"
            ) from None
        self._lock_fd = fd
        return recover(self.root)

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- one commit -----------------------------------------------------------------------------------
    def begin(self, copy_dirs: tuple[str, ...]) -> Path:
        """A fresh ``staging/``: a clone of ``root`` (if any). Returns its path."""
        self.discard()
        if self.root.exists():
            clone_tree(self.root, self.staging, copy_dirs)
        else:
            self.staging.mkdir(parents=True)
        _kill_point("cloned")
        return self.staging

    def discard(self) -> None:
        """Throw away an unfinished ``staging/``."""
        self.marker.unlink(missing_ok=True)
        if self.staging.exists():
            shutil.rmtree(self.staging)

    def commit(self) -> None:
        """Make ``staging/`` durable and swap it in as ``root`` (atomic; see the module docstring)."""
        _kill_point("written")
        before = inodes(self.root) if self.root.exists() else set()
        fsync_tree(self.staging, skip_inodes=before)
        _write_durable(self.marker)
        fsync_path(self.work)
        _kill_point("marked")
        if not self.root.exists():
            os.rename(self.staging, self.root)
        elif _exchange(self.staging, self.root):
            pass  # staging/ now holds the previous version
        else:
            os.rename(self.root, self.old)
            _kill_point("between_renames")
            os.rename(self.staging, self.root)
        fsync_path(self.root.parent)
        _kill_point("swapped")
        self.marker.unlink(missing_ok=True)
        fsync_path(self.work)
        for leftover in (self.staging, self.old):
            if leftover.exists():
                shutil.rmtree(leftover)


def _write_durable(path: Path) -> None:
    with open(path, "wb") as f:
        f.write(b"complete\n")
        f.flush()
        os.fsync(f.fileno())


def generation(folder: Path) -> int:
    """How many commits a dataset version holds: its ``meta/info.json`` episode count (-1 if unreadable)."""
    try:
        return int(json.loads((folder / "meta" / "info.json").read_text()).get("total_episodes", -1))
    except (OSError, ValueError):
        return -1


def _has_files(path: Path) -> bool:
    """Whether any file exists under ``path`` (an empty leftover folder is tidied away without a report)."""
    return any(files for _, _, files in os.walk(path))


def recover(root: Path) -> list[str]:
    """Bring ``root`` and its work area to a consistent state after a crash. Returns what was done.

    Rules: a ``staging/`` with its completion marker (fsynced after the whole staging folder) is swapped in: the
    crash fell after the commit was durable but before or during the swap, so the episode being committed is
    kept; otherwise ``old/`` is restored to a missing ``root``. Then every complete episode in ``pending/`` that
    ``root`` does not hold yet is committed (rolled forward, in index order; this imports lerobot), and one
    ``root`` already holds is deleted. Anything else (a staging folder without marker, an unfinished package, the
    temporary videos of the episode in progress at the crash) is deleted. A complete ``root`` is only ever
    replaced by a complete version. Only deletions of something (a file) are reported.
    """
    root = Path(root).absolute()
    store = DatasetStore(root)
    done: list[str] = []
    # Staging is a durable new version only if the marker exists and it is newer than root: after an exchange,
    # staging holds the *previous* version until it is deleted, and the marker may still be there.
    complete = (
        store.marker.exists()
        and store.staging.exists()
        and (not root.exists() or generation(store.staging) > generation(root))
    )
    if complete:  # the commit was durable, only the swap was interrupted: finish it
        if root.exists():
            if not _exchange(store.staging, root):
                os.rename(root, store.old)
                os.rename(store.staging, root)
        else:
            os.rename(store.staging, root)
        fsync_path(root.parent)
        done.append(f"completed the interrupted commit: {root} now holds the staged version")
    elif not root.exists() and store.old.exists():
        os.rename(store.old, root)
        fsync_path(root.parent)
        done.append(f"restored the previous version: {store.old} -> {root}")
    store.marker.unlink(missing_ok=True)
    for leftover, what in (
        (store.staging, "unfinished episode commit"),
        (store.old, "previous version (already replaced)"),
        (store.encoding, "temporary videos of an unsaved episode"),
    ):
        if leftover.exists():
            had_files = _has_files(leftover)
            shutil.rmtree(leftover)
            if had_files:
                done.append(f"deleted {what}: {leftover}")
    if store.pending.exists():
        packages = []
        for entry in sorted(store.pending.iterdir()):
            if entry.name.startswith("episode_") and entry.is_dir():
                packages.append(entry)
            else:  # a package the crash interrupted while it was being written: its episode was not finished
                had_files = entry.is_file() or _has_files(entry)
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
                if had_files:
                    done.append(f"deleted the incomplete package of an unsaved episode: {entry}")
        if packages:
            from rcs.recording.writer import roll_forward  # lerobot: imported only when there is work for it

            done.extend(roll_forward(store, packages))
        if not any(store.pending.iterdir()):
            store.pending.rmdir()
    return done
