"""rcs deploy's static preflight: a checkpoint's files against a robot's spec and server config, before anything
connects or moves. Checkpoints are written here as their files (config.json + rcs_policy.json), as rcs train and
lerobot write them; each bad one must fail on exactly its row with a reason naming the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import rcs
from rcs.deploy.preflight import Preflight, check_checkpoint_against_robot
from rcs.remote.config import server_config

SO101 = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
TCP = ["tcp_x", "tcp_y", "tcp_z", "tcp_qw", "tcp_qx", "tcp_qy", "tcp_qz"]


def checkpoint(
    root: Path,
    action: list[str],
    state: list[str],
    *,
    env_state: list[str] | None = None,
    camera: tuple[str, int, int] | None = ("front", 240, 320),
    policy_dt: float = 0.05,
    action_unit: str | None = None,
) -> Path:
    inputs: dict[str, Any] = {"observation.state": {"type": "STATE", "shape": [len(state)]}}
    names: dict[str, Any] = {"action": action, "observation.state": state}
    if env_state:
        inputs["observation.environment_state"] = {"type": "ENV", "shape": [len(env_state)]}
        names["observation.environment_state"] = env_state
    if camera:
        inputs[f"observation.images.{camera[0]}"] = {"type": "VISUAL", "shape": [3, camera[1], camera[2]]}
    root.mkdir(parents=True, exist_ok=True)
    config = {"type": "rcs_diffusion", "input_features": inputs, "horizon": 4, "n_action_steps": 2}
    (root / "config.json").write_text(json.dumps(config))
    manifest: dict[str, Any] = {
        "kind": "lerobot",
        "policy_type": "rcs_diffusion",
        "policy_dt": policy_dt,
        "names": names,
    }
    if action_unit is not None:
        manifest["units"] = {"action": action_unit}
    (root / "rcs_policy.json").write_text(json.dumps(manifest))
    return root


def config(robot: str, **extra: Any) -> Any:
    data = {"robot": robot, "rate_hz": 100, "cameras": [{"name": "front", "width": 320, "height": 240, "fps": 20}]}
    return server_config({**data, **extra})


@pytest.fixture(scope="module")
def so101():
    return rcs.make_robot("sim/so101")


def rows(ckpt: Path, robot: Any, cfg: Any) -> dict[str, tuple[bool, str]]:
    pre = Preflight()
    check_checkpoint_against_robot(pre, ckpt, cfg, robot, 100.0)
    return {r.name: (r.passed, r.detail) for r in pre.rows}


def failed(table: dict[str, tuple[bool, str]]) -> dict[str, str]:
    return {name: detail for name, (ok, detail) in table.items() if not ok}


def test_a_fitting_checkpoint_passes_every_row(tmp_path, so101):
    table = rows(checkpoint(tmp_path / "ok", SO101, SO101 + TCP), so101, config("sim/so101"))
    assert failed(table) == {}
    assert list(table) == [
        "checkpoint", "action names", "units", "observation", "control period", "cameras", "safety config"
    ]  # fmt: skip
    assert table["control period"][1] == "policy_dt 0.05 s = 5 x the 100 Hz loop period"
    assert table["observation"][1] == "observation.state (13)"


def test_a_checkpoint_for_another_robot_or_another_joint_order_is_refused(tmp_path, so101):
    panda = [f"joint{i}" for i in range(1, 8)] + ["gripper"]
    table = failed(rows(checkpoint(tmp_path / "panda", panda, panda), so101, config("sim/so101")))
    assert set(table) == {"action names", "observation"}
    assert table["action names"].startswith("a checkpoint for another robot: its actions name ['joint1'")
    assert "policy input observation.state entry 'joint1'" in table["observation"]
    swapped = [SO101[1], SO101[0], *SO101[2:]]
    table = failed(rows(checkpoint(tmp_path / "swapped", swapped, SO101 + TCP), so101, config("sim/so101")))
    assert list(table) == ["action names"] and "the same joints in another order" in table["action names"]


def test_units_period_and_cameras_are_checked(tmp_path, so101):
    table = failed(rows(checkpoint(tmp_path / "deg", SO101, SO101, action_unit="deg"), so101, config("sim/so101")))
    assert table == {
        "units": "action unit 'deg', but its names ['shoulder_pan', 'shoulder_lift', 'elbow_flex']... mean 'rad'"
    }
    table = failed(rows(checkpoint(tmp_path / "dt", SO101, SO101, policy_dt=0.033), so101, config("sim/so101")))
    assert (
        list(table) == ["control period"]
        and "not a whole number of the 100 Hz loop's periods" in table["control period"]
    )
    small = checkpoint(tmp_path / "small", SO101, SO101, camera=("front", 96, 96))
    assert failed(rows(small, so101, config("sim/so101")))["cameras"] == (
        "camera 'front': the policy was trained on 96x96, the robot config gives 320x240"
    )
    wrist = checkpoint(tmp_path / "wrist", SO101, SO101, camera=("wrist", 240, 320))
    assert failed(rows(wrist, so101, config("sim/so101")))["cameras"] == (
        "the policy reads camera 'wrist' (320x240); the robot config has ['front']"
    )


def test_safety_config_outside_the_spec_is_refused(tmp_path, so101):
    ckpt = checkpoint(tmp_path / "ok", SO101, SO101)
    table = failed(rows(ckpt, so101, config("sim/so101", safety={"velocity_scale": 1.5})))
    assert table == {"safety config": "velocity_scale=1.5 must be in (0, 1]"}
    table = failed(rows(ckpt, so101, config("sim/so101", safety={"position_margin": 2.0})))
    assert list(table) == ["safety config"] and table["safety config"].startswith(
        "position_margin=2.0 rad leaves no range"
    )
    box = {"workspace": {"lower": [0.3, 0.0, 0.0], "upper": [0.1, 0.2, 0.3]}}
    table = failed(rows(ckpt, so101, config("sim/so101", safety=box)))
    assert table == {"safety config": "workspace lower [0.3, 0.0, 0.0] must be below upper [0.1, 0.2, 0.3] (m)"}


def test_object_poses_need_a_robot_that_tracks_objects(tmp_path, so101):
    cube = ["cube_x", "cube_y", "cube_z"]
    ckpt = checkpoint(tmp_path / "env", SO101, SO101, env_state=cube)
    assert "observation" not in failed(rows(ckpt, so101, config("sim/so101")))  # the simulated scene tracks the cube
    physical = rcs.make_robot("hw/so101", port="/dev/null")  # created, never connected
    detail = failed(rows(ckpt, physical, config("hw/so101")))["observation"]
    assert "entry 'cube_x'" in detail and "it tracks no objects" in detail


def test_unreadable_checkpoints_fail_the_first_row(tmp_path, so101):
    (tmp_path / "empty").mkdir()
    table = rows(tmp_path / "empty", so101, config("sim/so101"))
    assert list(table) == ["checkpoint"] and not table["checkpoint"][0]
    assert "neither rcs_policy.json nor a lerobot config.json" in table["checkpoint"][1]
    table = rows(tmp_path / "missing", so101, config("sim/so101"))
    assert not table["checkpoint"][0]
