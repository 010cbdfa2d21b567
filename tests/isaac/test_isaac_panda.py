"""isaac/panda in a real Isaac Lab 3 simulation on the CPU (kit-less, Newton, MuJoCo-Warp), a few hundred steps.

Each test runs one scenario of isaac_checks.py in a fresh .venv-isaac process (see conftest.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.isaac.conftest import REPO, run_isaac

#: rad: how close the joints get to their targets after 400 steps (0.8 s) and hold them; MuJoCo's own Panda gets
#: within 1e-4 rad, Isaac (the same MJCF, gravity compensated) within 3e-6 rad here
REACH_TOLERANCE = 1e-3
#: rad: the servos alone (no gravity compensation) sag 6.8 mrad at the REACH pose (MuJoCo and Isaac agree)
SAG_WITHOUT_GRAVCOMP = 4e-3


def test_reaches_joint_targets_and_holds_them_under_gravity(isaac_venv: Path) -> None:
    r = run_isaac(isaac_venv, "reach_and_hold", {"steps": 400})
    assert r["start_error"] < 1e-6, "the joints must start at the home pose after reset (not at zero)"
    assert r["home_drift"] < 1e-4, "holding home right after reset: the actuator filter state must start at home"
    assert np.abs(r["reach_error"]).max() < REACH_TOLERANCE, r["reach_error"]
    assert np.abs(r["hold_error"]).max() < REACH_TOLERANCE, r["hold_error"]
    assert r["hold_drift"] < 1e-4
    assert r["tcp_error"] < 1e-3  # m: read() TCP vs forward kinematics of the target
    assert r["gripper"] < 0.05 and r["start_gripper"] > 0.95
    assert abs(r["sim_time"] - 1.02) < 1e-9
    assert np.allclose(r["cube"], [0.5, 0.0, 0.02], atol=2e-3), "the cube rests on the table at its keyframe pose"


def test_batched_envs_all_reach_their_targets(isaac_venv: Path) -> None:
    """Isaac Lab's vectorization: four Pandas stepped together, every one reaches the commanded joints (the same
    scenario is the GPU recipe with thousands of envs: docs/simulation.md)."""
    r = run_isaac(isaac_venv, "batched_reach", {"num_envs": 4, "steps": 400})
    assert r["num_envs"] == 4
    assert r["max_error"] < REACH_TOLERANCE, r


def test_without_the_gravcomp_rename_the_arm_sags(isaac_venv: Path, tmp_path: Path) -> None:
    """The converter/Newton attribute mismatch is real: without sim.isaac.convert.rename_gravcomp_for_newton
    gravity compensation is lost and the arm sags (so the holding test above would fail)."""
    r = run_isaac(isaac_venv, "reach_and_hold", {"disable_gravcomp_fix": True}, env={"RCS_ISAAC_CACHE": str(tmp_path)})
    assert Path(r["usd"]).is_relative_to(tmp_path)
    assert np.abs(r["hold_error"]).max() > SAG_WITHOUT_GRAVCOMP, r["hold_error"]


def test_without_the_self_collision_fix_links_jam(isaac_venv: Path, tmp_path: Path) -> None:
    """Without sim.isaac.convert.keep_mjcf_self_collision_rule the links collide with each other (the converter
    drops the MJCF's contype/conaffinity) and joints stop far from their targets."""
    r = run_isaac(
        isaac_venv, "reach_and_hold", {"disable_self_collision_fix": True}, env={"RCS_ISAAC_CACHE": str(tmp_path)}
    )
    assert np.abs(r["reach_error"]).max() > 0.1, r["reach_error"]


def test_conversion_is_cached_by_content(isaac_venv: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    r = run_isaac(isaac_venv, "convert_twice", {"cache": str(cache)})
    assert r["first"] == r["second"] and r["same_inode"], "the second build must reuse the first one's file"
    assert len(r["entries"]) == 1 and r["entries"][0].startswith("panda-"), r["entries"]
    assert r["gravcomp_attrs"] == {"mjc:gravcomp": 10, "mjc:body:gravcomp": 0}  # link1..7, hand, two fingers
    # an edited model is a new cache entry (content hash), the old file stays
    model = tmp_path / "panda.xml"
    model.write_text((REPO / "sim/models/panda/panda.xml").read_text().replace('damping="30"', 'damping="31"'))
    r2 = run_isaac(isaac_venv, "convert_twice", {"cache": str(cache), "mjcf": str(model)})
    assert r2["first"] != r["first"] and len(r2["entries"]) == 2


def test_bad_models_are_one_line_errors_naming_the_file(isaac_venv: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope.xml"
    r = run_isaac(isaac_venv, "convert_error", {"mjcf": str(missing), "cache": str(tmp_path / "c")})
    assert r["type"] == "ConfigError" and str(missing) in r["message"] and "\n" not in r["message"], r
    broken = tmp_path / "broken.xml"
    broken.write_text('<mujoco><worldbody><body><joint type="hinge"/></body></worldbody></mujoco>')
    r = run_isaac(isaac_venv, "convert_error", {"mjcf": str(broken), "cache": str(tmp_path / "c")})
    assert r["type"] == "ConfigError" and str(broken) in r["message"] and "\n" not in r["message"], r
    mesh = tmp_path / "mesh.xml"
    mesh.write_text('<mujoco><asset><mesh file="gone.stl"/></asset></mujoco>')
    r = run_isaac(isaac_venv, "convert_error", {"mjcf": str(mesh), "cache": str(tmp_path / "c")})
    assert r["type"] == "ConfigError" and "gone.stl" in r["message"], r
    # robot links that collide with each other (MuJoCo default masks): refused, not silently changed
    selfhit = tmp_path / "selfhit.xml"
    selfhit.write_text(
        '<mujoco><worldbody><body name="a"><joint type="hinge"/><geom name="ga" size="0.1"/>'
        '<body name="b" pos="0 0 0.5"><joint type="hinge"/><geom name="gb" size="0.1"/>'
        '<body name="c" pos="0 0 0.5"><joint type="hinge"/><geom name="gc" size="0.1"/>'
        "</body></body></body></worldbody></mujoco>"
    )
    r = run_isaac(isaac_venv, "convert_error", {"mjcf": str(selfhit), "cache": str(tmp_path / "c")})
    assert r["type"] == "ConfigError" and str(selfhit) in r["message"] and "collide" in r["message"], r
