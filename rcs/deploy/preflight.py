"""Preflight of ``rcs deploy``: what is checked about a checkpoint and a robot before anything moves.

Each check is a row of a table (:class:`CheckRow`): its name, whether it passed, what was found, and what it
protects against. The static checks (:func:`check_checkpoint_against_robot`) read only the checkpoint's files,
the robot's spec and the robot server config; the deploy command adds the rows that need the robot connected
(calibration), the policy server started (it loads the checkpoint and refuses missing normalization statistics
or mismatched weights) and the policy link's handshake (the served schema equals the robot's).

Light: JSON and the core only (no torch, no lerobot): the robot side never loads the model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from rcs.control.cartesian import pose_layout_of
from rcs.control.joint_deltas import is_joint_delta_layout
from rcs.devices import Arm
from rcs.errors import ConfigError, RcsError
from rcs.recording.features import ACTION, action_unit
from rcs.remote.config import ServerConfig
from rcs.remote.observation import RobotObservation, arm_command_names

T = TypeVar("T")

#: relative tolerance of "the policy period is a whole number of control periods"
PERIOD_TOLERANCE = 1e-6


@dataclass(frozen=True)
class CheckRow:
    """One preflight check.

    Attributes:
        name: what was checked (short).
        passed: whether it passed.
        detail: what was found (the refusal's reason when it failed).
        protects: what the check protects against.
    """

    name: str
    passed: bool
    detail: str
    protects: str


class PreflightFailed(RcsError):
    """A preflight check failed; the message is the failing row."""


class Preflight:
    """The rows checked so far; :meth:`run` adds one and :meth:`refuse_if_failed` stops at the first failure."""

    def __init__(self) -> None:
        self.rows: list[CheckRow] = []

    def run(self, name: str, protects: str, check: Callable[[], tuple[T, str]]) -> T | None:
        """Run ``check`` (returns (value, detail)); an :class:`RcsError` or ``OSError`` is a failed row."""
        try:
            value, detail = check()
        except (RcsError, OSError) as e:
            self.rows.append(CheckRow(name, False, one_line(e), protects))
            return None
        self.rows.append(CheckRow(name, True, detail, protects))
        return value

    def add(self, name: str, passed: bool, detail: str, protects: str) -> None:
        """A row whose result the caller found itself (e.g. from a process it started)."""
        self.rows.append(CheckRow(name, passed, detail, protects))

    @property
    def failed(self) -> CheckRow | None:
        """The first failed row, if any."""
        return next((r for r in self.rows if not r.passed), None)

    def refuse_if_failed(self) -> None:
        """Raise :class:`PreflightFailed` naming the first failed row."""
        row = self.failed
        if row is not None:
            raise PreflightFailed(f"preflight refused: {row.name}: {row.detail}")

    def table(self) -> str:
        """The rows as a fixed-width text table (check, result, detail)."""
        width = max((len(r.name) for r in self.rows), default=5)
        lines = [f"{'check':<{width}}  result  detail"]
        for r in self.rows:
            lines.append(f"{r.name:<{width}}  {'ok' if r.passed else 'FAILED':<6}  {r.detail}")
        return "\n".join(lines)

    def as_dicts(self) -> list[dict[str, Any]]:
        """The rows as plain dicts (for ``--json`` and the run log)."""
        return [{"check": r.name, "passed": r.passed, "detail": r.detail, "protects": r.protects} for r in self.rows]


def one_line(error: BaseException) -> str:
    """An error on one line: its first line, and its last non-empty line when it has more (a child process's
    error, e.g. ``rcs serve exited with code 1:`` followed by its log, ends with the reason)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    return lines[0] if len(lines) == 1 else f"{lines[0].rstrip(':')}: {lines[-1]}"


@dataclass(frozen=True)
class CheckpointFacts:
    """What the static checks learned about a checkpoint (used by the later steps).

    Attributes:
        directory: the checkpoint directory.
        manifest: its manifest (``rcs_policy.json``, or derived from its training dataset).
        policy_dt: time between the actions of a chunk (s).
        cameras: (name, height, width) of each image input.
    """

    directory: Path
    manifest: dict[str, Any]
    policy_dt: float
    cameras: tuple[tuple[str, int, int], ...]


def check_checkpoint_against_robot(
    pre: Preflight, directory: Path, config: ServerConfig, robot: Any, rate_hz: float
) -> CheckpointFacts | None:
    """The static rows: checkpoint files, action names and order, units, observation entries, control period,
    cameras, safety config. ``robot`` is created, not connected. Returns what was learned (``None`` if the
    checkpoint could not be read at all)."""
    from rcs.eval.inputs import read_policy_inputs, vector_names
    from rcs.serving.policy import read_manifest

    def checkpoint() -> tuple[tuple[dict[str, Any], Any], str]:
        _, manifest = read_manifest(directory)
        inputs = read_policy_inputs(directory)
        source = f"derived from dataset {manifest['derived_from']}" if "derived_from" in manifest else "rcs_policy.json"
        return (manifest, inputs), f"{directory} ({manifest.get('policy_type', manifest.get('kind'))}; {source})"

    got = pre.run("checkpoint", "deploying files that do not describe a policy (missing config, manifest)", checkpoint)
    if got is None:
        return None
    manifest, inputs = got
    if not isinstance(robot, Arm):
        pre.add("robot", False, f"{type(robot).__name__}: rcs deploy drives arms", "an unsupported device")
        return None
    names = arm_command_names(robot)
    action_names = list(inputs.action_names)

    def actions() -> tuple[None, str]:
        layout = pose_layout_of(action_names)
        if layout is not None:
            return None, f"TCP pose {layout.unit} -> this arm's IK -> {list(names)}"
        if is_joint_delta_layout(action_names):
            want = [f"delta_{n}" for n in names if n != "gripper"]
            if action_names[: len(want)] != want:
                raise ConfigError(f"joint deltas {action_names} are not this arm's joints {want} in order")
            return None, f"joint deltas in this arm's order {list(names)}"
        if action_names == list(names):
            return None, f"joint targets in this arm's order {list(names)}"
        if sorted(action_names) == sorted(names):
            raise ConfigError(f"the same joints in another order: checkpoint {action_names}, robot {list(names)}")
        raise ConfigError(f"a checkpoint for another robot: its actions name {action_names}, this arm's {list(names)}")

    pre.run("action names", "a checkpoint trained on another robot, or with its joints in another order", actions)

    def units() -> tuple[None, str]:
        declared = (manifest.get("units") or {}).get(ACTION)
        expected = action_unit(action_names)
        if declared is not None and declared != expected:
            raise ConfigError(f"action unit {declared!r}, but its names {action_names[:3]}... mean {expected!r}")
        return None, f"action in {expected!r}" + ("" if declared else " (from the names; the manifest says none)")

    pre.run("units", "degrees read as radians, deltas executed as targets", units)

    def observation() -> tuple[None, str]:
        named = vector_names(manifest, inputs)
        observed = RobotObservation(robot, named)
        parts = [f"{k} ({len(named[k])})" for k in observed.keys]
        extra = f"; tracked objects {observed.objects}" if observed.objects else ""
        return None, ", ".join(parts) + extra if parts else "no vector inputs"

    pre.run("observation", "a policy fed zeros or another quantity in place of what it was trained on", observation)

    policy_dt = manifest.get("policy_dt")

    def period() -> tuple[float, str]:
        if isinstance(policy_dt, bool) or not isinstance(policy_dt, int | float) or not policy_dt > 0:
            raise ConfigError(f"policy_dt={policy_dt!r} must be > 0 s")
        ratio = float(policy_dt) * rate_hz
        if ratio < 1.0 - PERIOD_TOLERANCE or abs(ratio - round(ratio)) > PERIOD_TOLERANCE * ratio:
            raise ConfigError(
                f"policy_dt={policy_dt} s is not a whole number of the {rate_hz:g} Hz loop's periods "
                f"({ratio:.4g}); set rate_hz to a multiple of {1 / policy_dt:g} Hz"
            )
        return float(policy_dt), f"policy_dt {policy_dt:g} s = {round(ratio)} x the {rate_hz:g} Hz loop period"

    dt = pre.run("control period", "actions replayed faster or slower than the policy was trained at", period)

    def cameras() -> tuple[None, str]:
        published = {c.name: (c.height, c.width) for c in config.cameras}
        for name, h, w in inputs.cameras:
            if name not in published:
                raise ConfigError(
                    f"the policy reads camera {name!r} ({w}x{h}); the robot config has {sorted(published)}"
                )
            if published[name] != (h, w):
                ph, pw = published[name]
                raise ConfigError(
                    f"camera {name!r}: the policy was trained on {w}x{h}, the robot config gives {pw}x{ph}"
                )
        return None, ", ".join(f"{n} {w}x{h}" for n, h, w in inputs.cameras) or "the policy reads no camera"

    pre.run("cameras", "a policy looking at the wrong camera or at a resized image", cameras)
    pre.run("safety config", "limits looser than the arm's own", lambda: check_safety_config(config, robot, rate_hz))
    return CheckpointFacts(directory, manifest, dt or 0.0, tuple(inputs.cameras))


def check_safety_config(config: ServerConfig, robot: Arm, rate_hz: float) -> tuple[None, str]:
    """The robot server's safety section, validated against the arm's spec: scales in (0, 1], a position margin
    that leaves every joint a range, a workspace box with lower < upper (m, base frame)."""
    from rcs.control.task import device_kind

    safety = device_kind(robot).safety_from(robot, rate_hz, dict(config.safety))
    spec = robot.spec
    span = np.asarray(spec.upper, dtype=float) - np.asarray(spec.lower, dtype=float)
    narrow = [n for n, s in zip(spec.joint_names, span, strict=True) if 2 * safety.position_margin >= s]
    if narrow:
        raise ConfigError(f"position_margin={safety.position_margin} rad leaves no range for joints {narrow}")
    box = safety.workspace
    if box is not None and not all(lo < hi for lo, hi in zip(box.lower, box.upper, strict=True)):
        raise ConfigError(f"workspace lower {list(box.lower)} must be below upper {list(box.upper)} (m)")
    where = "none" if box is None else f"{list(box.lower)} .. {list(box.upper)} m"
    return None, (
        f"velocity_scale {safety.velocity_scale:g}, acceleration_scale {safety.acceleration_scale:g}, "
        f"position_margin {safety.position_margin:g} rad, workspace {where}"
    )


def calibration_detail(robot: Any) -> str:
    """What the connected robot's calibration is: a lerobot calibration file its driver checked against the
    servos at connect, a simulator's model, or the vendor's factory calibration."""
    from rcs.devices import Simulated

    path = getattr(robot, "calibration_file", None)
    if path is not None:
        return f"{path} (arm_id {getattr(robot, 'arm_id', '?')}) matches the servos' registers"
    if isinstance(robot, Simulated):
        return "simulated: the model is the calibration"
    return "factory calibrated (the driver has no user calibration)"
