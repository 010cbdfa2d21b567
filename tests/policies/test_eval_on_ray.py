"""`rcs eval --workers N` on real Ray clusters: a head started with `ray start` like a user's cluster, and the
local cluster an evaluation starts for itself; workers killed mid-evaluation with SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from rcs.eval.evaluation import EvalConfig
from rcs.loopback import free_port
from tests.policies.conftest import ENV, RCS, last_json, rcs, train_residual_killing

ray = pytest.importorskip("ray")

#: keys only the Ray path adds to the summary
RAY_KEYS = {"workers", "reruns", "missing_seeds"}


@pytest.fixture
def ray_env(tmp_path, monkeypatch) -> dict[str, str]:
    """Ray's session files under the test's folder, no token under ~/.ray (shared/docs/field-notes.md)."""
    tmp = Path("/tmp") / f"rcs-ray-{os.getpid()}-{tmp_path.name[-12:]}"  # Ray's socket paths must stay short
    tmp.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("RAY_TMPDIR", str(tmp))
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    return {**ENV, "RAY_TMPDIR": str(tmp), "RAY_AUTH_MODE": "disabled"}


@pytest.fixture
def ray_head(ray_env):
    """A Ray head with 2 CPUs in its own process (`ray start --head --block`), stopped after the test."""
    port = free_port()
    ray_cli = str(Path(RCS).with_name("ray"))
    head = subprocess.Popen(
        [ray_cli, "start", "--head", "--block", "--num-cpus", "2", "--port", str(port), "--include-dashboard=false"],
        env=ray_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    address = f"127.0.0.1:{port}"
    end = time.monotonic() + 120
    while subprocess.run([ray_cli, "status", "--address", address], env=ray_env, capture_output=True).returncode:
        assert head.poll() is None and time.monotonic() < end, "ray start --head did not come up"
        time.sleep(1.0)
    yield address
    os.killpg(head.pid, signal.SIGTERM)
    try:
        head.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(head.pid, signal.SIGKILL)
        head.wait()


def test_workers_on_an_existing_cluster_give_the_single_process_summary(tiny_checkpoint, tmp_path, ray_head):
    common = ["--policy", str(tiny_checkpoint), "--episodes", "4", "--seed", "10000", "--max-steps", "20"]
    alone = last_json(rcs("eval", *common, "--videos", "0", "--out", str(tmp_path / "alone"), "--json").stdout)
    spread = last_json(
        rcs(
            "eval",
            *common,
            "--videos",
            "1",
            "--out",
            str(tmp_path / "ray"),
            "--workers",
            "2",
            "--ray-address",
            ray_head,
            "--json",
        ).stdout
    )
    assert set(spread) == set(alone) | RAY_KEYS
    assert spread["workers"] == 2 and spread["missing_seeds"] == [] and spread["reruns"] == {}
    assert spread["seeds"] == alone["seeds"] == [10000, 10001, 10002, 10003]
    assert spread["episodes"] == 4 and spread["requests"] > 0
    for key in ("policy", "env", "robot", "robot_config", "replan_steps", "strategy", "watchdog"):
        assert spread[key] == alone[key], key
    # the same episodes: each seed's scene and outcome (20 steps of the tiny policy: none succeeds)
    detail = {p: json.loads((tmp_path / p / "summary.json").read_text())["per_episode"] for p in ("alone", "ray")}
    assert {s: e["success"] for s, e in detail["ray"].items()} == {s: e["success"] for s, e in detail["alone"].items()}
    assert (tmp_path / "ray" / "episode_10000.mp4").stat().st_size > 0
    assert (tmp_path / "ray" / "worker_0" / "server.log").is_file()


def _config(checkpoint: Path, out: Path, episodes: int) -> EvalConfig:
    return EvalConfig(
        policy=checkpoint, env="rcs/PandaPickCube-v0", episodes=episodes, seed=10000, max_steps=100, videos=0, out=out
    )


class _Killer:
    """Reads the evaluation's progress lines; SIGKILLs worker ``index``'s process ``delay_s`` after each line that
    says it started (``ready``/``restarted``) or finished an episode, at most ``kills`` times."""

    def __init__(self, index: int, kills: int, delay_s: float) -> None:
        self.index, self.kills, self.delay_s = index, kills, delay_s
        self.lines: list[str] = []
        self.killed: list[int] = []
        self.niceness: list[int] = []  # of each worker process as it reported ready

    def __call__(self, line: str) -> None:
        self.lines.append(line)
        if " ready: pid " in line or " restarted: pid " in line:
            self.niceness.append(os.getpriority(os.PRIO_PROCESS, int(line.split("pid ")[1].split(",")[0])))
        tag = f"worker {self.index}"
        if len(self.killed) >= self.kills:
            return
        if line.strip().startswith((f"{tag} ready: pid", f"{tag} restarted: pid")):
            pid = int(line.split("pid ")[1].split(",")[0])
            self.killed.append(pid)
            threading.Timer(self.delay_s, os.kill, (pid, signal.SIGKILL)).start()


def test_a_worker_killed_mid_episode_has_its_episode_rerun(tiny_checkpoint, tmp_path, ray_env):
    from rcs.eval.on_ray import evaluate_on_ray

    killer = _Killer(index=1, kills=1, delay_s=2.0)  # 2 s into its first episode of 100 steps (5 s at 20 Hz)
    summary = evaluate_on_ray(_config(tiny_checkpoint, tmp_path, 4), killer, workers=2)
    log = "\n".join(killer.lines)
    assert len(killer.killed) == 1
    assert f"worker 1 (pid {killer.killed[0]}) failed on seed" in log and "rerunning it" in log, log
    assert summary["missing_seeds"] == [] and summary["seeds"] == [10000, 10001, 10002, 10003], log
    assert summary["episodes"] == 4 and len(summary["reruns"]) == 1, summary["reruns"]
    # Ray starts workers at niceness 15; their real-time episodes run at the driver's (lowering it takes root or
    # CAP_SYS_NICE: without, the worker warns and stays at 15)
    if os.geteuid() == 0:
        assert len(killer.niceness) >= 2 and set(killer.niceness) == {os.getpriority(os.PRIO_PROCESS, 0)}


def test_a_seed_whose_workers_keep_dying_is_reported_missing(tiny_checkpoint, tmp_path, ray_env):
    from rcs.eval.on_ray import evaluate_on_ray

    # one worker, killed in its first episode and again after Ray restarted it: no worker is left
    killer = _Killer(index=0, kills=2, delay_s=2.0)
    summary = evaluate_on_ray(_config(tiny_checkpoint, tmp_path, 2), killer, workers=1)
    log = "\n".join(killer.lines)
    assert len(killer.killed) == 2 and "worker 0 restarted" in log, log
    assert summary["missing_seeds"] == [10000, 10001], log
    assert summary["episodes"] == 0 and summary["seeds"] == []
    assert json.loads((tmp_path / "summary.json").read_text())["missing_seeds"] == [10000, 10001]


def test_bad_worker_options_are_one_line_errors(tiny_checkpoint, tmp_path, ray_env):
    for args, message in (
        (["--ray-address", "127.0.0.1:1"], "--ray-address needs --workers N"),
        (["--workers", "0"], "--workers"),
        (["--workers", "1", "--ray-address", "127.0.0.1:1"], "no Ray cluster at --ray-address=127.0.0.1:1"),
        (["--workers", "2", "--view", str(tmp_path / "v.rrd")], "--view shows one robot"),
    ):
        proc = subprocess.run(
            [RCS, "eval", "--policy", str(tiny_checkpoint), "--out", str(tmp_path), *args],
            capture_output=True,
            text=True,
            env=ray_env,
            timeout=300,
        )
        assert proc.returncode != 0 and message in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr, proc.stderr


def test_train_residual_collects_its_episodes_on_ray_workers(tmp_path, ray_env):
    """Two rollout workers on a local cluster against the run's one base server: the budget is met exactly, every
    step's transition reaches the learner's replay (but the last steps of episodes still under way), and the
    run evaluates and saves like the single-process path."""
    import torch

    out = tmp_path / "run"
    args = ["--shift", "reality-a", "--output", str(out), "--steps", "500", "--learning-starts", "100"]
    args += ["--eval-every", "500", "--eval-episodes", "1", "--actor-starts", "0", "--workers", "2"]
    proc = subprocess.run([RCS, "train-residual", *args], capture_output=True, text=True, env=ray_env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 Ray rollout workers ready" in proc.stderr
    result = last_json(proc.stdout)
    assert result["workers"] == 2 and result["env_steps"] == 500 and result["dropped_steps"] == 0
    assert [c["env_steps"] for c in result["curve"]] == [0, 500]
    online = torch.load(out / "training_state.pt", weights_only=False)["online"]
    # each worker keeps at most n_step - 1 = 2 steps of its unfinished episode pending
    assert 500 - 2 * 2 <= len(online["obs"]) <= 500
    assert (out / "checkpoint" / "residual.json").is_file()


def test_rollout_workers_that_lose_the_base_lose_their_segments_and_go_on_with_the_restarted_one(tmp_path, ray_env):
    """SIGKILL the run's base server once the rollout workers are up: the segments that met it are lost (none of
    their steps counted or stored), the driver starts the base again, points the workers at it, and the run ends
    at its budget."""
    out = tmp_path / "run"
    args = ["--shift", "reality-a", "--output", str(out), "--steps", "400", "--learning-starts", "100"]
    args += ["--eval-every", "400", "--eval-episodes", "1", "--actor-starts", "0", "--workers", "2"]
    code, stdout, stderr = train_residual_killing(args, "Ray rollout workers ready", ray_env)
    assert code == 0, stderr[-3000:]
    result = last_json(stdout)
    assert result["env_steps"] == 400 and [c["env_steps"] for c in result["curve"]] == [0, 400]
    assert "steps lost" in stderr and "the base server had exited: started again (1 of 3 restarts)" in stderr


def test_a_rollout_worker_killed_mid_training_loses_its_segment_and_another_takes_its_place(tmp_path, ray_env):
    """SIGKILL rollout worker 1's process once the workers are up: its segment is lost (none of its steps counted
    or stored), the driver starts a new worker in its place, and the run ends at its budget."""
    import torch

    def worker_1(proc: subprocess.Popen, line: str) -> int:
        return int(line.split("(pids ")[1].split(")")[0].split(", ")[1])

    out = tmp_path / "run"
    args = ["--shift", "reality-a", "--output", str(out), "--steps", "400", "--learning-starts", "100"]
    args += ["--eval-every", "400", "--eval-episodes", "1", "--actor-starts", "0", "--workers", "2"]
    code, stdout, stderr = train_residual_killing(args, "Ray rollout workers ready", ray_env, worker_1)
    assert code == 0, stderr[-3000:]
    result = last_json(stdout)
    assert result["env_steps"] == 400 and [c["env_steps"] for c in result["curve"]] == [0, 400]
    assert "rollout worker 1: a segment of 200 steps lost" in stderr, stderr[-3000:]
    assert "Ray rollout worker 1 started again: pid" in stderr and "(1 of 3 restarts)" in stderr
    online = torch.load(out / "training_state.pt", weights_only=False)["online"]
    assert 400 - 2 * 2 <= len(online["obs"]) <= 400  # only the steps of the segments that came back
