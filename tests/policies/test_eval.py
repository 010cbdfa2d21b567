"""`rcs eval` through the real server process, control loop and safety filter (a handful of short episodes)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from rcs.safety.watchdog import watchdog_for
from tests.policies.conftest import ENV, RCS, last_json, rcs


def test_eval_runs_episodes_through_the_served_policy(tiny_checkpoint, tmp_path):
    out = last_json(
        rcs(
            "eval",
            "--policy",
            str(tiny_checkpoint),
            "--episodes",
            "2",
            "--seed",
            "10000",
            "--max-steps",
            "20",
            "--videos",
            "1",
            "--out",
            str(tmp_path),
            "--json",
        ).stdout
    )
    assert set(out) >= {"success_rate", "episodes", "mean_steps", "policy_latency_ms"}
    assert out["episodes"] == 2 and out["seeds"] == [10000, 10001]
    assert 0.0 <= out["success_rate"] <= 1.0
    assert out["requests"] > 0 and out["policy_latency_ms"]["p50"] > 0
    assert out["policy_latency_ms"]["p99"] >= out["policy_latency_ms"]["p50"]
    assert out["mean_steps"] >= 20 - 1  # a failing episode runs to the time limit (20 steps at 20 Hz)
    for reason in out["failures"].values():
        assert reason in ("timeout", "terminated: cube off the table"), reason  # chunks arrived and ran
    # each failure says how far it got: the task's measures at the last check (metres)
    assert set(out["failures_final"]) == set(out["failures"])
    for final in out["failures_final"].values():
        assert final["cube_to_target"] > 0 and final["tcp_to_cube"] >= 0, final
    assert (tmp_path / "episode_10000.mp4").stat().st_size > 0
    assert (tmp_path / "server.log").is_file()
    # the robot asks for a chunk every n_action_steps policy periods (the checkpoint's open-loop horizon) and
    # the watchdog expects them at that period
    assert out["replan_steps"] == json.loads((tiny_checkpoint / "config.json").read_text())["n_action_steps"]
    assert out["watchdog_ticks"].get("running", 0) > 0
    assert out["watchdog"]["stop_after_s"] == pytest.approx(watchdog_for(out["replan_steps"] * 0.05)["stop_after_s"])
    # the arm stopped exactly as long as a chunk was really overdue, measured from the executor's merge ticks
    # (none on an idle machine; a loaded one may delay the server's answer past the period + 0.2 s, and then the
    # watchdog must stop the arm: that is what it is for)
    detail = json.loads((tmp_path / "summary.json").read_text())["per_episode"]
    stop, disarm = out["watchdog"]["stop_ticks"], out["watchdog"]["disarm_ticks"]
    for seed, ep in detail.items():
        # ticks the loop skipped (a wake-up over a period late) are in the gaps but never reach the watchdog
        engaged_ticks = sum(ep["watchdog_ticks"].values()) - ep["watchdog_ticks"].get("idle", 0)
        assert 0 <= sum(ep["chunk_gaps"]) - engaged_ticks <= ep["missed_ticks"], (seed, ep)
        overdue = sum(min(g, disarm) - stop for g in ep["chunk_gaps"] if g > stop)
        assert overdue - ep["missed_ticks"] <= ep["watchdog_ticks"].get("stopping", 0) <= overdue, (seed, ep)


def test_replan_period_comes_from_the_checkpoint_and_sets_the_watchdog(tiny_checkpoint, tmp_path):
    from rcs.errors import ConfigError
    from rcs.eval.inputs import read_policy_inputs

    cfg = json.loads((tiny_checkpoint / "config.json").read_text())
    assert read_policy_inputs(tiny_checkpoint).replan_steps == cfg["n_action_steps"]
    # a chunk every 0.4 s: stop once one is 0.2 s overdue, disarm 0.8 s later
    assert watchdog_for(0.4, 0.2) == pytest.approx({"stop_after_s": 0.6, "disarm_after_s": 1.4})
    assert watchdog_for(0.05, 0.2) == pytest.approx({"stop_after_s": 0.25, "disarm_after_s": 1.05})
    bad = tmp_path / "bad"
    shutil.copytree(tiny_checkpoint, bad)
    cfg["n_action_steps"] = cfg["horizon"] + 1
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(
        ConfigError, match=rf"n_action_steps={cfg['horizon'] + 1} must be an integer in \[1, {cfg['horizon']}\]"
    ):
        read_policy_inputs(bad)
    proc = subprocess.run(
        [
            RCS,
            "eval",
            "--policy",
            str(tiny_checkpoint),
            "--replan-steps",
            "0",
            "--out",
            str(tmp_path / "eval"),
            "--json",
        ],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=120,
    )
    assert proc.returncode == 2 and "--replan-steps: 0 must be >= 1" in proc.stderr, proc.stderr[-2000:]
    too_long = cfg["horizon"] + 1  # beyond the chunk: known only once the checkpoint is read
    proc = subprocess.run(
        [
            RCS,
            "eval",
            "--policy",
            str(tiny_checkpoint),
            "--replan-steps",
            str(too_long),
            "--out",
            str(tmp_path / "eval"),
            "--json",
        ],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=120,
    )
    assert proc.returncode != 0 and f"--replan-steps={too_long}: must be in [1," in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


def test_eval_refuses_a_checkpoint_whose_joint_order_differs_from_the_robot(tiny_checkpoint, tmp_path):
    d = tmp_path / "swapped"
    shutil.copytree(tiny_checkpoint, d)
    manifest = json.loads((d / "rcs_policy.json").read_text())
    names = manifest["names"]["action"]
    names[0], names[1] = names[1], names[0]
    (d / "rcs_policy.json").write_text(json.dumps(manifest))
    proc = subprocess.run(
        [
            RCS,
            "eval",
            "--policy",
            str(d),
            "--episodes",
            "1",
            "--max-steps",
            "5",
            "--out",
            str(tmp_path / "eval"),
            "--json",
        ],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=600,
    )
    assert proc.returncode != 0
    assert "joint order" in proc.stderr, proc.stderr[-2000:]


def test_pose_policy_runs_through_the_robot_side_inverse_kinematics(tiny_pose_checkpoint, tmp_path):
    """A checkpoint trained with --pose-targets declares TCP-pose actions; rcs eval accepts it (the robot's
    expected schema follows the checkpoint's layout), converts every chunk with the arm's IK in the bridge
    thread and runs the joint targets through the executor and safety filter."""
    manifest = json.loads((tiny_pose_checkpoint / "rcs_policy.json").read_text())
    assert manifest["names"]["action"] == ["x", "y", "z", "r11", "r21", "r31", "r12", "r22", "r32", "gripper"]
    assert manifest["units"]["action"] == "m,rot6d"
    out = last_json(
        rcs(
            "eval",
            "--policy",
            str(tiny_pose_checkpoint),
            "--episodes",
            "1",
            "--seed",
            "10000",
            "--max-steps",
            "20",
            "--videos",
            "0",
            "--out",
            str(tmp_path),
            "--json",
        ).stdout
    )
    assert out["requests"] > 0 and out["chunk_rejections"] == {}
    for reason in out["failures"].values():
        assert reason in ("timeout", "terminated: cube off the table"), reason  # chunks arrived and ran
    horizon = json.loads((tiny_pose_checkpoint / "config.json").read_text())["horizon"]
    assert 0 < out["ik"]["waypoints"] <= out["requests"] * horizon
    assert out["watchdog_ticks"].get("running", 0) > 0 and out["watchdog_ticks"].get("stopping", 0) == 0


def test_eval_view_streams_the_evaluated_robot_to_an_rrd_file(tiny_checkpoint, tmp_path):
    """``rcs eval --view FILE.rrd``: the robot's measured and commanded joints, saved headless by ``rcs view``."""
    from rerun.chunk import RrdReader

    rrd = tmp_path / "eval.rrd"
    args = ["eval", "--policy", str(tiny_checkpoint), "--episodes", "1", "--max-steps", "40", "--videos", "0"]
    out = last_json(rcs(*args, "--out", str(tmp_path), "--view", str(rrd), "--json").stdout)
    assert out["episodes"] == 1
    rows: dict[str, int] = {}
    for chunk in RrdReader(rrd).stream():
        rows[chunk.entity_path] = rows.get(chunk.entity_path, 0) + chunk.num_rows
    for entity in ("/robot/joints/joint1/measured", "/robot/joints/joint1/commanded", "/robot/tcp", "/robot/stage"):
        assert rows.get(entity, 0) > 0, (entity, sorted(rows))


def test_eval_shift_runs_the_nominal_then_the_shifted_robot_on_the_same_seeds(tiny_checkpoint, tmp_path):
    out = last_json(
        rcs(
            "eval",
            "--policy",
            str(tiny_checkpoint),
            "--shift",
            "reality-a",
            "--episodes",
            "1",
            "--max-steps",
            "10",
            "--videos",
            "0",
            "--out",
            str(tmp_path),
            "--json",
        ).stdout
    )
    assert out["shift"] == "reality-a" and "friction x0.6" in out["description"]
    nominal, shifted = out["nominal"], out["shifted"]
    assert nominal["seeds"] == shifted["seeds"] == [10000]
    assert nominal["shift"] is None and nominal["robot_config"] == {}
    assert shifted["shift"] == "reality-a" and shifted["robot_config"]["actuation_delay_s"] == 0.12
    assert shifted["robot_config"]["randomization"]["extra"]["object_mass"] == [2.0, 2.0]
    assert out["success_drop_points"] == round(100 * (nominal["success_rate"] - shifted["success_rate"]), 1)
    assert (tmp_path / "nominal" / "summary.json").is_file() and (tmp_path / "reality-a" / "summary.json").is_file()
