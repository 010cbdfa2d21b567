"""lerobot async-inference transport baseline: lerobot's own gRPC PolicyServer and RobotClient, null policy.

Run inside the lerobot side venv (``scripts/setup_bench_baselines.sh``)::

    PYTHONPATH=/work/main .venv-bench/lerobot/bin/python -m sim.bench.baselines.lerobot_async --requests 10000

It prints one JSON object (``p50_ms``, ``p99_ms``, ``req_per_s``, ``requests``, ...) on stdout. lerobot's
``get_logger`` creates ``./logs`` at import time, so this module moves into a fresh temporary directory
before importing lerobot (and starts its server child there too).

Upstream code followed: lerobot 0.6.1 from PyPI, ``lerobot/async_inference/policy_server.py`` (PS),
``robot_client.py`` (RC), ``helpers.py``, ``lerobot/transport/{services.proto,utils.py}``.

What runs unmodified (lerobot's own code):

- Server: ``lerobot.async_inference.policy_server.PolicyServer`` (the gRPC ``AsyncInferenceServicer``):
  ``Ready`` (PS l.108), ``SendObservations`` (PS l.173: ``receive_bytes_in_chunks`` over the client stream,
  ``pickle.loads`` of a ``TimedObservation``, FPS tracking, ``_enqueue_observation`` into a size-1 queue),
  ``GetActions`` (PS l.214: queue get, ``_predict_action_chunk`` = ``raw_observation_to_observation``
  (torch conversion, bilinear resize to the policy's image shape, /255), preprocessor, policy,
  per-action postprocessor loop, ``TimedAction`` list, ``pickle.dumps`` into ``services_pb2.Actions``).
  Served the way ``serve()`` does (PS l.426-431): ``grpc.server(ThreadPoolExecutor(max_workers=4))``,
  ``add_insecure_port`` (unauthenticated, pickle payloads: remote code execution for anyone who can connect).
- Client: ``lerobot.async_inference.robot_client.RobotClient``: ``__init__`` (channel with lerobot's
  ``grpc_channel_options``, ``AsyncInferenceStub``, ``RemotePolicyConfig`` from the robot's features),
  ``start()`` (``Ready`` + pickled ``SendPolicyInstructions``, RC l.143-167) and ``send_observation()``
  (RC l.183-215: ``pickle.dumps(TimedObservation)`` streamed by ``send_bytes_in_chunks`` to
  ``SendObservations``).

What is ours (the minimum needed to run without hardware and weights):

- The server is lerobot's own ``PolicyServer``, unmodified; only the two module-level functions its
  ``SendPolicyInstructions`` (PS l.116-171) calls to load a checkpoint are replaced:
  ``get_policy_class(...).from_pretrained`` returns :class:`NullPolicy` (``config.image_features`` for the two
  3x224x224 cameras, ``predict_action_chunk`` -> zeros (1, 50, 7) float32) and ``make_pre_post_processors``
  returns identity pre/post-processors.
- ``NullRobot``: a duck-typed robot with 14 ``joint_<i>.pos`` float features and two 224x224x3 cameras,
  returned by patching ``robot_client.make_robot_from_config`` (no robot/camera drivers); its
  ``get_observation`` returns the same prebuilt raw observation every time.
- The request loop (one blocking round trip per request, single thread): build a ``TimedObservation``
  (``must_go=True``, increasing timestep, as RC l.419-429 does when the action queue is empty), call
  ``RobotClient.send_observation`` (upstream), then ``client.stub.GetActions(services_pb2.Empty())`` and
  ``pickle.loads`` of the reply (the body of ``RobotClient.receive_actions``, RC l.278-286). Upstream runs the
  two halves in two threads (control loop + action receiver) and merges chunks into its action queue
  (``_aggregate_action_queues``); this benchmark does "observation sent, then actions requested" in one thread
  and skips the queue merge, so it measures the request/reply path only. The reply is checked on every
  request: 50 ``TimedAction`` whose stacked actions are a (50, 7) float32 array.
- Configuration: ``PolicyServerConfig(inference_latency=0)``: upstream's default sleeps until 1/30 s has
  passed in every ``GetActions`` (PS l.254) to emulate inference; a null policy must not sleep.
  ``--log quiet`` (default) raises the root logger to WARNING after lerobot configured it: lerobot's defaults
  log several INFO lines per request to the console and everything down to DEBUG into ./logs/*.log, which would
  benchmark its logging rather than its transport; ``--log lerobot`` keeps lerobot's own logging setup.
"""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import pickle  # nosec B403: lerobot's own wire format, loopback only
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, ClassVar

import numpy as np

from sim.bench import transport_request as _common

logger = logging.getLogger(__name__)

_READY = "LEROBOT_ASYNC_SERVER_PORT"
_CAMERAS = ("cam_0", "cam_1")
_JOINTS = tuple(f"joint_{i}.pos" for i in range(_common.STATE_DIM))
_POLICY_TYPE = "act"  # must be in lerobot's SUPPORTED_POLICIES; the null server ignores it


def _enter_tempdir() -> str:
    """lerobot's get_logger() makes ./logs at import time: keep it out of the caller's cwd (removed at exit)."""
    d = tempfile.mkdtemp(prefix="rcs-bench-lerobot-")
    os.chdir(d)
    atexit.register(shutil.rmtree, d, ignore_errors=True)
    # Turn SIGTERM (how the parent stops the server child) into a normal exit so atexit runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    return d


def _quiet_logging(mode: str) -> None:
    if mode == "quiet":
        logging.getLogger().setLevel(logging.WARNING)


# --------------------------------------------------------------------------------------------- server side


def serve(log_mode: str) -> None:
    """Child-process entry point: lerobot's PolicyServer with a null policy; prints the port, runs until killed."""
    from concurrent import futures

    import grpc
    import torch
    from lerobot.async_inference import policy_server as ps
    from lerobot.async_inference.configs import PolicyServerConfig
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.transport import services_pb2_grpc

    _quiet_logging(log_mode)

    class _NullConfig:
        image_features: ClassVar[dict[str, PolicyFeature]] = {
            f"observation.images.{c}": PolicyFeature(type=FeatureType.VISUAL, shape=(3, 224, 224)) for c in _CAMERAS
        }

    class NullPolicy:
        config = _NullConfig()

        def __init__(self) -> None:
            self._chunk = torch.zeros((1, *_common.CHUNK_SHAPE), dtype=torch.float32)

        def to(self, device: str) -> NullPolicy:  # upstream moves the loaded policy to the client's device
            return self

        def predict_action_chunk(self, observation: dict[str, Any]) -> torch.Tensor:
            return self._chunk

    def identity(x: Any) -> Any:
        return x

    class NullPolicyClass:
        """Stands in for the class ``get_policy_class`` returns: ``from_pretrained`` loads nothing."""

        @staticmethod
        def from_pretrained(path: str) -> NullPolicy:
            return NullPolicy()

    # Upstream SendPolicyInstructions runs unmodified (it unpickles and validates the RemotePolicyConfig
    # itself); only the two policy-loading calls it makes are replaced, so no checkpoint is needed.
    ps.get_policy_class = lambda name: NullPolicyClass
    ps.make_pre_post_processors = lambda *args, **kwargs: (identity, identity)

    cfg = PolicyServerConfig(host="127.0.0.1", port=8080, inference_latency=0.0)  # port unused: we bind :0
    policy_server = ps.PolicyServer(cfg)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    services_pb2_grpc.add_AsyncInferenceServicer_to_server(policy_server, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    sys.stdout.write(f"{_READY} {port}\n")
    sys.stdout.flush()
    server.wait_for_termination()


def _start_server(log_mode: str, timeout_s: float = 120.0) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sim.bench.baselines.lerobot_async", "--serve", "--log", log_mode],
        stdout=subprocess.PIPE,
        text=True,  # stderr: inherited, so failures reach the runner
        env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
    )
    deadline = time.monotonic() + timeout_s
    assert proc.stdout is not None
    while time.monotonic() < deadline:  # torch import takes a few seconds
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"lerobot server exited early (rc={proc.wait()})")
        if line.startswith(_READY):
            return proc, int(line.split()[1])
    proc.kill()
    raise RuntimeError("lerobot server did not report its port in time")


# --------------------------------------------------------------------------------------------- client side


def run(requests: int, warmup: int, log_mode: str) -> dict[str, Any]:
    from dataclasses import dataclass

    import grpc
    import lerobot
    import torch
    from lerobot.async_inference import robot_client as rc
    from lerobot.async_inference.configs import RobotClientConfig
    from lerobot.async_inference.helpers import TimedObservation
    from lerobot.robots import RobotConfig
    from lerobot.transport import services_pb2

    _quiet_logging(log_mode)
    req = _common.make_request()
    raw_obs: dict[str, Any] = {name: float(v) for name, v in zip(_JOINTS, req["state"], strict=True)}
    raw_obs.update({_CAMERAS[0]: req["image_0"], _CAMERAS[1]: req["image_1"]})

    @RobotConfig.register_subclass("rcs_null_robot")
    @dataclass
    class NullRobotConfig(RobotConfig):
        pass

    class NullRobot:
        name = "rcs_null_robot"
        observation_features: ClassVar[dict[str, Any]] = {
            **{j: float for j in _JOINTS},
            **{c: (224, 224, 3) for c in _CAMERAS},
        }
        action_features: ClassVar[dict[str, Any]] = {f"a_{i}": float for i in range(_common.CHUNK_SHAPE[1])}

        def connect(self) -> None: ...
        def disconnect(self) -> None: ...
        def get_observation(self) -> dict[str, Any]:
            return dict(raw_obs)

    rc.make_robot_from_config = lambda _cfg: NullRobot()

    proc, port = _start_server(log_mode)
    try:
        cfg = RobotClientConfig(
            policy_type=_POLICY_TYPE,
            pretrained_name_or_path="null",
            robot=NullRobotConfig(),
            actions_per_chunk=_common.CHUNK_SHAPE[0],
            server_address=f"127.0.0.1:{port}",
            task="bench",
        )
        client = rc.RobotClient(cfg)
        if not client.start():
            raise RuntimeError("lerobot RobotClient.start() failed (Ready / SendPolicyInstructions)")
        empty = services_pb2.Empty()
        step = [0]

        def call() -> None:
            observation = client.robot.get_observation()
            observation["task"] = cfg.task
            obs = TimedObservation(timestamp=time.time(), observation=observation, timestep=step[0], must_go=True)
            step[0] += 1
            if not client.send_observation(obs):
                raise RuntimeError("send_observation failed")
            reply = client.stub.GetActions(empty)
            if len(reply.data) == 0:
                raise AssertionError("GetActions returned Empty (observation not enqueued?)")
            timed_actions = pickle.loads(reply.data)  # nosec B301: lerobot's wire format, loopback only
            if len(timed_actions) != _common.CHUNK_SHAPE[0]:
                raise AssertionError(f"expected {_common.CHUNK_SHAPE[0]} TimedAction, got {len(timed_actions)}")
            chunk = torch.stack([a.get_action() for a in timed_actions]).numpy()
            _common.check_chunk(chunk)

        result = _common.measure(call, requests, warmup)
        client.stop()
        result.update(
            system="lerobot_async",
            log_mode=log_mode,
            client="lerobot.async_inference.robot_client.RobotClient (start, send_observation) + stub.GetActions",
            server="lerobot.async_inference.policy_server.PolicyServer, null policy (get_policy_class and "
            "make_pre_post_processors replaced)",
            versions={
                "lerobot": lerobot.__version__,
                "grpcio": grpc.__version__,
                "torch": torch.__version__,
                "numpy": np.__version__,
            },
        )
        return result
    finally:
        _common.stop_child(proc)


def main(argv: list[str] | None = None) -> None:
    p = _common.base_parser(__doc__.splitlines()[0])
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument(
        "--log",
        choices=("quiet", "lerobot"),
        default="quiet",
        help="quiet: root logger at WARNING (default); lerobot: keep lerobot's logging setup",
    )
    args = p.parse_args(argv)
    _enter_tempdir()
    if args.serve:
        serve(args.log)
        return
    _common.emit(run(args.requests, _common.default_warmup(args), args.log))


if __name__ == "__main__":
    main()
