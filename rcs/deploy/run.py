"""One deployment of a checkpoint onto a robot: preflight, shadow run, engage, run, summary (``rcs deploy``).

Steps, in order; nothing moves before step 6, and a refusal at any step stops there with its reason:

1. **Preflight, static** (:mod:`rcs.deploy.preflight`): the checkpoint's files against the robot's spec and its
   server config (action names and order, units, observation entries, control period, cameras, safety config).
2. **Policy server**: ``rcs serve`` loads the checkpoint (refusing missing normalization statistics and weights
   that differ from the file) and must hand-shake with the schema the robot requires.
3. **Robot**: the robot server connects the robot (a driver checks its calibration here) and its cameras.
4. **Shadow run** (:mod:`rcs.deploy.shadow`): the policy drives the robot's simulated twin, placed at the robot's
   measured joints, with the same safety config, for a few seconds.
5. **Run log and view**: the robot server starts (holding: not armed); the run log (:mod:`rcs.deploy.run_log`, its
   own process) and the optional live view subscribe to its stream.
6. **Engage**: the operator confirms; then the policy drives the robot only while the dead-man key is held (faded
   in at the reduced speed scale each time), with the e-stop on a key and on SIGUSR1 (:mod:`rcs.deploy.operator`).
7. **Summary**: duration, interventions by reason, policy latency, loop lateness, where the log is.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rcs
from rcs.child_process import terminate_with_parent
from rcs.control.priorities import PATH_PRIORITY, promote_current_thread
from rcs.deploy.operator import OperatorConsole, OperatorEvent
from rcs.deploy.preflight import Preflight, calibration_detail, check_checkpoint_against_robot
from rcs.deploy.shadow import ShadowLimits, shadow_run
from rcs.devices import Simulated
from rcs.errors import ConfigError, RcsError
from rcs.eval.server_process import SERVER_START_TIMEOUT_S, ServerProcess, wait_for_server
from rcs.loopback import free_endpoint
from rcs.remote.config import PolicyLinkConfig, ServerConfig
from rcs.remote.server import DEFAULT_MAX_RATE_HZ

log = logging.getLogger(__name__)

#: s the run log process gets to subscribe and open its first segment
LOG_START_TIMEOUT_S = 120.0
#: s the run log process gets to save its last segment after SIGTERM
LOG_STOP_TIMEOUT_S = 60.0
#: s between two looks at the operator's keys, the robot and the policy server
POLL_S = 0.02
#: s after arming within which the robot must report the policy running
ENGAGE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class DeployConfig:
    """One ``rcs deploy`` run (its options).

    Attributes:
        policy: the checkpoint directory.
        server: the robot server config (its ``policy`` section is set here).
        speed_scale: fraction (0, 1] applied to the config's joint velocity scale for this run.
        shadow: shadow run limits (``None``: skipped, said in the table).
        duration_s: end after this long engaged-or-holding after the operator confirmed (``None``: until quit).
        confirm_timeout_s: how long the operator has to confirm (s).
        log_dir: the run log's dataset folder.
        log_fps: its frame rate (default: the policy's, ``1 / policy_dt``).
        log_segment_s: robot-time seconds per saved segment (a crash loses at most the open one).
        view: ``None`` (no view), ``""`` (a running viewer, else the view's default file) or an ``.rrd`` path.
        policy_endpoint: a policy server already running (``None``: start ``rcs serve`` as a child process).
    """

    policy: Path
    server: ServerConfig
    speed_scale: float = 0.25
    shadow: ShadowLimits | None = field(default_factory=ShadowLimits)
    duration_s: float | None = None
    confirm_timeout_s: float = 30.0
    log_dir: Path = Path("outputs/deploy")
    log_fps: int | None = None
    log_segment_s: float = 10.0
    view: str | None = None
    policy_endpoint: str | None = None

    def __post_init__(self) -> None:
        if not 0 < self.speed_scale <= 1:
            raise ConfigError(f"speed_scale={self.speed_scale} must be in (0, 1]")
        if not self.confirm_timeout_s > 0:
            raise ConfigError(f"confirm_timeout_s={self.confirm_timeout_s} must be > 0 s")
        if self.duration_s is not None and not self.duration_s > 0:
            raise ConfigError(f"duration_s={self.duration_s} must be > 0 s")
        if self.log_fps is not None and (isinstance(self.log_fps, bool) or self.log_fps < 1):
            raise ConfigError(f"log_fps={self.log_fps} must be a positive integer (Hz)")


@dataclass
class DeployReport:
    """What happened (``rcs deploy --json`` prints it as one object).

    Attributes:
        outcome: ``done`` (duration reached or the operator quit), ``estop``, ``refused`` or ``failed``.
        reason: one line: why it ended.
        preflight: the checked rows.
        shadow: the shadow run's summary line (or why it was skipped).
        timings_s: seconds from the command's start to each milestone (``policy_server``, ``shadow``, ``confirmed``,
            ``engaged``: the first tick the policy drove the robot) and ``engage_after_confirm``.
        engaged_s: time the dead-man key was held with the policy driving (s).
        interventions: safety interventions by reason during the run.
        latency_ms: the policy's round trip during the run.
        loop: the control loop's lateness (µs) and missed ticks at the end.
        log: the run log's report (dataset folder, frames, segments).
    """

    outcome: str = "refused"
    reason: str = ""
    preflight: list[dict[str, Any]] = field(default_factory=list)
    shadow: str = ""
    timings_s: dict[str, float] = field(default_factory=dict)
    engaged_s: float = 0.0
    interventions: dict[str, int] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)
    loop: dict[str, Any] = field(default_factory=dict)
    log: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class LogProcess:
    """The run log (``python -m rcs.deploy.run_log``) as a child process subscribed to a robot server."""

    def __init__(self, state_endpoint: str, command_endpoint: str, out: Path, fps: int, segment_s: float, task: str):
        cmd = [sys.executable, "-m", "rcs.deploy.run_log", "--state-endpoint", state_endpoint]
        cmd += ["--command-endpoint", command_endpoint, "--out", str(out), "--fps", str(fps)]
        cmd += ["--segment-s", str(segment_s), "--task", task]
        # a killed rcs deploy must not leave the log running: the kernel's SIGTERM makes it save its open segment
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=terminate_with_parent()
        )
        self.lines: list[str] = []
        self.errors: list[str] = []
        self.ready = threading.Event()
        threading.Thread(target=self._read, args=(self.proc.stdout, self.lines), daemon=True).start()
        threading.Thread(target=self._read, args=(self.proc.stderr, self.errors), daemon=True).start()

    def _read(self, stream: Any, into: list[str]) -> None:
        for line in stream:
            into.append(line.rstrip("\n"))
            if into is self.lines and '"ready"' in line:
                self.ready.set()

    def wait_ready(self, timeout_s: float, robot_error: Any = lambda: None) -> None:
        """Raise ConfigError with the process's own one-line error if it is not up within ``timeout_s``, or the
        robot's error as soon as ``robot_error()`` returns one (the log waits for a state that will not come)."""
        end = time.monotonic() + timeout_s
        while not self.ready.wait(0.1):
            error = robot_error()
            if error:
                raise RcsError(error)
            if self.proc.poll() is not None or time.monotonic() > end:
                time.sleep(0.2)  # its last stderr line
                why = self.errors[-1] if self.errors else f"exit code {self.proc.poll()}"
                raise ConfigError(f"run log: {why}")

    def stop(self) -> dict[str, Any]:
        """SIGTERM: it saves the open segment and prints its report, returned here (``{}`` if it had none)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(LOG_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log.error(
                    "the run log did not stop within %.0f s: killed (its open segment is lost)", LOG_STOP_TIMEOUT_S
                )
                self.proc.kill()
                self.proc.wait()
        time.sleep(0.1)  # the reader threads take the last lines
        for line in reversed(self.lines):
            if line.startswith("{") and '"ready"' not in line:
                try:
                    return dict(json.loads(line))
                except ValueError:
                    break
        return {"error": self.errors[-1] if self.errors else f"exit code {self.proc.returncode}"}


class Deployment:
    """Runs the steps of the module docstring; :meth:`run` returns the :class:`DeployReport`.

    Args:
        config: the run's settings.
        console: the operator's keys (connected by :meth:`run`).
        say: where progress lines go (the CLI prints them).
        stop: set (e.g. by SIGINT/SIGTERM) to end the run: the arm holds, everything closes.
        estop: set (e.g. by SIGUSR1) to latch the robot server's e-stop and end the run.
        started: monotonic time of the command's start (s), for the timings.
    """

    def __init__(
        self,
        config: DeployConfig,
        console: OperatorConsole,
        say: Any,
        stop: threading.Event | None = None,
        estop: threading.Event | None = None,
        started: float | None = None,
    ) -> None:
        self.config = config
        self.console = console
        self.say = say
        self.stop = stop or threading.Event()
        self.estop = estop or threading.Event()
        self.started = time.monotonic() if started is None else started
        self.report = DeployReport()
        self.preflight = Preflight()

    def _mark(self, name: str) -> None:
        self.report.timings_s[name] = round(time.monotonic() - self.started, 3)

    def _refuse(self, reason: str) -> DeployReport:
        self.report.outcome, self.report.reason = "refused", reason
        self.report.preflight = self.preflight.as_dicts()
        return self.report

    # -- the steps ----------------------------------------------------------------------------------------
    def run(self) -> DeployReport:
        """Every step; the report says how it ended (never raises for a refusal or a robot failure)."""
        try:
            return self._run()
        finally:
            self.report.preflight = self.preflight.as_dicts()

    def _refused_by_preflight(self) -> DeployReport:
        row = self.preflight.failed
        assert row is not None
        return self._refuse(f"preflight refused: {row.name}: {row.detail}")

    def _run(self) -> DeployReport:
        cfg = self.config
        endpoint = cfg.policy_endpoint or free_endpoint()
        server_config = self._server_config(endpoint)
        try:
            robot = rcs.make_robot(server_config.robot, **server_config.robot_config)
        except RcsError as e:
            return self._refuse(f"robot {server_config.robot!r}: {e}")
        rate_hz = float(server_config.rate_hz or min(robot.spec.control_rate_hz, DEFAULT_MAX_RATE_HZ))
        facts = check_checkpoint_against_robot(self.preflight, cfg.policy, server_config, robot, rate_hz)
        if facts is None or self.preflight.failed:
            return self._refused_by_preflight()
        self.say(self.preflight.table())
        policy_server = None
        try:
            policy_server = self._start_policy_server(endpoint, robot)
            if self.preflight.failed:
                return self._refused_by_preflight()
            return self._with_policy_server(server_config, robot, facts.policy_dt)
        finally:
            if policy_server is not None:
                policy_server.stop()
            sim = getattr(robot, "simulation", None)
            if sim is not None:
                sim.close()

    def _server_config(self, endpoint: str) -> ServerConfig:
        """The robot server config of this run: the policy link to ``endpoint`` (the checkpoint directory as its
        manifest), not armed at start, the velocity scale times ``speed_scale``."""
        cfg = self.config
        safety = dict(cfg.server.safety)
        safety["velocity_scale"] = float(safety.get("velocity_scale", 1.0)) * cfg.speed_scale
        link = PolicyLinkConfig(endpoint=endpoint, manifest=str(cfg.policy))
        return dataclasses.replace(cfg.server, policy=link, start_armed=False, safety=safety)

    def _start_policy_server(self, endpoint: str, robot: Any) -> ServerProcess | None:
        """Start ``rcs serve`` (unless one runs already) and hand-shake with the robot's required schema."""
        from rcs.eval.inputs import checkpoint_schema
        from rcs.remote.observation import arm_command_names

        cfg = self.config
        server = None
        if not cfg.policy_endpoint:
            # the policy server is on this robot's control path: real-time when the loop is
            log_path = cfg.log_dir / "policy_server.log"
            server = ServerProcess(cfg.policy, endpoint, log_path, realtime=cfg.server.realtime)
        self.say(f"policy server: loading {cfg.policy} at {endpoint} ...")

        def handshake() -> tuple[str, str]:
            schema = checkpoint_schema(cfg.policy, arm_command_names(robot))
            checkpoint = wait_for_server(endpoint, schema, server, SERVER_START_TIMEOUT_S)
            return checkpoint, (
                f"{checkpoint}: loaded with its normalization statistics for every feature and the weights of its "
                "file; its schema (names, shapes, units, period) equals the robot's"
            )

        self.preflight.run(
            "policy server",
            "missing normalization statistics, weights that differ from the file, a schema that differs",
            handshake,
        )
        self._mark("policy_server")
        return server

    def _with_policy_server(self, server_config: ServerConfig, robot: Any, policy_dt: float) -> DeployReport:
        from rcs.remote.server import RobotServer

        server = self.preflight.run(
            "robot",
            "a robot that is not there, an uncalibrated arm, a missing camera",
            lambda: (RobotServer(server_config, robot=robot), f"connected: {calibration_detail(robot)}"),
        )
        if server is None:
            robot.close()  # connected before a camera failed: let go of it (the driver's close policy applies)
            return self._refused_by_preflight()
        try:
            refusal = self._shadow(server_config, robot)
            if refusal is not None:
                return self._refuse(refusal)
            self.say(self.preflight.table())
            return self._serve(server, server_config, policy_dt)
        finally:
            server.stop()

    def _shadow(self, server_config: ServerConfig, robot: Any) -> str | None:
        """The shadow run's refusal, or ``None`` (passed or skipped)."""
        limits = self.config.shadow
        protects = "a policy that trips the safety filter, leaves the workspace or answers too slowly"
        if limits is None:
            self.preflight.add("shadow run", True, "skipped (--shadow-s 0)", protects)
            self.report.shadow = "skipped"
            return None
        twin = robot.sim_twin or (server_config.robot if isinstance(robot, Simulated) else None)
        if twin is None:
            self.preflight.add("shadow run", False, f"{server_config.robot} names no simulated twin", protects)
            return f"shadow run: {server_config.robot} names no simulated twin (skip with --shadow-s 0)"
        measured = robot.read()
        self.say(f"shadow run: the policy drives {twin} from the measured joints for {limits.duration_s:g} s ...")
        try:
            result = shadow_run(server_config, twin, measured, limits)
        except RcsError as e:
            self._mark("shadow")
            self.report.shadow = f"the twin could not run: {e}"
            self.preflight.add("shadow run", False, self.report.shadow, protects)
            return f"shadow run refused: {self.report.shadow}"
        problems = result.problems(limits)
        self._mark("shadow")
        self.report.shadow = result.summary()
        if problems:
            self.preflight.add("shadow run", False, "; ".join(problems), protects)
            return f"shadow run refused: {'; '.join(problems)}"
        self.preflight.add("shadow run", True, result.summary(), protects)
        return None

    def _serve(self, server: Any, server_config: ServerConfig, policy_dt: float) -> DeployReport:
        """Steps 5-7 with the robot server built and the robot connected."""
        from rcs.remote.client import RobotClient
        from rcs.viewer.process import ViewProcess

        cfg = self.config
        server.start()
        fps = cfg.log_fps or max(1, round(1.0 / policy_dt))
        task = f"deploy {cfg.policy.name}"
        logger = LogProcess(
            server_config.state_endpoint,
            server_config.command_endpoint,
            cfg.log_dir / "run",
            fps,
            cfg.log_segment_s,
            task,
        )
        view = None
        client = RobotClient(server_config.command_endpoint)
        try:
            logger.wait_ready(LOG_START_TIMEOUT_S, lambda: self._loop_error(server))
            self.say(f"run log: {cfg.log_dir / 'run'} at {fps} fps, a segment every {cfg.log_segment_s:g} s")
            if cfg.view is not None:
                view = ViewProcess(cfg.view, server_config.state_endpoint, server_config.command_endpoint)
            self.say(
                f"ENGAGE {server_config.robot} at speed scale {cfg.speed_scale:g}? press "
                f"'{self.console.bindings.confirm}' within {cfg.confirm_timeout_s:g} s (anything else refuses)"
            )
            if not self.console.confirm(cfg.confirm_timeout_s):
                self._mark("refused")
                self.report.outcome = "refused"
                self.report.reason = f"the operator did not confirm within {cfg.confirm_timeout_s:g} s: nothing moved"
                return self.report
            self._mark("confirmed")
            self.say(
                f"hold {self.console.bindings.deadman.upper()} to run the policy (released: the arm holds); "
                f"{'/'.join(self.console.bindings.estop)}: e-stop; {'/'.join(self.console.bindings.quit)}: end"
            )
            self._operate(server, client)
        except RcsError as e:
            self.report.outcome, self.report.reason = "failed", str(e)
        finally:
            if self._reachable(client):
                client.set_armed(False)  # hold before the server brakes and stops
            self._finish(server)
            if view is not None:
                view.stop()
            self.report.log = logger.stop()
            client.close()
        return self.report

    @staticmethod
    def _reachable(client: Any) -> bool:
        try:
            client.describe(timeout_s=1.0)
        except RcsError:
            return False
        return True

    def _operate(self, server: Any, client: Any) -> None:
        """The engaged run: the dead-man key arms and disarms, e-stop and quit end it."""
        cfg = self.config
        start = server.status()
        self._start_counts = dict(start["safety_interventions"])
        link = server.policy_link
        self._replies0 = link.replies
        confirmed = time.monotonic()
        engaged_since: float | None = None
        first_armed: float | None = None  # when the first ENGAGE armed the robot, until the policy drives it
        if server.config.realtime:
            # the dead-man key is read here: it must not wait behind ordinary work on a busy host
            promote_current_thread("rcs deploy operator keys", PATH_PRIORITY)
        while True:
            now = time.monotonic()
            if cfg.duration_s is not None and now - confirmed >= cfg.duration_s:
                self.report.outcome, self.report.reason = "done", f"--duration {cfg.duration_s:g} s reached"
                break
            if self.stop.is_set():
                self.report.outcome, self.report.reason = "done", "stopped by a signal (SIGINT/SIGTERM)"
                break
            if self.estop.is_set():
                client.estop("SIGUSR1")
                self.report.outcome, self.report.reason = "estop", "e-stop by SIGUSR1: the arm braked and holds"
                break
            error = self._loop_error(server)
            if error:
                self.report.outcome, self.report.reason = "failed", error
                break
            problem = self._policy_problem(link)
            if problem:
                self.report.outcome, self.report.reason = "failed", problem
                break
            events = self.console.poll(POLL_S)
            if OperatorEvent.ESTOP in events:
                client.estop("operator key")
                self.report.outcome, self.report.reason = (
                    "estop",
                    "e-stop by the operator's key: the arm braked and holds",
                )
                break
            if OperatorEvent.QUIT in events:
                self.report.outcome, self.report.reason = "done", "ended by the operator"
                break
            if OperatorEvent.ENGAGE in events:
                client.set_armed(True)
                engaged_since = time.monotonic()
                if "engaged" not in self.report.timings_s:
                    first_armed = engaged_since
            elif OperatorEvent.HOLD in events and engaged_since is not None:
                client.set_armed(False)
                self.report.engaged_s += time.monotonic() - engaged_since
                engaged_since = first_armed = None  # let go before the policy drove: the next press times it
            if first_armed is not None and self._policy_drives(server, first_armed):
                first_armed = None
        if engaged_since is not None:
            self.report.engaged_s += time.monotonic() - engaged_since
        self.report.engaged_s = round(self.report.engaged_s, 3)

    @staticmethod
    def _loop_error(server: Any) -> str:
        """Why the robot stopped its control loop (link lost, device fault), ``""`` while it runs."""
        return "" if server.loop.running else f"the robot stopped the control loop: {server.loop.error}"

    def _policy_drives(self, server: Any, armed: float) -> bool:
        """Whether the policy drives the robot since the first arming at ``armed`` (monotonic s); records when it
        first did. Checked once per poll, never waited on: the dead-man key is read in the same loop."""
        if server.task.stage.value == "running":
            self._mark("engaged")
            self.report.timings_s["engage_after_confirm"] = round(
                self.report.timings_s["engaged"] - self.report.timings_s["confirmed"], 3
            )
            return True
        if time.monotonic() - armed > ENGAGE_TIMEOUT_S:
            raise RcsError(f"armed, but the policy did not drive the robot within {ENGAGE_TIMEOUT_S:.0f} s")
        return False

    def _policy_problem(self, link: Any) -> str:
        """Why the run must end because of the policy side (the link was lost), else ``""``."""
        from rcs.serving.chunk_feed import FeedState

        if link.state is FeedState.REFUSED:
            return f"the policy server's schema changed and was refused: {link.refusal}"
        if link.last_observe_error:
            return f"the robot could not observe for the policy: {link.last_observe_error}: the robot held"
        if link.counters.get("lost", 0) > 0:
            return "the policy server stopped answering: the robot held, then stopped (watchdog)"
        return ""

    def _finish(self, server: Any) -> None:
        """Interventions, latency and loop figures of the run."""
        status = server.status()
        start = getattr(self, "_start_counts", None)
        if start is not None:
            now = status["safety_interventions"]
            grown = {k: int(v) - int(start.get(k, 0)) for k, v in now.items()}
            self.report.interventions = {k: v for k, v in grown.items() if v > 0}
            link = server.policy_link
            if link is not None:
                self.report.latency_ms = link.latency_ms(last=link.replies - self._replies0)
        loop = status["loop"]
        self.report.loop = {
            "lateness_us": loop["lateness_us"],
            "missed_ticks": loop["missed_ticks"],
            "overruns": loop["overruns"],
            "rate_hz": loop["rate_hz"],
        }


def default_log_dir() -> Path:
    """``outputs/deploy/<time>``: one folder per run (the run log dataset, the policy server's log)."""
    return Path("outputs/deploy") / time.strftime("%Y%m%d-%H%M%S")
