"""Physical camera drivers against real sources: the MJPEG camera emulator (its own process, real HTTP) and video
files written with cv2.VideoWriter. RealSense tests need pyrealsense2 and a connected device, else they skip."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from hardware.cameras.opencv import OpenCVCamera, make_opencv_camera
from hardware.cameras.realsense import make_realsense_camera
from hardware.emulators.mjpeg_camera import PATCH, MjpegCameraEmulator, read_stamp
from rcs.errors import ConfigError, LinkLostError
from rcs.loopback import free_port

W, H = 320, 240


@pytest.fixture(scope="module")
def stream():
    with MjpegCameraEmulator(W, H, fps=30, frames=8) as emu:
        yield emu


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and "Traceback" not in text, text
    return text


def assert_rgb_patches(image: np.ndarray) -> None:
    """The emulator's top-left patch is pure red and top-right pure blue in RGB order."""
    red = image[4 : PATCH - 4, 4 : PATCH - 4].reshape(-1, 3).mean(axis=0)
    blue = image[4 : PATCH - 4, -PATCH + 4 : -4].reshape(-1, 3).mean(axis=0)
    assert red[0] > 200 and red[1] < 60 and red[2] < 60, red
    assert blue[2] > 200 and blue[0] < 60 and blue[1] < 60, blue


def test_emulator_parts_carry_send_time_and_sequence_headers(stream):
    port = stream.port
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /stream.mjpg HTTP/1.0\r\n\r\n")
        buf = b""
        while buf.count(b"X-Timestamp") < 4:
            buf += sock.recv(65536)
        received = time.monotonic()
    head = buf.split(b"\r\n\r\n", 1)[0].decode()
    assert "200" in head.splitlines()[0] and "multipart/x-mixed-replace; boundary=" in head
    sent = [float(x.split(b"\r\n", 1)[0]) for x in buf.split(b"X-Timestamp: ")[1:4]]
    seqs = [int(x.split(b"\r\n", 1)[0]) for x in buf.split(b"X-Frame: ")[1:4]]
    assert sent == sorted(sent) and 0 <= received - sent[-1] < 0.2
    assert seqs[1] > seqs[0] and seqs[2] > seqs[1]


def test_stream_frames_are_rgb_fresh_and_monotonic(stream):
    cam = make_opencv_camera(name="front", width=W, height=H, source=stream.url)
    with cam:
        frames = []
        for _ in range(20):
            f = cam.read()
            observed = time.monotonic()
            frames.append(f)
            assert f.image.shape == (H, W, 3) and f.image.dtype == np.uint8
            assert_rgb_patches(f.image)
            _, sent = read_stamp(f.image)
            # capture stamp is taken when the frame arrives: after the server encoded it, and soon after
            assert 0.0 <= f.timestamp - sent < 0.2, f.timestamp - sent
            assert observed - f.timestamp < 0.2
            time.sleep(0.05)
    ts = [f.timestamp for f in frames]
    idx = [f.frame_index for f in frames]
    assert all(b >= a for a, b in zip(ts, ts[1:], strict=False))
    # a new index has a later capture time, the same index the same time
    for k in range(1, len(frames)):
        assert (idx[k] > idx[k - 1]) == (ts[k] > ts[k - 1]), (idx[k - 1 : k + 1], ts[k - 1 : k + 1])
    assert idx[-1] > idx[0] + 10  # frames kept coming
    seqs = [read_stamp(f.image)[0] for f in frames]
    assert all(b >= a for a, b in zip(seqs, seqs[1:], strict=False))
    assert not cam.is_connected


def test_slow_reader_gets_the_newest_frame_not_a_queue(stream):
    with make_opencv_camera(name="front", width=W, height=H, source=stream.url) as cam:
        first = cam.read()
        time.sleep(1.0)  # 30 frames arrive meanwhile; a queue would hand out the one after `first`
        f = cam.read()
        seq0, _ = read_stamp(first.image)
        seq, sent = read_stamp(f.image)
        assert seq - seq0 >= 2, (seq0, seq)  # a queue would hand out seq0 + 1
        # the thread kept capturing meanwhile (the server may skip a frame for a client when it is itself late)
        assert 2 <= f.frame_index - first.frame_index <= seq - seq0
        assert time.monotonic() - sent < 0.2  # end-to-end age of what the slow reader sees


def test_stream_size_mismatch_is_one_line_config_error(stream):
    cam = make_opencv_camera(name="front", width=640, height=480, source=stream.url)
    with pytest.raises(ConfigError) as exc:
        cam.connect()
    text = one_line(exc)
    assert "'front'" in text and stream.url in text and "640x480" in text and f"{W}x{H}" in text
    assert not cam.is_connected


def test_missing_file_and_refused_url_are_one_line_config_errors(tmp_path):
    missing = str(tmp_path / "nope.mp4")
    with pytest.raises(ConfigError) as exc:
        make_opencv_camera(name="c", source=missing)
    assert missing in one_line(exc)
    url = f"http://127.0.0.1:{free_port()}/stream.mjpg"
    cam = make_opencv_camera(name="c", source=url, open_timeout_s=3.0)
    with pytest.raises(ConfigError) as exc:
        cam.connect()
    assert url in one_line(exc)
    with pytest.raises(ConfigError) as exc:
        make_opencv_camera(name="c", source="/dev/video-rcs-absent")
    assert "/dev/video-rcs-absent" in one_line(exc)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"width": 0}, "width"),
        ({"height": 2.5}, "height"),
        ({"fps": -30}, "fps"),
        ({"fps": float("nan")}, "fps"),
        ({"width": True}, "width"),
        ({"exposure": 3}, "exposure"),
        ({"fx": 500.0}, "fy"),
        ({"fovy": 4.0}, "fovy"),
        ({"max_age_s": 0}, "max_age_s"),
        ({"extrinsics": [[1, 0], [0, 1]]}, "extrinsics"),
        ({"loop": "yes"}, "loop"),
    ],
)
def test_bad_options_are_one_line_config_errors(kwargs, field):
    with pytest.raises(ConfigError) as exc:
        make_opencv_camera(name="c", source="http://127.0.0.1:9/x.mjpg", **kwargs)
    assert field in one_line(exc)


def test_stream_killed_is_link_lost_after_max_age():
    max_age = 0.3
    with MjpegCameraEmulator(W, H, fps=30, frames=4) as emu:
        with make_opencv_camera(name="front", width=W, height=H, source=emu.url, max_age_s=max_age) as cam:
            f = cam.read()  # a loaded host may deliver no newer frame before the kill
            emu.kill()
            killed = time.monotonic()
            deadline = killed + 10.0
            while True:
                try:
                    f = cam.read()
                except LinkLostError as exc:
                    text = str(exc)
                    break
                assert time.monotonic() < deadline, "no LinkLostError 10 s after the stream died"
                time.sleep(0.01)
            raised = time.monotonic()
    assert "\n" not in text and "'front'" in text and emu.url in text and "max_age_s 0.3" in text
    assert raised - f.timestamp >= max_age  # not before the newest frame was max_age old
    assert raised - killed < max_age + 0.5


def test_server_restarted_on_the_same_port_frames_resume():
    port = free_port()
    with MjpegCameraEmulator(W, H, fps=30, port=port, frames=4) as emu:
        cam = make_opencv_camera(name="front", width=W, height=H, source=emu.url, max_age_s=0.3)
        cam.connect()
        before = cam.read()
        emu.kill()
    try:
        with pytest.raises(LinkLostError):
            time.sleep(0.5)
            cam.read()
        with MjpegCameraEmulator(W, H, fps=30, port=port, frames=4) as emu2:
            deadline = time.monotonic() + 30.0
            while True:
                try:
                    f = cam.read()
                    break
                except LinkLostError:
                    assert time.monotonic() < deadline, "frames did not resume within 30 s of the restart"
                    time.sleep(0.05)
            assert cam.reconnects >= 1
            assert f.frame_index > before.frame_index and f.timestamp > before.timestamp
            assert time.monotonic() - read_stamp(f.image)[1] < 0.2  # a frame of the new server, fresh
            assert emu2.url == emu.url
    finally:
        cam.close()


def write_video(path: Path, n: int, fps: float, size: tuple[int, int] = (W, H)) -> None:
    """``n`` frames; frame k: red patch top-left (RGB), a grey block of level 20 * k + 30 in the middle."""
    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened()
    for k in range(n):
        rgb = np.zeros((h, w, 3), np.uint8)
        rgb[:PATCH, :PATCH] = (255, 0, 0)
        rgb[h // 2 - 16 : h // 2 + 16, w // 2 - 16 : w // 2 + 16] = 20 * k + 30
        writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    writer.release()


def level(image: np.ndarray) -> int:
    h, w = image.shape[:2]
    return int(round((image[h // 2 - 8 : h // 2 + 8, w // 2 - 8 : w // 2 + 8].mean() - 30) / 20))


def test_file_plays_at_its_rate_in_rgb_and_loops(tmp_path):
    path = tmp_path / "clip.avi"
    write_video(path, n=10, fps=20.0)
    cam = make_opencv_camera(name="file", width=W, height=H, source=str(path))  # factory default fps 30
    with cam:
        assert cam.spec.fps == pytest.approx(20.0)
        seen = []
        deadline = time.monotonic() + 20.0
        while not seen or seen[-1][0] < 30:  # three passes over the 10 frames
            assert time.monotonic() < deadline, "the file did not deliver 30 frames within 20 s"
            f = cam.read()
            red = f.image[4 : PATCH - 4, 4 : PATCH - 4].reshape(-1, 3).mean(axis=0)
            assert red[0] > 200 and red[2] < 60, red
            seen.append((f.frame_index, level(f.image), f.timestamp))
            time.sleep(0.01)
        assert 0 < cam.measured_fps <= 21.0  # paced at the file's 20 fps, never faster
    # consecutive frames are one file period apart (the median is immune to a stall of the loaded machine)
    stamps = dict((i, t) for i, _, t in seen)
    gaps = [stamps[i + 1] - stamps[i] for i in stamps if i + 1 in stamps]
    assert len(gaps) >= 10 and float(np.median(gaps)) == pytest.approx(0.05, rel=0.1)
    levels = [lv for _, lv, _ in seen]
    assert set(levels) <= set(range(10))
    wraps = sum(1 for a, b in zip(levels, levels[1:], strict=False) if b < a)
    assert wraps >= 2


def test_file_end_without_loop_is_link_lost(tmp_path):
    path = tmp_path / "clip.avi"
    write_video(path, n=6, fps=30.0)
    with make_opencv_camera(name="file", width=W, height=H, source=str(path), loop=False) as cam:
        cam.read()
        time.sleep(1.0)
        with pytest.raises(LinkLostError) as exc:
            cam.read()
    text = one_line(exc)
    assert "end of the file" in text and str(path) in text


def test_file_size_mismatch_and_explicit_calibration(tmp_path):
    path = tmp_path / "clip.avi"
    write_video(path, n=4, fps=30.0)
    cam = make_opencv_camera(name="file", width=640, height=480, source=str(path))
    with pytest.raises(ConfigError) as exc:
        cam.connect()
    assert "640x480" in one_line(exc) and f"{W}x{H}" in str(exc.value)
    pose = [[1, 0, 0, 0.5], [0, -1, 0, 0], [0, 0, -1, 1.0], [0, 0, 0, 1]]
    cam = make_opencv_camera(
        name="file", width=W, height=H, source=str(path), fx=300.0, fy=301.0, cx=160.0, cy=120.0, extrinsics=pose
    )
    assert isinstance(cam, OpenCVCamera)
    with cam:
        f = cam.read()
    assert (f.intrinsics.fx, f.intrinsics.fy, f.intrinsics.cx, f.intrinsics.cy) == (300.0, 301.0, 160.0, 120.0)
    np.testing.assert_array_equal(f.extrinsics, np.asarray(pose, dtype=float))
    default = make_opencv_camera(name="file", width=W, height=H, source=str(path), fovy=np.deg2rad(60))
    assert default.intrinsics.fy == pytest.approx(0.5 * H / np.tan(np.deg2rad(30)))
    np.testing.assert_array_equal(default.extrinsics, np.eye(4))


def test_realsense_factory_rejects_bad_options_without_the_sdk():
    with pytest.raises(ConfigError) as exc:
        make_realsense_camera(name="rs", exposure=3)
    assert "exposure" in one_line(exc)
    with pytest.raises(ConfigError) as exc:
        make_realsense_camera(name="rs", depth_width=0)
    assert "depth_width" in one_line(exc)


def test_realsense_reads_rgb_and_aligned_depth():
    rs = pytest.importorskip("pyrealsense2", reason="pyrealsense2 is not installed")
    if len(rs.context().query_devices()) == 0:
        pytest.skip("no RealSense device connected")
    with make_realsense_camera(name="rs", width=640, height=480, fps=30) as cam:
        f = cam.read()
        time.sleep(0.2)
        g = cam.read()
    assert f.image.shape == (480, 640, 3) and f.image.dtype == np.uint8
    assert f.depth.shape == (480, 640) and f.depth.dtype == np.float32
    assert g.frame_index > f.frame_index and g.timestamp > f.timestamp
    assert f.intrinsics.width == 640 and f.intrinsics.fx > 0


def test_realsense_connect_without_sdk_or_device_is_one_line_config_error():
    try:
        import pyrealsense2 as rs
    except ImportError:
        rs = None
    if rs is not None and len(rs.context().query_devices()) > 0:
        pytest.skip("a RealSense device is connected: covered by test_realsense_reads_rgb_and_aligned_depth")
    cam = make_realsense_camera(name="rs")
    with pytest.raises(ConfigError) as exc:
        cam.connect()
    text = one_line(exc)
    assert "'rs'" in text and ("pyrealsense2" in text if rs is None else "no RealSense device" in text)
    assert not cam.is_connected


def test_registry_names_the_physical_cameras(tmp_path):
    """``make_camera("opencv", ...)`` (what a robot config's camera entry names) reaches the driver."""
    from rcs.registry import cameras, make_camera

    assert {"opencv", "realsense"} <= set(cameras.names())
    path = tmp_path / "clip.avi"
    write_video(path, n=6, fps=30.0)
    cam = make_camera("opencv", name="file", width=W, height=H, source=str(path))
    with cam:
        frame = cam.read()
    assert frame.image.shape == (H, W, 3) and frame.image.dtype == np.uint8


def test_robot_server_publishes_a_physical_camera_from_its_config(stream):
    """A robot config's camera entry with ``backend: opencv`` and its ``options`` (the stream's URL): the server
    publishes the real stream's frames, as it does a rendered camera's."""
    from rcs.remote.client import RobotClient
    from rcs.remote.config import server_config
    from rcs.remote.server import RobotServer
    from rcs.remote.wire import TOPIC_CAMERA
    from tests.remote.helpers import free_endpoints

    state, command = free_endpoints()
    camera = {
        "name": "wrist",
        "width": W,
        "height": H,
        "fps": 10,
        "backend": "opencv",
        "options": {"source": stream.url},
    }
    config = {"robot": "sim/so101", "rate_hz": 30, "state_endpoint": state, "command_endpoint": command}
    server = RobotServer(server_config({**config, "cameras": [camera]}))
    server.start()
    client = RobotClient(command, state, topics=(TOPIC_CAMERA,), timeout_s=5.0)
    try:
        assert client.describe()["cameras"][0]["name"] == "wrist"
        frame = client.wait_for(TOPIC_CAMERA + b"wrist", timeout_s=20.0)
        assert frame.tensors["image"].shape == (H, W, 3)
        assert_rgb_patches(frame.tensors["image"])
        assert time.monotonic() - frame.header.capture_time < 1.0
    finally:
        client.close()
        server.stop(0.0)
    with pytest.raises(ConfigError, match=r"camera 'wrist': options=3 must be a mapping"):
        server_config({**config, "cameras": [{**camera, "options": 3}]})
