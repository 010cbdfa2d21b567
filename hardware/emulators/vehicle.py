"""The physics behind a multirotor emulator: a simulated vehicle stepped in real time on its own thread.

Both flight-controller emulators (Crazyflie over CRTP, PX4 over MAVLink) stand a simulated multirotor behind a
wire protocol. This module owns the part they share: wall-clock pacing of the physics, one lock around the
simulated device, and ground truth in the rcs frames (world ENU, body FLU). Each emulator keeps its own firmware
behaviour (setpoint timeouts, modes, failsafes) and calls the simulated :class:`rcs.devices.Quadrotor` commands
under :attr:`RealtimeVehicle.lock`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from rcs.registry import make_robot
from rcs.types import QuadrotorState

log = logging.getLogger(__name__)

#: s: a physics thread this far behind the wall clock (a stalled host) drops the time instead of catching up,
#: so that the vehicle never runs a burst of steps faster than real time.
MAX_CATCH_UP_S = 0.05


class RealtimeVehicle:
    """A simulated multirotor (``make_robot(robot, **config)``, default ``sim/crazyflie``), connected and
    advanced by ``period`` s of simulated time per ``period`` s of wall-clock time on a daemon thread.

    Every access to :attr:`robot` from another thread must hold :attr:`lock`. ``on_tick``, if given, runs on the
    physics thread under the lock before each step (a firmware's own periodic work: setpoint timeouts,
    failsafes), with the simulated time (s).

    Args:
        robot: registered simulated quadrotor.
        period: s of simulated (and wall-clock) time per physics-thread tick.
        on_tick: firmware hook, called as ``on_tick(robot, sim_time)`` under the lock.
        config: keyword config of the simulated robot.
    """

    def __init__(
        self,
        robot: str = "sim/crazyflie",
        period: float = 0.002,
        on_tick: Callable[[Any, float], None] | None = None,
        **config: Any,
    ) -> None:
        self.robot = make_robot(robot, **config)
        self.robot.connect()
        self.period = float(period)
        self.lock = threading.RLock()
        self._on_tick = on_tick
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vehicle-physics", daemon=True)
        self.error: BaseException | None = None  #: what stopped the physics thread, if anything did

    def start(self) -> None:
        """Start stepping the physics in real time."""
        self._thread.start()

    def state(self) -> QuadrotorState:
        """Ground truth (world ENU, body FLU)."""
        with self.lock:
            return self.robot.read()

    @property
    def sim_time(self) -> float:
        """Simulated time (s)."""
        with self.lock:
            return float(self.robot.sim_time)

    def _run(self) -> None:
        t0, ticks = time.monotonic(), 0
        try:
            while not self._stop.is_set():
                due = int((time.monotonic() - t0) / self.period)
                if (due - ticks) * self.period > MAX_CATCH_UP_S:
                    log.warning("vehicle physics %.0f ms late, dropping time", (due - ticks) * self.period * 1e3)
                    t0 += (due - ticks - 1) * self.period
                    due = ticks + 1
                while ticks < due:
                    with self.lock:
                        if self._on_tick is not None:
                            self._on_tick(self.robot, float(self.robot.sim_time))
                        self.robot.advance(self.period)
                    ticks += 1
                self._stop.wait(max(t0 + (ticks + 1) * self.period - time.monotonic(), 0.0))
        except BaseException as e:  # the emulator reports it on its control channel and exits
            self.error = e
            log.error("vehicle physics stopped: %s", e)

    def close(self) -> None:
        """Stop the physics thread and disconnect the simulated vehicle (idempotent)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
        with self.lock:
            self.robot.close()


def state_to_json(state: QuadrotorState) -> dict[str, Any]:
    """A :class:`QuadrotorState` as JSON-able lists (the side channel's ground truth; same frames and units)."""
    return {
        "timestamp": float(state.timestamp),
        "position": np.asarray(state.position).tolist(),
        "quaternion": np.asarray(state.quaternion).tolist(),
        "linear_velocity": np.asarray(state.linear_velocity).tolist(),
        "angular_velocity": np.asarray(state.angular_velocity).tolist(),
        "motor_thrusts": np.asarray(state.motor_thrusts).tolist(),
        "armed": bool(state.armed),
    }


def state_from_json(data: Mapping[str, Any]) -> QuadrotorState:
    """The inverse of :func:`state_to_json`."""
    return QuadrotorState(
        timestamp=float(data["timestamp"]),
        position=np.asarray(data["position"], dtype=np.float64),
        quaternion=np.asarray(data["quaternion"], dtype=np.float64),
        linear_velocity=np.asarray(data["linear_velocity"], dtype=np.float64),
        angular_velocity=np.asarray(data["angular_velocity"], dtype=np.float64),
        motor_thrusts=np.asarray(data["motor_thrusts"], dtype=np.float64),
        armed=bool(data["armed"]),
    )
