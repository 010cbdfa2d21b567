"""Recovery rules of the commit protocol on hand-built folder states (every state a SIGKILL can leave)."""

from __future__ import annotations

import json
from pathlib import Path

from rcs.recording.storage import DatasetStore, clone_tree, recover


def _version(path: Path, episodes: int) -> None:
    (path / "meta").mkdir(parents=True)
    (path / "meta" / "info.json").write_text(json.dumps({"total_episodes": episodes}))
    (path / "data").mkdir()
    (path / "data" / f"file-{episodes:03d}.parquet").write_text("x")


def _episodes(path: Path) -> int:
    return json.loads((path / "meta" / "info.json").read_text())["total_episodes"]


def test_durable_staged_commit_is_completed(tmp_path):
    s = DatasetStore(tmp_path / "ds")
    _version(s.root, 1)
    _version(s.staging, 2)
    s.marker.write_text("complete\n")
    done = recover(s.root)
    assert _episodes(s.root) == 2 and not s.staging.exists() and not s.marker.exists()
    assert "completed the interrupted commit" in done[0]


def test_previous_version_left_in_staging_after_exchange_is_not_put_back(tmp_path):
    s = DatasetStore(tmp_path / "ds")
    _version(s.root, 2)  # the exchange happened: root is new ...
    _version(s.staging, 1)  # ... staging holds the old version, the marker is still there
    s.marker.write_text("complete\n")
    recover(s.root)
    assert _episodes(s.root) == 2 and not s.staging.exists() and not s.marker.exists()


def test_unfinished_staging_is_deleted_and_missing_root_restored(tmp_path):
    s = DatasetStore(tmp_path / "ds")
    _version(s.root, 3)
    _version(s.staging, 4)  # no marker: not durable
    recover(s.root)
    assert _episodes(s.root) == 3 and not s.staging.exists()
    s.root.rename(tmp_path / "elsewhere")
    _version(s.old, 3)  # killed after root -> old, without a complete staging folder
    recover(s.root)
    assert _episodes(s.root) == 3 and not s.old.exists()


def test_missing_root_with_durable_staging_is_completed(tmp_path):
    s = DatasetStore(tmp_path / "ds")
    _version(s.old, 1)
    _version(s.staging, 2)
    s.marker.write_text("complete\n")
    recover(s.root)
    assert _episodes(s.root) == 2 and not s.old.exists() and not s.staging.exists()


def test_clone_links_data_and_copies_meta(tmp_path):
    src, dst = tmp_path / "a", tmp_path / "b"
    _version(src, 1)
    clone_tree(src, dst, copy_dirs=("meta",))
    assert (dst / "data" / "file-001.parquet").stat().st_ino == (src / "data" / "file-001.parquet").stat().st_ino
    assert (dst / "meta" / "info.json").stat().st_ino != (src / "meta" / "info.json").stat().st_ino
    (dst / "meta" / "info.json").write_text("changed")
    assert _episodes(src) == 1  # rewriting the clone's metadata leaves the dataset untouched


def test_recovery_reports_only_what_it_deleted(tmp_path):
    """An empty ``encoding/`` folder (the recorder was between episodes) is tidied away without claiming that
    temporary videos of an unsaved episode were deleted; a non-empty one is reported."""
    s = DatasetStore(tmp_path / "ds")
    _version(s.root, 1)
    (s.encoding / "episode_000001_1").mkdir(parents=True)  # folders, no file
    done = recover(s.root)
    assert done == [] and not s.encoding.exists()
    (s.encoding / "episode_000001_2" / "observation.images.front").mkdir(parents=True)
    (s.encoding / "episode_000001_2" / "observation.images.front" / "video.mp4").write_bytes(b"x")
    done = recover(s.root)
    assert done == [f"deleted temporary videos of an unsaved episode: {s.encoding}"] and not s.encoding.exists()
    assert _episodes(s.root) == 1


def test_incomplete_episode_package_is_deleted_without_touching_the_dataset(tmp_path):
    """A package still under its temporary (dot) name was interrupted while being written: deleted; the dataset
    is left as it was (no lerobot commit is attempted)."""
    s = DatasetStore(tmp_path / "ds")
    _version(s.root, 2)
    tmp = s.pending / ".episode_000002.tmp"
    (tmp / "videos").mkdir(parents=True)
    (tmp / "data.npz").write_bytes(b"partial")
    done = recover(s.root)
    assert done == [f"deleted the incomplete package of an unsaved episode: {tmp}"]
    assert not s.pending.exists() and _episodes(s.root) == 2
