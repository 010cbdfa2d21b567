"""``rcs record``: drive a robot with a teleop device (or the scripted expert) and record a LeRobotDataset.

Example (scripted demonstrations, randomized scenes, two cameras)::

    rcs record --robot sim/panda --teleop expert --episodes 50 --root data/pick_cube

A physical arm records the same way, through the task-less arm env (``rcs/ArmTeleop-v0``: arm state + cameras, no
objects, no success test), e.g. an SO-101 follower driven by its leader arm::

    rcs record --robot hw/so101 --robot-option port=/dev/ttyACM0 --teleop so101-leader \
        --teleop-option port=/dev/ttyACM1 --control-mode joint --cameras none --episodes 10 --root data/so101

Each saved episode is committed atomically (docs/record.md): stop the process at any moment and every episode
saved before loads with ``LeRobotDataset(repo_id, root=...)``. Nothing is uploaded unless ``--push-to-hub``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from rcs.cli.main import add_view_option, at_least, check_arm_env, json_line, key_values, writable_folder
from rcs.envs.registration import ENVS, build_env
from rcs.errors import ConfigError
from rcs.heap import frozen_heap
from rcs.registry import make_camera, teleops
from rcs.teleop.base import EpisodeEvent, PolicyTeleop, Teleop, TeleopCommand

log = logging.getLogger(__name__)

DEFAULT_TASK = "pick the cube and bring it to the target"
DEFAULT_ROBOT = "sim/panda"
#: the task-less arm env: any arm, no objects (rcs.envs.arm_teleop); the env of robots without a pick-cube env.
TELEOP_ENV = "rcs/ArmTeleop-v0"
#: MJCF cameras recorded by default on a simulated robot (a physical one records none unless --cameras names some).
DEFAULT_SIM_CAMERAS = "front,wrist"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--robot",
        default=None,
        help=f"registered robot, simulated or physical (default: the robot of --env, else {DEFAULT_ROBOT})",
    )
    parser.add_argument(
        "--robot-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="robot option (repeatable), e.g. port=/dev/ttyACM0 (the env's robot_config)",
    )
    parser.add_argument(
        "--env",
        default=None,
        help=f"env id (default: the pick-cube env of --robot, else the task-less {TELEOP_ENV})",
    )
    parser.add_argument("--teleop", default="expert", help="registered teleop device (rcs list): expert, keyboard, ...")
    parser.add_argument("--episodes", type=at_least(1), default=10, help="episodes to save (default 10)")
    parser.add_argument("--root", type=writable_folder, required=True, help="dataset folder (created, or appended to)")
    parser.add_argument(
        "--repo-id", default=None, help="lerobot repo id stored in the metadata (default local/<root name>)"
    )
    parser.add_argument("--task", default=DEFAULT_TASK, help="task text of every episode")
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="scene seed of the first scene (then +1 per scene; appending continues after the last saved seed)",
    )
    parser.add_argument(
        "--cameras",
        default=None,
        help=f"comma-separated MJCF camera names of a simulated robot, or 'none' (default: {DEFAULT_SIM_CAMERAS} "
        "on a simulated robot, none on a physical one)",
    )
    parser.add_argument("--image-size", default="240x320", help="camera image HxW (default 240x320)")
    parser.add_argument(
        "--render",
        choices=["fast", "model"],
        default="fast",
        help="simulated cameras: 'fast' turns off shadows and multisampling (about 10x faster on a "
        "CPU renderer); 'model' keeps the MJCF's visual quality",
    )
    parser.add_argument(
        "--fps", type=at_least(1), default=None, help="dataset fps = env control rate (default: the env's)"
    )
    parser.add_argument(
        "--control-mode",
        default="cartesian",
        choices=["cartesian", "joint"],
        help="recorded action: 'cartesian' (TCP position in m + rotation vector in rad, base frame, + "
        "gripper) or 'joint' (joint positions in rad + gripper) (default cartesian)",
    )
    parser.add_argument("--relative", action="store_true", help="relative (delta) actions")
    parser.add_argument("--max-steps", type=at_least(1), default=None, help="episode length limit (env steps)")
    parser.add_argument(
        "--end-after-success",
        type=float,
        default=None,
        metavar="SECONDS",
        help="end an episode once the task has succeeded for this long (env time; default: run to the time limit)",
    )
    parser.add_argument(
        "--keep",
        choices=["all", "success"],
        default=None,
        help="which finished episodes to save (default: success for the expert, all otherwise)",
    )
    parser.add_argument("--vcodec", default=None, help="video codec (default lerobot's, libsvtav1)")
    parser.add_argument(
        "--encoder",
        choices=["thread", "process"],
        default=None,
        help="video encoders on threads (default for simulated experts) or in worker processes "
        "(default for real-time devices: encoding never holds the loop's GIL)",
    )
    parser.add_argument(
        "--teleop-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="device option (repeatable), e.g. device=/dev/hidraw0",
    )
    parser.add_argument(
        "--push-to-hub", action="store_true", help="upload to the Hugging Face hub when done (explicit only)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON summary instead of progress lines")
    add_view_option(parser)


def _env_and_robot(args: argparse.Namespace) -> tuple[str, str]:
    """The env id and robot of a recording: ``--env`` or, by default, the pick-cube env of ``--robot``, else the
    task-less arm env; the robot is ``--robot`` or the env id's own. An env id made for one robot refuses another."""
    from rcs.registry import robots

    if args.env:
        registered = ENVS[args.env][1].get("robot")
        robot = args.robot or registered or DEFAULT_ROBOT
        if registered is not None and robot != registered:
            raise ConfigError(
                f"--robot={robot!r}: --env={args.env!r} is made for robot {registered!r}; "
                f"record another robot with --env {TELEOP_ENV}"
            )
        return args.env, robot
    robot = args.robot or DEFAULT_ROBOT
    for env_id, (entry, kwargs) in ENVS.items():
        if entry.endswith(":PickCubeEnv") and kwargs.get("robot") == robot:
            return env_id, robot
    robots.factory(robot)  # an unknown name: one line listing the registered robots
    return TELEOP_ENV, robot


class BackToBack(Teleop):
    """A device without episode controls (a leader arm, a SpaceMouse) recorded back to back, like the expert:
    START on the first command after each reset, so each episode runs from reset to the env's time limit (or
    termination) and is saved. Without it the session would idle forever waiting for a START the device
    cannot send. Everything else is the wrapped device's."""

    def __init__(self, device: Teleop) -> None:
        self.device = device
        self.name, self.realtime = device.name, device.realtime
        self._started = False

    def connect(self) -> None:
        self.device.connect()

    def close(self) -> None:
        self.device.close()

    def reset(self, obs: dict) -> None:
        self.device.reset(obs)
        self._started = False

    def command(self, obs: dict) -> TeleopCommand:
        cmd = self.device.command(obs)
        if not self._started:
            self._started = True
            cmd.events = (EpisodeEvent.START, *cmd.events)
        return cmd

    def describe(self) -> dict:
        return {**self.device.describe(), "episodes": "back to back (the device has no episode controls)"}


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--image-size={text!r}: expected HxW, e.g. 240x320") from None
    if h <= 0 or w <= 0:
        raise ConfigError(f"--image-size={text!r}: height and width must be > 0")
    return h, w


def _fast_render(robot: object) -> None:
    """Simulated (MuJoCo) robots only: no shadow map, no multisampling for cameras created afterwards.

    With the scenes' 4096-pixel shadow map and 4x multisampling, one 480x640 frame takes about 250 ms on a CPU
    (llvmpipe) renderer; without, about 20 ms. Physical robots are untouched.
    """
    quality = getattr(getattr(getattr(getattr(robot, "simulation", None), "model", None), "vis", None), "quality", None)
    if quality is not None:
        quality.shadowsize = 0
        quality.offsamples = 0


def _first_seed(root: Path, seed: int) -> int:
    """``seed``, or, when appending, the seed after the largest one saved in ``root`` if that is larger (no
    scene is recorded twice by accident)."""
    from rcs.recording.writer import EPISODES_META

    path = root / EPISODES_META
    if not path.exists():
        return seed
    seeds = [json.loads(x).get("seed") for x in path.read_text().splitlines() if x.strip()]
    seeds = [s for s in seeds if isinstance(s, int)]
    return max([seed, *(s + 1 for s in seeds)])


def _line(text: str, end: str = "\n") -> None:
    sys.stdout.write(text + end)
    sys.stdout.flush()


def _quiet_libraries() -> None:
    """lerobot logs codec choices at INFO and ``datasets`` draws progress bars per episode: keep the live line clean."""
    logging.getLogger("lerobot").setLevel(logging.WARNING)
    try:
        import datasets

        datasets.utils.logging.disable_progress_bar()
    except ImportError:
        pass


def run(args: argparse.Namespace) -> int:
    from rcs.errors import RcsError

    try:
        if args.env:  # before the recording modules (lerobot, video encoders) are imported
            check_arm_env("--env", args.env, "rcs record", task_less=True)
        _size(args.image_size)
        return _record(args)
    except RcsError as exc:  # bad names, incompatible dataset, locked folder, device not found: one clear line
        sys.stderr.write(f"rcs record: {exc}\n")
        return 2


def _record(args: argparse.Namespace) -> int:
    import rcs.envs  # noqa: F401  (registers the env ids)
    from rcs.devices import Simulated
    from rcs.envs.arm_teleop import ArmTeleopEnv
    from rcs.envs.pick_cube import PickCubeEnv
    from rcs.recording.features import FeatureLayout
    from rcs.recording.session import CameraSet, Progress, RecordSession
    from rcs.recording.video import VideoOptions
    from rcs.recording.writer import Recorder

    _quiet_libraries()
    if args.episodes <= 0:
        raise ConfigError(f"--episodes={args.episodes} must be > 0")
    if args.end_after_success is not None and not args.end_after_success >= 0:
        raise ConfigError(f"--end-after-success={args.end_after_success}: a duration in s, >= 0")
    env_id, robot = _env_and_robot(args)
    task_less = ENVS[env_id][0].endswith(":ArmTeleopEnv")
    if task_less:  # refused before the robot is connected: these need a task the env does not have
        if args.teleop == "expert":
            raise ConfigError(
                f"--teleop=expert: the scripted expert needs a pick-cube env; {env_id} (robot {robot!r}) has no task, "
                "drive it with a teleop device (rcs list)"
            )
        if args.keep == "success" or args.end_after_success is not None:
            flag = "--keep=success" if args.keep == "success" else "--end-after-success"
            raise ConfigError(f"{flag}: {env_id} (robot {robot!r}) has no success test (is_success is always False)")
    height, width = _size(args.image_size)
    robot_config = key_values(args.robot_option, "--robot-option")
    overrides: dict = {"control_mode": args.control_mode, "relative": args.relative}
    if task_less or args.robot:
        overrides["robot"] = robot
    if robot_config:  # else the env's own default robot_config (e.g. the two-cube scene)
        overrides["robot_config"] = robot_config
    if args.max_steps is not None:
        overrides["max_episode_steps"] = args.max_steps
    env = build_env(env_id, **overrides)
    if not isinstance(env, (PickCubeEnv, ArmTeleopEnv)):  # check_arm_env has already refused other ids
        env.close()
        raise ConfigError(f"--env={env_id!r}: rcs record supports arm envs only")
    cameras: dict = {}
    try:
        simulated = isinstance(env.robot, Simulated)
        spec = args.cameras if args.cameras is not None else (DEFAULT_SIM_CAMERAS if simulated else "none")
        names = [] if spec.strip().lower() == "none" else [c.strip() for c in spec.split(",") if c.strip()]
        if names and not simulated:
            raise ConfigError(
                f"--cameras={spec}: robot {robot!r} is not simulated, so it has no MuJoCo cameras; use --cameras none"
            )
        if names and args.render == "fast":
            _fast_render(env.robot)
        for name in names:
            cam = make_camera("sim/mujoco", robot=env.robot, name=name, width=width, height=height)
            cam.connect()
            cameras[name] = cam
        fps = args.fps if args.fps is not None else int(round(env.config.control_rate_hz))
        if abs(fps - env.config.control_rate_hz) > 1e-9:
            raise ConfigError(
                f"--fps={fps}: one dataset frame per env step, so fps must equal the env control rate {env.config.control_rate_hz} Hz"
            )
        teleop = teleops.make(args.teleop, env=env, seed=args.seed, **key_values(args.teleop_option, "--teleop-option"))
        if not isinstance(teleop, PolicyTeleop) and not teleop.episode_controls:
            teleop = BackToBack(teleop)
        keep = args.keep or ("success" if teleop.name == "expert" else "all")
        layout = FeatureLayout.for_env(env, tuple((n, height, width) for n in names))
        recording = {
            "env_id": env_id,
            "robot": robot,
            "robot_config": robot_config,
            "control_mode": args.control_mode,
            "relative": args.relative,
            "control_rate_hz": env.config.control_rate_hz,
            "max_episode_steps": env.config.max_episode_steps,
            "cameras": {n: {"height": height, "width": width, "backend": "sim/mujoco"} for n in names},
            "capture_time": "host monotonic clock (s) at capture of [state, *cameras]",
            **teleop.describe(),
        }
        recorder = Recorder(
            args.root,
            fps=fps,
            features=layout.features(),
            repo_id=args.repo_id,
            robot_type=env.arm.spec.name,
            recording=recording,
            video=VideoOptions(
                vcodec=args.vcodec, backend=args.encoder or ("process" if teleop.realtime else "thread")
            ),
            realtime=teleop.realtime,
        )
        start = recorder.episodes_saved

        shown = [0.0]

        def progress(p: Progress) -> None:
            now = time.monotonic()
            if not args.json and now - shown[0] >= 0.2:
                shown[0] = now
                _line(
                    f"\repisode {p.episode}/{p.episodes}  frames {p.frames:5d}  {p.rate_hz:6.1f} Hz  "
                    f"dropped {p.dropped}  saved {p.saved}  [{p.state}]   ",
                    end="",
                )

        if not args.json:
            _line(
                f"rcs record: {env_id} ({args.control_mode}{' relative' if args.relative else ''}) with teleop "
                f"{args.teleop!r} -> {recorder.root} ({start} episodes already there); keep={keep}"
            )
        stream, viewer = (
            _start_view(args.view, env, robot or env_id, cameras) if args.view is not None else (None, None)
        )
        with teleop:
            session = RecordSession(
                env,
                teleop,
                recorder,
                layout,
                CameraSet(cameras),
                args.task,
                args.episodes,
                _first_seed(recorder.root, args.seed),
                keep,
                progress,
                end_after_success_s=args.end_after_success,
                stream=stream,
            )
            try:
                # a full collection of this process's heap (torch, lerobot) stalls every thread ~0.2 s: longer
                # than a bus timeout or a frame period (rcs.heap)
                with frozen_heap():
                    result = session.run()
            finally:
                recorder.close()
                if viewer is not None:
                    viewer.stop()
                if stream is not None:
                    stream.close()
        if not args.json:
            _line("")
            for r in result.reports:
                status = f"saved as episode {r.index}" if r.saved else f"not saved: {r.reason}"
                _line(f"  {r.frames:5d} frames, seed {r.info.get('seed')}: {status}")
            _line(
                f"{result.saved} episodes saved this session, {recorder.episodes_saved} in {recorder.root}; stopped: {result.stopped_by}"
            )
        if args.push_to_hub:
            from lerobot.datasets.lerobot_dataset import LeRobotDataset

            LeRobotDataset(recorder.repo_id, root=recorder.root).push_to_hub()
        if args.json:
            _line(
                json_line(
                    {
                        "root": str(recorder.root),
                        "saved_this_session": result.saved,
                        "episodes_total": recorder.episodes_saved,
                        "stopped_by": result.stopped_by,
                        "reports": [
                            {
                                "index": r.index,
                                "frames": r.frames,
                                "saved": r.saved,
                                "reason": r.reason,
                                "info": r.info,
                                "commit_s": round(r.commit_s, 3),
                            }
                            for r in result.reports
                        ],
                    },
                    default=str,
                ),
                end="",
            )
        return 0 if result.stopped_by in ("done", "quit") else 1
    finally:
        for cam in cameras.values():
            cam.close()
        env.close()


def _start_view(save: str, env: Any, name: str, cameras: dict[str, Any]) -> tuple[Any, Any]:
    """A stream of the recording's robot and cameras and ``rcs view`` subscribed to it, in its own process
    (:func:`rcs.viewer.process.view_of_stream`)."""
    from rcs.remote.description import describe
    from rcs.remote.observation import arm_command_names
    from rcs.viewer.process import view_of_stream

    rate = float(env.config.control_rate_hz)
    names = arm_command_names(env.arm)
    described = describe(env.arm, name, rate, names, "joint_positions", list(cameras.values()), [rate] * len(cameras))
    return view_of_stream(save, described)
