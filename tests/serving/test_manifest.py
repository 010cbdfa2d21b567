"""rcs_policy.json derived for a stock lerobot-train checkpoint from the dataset it was trained on (JSON only)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rcs.errors import ConfigError
from rcs.serving.manifest import derive_manifest
from rcs.serving.policy import read_manifest

JOINTS = ["joint1", "joint2", "gripper"]
STATE = ["joint1", "joint2", "gripper", "tcp_x"]
CARTESIAN = ["x", "y", "z", "rx", "ry", "rz", "gripper"]


def _dataset(root: Path, fps: int = 20, action: list[str] | None = JOINTS) -> Path:
    (root / "meta").mkdir(parents=True)
    features = {
        "observation.state": {"dtype": "float32", "shape": [len(STATE)], "names": STATE},
        "observation.images.front": {"dtype": "video", "shape": [32, 32, 3], "names": ["height", "width", "channel"]},
    }
    if action is not None:
        features["action"] = {"dtype": "float32", "shape": [len(action)], "names": action}
    (root / "meta" / "info.json").write_text(json.dumps({"fps": fps, "features": features}))
    return root


def _checkpoint(directory: Path, dataset: dict | None) -> Path:
    directory.mkdir(parents=True)
    config = {
        "type": "act",
        "input_features": {
            "observation.state": {"type": "STATE", "shape": [len(STATE)]},
            "observation.images.front": {"type": "VISUAL", "shape": [3, 32, 32]},
        },
        "output_features": {"action": {"type": "ACTION", "shape": [len(JOINTS)]}},
    }
    (directory / "config.json").write_text(json.dumps(config))
    if dataset is not None:
        (directory / "train_config.json").write_text(json.dumps({"dataset": dataset, "steps": 30}))
    return directory


def test_manifest_comes_from_the_training_datasets_metadata(tmp_path):
    data = _dataset(tmp_path / "data", fps=25)
    ckpt = _checkpoint(tmp_path / "pretrained_model", {"repo_id": "local/pick", "root": str(data)})
    directory, manifest = read_manifest(ckpt)
    assert directory == ckpt and manifest == derive_manifest(ckpt)
    assert manifest["kind"] == "lerobot" and manifest["policy_type"] == "act"
    assert manifest["policy_dt"] == pytest.approx(1 / 25)
    assert manifest["names"] == {"action": JOINTS, "observation.state": STATE}
    assert manifest["units"] == {"action": "rad", "observation.state": ""}
    assert manifest["derived_from"] == str(data) and "text" not in manifest


@pytest.mark.parametrize(
    ("control_mode", "action", "names", "unit"),
    [
        (
            "cartesian",
            CARTESIAN,
            ["delta_x", "delta_y", "delta_z", "delta_rx", "delta_ry", "delta_rz", "gripper"],
            "m,rotvec/step",
        ),
        ("joint", JOINTS, ["delta_joint1", "delta_joint2", "gripper"], "rad/step"),
    ],
)
def test_relative_recording_gets_delta_names(tmp_path, control_mode, action, names, unit):
    """A --relative recording's actions are per-step changes: the names say so, and the robot side integrates."""
    data = _dataset(tmp_path / "data", action=action)
    (data / "meta" / "rcs_recording.json").write_text(
        json.dumps({"recording": {"control_mode": control_mode, "relative": True}})
    )
    ckpt = _checkpoint(tmp_path / "ckpt", {"repo_id": "local/pick", "root": str(data)})
    manifest = derive_manifest(ckpt)
    assert manifest["names"]["action"] == names and manifest["units"]["action"] == unit
    (data / "meta" / "rcs_recording.json").write_text(json.dumps({"control_mode": control_mode, "relative": False}))
    assert derive_manifest(ckpt)["names"]["action"] == action


def test_dataset_found_in_lerobots_home_when_the_config_has_no_root(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_LEROBOT_HOME", str(tmp_path / "home"))
    _dataset(tmp_path / "home" / "me" / "pick", fps=10, action=CARTESIAN)
    ckpt = _checkpoint(tmp_path / "ckpt", {"repo_id": "me/pick", "root": None})
    manifest = derive_manifest(ckpt)
    assert manifest["policy_dt"] == pytest.approx(0.1)
    assert manifest["names"]["action"] == CARTESIAN


@pytest.mark.parametrize(
    ("dataset", "write_data", "match"),
    [
        (None, False, r"no rcs_policy.json, and its training config: .*train_config.json does not exist"),
        ({"root": "x"}, False, r"dataset.repo_id is missing"),
        (
            {"repo_id": "me/gone", "root": "MISSING"},
            False,
            r"no rcs_policy.json, and the dataset it was trained on \('me/gone'\) is not at .*MISSING .*write "
            r"rcs_policy.json",
        ),
        ({"repo_id": "me/pick", "root": "DATA"}, True, r"meta/info.json needs fps > 0 and features.action.names"),
    ],
)
def test_underivable_manifest_is_one_line_naming_what_is_missing(tmp_path, dataset, write_data, match):
    if dataset is not None and dataset.get("root") in ("MISSING", "DATA"):
        dataset = {**dataset, "root": str(tmp_path / dataset["root"])}
    if write_data:
        _dataset(tmp_path / "DATA", action=None)
    ckpt = _checkpoint(tmp_path / "ckpt", dataset)
    with pytest.raises(ConfigError, match=match) as err:
        read_manifest(ckpt)
    assert "\n" not in str(err.value) and str(err.value).startswith(f"policy checkpoint {ckpt}: ")
