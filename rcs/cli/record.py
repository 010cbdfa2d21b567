"""``rcs record``: drive a robot with a teleop device (or the scripted expert) and record a LeRobotDataset.

Example (scripted demonstrations, randomized scenes, two cameras)::

    rcs record --robot sim/panda --teleop expert --episodes 50 --root data/pick_cube

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

from rcs.cli.main import at_least, check_arm_env, json_line, writable_folder
from rcs.envs.registration import ENVS, build_env
from rcs.errors import ConfigError, UnknownNameError
from rcs.registry import make_camera, teleops

log = logging.getLogger(__name__)

DEFAULT_TASK = "pick the cube and bring it to the target"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--robot", default="sim/panda", help="registered robot (default sim/panda)")
    parser.add_argument("--env", default=None, help="env id (default: the pick-cube env of --robot)")
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
    parser.add_argument("--cameras", default="front,wrist", help="comma-separated MJCF camera names, or 'none'")
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


def _env_id(args: argparse.Namespace) -> str:
    if args.env:
        return args.env
    for env_id, (entry, kwargs) in ENVS.items():
        if entry.endswith(":PickCubeEnv") and kwargs.get("robot") == args.robot:
            return env_id
    raise UnknownNameError(
        "pick-cube robot", args.robot, [k["robot"] for e, k in ENVS.values() if e.endswith(":PickCubeEnv")]
    )


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--image-size={text!r}: expected HxW, e.g. 240x320") from None
    if h <= 0 or w <= 0:
        raise ConfigError(f"--image-size={text!r}: height and width must be > 0")
    return h, w


def _options(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"--teleop-option {pair!r}: expected KEY=VALUE")
        out[key] = value
    return out


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
            check_arm_env("--env", args.env, "rcs record")
        _size(args.image_size)
        return _record(args)
    except RcsError as exc:  # bad names, incompatible dataset, locked folder, device not found: one clear line
        sys.stderr.write(f"rcs record: {exc}\n")
        return 2


def _record(args: argparse.Namespace) -> int:
    import rcs.envs  # noqa: F401  (registers the env ids)
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
    env_id = _env_id(args)
    height, width = _size(args.image_size)
    overrides = {"control_mode": args.control_mode, "relative": args.relative}
    if args.max_steps is not None:
        overrides["max_episode_steps"] = args.max_steps
    env = build_env(env_id, **overrides)
    if not isinstance(env, PickCubeEnv):  # check_arm_env has already refused other ids
        env.close()
        raise ConfigError(f"--env={env_id!r}: rcs record supports arm envs only")
    cameras: dict = {}
    try:
        names = (
            [] if args.cameras.strip().lower() == "none" else [c.strip() for c in args.cameras.split(",") if c.strip()]
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
        teleop = teleops.make(args.teleop, env=env, seed=args.seed, **_options(args.teleop_option))
        keep = args.keep or ("success" if teleop.name == "expert" else "all")
        layout = FeatureLayout.for_env(env, tuple((n, height, width) for n in names))
        recording = {
            "env_id": env_id,
            "robot": args.robot,
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
            )
            try:
                result = session.run()
            finally:
                recorder.close()
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
