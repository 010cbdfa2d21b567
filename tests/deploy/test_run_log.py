"""The deploy run log (rcs.deploy.run_log): a robot server's run in a crash-safe LeRobot dataset.

A scripted stream checks the sampling, the interventions, stages, silence and restarts exactly; a real
RobotServer (sim/so101 at 30 Hz) with the logger as its own process checks the whole path, SIGTERM, SIGKILL and a
stopped server; every dataset is read back with lerobot's own LeRobotDataset.
"""

from __future__ import annotations

import json
import math
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from rcs.deploy import run_log
from rcs.deploy.run_log import STAGES, RunLogger
from rcs.remote.client import RobotClient
from rcs.remote.config import server_config
from rcs.remote.server import RobotServer
from rcs.remote.wire import TOPIC_STATE, TOPIC_STATUS, RobotHeader, RobotMessage, RobotMsg
from tests.remote.helpers import free_endpoints

pytest.importorskip("lerobot")

RATE = 30.0  # server state rate (Hz): low, so a loaded machine keeps up
FPS = 10


def load(root: Path):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    return LeRobotDataset(f"local/{root.name}", root=root)


def columns(ds, *keys: str) -> dict[str, np.ndarray]:
    table = ds.hf_dataset.with_format("numpy")
    return {k: np.stack(list(table[k])) for k in keys}


def segments_info(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / "meta" / "rcs_episodes.jsonl").read_text().splitlines()]


def saved_count(root: Path) -> int:
    try:
        return int(json.loads((root / "meta" / "info.json").read_text())["total_episodes"])
    except (OSError, ValueError, KeyError):
        return 0


# ---------------------------------------------------------------------------------------------------------
# A scripted stream: exact expectations
# ---------------------------------------------------------------------------------------------------------

T0 = 1000.0


class ScriptedClient:
    """Hands out a list of (topic, message) and ("sleep", s) items; sets ``stop`` when the script ends."""

    def __init__(self, items: list, stop: threading.Event) -> None:
        self.items, self.stop = list(items), stop

    def receive(self, timeout_s: float = 1.0):
        if not self.items:
            self.stop.set()
            return None
        item = self.items.pop(0)
        if item[0] == "sleep":
            time.sleep(item[1])
            return None
        return item


def state(j: int, tick: int, t0: float, stage: str = "running", command: bool = True):
    """State ``j`` of a 30 Hz stream starting at ``t0``: joint a = j/100, its command j/100 + 0.5. States after the
    first are 5 ms past the 30 Hz grid, so no capture time sits on a 10 fps slot boundary."""
    t = t0 + (0.005 + j / RATE if j else 0.0)
    tensors = {
        "joint_positions": np.array([j / 100, -1.0]),
        "joint_velocities": np.zeros(2),
        "joint_efforts": np.zeros(2),
        "gripper": np.array([0.25]),
        "tcp_position": np.zeros(3),
        "tcp_quaternion": np.array([1.0, 0, 0, 0]),
    }
    meta = {"stage": stage}
    if command:
        tensors["command"] = np.array([j / 100 + 0.5, -1.0, 0.75])
        meta["command_mode"] = "joint_positions"
    return TOPIC_STATE, RobotMessage(RobotHeader(RobotMsg.STATE, tick, tick, t), meta, tensors)


def status(tick: int, counts: dict, p50: float, p99: float):
    meta = {
        "tick": tick,
        "stage": "running",
        "safety_interventions": counts,
        "loop": {"lateness_us": {"p50": p50, "p99": p99}},
    }
    return TOPIC_STATUS, RobotMessage(RobotHeader(RobotMsg.STATUS, tick, tick, 0.0), meta, {})


def test_scripted_stream_slots_interventions_stages_silence_and_restart(tmp_path):
    t1 = T0 + 10.0  # the restarted server's stream (same host clock)
    items = [
        state(-1, 0, T0, command=False),  # before the first STATUS: no frame
        status(1, {"velocity": 3}, 10.0, 20.0),  # the baseline: these 3 happened before the log
        *(state(j, 10 + j, T0) for j in range(0, 15)),  # slots 0..4: segment 0
        *(state(j, 10 + j, T0) for j in range(15, 18)),  # slot 5: segment 1 starts
        *(state(j, 10 + j, T0) for j in range(21, 24)),  # slot 6 lost, slot 7
        status(50, {"velocity": 5, "workspace": 1}, 10.0, 20.0),  # +2 velocity, +1 workspace
        *(state(j, 10 + j, T0, stage="hold") for j in range(24, 27)),  # slot 8 carries the 3 interventions
        ("sleep", 0.5),  # silence: segment 1 saved
        status(2, {"velocity": 2}, 30.0, 40.0),  # a restarted server (tick went back): its 2 are new
        *(state(j, j, t1, stage="estop") for j in range(0, 6)),  # slots 0, 1 of the new stream
    ]
    stop = threading.Event()
    started = []
    logger = RunLogger(
        ScriptedClient(items, stop),
        {"kind": "arm", "name": "fake", "joint_names": ["a", "b"], "command_names": ["a", "b", "gripper"]},
        tmp_path / "log",
        fps=FPS,
        segment_s=0.5,
        silence_s=0.3,
        on_start=started.append,
    )
    report = logger.run(stop)
    assert report.segments_saved == 3 and report.frames == 10 and report.segments_lost == []
    assert report.interventions_by_reason == {"velocity": 4, "workspace": 1}
    assert report.missed_slots == 1 and report.silences == 1
    assert report.last_status["tick"] == 2
    assert started == [
        {
            "root": str(tmp_path / "log"),
            "fps": FPS,
            "segment_s": 0.5,
            "cameras": [],
            "start_capture_time": T0,
            "segments_in_dataset": 0,
        }
    ]

    ds = load(tmp_path / "log")
    assert ds.num_episodes == 3 and ds.num_frames == 10 and ds.fps == FPS
    assert ds.features["observation.state"]["names"] == ["a", "b", "gripper"]
    col = columns(
        ds,
        "observation.state",
        "action",
        "safety.interventions",
        "loop.lateness_us",
        "stage",
        "capture_time",
        "episode_index",
    )
    js = [0, 3, 6, 9, 12, 15, 21, 24, 0, 3]  # the first state of each slot
    np.testing.assert_allclose(col["observation.state"], [[j / 100, -1.0, 0.25] for j in js], atol=1e-6)
    np.testing.assert_allclose(col["action"], [[j / 100 + 0.5, -1.0, 0.75] for j in js], atol=1e-6)
    assert col["safety.interventions"].reshape(-1).tolist() == [0, 0, 0, 0, 0, 0, 0, 3, 2, 0]
    assert col["loop.lateness_us"].tolist() == [[10.0, 20.0]] * 8 + [[30.0, 40.0]] * 2
    stage = [STAGES.index(s) for s in ["running"] * 7 + ["hold"] + ["estop"] * 2]
    assert col["stage"].reshape(-1).tolist() == stage and STAGES[1] == "running"
    assert col["episode_index"].reshape(-1).tolist() == [0] * 5 + [1] * 3 + [2] * 2
    # capture times relative to each segment's first state
    starts = [0, 0, 0, 0, 0, 15, 15, 15, 0, 0]
    rel = [(0.005 + j / RATE if j else 0.0) - (0.005 + s / RATE if s else 0.0) for j, s in zip(js, starts, strict=True)]
    np.testing.assert_allclose(col["capture_time"].reshape(-1), rel, atol=1e-5)

    info = segments_info(tmp_path / "log")
    assert [s["end"] for s in info] == ["segment_s", "silence", "stop"]
    assert [s["frames"] for s in info] == [5, 3, 2] and [s["missed_slots"] for s in info] == [0, 1, 0]
    assert [s["interventions"] for s in info] == [{}, {"velocity": 2, "workspace": 1}, {"velocity": 2}]
    assert [s["stages"] for s in info] == [["running"], ["running", "hold"], ["estop"]]
    assert info[0]["segment_start"] == T0 and info[0]["segment_end"] == pytest.approx(T0 + 0.005 + 12 / RATE)
    assert info[2]["segment_start"] == t1 and (info[1]["first_tick"], info[1]["last_tick"]) == (25, 34)


def test_bad_arguments_of_the_logger_class(tmp_path):
    desc = {"kind": "arm", "joint_names": ["a"], "command_names": ["a", "gripper"]}
    with pytest.raises(run_log.ConfigError, match=r"fps=0: must be a positive integer"):
        RunLogger(None, desc, tmp_path / "x", fps=0)
    with pytest.raises(run_log.ConfigError, match=r"segment_s=0.05: must be at least one frame"):
        RunLogger(None, desc, tmp_path / "x", fps=10, segment_s=0.05)
    with pytest.raises(run_log.ConfigError, match=r"kind='quadrotor'"):
        RunLogger(None, {"kind": "quadrotor"}, tmp_path / "x", fps=10)
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------------------------------------------------
# A real server, the logger as its own process
# ---------------------------------------------------------------------------------------------------------


def serve(cameras: list | None = None) -> tuple[RobotServer, RobotClient, str, str]:
    state_ep, command_ep = free_endpoints()
    config = {"robot": "sim/so101", "rate_hz": RATE, "realtime": False, "cameras": cameras or []}
    server = RobotServer(server_config({**config, "state_endpoint": state_ep, "command_endpoint": command_ep}))
    server.start()
    client = RobotClient(command_ep, state_ep, topics=(TOPIC_STATE,), timeout_s=5.0)
    return server, client, state_ep, command_ep


class Logger:
    """``python -m rcs.deploy.run_log`` as a process; its stdout lines arrive on a queue."""

    def __init__(self, state_ep: str, command_ep: str, out: Path, *extra: str) -> None:
        cmd = [sys.executable, "-m", "rcs.deploy.run_log", "--state-endpoint", state_ep, "--command-endpoint"]
        cmd += [command_ep, "--out", str(out), "--fps", str(FPS), "--vcodec", "h264", *extra]
        self.spawned = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)

    def line(self, timeout: float = 60.0) -> dict:
        try:
            return json.loads(self.lines.get(timeout=timeout))
        except queue.Empty:
            self.proc.kill()
            raise AssertionError(f"no line from the logger in {timeout} s: {self.proc.stderr.read()[-2000:]}") from None

    def finish(self, sig: int, timeout: float = 60.0) -> tuple[int, str]:
        self.proc.send_signal(sig)
        rc = self.proc.wait(timeout)
        return rc, self.proc.stderr.read()


def last_capture(client: RobotClient) -> float:
    """The newest state capture time the client has received from a stopped server (drains its queue)."""
    newest = -math.inf
    while (got := client.receive(0.2)) is not None:
        newest = max(newest, got[1].header.capture_time)
    return newest


def test_logs_a_commanded_run_in_segments_and_saves_the_open_one_when_the_server_stops(tmp_path, capsys):
    camera = {"name": "front", "width": 64, "height": 48, "fps": 10}
    server, client, state_ep, command_ep = serve([camera])
    out = tmp_path / "run"
    try:
        logger = Logger(state_ep, command_ep, out, "--segment-s", "1", "--silence-s", "0.5")
        ready = logger.line()
        assert ready["ready"] is True and ready["cameras"] == ["front"] and ready["segments_in_dataset"] == 0
        t0 = ready["start_capture_time"]
        assert logger.spawned < t0 < time.monotonic()
        names = client.describe()["command_names"]
        q0 = np.array(client.wait_for(TOPIC_STATE).tensors["command"])
        goal = q0.copy()
        goal[1] += 0.3  # shoulder lift, within its limits
        times = np.linspace(0.1, 1.5, 15)
        path = q0 + np.outer(times / times[-1], goal - q0)
        assert client.trajectory(names, path, times).ok
        time.sleep(3.0)
        server.stop(0.0)
        t_last = last_capture(client)
        deadline = time.monotonic() + 30.0
        while not any(s["end"] == "silence" for s in (segments_info(out) if saved_count(out) else [])):
            assert time.monotonic() < deadline, "the open segment was not saved after the server stopped"
            time.sleep(0.2)
        rc, err = logger.finish(signal.SIGTERM)
        assert rc == 0, err[-2000:]
        done = logger.line()
    finally:
        client.close()
        server.stop(0.0)

    info = segments_info(out)
    assert done["done"] is True and done["segments_saved"] == len(info) >= 4 and done["silences"] == 1
    assert [s["end"] for s in info] == ["segment_s"] * (len(info) - 1) + ["silence"]
    ds = load(out)
    assert ds.num_episodes == len(info) and ds.num_frames == done["frames"] == sum(s["frames"] for s in info)
    # every slot from the first state to the last one published, less those no state fell into; the last
    # slot may be missing (the server closes its socket without lingering, the last state can miss the logger)
    slots = math.floor((t_last - t0) * FPS) + 1
    assert slots - 1 <= done["frames"] + done["missed_slots"] <= slots, (done, slots)
    assert done["missed_slots"] == sum(s["missed_slots"] for s in info)
    with capsys.disabled():
        sys.stderr.write(
            f"\nrun: {t_last - t0:.2f} s robot time, {slots} slots, {done['frames']} frames, {done['missed_slots']} "
            f"missed, {len(info)} segments, commit backlog max {done['commit_backlog_max']}\n"
        )
    for s in info[:-1]:  # full segments: 1 s = 10 slots each
        assert s["frames"] + s["missed_slots"] == FPS, s
    # each frame's state lies in a slot of its own, in order; the slots span the frames and the missed ones
    col = columns(ds, "capture_time", "episode_index")
    origin = np.array([info[e]["capture_time_origin"] for e in col["episode_index"].reshape(-1)])
    # lerobot reads float64 columns back as float32 (~1e-7 s here): 1e-5 s of slack at slot boundaries
    slot = np.floor((origin + col["capture_time"][:, 0].astype(np.float64) - t0) * FPS + 1e-4).astype(int)
    assert slot[0] == 0 and np.all(np.diff(slot) >= 1) and slot[-1] + 1 == done["frames"] + done["missed_slots"]
    for a, b in zip(info, info[1:], strict=False):
        assert a["segment_end"] < b["segment_start"]

    col = columns(ds, "observation.state", "action", "stage", "capture_time", "safety.interventions")
    action, measured = col["action"][:, 1], col["observation.state"][:, 1]
    assert ds.features["action"]["names"] == names == ds.features["observation.state"]["names"]
    assert abs(action[0] - q0[1]) < 1e-5 and abs(action[-1] - goal[1]) < 1e-4  # commanded: the planned move
    assert np.all(np.diff(action) >= -1e-6)  # a monotonic ramp, as commanded
    assert abs(measured[-1] - goal[1]) < 0.02  # the arm got there
    moving = np.flatnonzero(np.abs(np.diff(action)) > 1e-4) + 1
    assert len(moving) >= 8  # 1.5 s of motion at 10 fps
    lead = action[moving] - measured[moving]
    assert np.all(lead > -1e-3) and lead.max() > 0.005  # the command leads the measured joint upwards
    np.testing.assert_allclose(
        col["action"][:, [0, 2, 3, 4, 5]], np.tile(q0[[0, 2, 3, 4, 5]], (len(action), 1)), atol=1e-5
    )
    assert set(col["stage"][moving].reshape(-1).tolist()) == {STAGES.index("running")}
    assert any("running" in s["stages"] for s in info)
    assert col["capture_time"].shape == (ds.num_frames, 2) and ds[0]["observation.images.front"].shape == (3, 48, 64)
    assert col["safety.interventions"].sum() == sum(sum(s["interventions"].values()) for s in info)


def test_sigkill_keeps_the_saved_segments_and_a_bad_restart_changes_nothing(tmp_path, capsys):
    server, client, state_ep, command_ep = serve()
    out = tmp_path / "run"
    try:
        logger = Logger(state_ep, command_ep, out, "--segment-s", "1")
        logger.line()
        deadline = time.monotonic() + 30.0
        while saved_count(out) < 2:
            assert time.monotonic() < deadline, "two segments were not saved in time"
            time.sleep(0.05)
        before = saved_count(out)
        t_kill = time.monotonic()  # the clock of the capture times
        logger.proc.kill()
        logger.proc.wait(10)

        ds = load(out)
        info = segments_info(out)
        assert ds.num_episodes == len(info) >= before >= 2
        assert all(s["frames"] + s["missed_slots"] == FPS and s["end"] == "segment_s" for s in info)
        lost = math.floor((t_kill - info[-1]["segment_end"]) * FPS)  # the open segment (and any commit under way)
        with capsys.disabled():
            sys.stderr.write(f"\nSIGKILL: {len(info)} segments kept, {lost} frames after them lost\n")
        # at most the open segment and one whose commit was under way (a commit takes a fraction of a segment)
        assert 0 <= lost < 2 * FPS, lost

        # restarting on that folder with another frame rate: one line, exit 2, the dataset as it was
        argv = ["--state-endpoint", state_ep, "--command-endpoint", command_ep, "--out", str(out), "--fps", "20"]
        capsys.readouterr()
        with pytest.raises(SystemExit) as exc:
            run_log.main(argv)
        err = capsys.readouterr().err
        assert exc.value.code == 2 and err.count("\n") == 1 and f"--out={out}" in err and "fps=10" in err, err
        assert load(out).num_episodes >= len(info) and segments_info(out)[: len(info)] == info
    finally:
        client.close()
        server.stop(0.0)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--fps", "0"], "--fps=0: must be a positive integer"),
        (["--fps", "2.5"], "--fps=2.5: must be a positive integer"),
        (["--fps", "10", "--segment-s", "-1"], "--segment-s=-1: must be a positive number"),
        (["--fps", "10", "--timeout-s", "0.3"], "--command-endpoint=tcp://127.0.0.1:"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, extra, message):
    state_ep, command_ep = free_endpoints()  # nothing listens there
    cmd = [sys.executable, "-m", "rcs.deploy.run_log", "--state-endpoint", state_ep, "--command-endpoint"]
    proc = subprocess.run(
        [*cmd, command_ep, "--out", str(tmp_path / "d"), *extra], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr
    assert proc.stdout == "" and not (tmp_path / "d").exists()


def test_the_report_to_a_parent_that_is_gone_is_dropped_without_a_traceback():
    """After its parent was killed the log is stopped by the kernel's SIGTERM, saves, and writes its report to a
    pipe nobody reads: the write and the interpreter's last flush must not fail."""
    import os

    from rcs.child_process import report_to_parent

    read_end, write_end = os.pipe()
    os.close(read_end)
    with open(write_end, "w") as stream:
        report_to_parent('{"done": true}\n', stream)  # EPIPE: dropped
        report_to_parent("again\n", stream)  # the stream now writes to /dev/null
        stream.flush()
