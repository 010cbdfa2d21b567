"""Shadow run of ``rcs deploy``: the policy drives the robot's simulated twin before it may drive the robot.

The twin is the simulated robot with the arm's spec and kinematics (:attr:`rcs.devices.Arm.sim_twin`), placed at
the physical arm's measured joint positions, behind a robot server with the physical robot's safety, watchdog and
trajectory config and the same policy link (same policy server, same schema, same replan schedule). After
``duration_s`` seconds of engaged running, the run is judged (:meth:`ShadowResult.problems`):

- **safety**: the share of control ticks on which the safety filter corrected the policy for a *protective*
  reason (position limits, workspace, malformed commands) must stay below ``max_intervention_rate``; rate
  shaping (velocity, acceleration, braking, the step cap) is what a reduced speed scale does on purpose and is
  reported, not judged;
- **workspace**: any tick on which the TCP would have left the workspace box refuses;
- **latency**: the policy's round-trip p99 must be shorter than the link's request period (else the robot would
  run out of actions between chunks);
- **engaged**: the policy must have armed (handshake) and run at all.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import rcs
from rcs.errors import ConfigError
from rcs.loopback import free_endpoint
from rcs.remote.config import PublishedCameraConfig, ServerConfig
from rcs.types import ArmState

log = logging.getLogger(__name__)

#: interventions that shape the motion (a reduced speed scale makes them on purpose): reported, not judged
SHAPING_REASONS = frozenset({"velocity_limit", "acceleration_limit", "braking", "step_cap"})
#: how long the twin's policy link may take to hand over its first chunk (s): a cold policy server compiles
HANDSHAKE_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class ShadowLimits:
    """When a shadow run refuses (see the module docstring).

    Attributes:
        duration_s: engaged running time on the twin (s).
        max_intervention_rate: largest share of ticks with a protective safety intervention.
    """

    duration_s: float = 5.0
    max_intervention_rate: float = 0.02

    def __post_init__(self) -> None:
        if not self.duration_s > 0:
            raise ConfigError(f"shadow duration_s={self.duration_s} must be > 0 s")
        if not 0 <= self.max_intervention_rate <= 1:
            raise ConfigError(f"max_intervention_rate={self.max_intervention_rate} must be in [0, 1]")


@dataclass
class ShadowResult:
    """What the twin did.

    Attributes:
        twin: registered name of the twin.
        duration_s: engaged running time (s).
        ticks: control ticks while engaged.
        interventions: safety interventions by reason while engaged (ticks).
        latency_ms: the policy's round trip while engaged (``p50``, ``p99``, ``max``, ms).
        period_s: the link's request period (s).
        chunks: chunks the twin's executor accepted.
        stages: watchdog stages seen (ticks in each).
        error: why the run could not happen at all (no handshake, a refused schema), else ``""``.
    """

    twin: str
    duration_s: float = 0.0
    ticks: int = 0
    interventions: dict[str, int] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)
    period_s: float = 0.0
    chunks: int = 0
    stages: dict[str, int] = field(default_factory=dict)
    error: str = ""

    @property
    def protective(self) -> int:
        """Ticks with a protective (not rate-shaping) intervention."""
        return sum(n for reason, n in self.interventions.items() if reason not in SHAPING_REASONS)

    def problems(self, limits: ShadowLimits) -> list[str]:
        """Why this run refuses the deployment (empty: it passes)."""
        if self.error:
            return [self.error]
        out = []
        if self.chunks == 0 or not self.stages.get("running"):
            out.append(f"the policy never drove the twin ({self.chunks} chunks accepted, stages {self.stages})")
        if self.interventions.get("workspace"):
            out.append(f"the TCP would have left the workspace on {self.interventions['workspace']} ticks")
        rate = self.protective / max(1, self.ticks)
        if rate > limits.max_intervention_rate:
            reasons = {r: n for r, n in self.interventions.items() if r not in SHAPING_REASONS}
            out.append(
                f"the safety filter corrected the policy on {rate:.1%} of ticks {reasons} "
                f"> {limits.max_intervention_rate:.1%}"
            )
        p99 = self.latency_ms.get("p99")
        if p99 is None:
            out.append("no policy reply was timed")
        elif p99 / 1e3 >= self.period_s:
            out.append(f"policy latency p99 {p99:.1f} ms >= its request period {self.period_s * 1e3:.0f} ms")
        return out

    def summary(self) -> str:
        """One line: time, ticks, interventions, latency."""
        lat = self.latency_ms
        return (
            f"{self.twin} for {self.duration_s:.1f} s: {self.chunks} chunks, interventions {self.interventions or 'none'}"
            f", latency p50 {lat.get('p50', float('nan')):.1f} / p99 {lat.get('p99', float('nan')):.1f} ms"
            f" (period {self.period_s * 1e3:.0f} ms)"
        )


def twin_config(config: ServerConfig, twin: str) -> ServerConfig:
    """The twin's server config: the physical robot's safety, watchdog, executor, trajectory and policy link,
    the twin's own robot with its cameras rendered under the same names and sizes, local endpoints, armed."""
    cameras = tuple(
        PublishedCameraConfig(name=c.name, width=c.width, height=c.height, fps=c.fps, backend="sim/mujoco")
        for c in config.cameras
    )
    return dataclasses.replace(
        config,
        robot=twin,
        robot_config=dict(config.robot_config) if config.robot == twin else {},  # a simulated robot: its own scene
        cameras=cameras,
        state_endpoint=free_endpoint(),
        command_endpoint=free_endpoint(),
        realtime=False,
        start_armed=True,
        curve_secret=None,
        allow=None,
    )


def shadow_run(config: ServerConfig, twin: str, measured: ArmState, limits: ShadowLimits) -> ShadowResult:
    """Run the policy of ``config.policy`` on ``twin`` placed at ``measured`` for ``limits.duration_s`` of engaged
    time (wall clock: the twin runs in real time, as the robot would)."""
    from rcs.remote.server import RobotServer
    from rcs.serving.chunk_feed import FeedState

    result = ShadowResult(twin)
    settings = twin_config(config, twin)
    robot = rcs.make_robot(twin, **settings.robot_config)
    if not callable(getattr(robot, "place_arm", None)):
        raise ConfigError(f"twin {twin!r} ({type(robot).__name__}) cannot be placed at a measured configuration")
    robot.connect()
    robot.place_arm(measured.joint_positions, measured.gripper)
    server = RobotServer(settings, robot=robot)
    try:
        server.start()
        link = server.policy_link
        assert link is not None  # the config has a policy section (the deploy command sets it)
        end = time.monotonic() + HANDSHAKE_TIMEOUT_S
        while server.status().get("engaged") is not True or server.task.executor.accepted == 0:
            if link.state is FeedState.REFUSED:
                result.error = f"the policy server's schema differs from the twin's: {link.refusal}"
                return result
            if time.monotonic() > end:
                result.error = f"the policy did not hand the twin a chunk within {HANDSHAKE_TIMEOUT_S:.0f} s"
                return result
            time.sleep(0.05)
        before = server.status()
        replies0 = link.replies
        ticks0 = before["tick"]
        stages0 = dict(server.task.report()["ticks_in_stage"])
        t0 = time.monotonic()
        time.sleep(limits.duration_s)
        after = server.status()
        result.duration_s = time.monotonic() - t0
        result.ticks = int(after["tick"]) - int(ticks0)
        result.interventions = _difference(after["safety_interventions"], before["safety_interventions"])
        result.stages = _difference(server.task.report()["ticks_in_stage"], stages0)
        result.chunks = int(server.task.executor.accepted)
        result.latency_ms = link.latency_ms(last=link.replies - replies0)
        result.period_s = link.schedule.period_s
        return result
    finally:
        server.stop()
        close = getattr(robot, "simulation", None)
        if close is not None:
            close.close()


def _difference(after: dict[str, Any], before: dict[str, Any]) -> dict[str, int]:
    """Counts that grew between two snapshots (reason -> increase)."""
    out = {k: int(v) - int(before.get(k, 0)) for k, v in after.items()}
    return {k: v for k, v in out.items() if v > 0}
