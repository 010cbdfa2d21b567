"""``rcs view`` / ``rcs robot --view``: a robot server's stream saved headless to a rerun .rrd file, reloaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rcs.loopback import free_endpoint

pytest.importorskip("rerun")

RCS = str(Path(sys.executable).with_name("rcs"))


def _entities(path: Path) -> dict[str, int]:
    from rerun.chunk import RrdReader

    rows: dict[str, int] = {}
    for chunk in RrdReader(path).stream():
        rows[chunk.entity_path] = rows.get(chunk.entity_path, 0) + chunk.num_rows
    return rows


def test_robot_view_saves_measured_and_commanded_joints_stage_and_loop_timing(tmp_path):
    rrd = tmp_path / "run.rrd"
    state, command = free_endpoint(), free_endpoint()
    args = [RCS, "robot", "--robot", "sim/panda", "--state-endpoint", state, "--command-endpoint", command]
    proc = subprocess.run([*args, "--duration", "12", "--view", str(rrd)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = _entities(rrd)
    for j in range(1, 8):  # the Panda's joints, named by the server's description
        assert rows.get(f"/robot/joints/joint{j}/measured", 0) >= 50, rows
        assert rows.get(f"/robot/joints/joint{j}/commanded", 0) >= 50, rows
    for path in ("/robot/gripper/measured", "/robot/gripper/commanded", "/robot/tcp"):
        assert rows.get(path, 0) >= 50, rows
    assert rows.get("/robot/stage", 0) >= 1 and rows.get("/loop/lateness_us/p99", 0) >= 1, rows


def test_a_killed_robot_server_ends_its_view_and_the_views_file_is_saved(tmp_path):
    """SIGKILL cannot be handled: the kernel's SIGTERM (``rcs.child_process``) stops the view, which closes its file
    and drops its report to the dead parent's pipe without a traceback."""
    import time

    from tests.processes import child_pids, command_line, ended, signal_state

    rrd = tmp_path / "run.rrd"
    state, command = free_endpoint(), free_endpoint()
    args = [RCS, "robot", "--robot", "sim/panda", "--state-endpoint", state, "--command-endpoint", command]
    proc = subprocess.Popen([*args, "--view", str(rrd)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    view = None
    try:
        assert proc.stdout is not None
        assert '"ready": true' in proc.stdout.readline()  # after the view is up
        (view,) = [p for p in child_pids(proc.pid) if "view" in command_line(p)]
        time.sleep(2.0)  # the view logs about 2 s of states
        proc.kill()
        proc.communicate(timeout=30)
        assert ended(view, timeout_s=30.0), f"the view outlived the killed robot server: {signal_state(view)}"
    finally:
        if proc.poll() is None:
            proc.kill()
        if view is not None and not ended(view, timeout_s=0.0):
            os.kill(view, 9)
    assert _entities(rrd).get("/robot/joints/joint1/measured", 0) >= 20


def test_a_view_sees_a_stream_from_the_moment_it_is_started(tmp_path):
    """``ViewProcess`` returns once the view is subscribed, and a stopped view logs what had already arrived: a
    short run published right after it is recorded to its end. (A view used to be started without waiting and to
    drop its queue when stopped; on a busy machine it then recorded one state of a short deploy run, or none.)"""
    import time

    import rcs
    from rcs.remote.description import describe
    from rcs.remote.observation import arm_command_names
    from rcs.remote.publisher import StreamPublisher
    from rcs.viewer.process import ViewProcess

    robot = rcs.make_robot("sim/so101")
    robot.connect()
    endpoints = [free_endpoint() for _ in range(2)]
    stream = StreamPublisher(
        describe(robot, "sim/so101", 20.0, arm_command_names(robot), "joint_positions"), *endpoints
    )
    rrd = tmp_path / "short.rrd"
    try:
        view = ViewProcess(str(rrd), stream.state_endpoint, stream.command_endpoint)
        assert view.ready.is_set() and view.proc.poll() is None
        for tick in range(20):  # one second at 20 Hz, right away
            stream.publish(tick, robot.read(), dt=0.05)
            time.sleep(0.05)
        view.stop()
    finally:
        stream.close()
        robot.close()
    assert _entities(rrd).get("/robot/joints/shoulder_pan/measured", 0) >= 15


def test_bad_view_input_is_one_line(tmp_path):
    proc = subprocess.run(
        [RCS, "view", "--save", str(tmp_path / "run.txt"), "--command-endpoint", free_endpoint()],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1 and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "--save=" in proc.stderr and "ends in .rrd" in proc.stderr
    proc = subprocess.run(
        [RCS, "robot", "--robot", "sim/panda", "--view", "--curve-secret", "x.key_secret", "--allow", "keys"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1 and "--view: the viewer has no CurveZMQ keys" in proc.stderr, proc.stderr


def test_record_view_streams_the_recorded_robot_and_its_cameras(tmp_path):
    """``rcs record --view FILE.rrd``: the teleoperated robot and the recorded camera, saved headless, while the
    dataset is written as without a view."""
    rrd = tmp_path / "record.rrd"
    args = [RCS, "record", "--robot", "sim/so101", "--teleop", "expert", "--episodes", "1", "--max-steps", "60"]
    args += ["--root", str(tmp_path / "data"), "--cameras", "front", "--image-size", "48x64", "--keep", "all"]
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    proc = subprocess.run([*args, "--vcodec", "h264", "--view", str(rrd), "--json"], capture_output=True, text=True,
                          timeout=300, env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.splitlines()[-1])["saved_this_session"] == 1
    rows = _entities(rrd)
    for path in ("/robot/joints/shoulder_pan/measured", "/robot/gripper/measured", "/robot/tcp", "/camera/front"):
        assert rows.get(path, 0) > 0, (path, sorted(rows))
