"""Hardware-in-the-loop PX4: an emulated PX4 autopilot speaking MAVLink 2 over UDP, flying a simulated quadrotor.

The emulator is its own process, as the autopilot is its own machine::

    python -m hardware.emulators.px4 [--listen 127.0.0.1:0 | --connect 127.0.0.1:14540] [--robot sim/crazyflie]
        [--sysid 1] [--telemetry-hz 100] [--offboard-loss-action land|hold] [--control ipc://...]

prints one JSON line ``{"ready": true, "address": "host:port", "control": "ipc://...", "boot_time": s}`` and
serves until SIGTERM/SIGINT. ``--connect`` behaves as PX4 SITL's offboard link (it sends to the companion's port,
14540 by default, and answers whoever talks to it); ``--listen`` binds a UDP port (``0``: any free one, named in
the ready line) for a driver connecting with ``udpout:host:port``. The MAVLink side (:mod:`.mavlink.server`) and
PX4's behaviour (:mod:`.mavlink.firmware`) are documented there; the physics is
:class:`hardware.emulators.vehicle.RealtimeVehicle` (``--robot``: any registered simulated quadrotor).

The control channel (ZeroMQ REQ/REP on ``control``, JSON ``{"cmd": ...}``) is for tests only: ``state`` (ground
truth in rcs frames plus the PX4 mode), ``hold`` (a hand carries the vehicle: position ENU m, quaternion wxyz FLU in
ENU, velocity ENU m/s), ``release``, ``setpoint_timing`` (monotonic times the newest setpoint arrived and was first
used). :class:`Px4Emulator` starts the process and wraps the channel (:class:`rcs.emulator.VehicleEmulator`);
:func:`start_px4` is the registry factory (``rcs.emulators`` ``hw/px4``).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hardware.emulators.control import ControlServer
from hardware.emulators.process import EmulatorClient, serve_emulator
from hardware.emulators.vehicle import state_from_json, state_to_json
from rcs.errors import ConfigError
from rcs.types import QuadrotorState

log = logging.getLogger(__name__)

ROBOT = "hw/px4"
#: SCHED_FIFO priority of the emulator process where permitted (as the SO-101 emulator): an autopilot answers
#: whatever load the companion computer is under.
EMULATOR_FIFO_PRIORITY = 70


# ------------------------------------------------------------------------------------------------------------
# The emulator process
# ------------------------------------------------------------------------------------------------------------
class Px4Process:
    """Inside the emulator process: physics thread, firmware, MAVLink thread, control channel."""

    def __init__(self, args: argparse.Namespace, control: str) -> None:
        from hardware.emulators.mavlink.firmware import Px4Firmware, Px4Params
        from hardware.emulators.mavlink.server import MavlinkServer
        from hardware.emulators.vehicle import RealtimeVehicle
        from hardware.px4.protocol import MAV_COMP_ID_AUTOPILOT1, open_link

        params = Px4Params(
            offboard_loss_action=args.offboard_loss_action,
            com_of_loss_t=args.com_of_loss_t,
            fd_fail_deg=args.fd_fail_deg,
            gf_max_hor_dist=args.gf_max_hor_dist,
        )
        self.vehicle = RealtimeVehicle(args.robot, on_tick=self._on_tick)
        self.firmware = Px4Firmware(self.vehicle.robot, params)
        device = f"udpin:{args.listen}" if args.listen else f"udpout:{args.connect}"
        # udp_timeout: stop sending to a driver that has been silent for 2 s (its successor gets the replies)
        conn = open_link(device, args.sysid, MAV_COMP_ID_AUTOPILOT1, udp_timeout=2.0)
        host, port = conn.port.getsockname()
        self.address = f"{host}:{port}" if args.listen else args.connect
        self.boot_time = time.monotonic()
        self.server = MavlinkServer(
            conn, self.firmware, self.vehicle.lock, args.sysid, args.telemetry_hz, self.boot_time
        )
        self._control = ControlServer(control, self._handle, name="px4-control")

    def _on_tick(self, robot: Any, sim_time: float) -> None:
        fw = getattr(self, "firmware", None)
        if fw is not None:
            fw.tick(robot, sim_time)

    def start(self) -> None:
        self.vehicle.start()
        self.server.start()
        self._control.start()

    def close(self) -> None:
        self._control.close()
        self.server.close()
        self.vehicle.close()

    def _handle(self, request: Mapping[str, Any]) -> dict[str, Any]:
        from hardware.px4.protocol import mode_name

        cmd = request.get("cmd")
        fw = self.firmware
        if self.vehicle.error is not None:
            raise ValueError(f"physics stopped: {self.vehicle.error}")
        if cmd == "state":
            with self.vehicle.lock:
                s = fw.robot.read()
                return {
                    **state_to_json(s),
                    "mode": mode_name(fw.main, fw.sub),
                    "failsafe": fw.failsafe,
                    "bad_packets": self.server.bad_packets,
                }
        if cmd == "hold":
            vectors = {}
            for key, n in (("position", 3), ("quaternion", 4), ("velocity", 3)):
                v = np.asarray(request.get(key, [0.0] * n if key == "velocity" else None), dtype=float)
                if v.shape != (n,) or not np.isfinite(v).all():
                    raise ValueError(f"{key}: expected {n} finite numbers")
                vectors[key] = v
            if not 0.9 < np.linalg.norm(vectors["quaternion"]) < 1.1:
                raise ValueError("quaternion: expected a unit quaternion (w, x, y, z)")
            with self.vehicle.lock:
                fw.hold_by_hand(vectors["position"], vectors["quaternion"], vectors["velocity"])
            return {}
        if cmd == "release":
            with self.vehicle.lock:
                fw.release()
            return {}
        if cmd == "setpoint_timing":
            with self.vehicle.lock:
                return {"received": fw.setpoint_received_at, "applied": fw.setpoint_applied_at}
        raise ValueError(f"cmd={cmd!r}: expected state, hold, release or setpoint_timing")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the emulator process (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m hardware.emulators.px4", description=__doc__.split("\n")[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--listen", help="host:port to bind (port 0: any free port)")
    where.add_argument("--connect", help="host:port of the companion (PX4 SITL's offboard link: 127.0.0.1:14540)")
    parser.add_argument("--robot", default="sim/crazyflie", help="registered simulated quadrotor")
    parser.add_argument("--sysid", type=int, default=1)
    parser.add_argument("--telemetry-hz", type=float, default=100.0)
    parser.add_argument("--offboard-loss-action", choices=("land", "hold"), default="land")
    parser.add_argument("--com-of-loss-t", type=float, default=1.0, help="COM_OF_LOSS_T (s)")
    parser.add_argument("--fd-fail-deg", type=float, default=60.0, help="FD_FAIL_R/P (deg): arming tilt limit")
    parser.add_argument("--gf-max-hor-dist", type=float, default=10.0, help="GF_MAX_HOR_DIST (m, 0: off)")
    parser.add_argument("--control", default=None, help="ZeroMQ endpoint of the control channel (default: ipc)")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    if not args.listen and not args.connect:
        args.connect = "127.0.0.1:14540"
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    sys.setswitchinterval(0.0005)  # the MAVLink thread answers between physics steps, not every 5 ms
    from rcs.control.priorities import enable_fifo

    fifo, why = enable_fifo(EMULATOR_FIFO_PRIORITY)
    if not fifo:
        log.warning("px4 emulator: %s", why)

    def start(control: str) -> Px4Process:
        px4 = Px4Process(args, control)
        px4.start()
        return px4

    return serve_emulator(
        "px4",
        args.control,
        start,
        lambda px4: {"address": px4.address, "boot_time": px4.boot_time},
        lambda px4: px4.vehicle.error,
    )


# ------------------------------------------------------------------------------------------------------------
# The client (test side)
# ------------------------------------------------------------------------------------------------------------
class Px4Emulator(EmulatorClient):
    """A running PX4 emulator process (implements :class:`rcs.emulator.VehicleEmulator`), listening on a free UDP
    port of 127.0.0.1; :attr:`robot_config` connects ``hw/px4`` to it (``udpout:127.0.0.1:<port>``).

    Args:
        robot: registered simulated quadrotor behind it.
        offboard_loss_action: ``"land"`` or ``"hold"`` when offboard setpoints stop.
        telemetry_hz: attitude and local position rate (Hz).
        com_of_loss_t: s, PX4's offboard loss timeout.
        ready_timeout: seconds to wait for the ready line.
        request_timeout: seconds to wait for a control reply.
        python: interpreter for the process (default: this one).
    """

    robot = ROBOT

    def __init__(
        self,
        robot: str = "sim/crazyflie",
        offboard_loss_action: str = "land",
        telemetry_hz: float = 100.0,
        com_of_loss_t: float = 1.0,
        ready_timeout: float = 60.0,
        request_timeout: float = 20.0,
        python: str | None = None,
    ) -> None:
        if offboard_loss_action not in ("land", "hold"):
            raise ConfigError(f"{ROBOT} emulator: offboard_loss_action={offboard_loss_action!r}: expected land or hold")
        args = [
            "--listen",
            "127.0.0.1:0",
            "--robot",
            robot,
            "--offboard-loss-action",
            offboard_loss_action,
            "--telemetry-hz",
            str(float(telemetry_hz)),
            "--com-of-loss-t",
            str(float(com_of_loss_t)),
        ]
        super().__init__(
            f"{ROBOT} emulator", "hardware.emulators.px4", args, ("address",), ready_timeout, request_timeout, python
        )
        self.address: str = self.ready["address"]
        self.boot_time: float = float(self.ready["boot_time"])
        self.robot_config: dict[str, Any] = {"connection": f"udpout:{self.address}"}

    def state(self) -> dict[str, Any]:
        """Ground truth (rcs frames, lists) plus ``mode`` (PX4's name), ``failsafe`` and ``bad_packets``."""
        return self._request("state")

    def vehicle_state(self) -> QuadrotorState:
        """Ground truth from the physics: world ENU, body FLU (see :class:`rcs.types.QuadrotorState`)."""
        return state_from_json(self.state())

    def hold(
        self, position: Sequence[float], quaternion: Sequence[float], velocity: Sequence[float] = (0, 0, 0)
    ) -> None:
        """A hand carries the vehicle from ``position`` (ENU m) at ``velocity`` (ENU m/s), orientation
        ``quaternion`` (w, x, y, z, FLU body in ENU), until :meth:`release`."""
        self._request(
            "hold",
            position=[float(x) for x in position],
            quaternion=[float(x) for x in quaternion],
            velocity=[float(x) for x in velocity],
        )

    def release(self) -> None:
        """The hand lets go (the vehicle keeps its pose at rest, then physics takes over)."""
        self._request("release")

    def setpoint_timing(self) -> tuple[float, float]:
        """(monotonic s when the newest setpoint arrived, when the vehicle first used it; -inf if never)."""
        r = self._request("setpoint_timing")
        return float(r["received"]), float(r["applied"])


def start_px4(**config: Any) -> Px4Emulator:
    """Registry factory ``hw/px4`` (group ``rcs.emulators``): start an emulated PX4 flying ``sim/crazyflie``;
    keywords go to :class:`Px4Emulator`."""
    allowed = {
        "robot",
        "offboard_loss_action",
        "telemetry_hz",
        "com_of_loss_t",
        "ready_timeout",
        "request_timeout",
        "python",
    }
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise ConfigError(f"{ROBOT} emulator: unknown option {unknown[0]!r}; accepted: {', '.join(sorted(allowed))}")
    return Px4Emulator(**config)


if __name__ == "__main__":
    sys.exit(main())
