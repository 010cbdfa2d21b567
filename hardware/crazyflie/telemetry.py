"""The Crazyflie's state from its log subsystem, assembled into :class:`rcs.types.QuadrotorState` samples.

Three log blocks at one period (a log data packet carries at most 26 bytes of values):

=====  =========================================================================  =====
block  variables (firmware units -> fetched as)                                   bytes
=====  =========================================================================  =====
pose   ``stateEstimate.x/y/z`` (m), ``stateEstimate.vx/vy/vz`` (m/s, world)        24
att    ``stateEstimate.qx/qy/qz/qw``, ``gyro.x/y/z`` (deg/s, as FP16),              24
       ``supervisor.info`` (bit field)
power  ``motor.m1..m4`` (PWM ratio 0..65535, stored uint32, fetched uint16),        12
       ``pm.vbat`` (V)
=====  =========================================================================  =====

A sample is complete when the three blocks have arrived with firmware time stamps within half a period of each
other (the firmware runs each block on its own timer, so they may differ by a tick); its capture time is the host
monotonic time when the last of them arrived.

Frames: the Crazyflie's world frame is x, y, z with z up (with the usual setup, x forward at take-off, y left:
ENU-like, rcs's world frame as is); its body frame is x forward, y left, z up (FLU, rcs's body frame);
``stateEstimate.q*`` is the world-from-body quaternion; ``gyro`` is body rates (deg/s -> rad/s). Motor thrust is
estimated as ``ratio / 65535 * max_thrust`` (linear: the real PWM -> thrust curve is not, so
``motor_thrusts`` is indicative only).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from rcs.spec import QuadrotorSpec
from rcs.types import QuadrotorState

BLOCKS: dict[str, tuple[tuple[str, str], ...]] = {
    "pose": tuple((f"stateEstimate.{n}", "float") for n in ("x", "y", "z", "vx", "vy", "vz")),
    "att": (
        *((f"stateEstimate.q{n}", "float") for n in ("x", "y", "z", "w")),
        *((f"gyro.{n}", "FP16") for n in ("x", "y", "z")),
        ("supervisor.info", "uint16_t"),
    ),
    "power": (*((f"motor.m{i}", "uint16_t") for i in range(1, 5)), ("pm.vbat", "float")),
}
SUPERVISOR_ARMED_BIT = 1
_WRAP = 1 << 24  # the log time stamp is 24 bits of milliseconds


def _ms_diff(a: int, b: int) -> int:
    """a - b (ms) across the 24-bit wrap."""
    d = (a - b) % _WRAP
    return d - _WRAP if d >= _WRAP // 2 else d


@dataclass(frozen=True)
class Sample:
    """One assembled sample: the state, the firmware time stamp (ms), the battery voltage (V), the supervisor
    bit field and a sequence number (1, 2, ...)."""

    state: QuadrotorState
    firmware_ms: int
    vbat: float
    supervisor: int
    seq: int


class Telemetry:
    """Assembles log blocks into samples; thread-safe (cflib calls :meth:`on_block` from its receive thread).

    Args:
        spec: the vehicle (rotor count and max thrust for ``motor_thrusts``).
        period_ms: the log period (10..2550 ms, multiples of 10).
    """

    def __init__(self, spec: QuadrotorSpec, period_ms: int) -> None:
        self.spec = spec
        self.period_ms = int(period_ms)
        self._cond = threading.Condition()
        self._latest: dict[str, tuple[int, dict[str, float]]] = {}
        self._last_ms: int | None = None
        self.sample: Sample | None = None  #: the newest complete sample

    def log_configs(self) -> list[Any]:
        """cflib ``LogConfig`` objects for :data:`BLOCKS`, their data callbacks wired to :meth:`on_block`."""
        from cflib.crazyflie.log import LogConfig

        configs = []
        for name, variables in BLOCKS.items():
            lc = LogConfig(name=name, period_in_ms=self.period_ms)
            for var, fetch in variables:
                lc.add_variable(var, fetch)
            lc.data_received_cb.add_callback(self._callback(name))
            configs.append(lc)
        return configs

    def _callback(self, name: str) -> Callable[[int, dict[str, float], Any], None]:
        def cb(timestamp: int, data: dict[str, float], _config: Any) -> None:
            self.on_block(name, timestamp, data)

        return cb

    def on_block(self, name: str, timestamp: int, data: dict[str, float]) -> None:
        """One log block's values arrived (firmware time stamp ms)."""
        now = time.monotonic()
        with self._cond:
            self._latest[name] = (int(timestamp), data)
            if len(self._latest) < len(BLOCKS):
                return
            stamps = [ts for ts, _ in self._latest.values()]
            newest = max(stamps, key=lambda ts: _ms_diff(ts, stamps[0]))
            # Each block runs on its own firmware timer, started by its own START command, so their phases differ
            # by however long apart the STARTs arrived (a few ms over a loaded link, any amount up to a period). A
            # set is one packet of each block within one period, each newer than the previous sample's newest.
            if any(_ms_diff(newest, ts) >= self.period_ms for ts in stamps):
                return  # a block has not reported in this period yet
            if self._last_ms is not None and any(_ms_diff(ts, self._last_ms) <= 0 for ts in stamps):
                return  # a block's newest packet was already in the previous sample
            self._last_ms = newest
            values: dict[str, float] = {}
            for _, d in self._latest.values():
                values.update(d)
            seq = 1 if self.sample is None else self.sample.seq + 1
            self.sample = self._to_sample(values, newest, now, seq)
            self._cond.notify_all()

    def _to_sample(self, v: dict[str, float], firmware_ms: int, now: float, seq: int) -> Sample:
        q = np.array([v["stateEstimate.qw"], v["stateEstimate.qx"], v["stateEstimate.qy"], v["stateEstimate.qz"]])
        norm = float(np.linalg.norm(q))
        q = q / norm if norm > 0 else np.array([1.0, 0.0, 0.0, 0.0])
        if q[0] < 0:
            q = -q
        ratios = np.array([v[f"motor.m{i}"] for i in range(1, self.spec.num_rotors + 1)], dtype=float) / 65535.0
        bits = int(v["supervisor.info"])
        state = QuadrotorState(
            timestamp=now,
            position=np.array([v["stateEstimate.x"], v["stateEstimate.y"], v["stateEstimate.z"]], dtype=float),
            quaternion=q,
            linear_velocity=np.array(
                [v["stateEstimate.vx"], v["stateEstimate.vy"], v["stateEstimate.vz"]], dtype=float
            ),
            angular_velocity=np.radians([v["gyro.x"], v["gyro.y"], v["gyro.z"]]).astype(float),
            motor_thrusts=ratios * self.spec.max_thrust,
            armed=bool(bits >> SUPERVISOR_ARMED_BIT & 1),
        )
        return Sample(state, firmware_ms, float(v["pm.vbat"]), bits, seq)

    def wait_newer(self, seq: int, timeout: float) -> Sample | None:
        """The newest sample if its ``seq`` is above ``seq``, waiting up to ``timeout`` s for one; else ``None``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.sample is None or self.sample.seq <= seq:
                left = deadline - time.monotonic()
                if left <= 0 or not math.isfinite(left):
                    return None
                self._cond.wait(left)
            return self.sample

    def last_capture(self) -> float | None:
        """Host monotonic time (s) of the newest sample, or ``None``."""
        with self._cond:
            return None if self.sample is None else self.sample.state.timestamp
