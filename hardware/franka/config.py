"""Keyword config of the ``hw/panda`` driver, validated once, and the real-time decision.

Every bad value is a one-line :class:`rcs.errors.ConfigError` naming the key and its limit.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rcs.errors import ConfigError
from rcs.validation import LimitPolicy, limit_policy_of

logger = logging.getLogger(__name__)

DEVICE = "hw/panda"
#: the kernel reports PREEMPT_RT here ("1"); absent or "0" on a stock kernel.
REALTIME_FLAG = Path("/sys/kernel/realtime")
REALTIME_MODES = ("auto", "enforce", "ignore")
KEYS = (
    "host",
    "realtime",
    "dynamics_factor",
    "auto_recover",
    "limit_policy",
    "gripper",
    "gripper_speed",
    "gripper_force",
    "stiffness",
    "damping",
)
#: libfranka's joint impedance example values for the Panda (N m/rad, N m s/rad), joint1..joint7.
DEFAULT_STIFFNESS = (600.0, 600.0, 600.0, 600.0, 250.0, 150.0, 50.0)
DEFAULT_DAMPING = (50.0, 50.0, 50.0, 20.0, 20.0, 20.0, 10.0)
#: upper bounds of the gains: 5x the defaults' largest; stiffer springs with franky's 1 kHz loop on a
#: non-real-time host risk torque chatter, and the stack never needs them to track its streams.
MAX_STIFFNESS = 3000.0  # N m/rad
MAX_DAMPING = 250.0  # N m s/rad


@dataclass(frozen=True)
class FrankaConfig:
    """Validated driver config.

    Attributes:
        host: the robot's FCI address (or the emulator's loopback address).
        realtime: ``"auto"`` (enforce real-time scheduling on a PREEMPT_RT kernel, else run without it and
            warn), ``"enforce"`` (fail on a stock kernel, as libfranka does) or ``"ignore"``.
        dynamics_factor: speed scale in (0, 1]: the streamed reference moves at most this fraction of the
            Panda's maximum joint velocities, and franky's own motions (the stop at close) are scaled by it.
            0.1 (10 %) by default, for first runs.
        auto_recover: run libfranka's automatic error recovery after a reflex (the fault is still raised
            once); off by default, so a collision stops the arm until :meth:`FrankaArm.recover`.
        limit_policy: ``"raise"`` or ``"clip"`` for out-of-limit targets (checked before anything is sent).
        gripper: whether a Franka Hand is attached (connects to it on the same host).
        gripper_speed: m/s, finger speed of gripper moves, in (0, 0.1].
        gripper_force: N, grasp force when closing, in (0, 70] (the Hand's continuous force).
        stiffness: (7,) N m/rad, joint stiffness of the impedance controller that tracks the streamed targets,
            each in (0, 3000]; default libfranka's example values 600, 600, 600, 600, 250, 150, 50.
        damping: (7,) N m s/rad, its joint damping, each in (0, 250]; default 50, 50, 50, 20, 20, 20, 10.
    """

    host: str
    realtime: str = "auto"
    dynamics_factor: float = 0.1
    auto_recover: bool = False
    limit_policy: LimitPolicy = LimitPolicy.RAISE
    gripper: bool = True
    gripper_speed: float = 0.05
    gripper_force: float = 20.0
    stiffness: tuple[float, ...] = DEFAULT_STIFFNESS
    damping: tuple[float, ...] = DEFAULT_DAMPING


def _number(key: str, value: Any, low: float, high: float) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{DEVICE}: {key}={value!r} must be a number in ({low:g}, {high:g}]") from None
    if not (math.isfinite(x) and low < x <= high):
        raise ConfigError(f"{DEVICE}: {key}={value!r} must be in ({low:g}, {high:g}]")
    return x


def _gains(key: str, value: Any, default: tuple[float, ...], high: float, unit: str) -> tuple[float, ...]:
    """Seven per-joint gains, each finite and in (0, high]."""
    if value is None:
        return default
    try:
        if isinstance(value, (str, bytes)):
            raise TypeError(key)
        values = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"{DEVICE}: {key}={value!r} must be 7 numbers in (0, {high:g}] {unit}") from None
    if len(values) != 7:
        raise ConfigError(f"{DEVICE}: {key} has {len(values)} values, needs 7 (joint1..joint7) in {unit}")
    for i, v in enumerate(values):
        if not (math.isfinite(v) and 0.0 < v <= high):
            raise ConfigError(f"{DEVICE}: {key} of joint{i + 1} is {v:g}, must be in (0, {high:g}] {unit}")
    return values


def _flag(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ConfigError(f"{DEVICE}: {key}={value!r} must be true or false")


def parse_config(config: Mapping[str, Any]) -> FrankaConfig:
    """Validate the keyword config of ``make_robot("hw/panda", **config)``."""
    unknown = sorted(set(config) - set(KEYS))
    if unknown:
        raise ConfigError(f"{DEVICE}: unknown option(s) {', '.join(unknown)}; accepted: {', '.join(KEYS)}")
    host = config.get("host")
    if not isinstance(host, str) or not host.strip():
        raise ConfigError(f"{DEVICE}: host={host!r} is required: the robot's FCI address, e.g. '172.16.0.2'")
    realtime = config.get("realtime", "auto")
    if realtime not in REALTIME_MODES:
        raise ConfigError(f"{DEVICE}: realtime={realtime!r} must be one of {', '.join(REALTIME_MODES)}")
    policy = limit_policy_of(DEVICE, config.get("limit_policy", LimitPolicy.RAISE))
    return FrankaConfig(
        host=host.strip(),
        realtime=realtime,
        dynamics_factor=_number("dynamics_factor", config.get("dynamics_factor", 0.1), 0.0, 1.0),
        auto_recover=_flag("auto_recover", config.get("auto_recover", False)),
        limit_policy=policy,
        gripper=_flag("gripper", config.get("gripper", True)),
        gripper_speed=_number("gripper_speed", config.get("gripper_speed", 0.05), 0.0, 0.1),
        gripper_force=_number("gripper_force", config.get("gripper_force", 20.0), 0.0, 70.0),
        stiffness=_gains("stiffness", config.get("stiffness"), DEFAULT_STIFFNESS, MAX_STIFFNESS, "N m/rad"),
        damping=_gains("damping", config.get("damping"), DEFAULT_DAMPING, MAX_DAMPING, "N m s/rad"),
    )


def kernel_is_realtime(flag: Path = REALTIME_FLAG) -> bool:
    """Whether the running kernel is PREEMPT_RT (``/sys/kernel/realtime`` reads ``1``)."""
    try:
        return flag.read_text().strip() == "1"
    except OSError:
        return False


def realtime_enforced(mode: str, flag: Path = REALTIME_FLAG) -> bool:
    """Decide whether franky must enforce real-time scheduling of its 1 kHz loop (``RealtimeConfig.Enforce``).

    ``auto`` enforces it on a PREEMPT_RT kernel; on any other kernel it logs a warning and runs without (the
    loop then competes with every other thread, and the robot may abort with
    ``communication_constraints_violation`` under load).
    """
    if mode == "enforce":
        return True
    if mode == "auto" and kernel_is_realtime(flag):
        return True
    reason = "realtime='ignore'" if mode == "ignore" else f"the kernel is not PREEMPT_RT ({flag} is not 1)"
    logger.warning(
        "%s: %s: franky's 1 kHz control loop runs without real-time scheduling (RealtimeConfig.Ignore); "
        "expect jitter and communication_constraints_violation reflexes under load",
        DEVICE,
        reason,
    )
    return False
