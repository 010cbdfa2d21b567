"""Hardware-in-the-loop Crazyflie 2.x: the firmware's CRTP services on cflib's UDP link, flying the MuJoCo Crazyflie.

The emulator is its own process, as the vehicle is its own machine::

    python -m hardware.emulators.crazyflie [--port 19850] [--host 127.0.0.1] [--control ipc://...]
        [--max-arm-tilt-deg 30] [--geofence xmin,ymin,zmin,xmax,ymax,zmax]

prints one JSON line ``{"ready": true, "uri": "udp://127.0.0.1:<port>", "port": N, "control": "..."}`` and serves
until SIGTERM/SIGINT. The host connects with cflib (``Crazyflie().open_link("udp://127.0.0.1:<port>")``): one
CRTP packet per UDP datagram (header byte + up to 30 bytes, cflib's ``udpdriver``); replies and log data go to
the sender of each request; log data to the host that last
started a log block. Empty or oversized datagrams and malformed packets are ignored (and
counted). What the emulated firmware answers and how setpoints map onto the simulated vehicle is in
:mod:`hardware.emulators.crtp.firmware`. Physics: :class:`hardware.emulators.vehicle.RealtimeVehicle`
(``sim/crazyflie``, 2 ms ticks), the firmware's loop running in its ``on_tick`` hook.

The control channel (ZeroMQ REQ/REP on ``control``, JSON ``{"cmd": ...}``) is for tests only: ``state`` (ground
truth in rcs frames), ``place`` (put the vehicle at a pose, e.g. tilted; motors stopped), ``stats`` (supervisor
and watchdog state, counters, the last setpoints and log packets with host monotonic times), ``restart`` (a
power cycle: unlocked, disarmed, log blocks and parameters reset, vehicle left where it is).
:class:`CrazyflieEmulator` starts the process and wraps the channel (it implements
:class:`rcs.emulator.VehicleEmulator`); :func:`start_crazyflie` is the registry factory (``rcs.emulators``
``hw/crazyflie``).
"""

from __future__ import annotations

import argparse
import logging
import math
import socket
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hardware.emulators.control import ControlServer
from hardware.emulators.process import EmulatorClient, serve_emulator
from hardware.emulators.vehicle import state_from_json, state_to_json
from rcs.errors import ConfigError
from rcs.types import QuadrotorState

log = logging.getLogger(__name__)

ROBOT = "hw/crazyflie"
EMULATOR_FIFO_PRIORITY = 70  # below the control loop's default (80), as the other emulators


# ------------------------------------------------------------------------------------------------------------
# The emulator process
# ------------------------------------------------------------------------------------------------------------
class CrazyflieProcess:
    """The emulated Crazyflie inside the emulator process: physics, firmware, UDP link and control channel."""

    def __init__(self, host: str, port: int, control: str, config: Any) -> None:
        from hardware.emulators.crtp import packets
        from hardware.emulators.crtp.firmware import Firmware
        from hardware.emulators.vehicle import RealtimeVehicle

        self._packets = packets
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.sock.settimeout(0.2)
        self.address = self.sock.getsockname()
        self._reply_to: tuple[str, int] | None = None  # sender of the packet being handled (link thread)
        self._stream_to: tuple[str, int] | None = None  # where log data goes: the host that last started a block
        self.vehicle = RealtimeVehicle("sim/crazyflie", on_tick=self._tick)
        self.firmware = Firmware(self.vehicle.robot, self._send, config)
        self.oversized = 0  #: datagrams ignored for their length (empty or longer than a CRTP packet)
        self._stop = threading.Event()
        self._link = threading.Thread(target=self._serve_link, name="crazyflie-link", daemon=True)

        self.control = control
        self._control = ControlServer(control, self._handle, name="crazyflie-control")

    def _tick(self, robot: Any, t: float) -> None:
        self.firmware.tick(robot, t)

    def start(self) -> None:
        self.vehicle.start()
        self._link.start()
        self._control.start()

    def close(self) -> None:
        self._stop.set()
        if self._link.is_alive():
            self._link.join(2)
        self._control.close()
        self.vehicle.close()
        self.sock.close()

    # -- link -------------------------------------------------------------------------------------------------
    def _send(self, packet: Any) -> None:
        # replies go to whoever asked; log data (sent from the physics thread) to the host that set up the blocks,
        # so a stray datagram from another socket does not divert the telemetry
        to = self._reply_to if threading.current_thread() is self._link else self._stream_to
        if to is None:
            return
        try:
            self.sock.sendto(packet.encode(), to)
        except OSError as e:  # the host went away: a radio out of range loses packets silently
            log.debug("send to %s failed: %s", to, e)

    def _serve_link(self) -> None:
        while not self._stop.is_set():
            try:
                datagram, sender = self.sock.recvfrom(2048)
            except TimeoutError:
                continue
            except OSError as e:  # e.g. ICMP port unreachable from a host that closed its socket
                log.debug("link receive: %s", e)
                continue
            packet = self._packets.decode(datagram)
            with self.vehicle.lock:
                if packet is None:
                    self.oversized += 1
                    continue
                self._reply_to = sender
                if packet.port == self._packets.LOG and packet.channel == 1 and packet.data[:1] == b"\x03":
                    self._stream_to = sender  # a log block started: its data goes to this host
                try:
                    self.firmware.handle(packet)
                except Exception as e:  # a firmware bug must not take the link down: drop the packet, say so
                    log.warning("crazyflie emulator: packet on port %d dropped: %s", packet.port, e)
                    self.firmware.malformed += 1

    # -- control channel --------------------------------------------------------------------------------------
    def _handle(self, request: Mapping[str, Any]) -> dict[str, Any]:
        cmd = request.get("cmd")
        fw = self.firmware
        if self.vehicle.error is not None:
            raise ValueError(f"the physics stopped: {self.vehicle.error}")
        if cmd == "state":
            with self.vehicle.lock:
                return {"state": state_to_json(self.vehicle.robot.read()), "time": fw.time}
        if cmd == "place":
            position = request.get("position", [0.0, 0.0, 0.0])
            quaternion = request.get("quaternion", [1.0, 0.0, 0.0, 0.0])
            with self.vehicle.lock:
                self.vehicle.robot.set_vehicle_state(
                    np.asarray(position, dtype=float), np.asarray(quaternion, dtype=float), np.zeros(3), np.zeros(3)
                )
            return {}
        if cmd == "restart":
            with self.vehicle.lock:
                fw.restart()
            return {}
        if cmd == "stats":
            with self.vehicle.lock:
                return {
                    "armed": fw.armed,
                    "locked": fw.locked,
                    "watchdog": fw.watchdog,
                    "bitfield": fw.bitfield(),
                    "malformed": fw.malformed,
                    "unsupported": fw.unsupported,
                    "oversized": self.oversized,
                    "log_blocks": {str(k): len(b.variables) for k, b in fw.logs.blocks.items()},
                    "params": dict(fw.params.values),
                    "log_toc_crc": fw.logs.toc.crc,
                    "setpoints": [list(x) for x in fw.setpoint_history],
                    "log_packets": [list(x) for x in fw.log_history],
                    "time": fw.time,
                }
        raise ValueError(f"cmd={cmd!r}: expected state, place, restart or stats")


def _geofence(text: str) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    values = [float(v) for v in text.split(",")]
    if (
        len(values) != 6
        or not all(math.isfinite(v) for v in values)
        or any(values[i] >= values[i + 3] for i in range(3))
    ):
        raise argparse.ArgumentTypeError(f"--geofence {text!r}: expected xmin,ymin,zmin,xmax,ymax,zmax with min < max")
    return (values[0], values[1], values[2]), (values[3], values[4], values[5])


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the emulator process (see the module docstring)."""
    from hardware.emulators.crtp.firmware import FirmwareConfig

    parser = argparse.ArgumentParser(prog="python -m hardware.emulators.crazyflie", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="UDP port (0: any free port; cflib scans 19850-19859)")
    parser.add_argument("--control", default=None, help="ZeroMQ endpoint of the control channel (default: ipc)")
    parser.add_argument("--max-arm-tilt-deg", type=float, default=30.0, help="arming refused above this tilt")
    parser.add_argument("--geofence", type=_geofence, default=_geofence("-5,-5,-0.5,5,5,3"), help="m, world")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    sys.setswitchinterval(0.0005)  # the link thread answers between physics ticks, not 5 ms later
    from rcs.control.priorities import enable_fifo

    fifo, why = enable_fifo(EMULATOR_FIFO_PRIORITY)
    if not fifo:
        log.warning("crazyflie emulator: %s; packets may be late on a loaded machine", why)
    config = FirmwareConfig(max_arm_tilt=math.radians(args.max_arm_tilt_deg), geofence=args.geofence)

    def start(control: str) -> CrazyflieProcess:
        vehicle = CrazyflieProcess(args.host, args.port, control, config)
        vehicle.start()
        return vehicle

    def ready(vehicle: CrazyflieProcess) -> dict[str, Any]:
        host, port = vehicle.address
        return {"uri": f"udp://{host}:{port}", "port": port}

    return serve_emulator("crazyflie", args.control, start, ready, lambda vehicle: vehicle.vehicle.error)


# ------------------------------------------------------------------------------------------------------------
# The client (test side)
# ------------------------------------------------------------------------------------------------------------
class CrazyflieEmulator(EmulatorClient):
    """A running Crazyflie emulator process (implements :class:`rcs.emulator.VehicleEmulator`).

    Args:
        port: UDP port (0: a free one).
        max_arm_tilt_deg: the supervisor refuses to arm above this tilt (deg).
        geofence: (xmin, ymin, zmin, xmax, ymax, zmax) m, world: arming is refused outside it.
        ready_timeout: seconds to wait for the process's ready line.
        request_timeout: seconds to wait for a control reply.
        python: interpreter for the process (default: this one).

    Attributes:
        uri: cflib URI of the emulated vehicle (``udp://127.0.0.1:<port>``).
        robot_config: ``{"uri": uri}``: the config of ``make_robot("hw/crazyflie", ...)`` that connects to it.
    """

    robot = ROBOT

    def __init__(
        self,
        port: int = 0,
        max_arm_tilt_deg: float = 30.0,
        geofence: Sequence[float] = (-5.0, -5.0, -0.5, 5.0, 5.0, 3.0),
        ready_timeout: float = 60.0,
        request_timeout: float = 20.0,
        python: str | None = None,
    ) -> None:
        if len(geofence) != 6:
            raise ConfigError(f"{ROBOT} emulator: geofence={list(geofence)!r}: expected xmin,ymin,zmin,xmax,ymax,zmax")
        args = [
            "--port",
            str(int(port)),
            "--max-arm-tilt-deg",
            str(float(max_arm_tilt_deg)),
            "--geofence=" + ",".join(str(float(v)) for v in geofence),  # "=": the value starts with "-"
        ]
        super().__init__(
            f"{ROBOT} emulator", "hardware.emulators.crazyflie", args, ("uri",), ready_timeout, request_timeout, python
        )
        self.uri: str = self.ready["uri"]
        self.port: int = int(self.ready["port"])
        self.robot_config: dict[str, Any] = {"uri": self.uri}

    def vehicle_state(self) -> QuadrotorState:
        """Ground truth from the physics in rcs frames (world ENU, body FLU); ``timestamp`` is the emulator's
        monotonic clock (one clock per host)."""
        return state_from_json(self._request("state")["state"])

    def place(self, position: Sequence[float], quaternion: Sequence[float] = (1.0, 0.0, 0.0, 0.0)) -> None:
        """Put the vehicle at ``position`` (m, world) with ``quaternion`` (w, x, y, z), at rest, motors stopped
        (e.g. tilted on the ground, to test the supervisor)."""
        self._request("place", position=[float(v) for v in position], quaternion=[float(v) for v in quaternion])

    def restart(self) -> None:
        """Power-cycle the firmware: unlocked, disarmed, log blocks and parameters reset (the host's link drops
        its log blocks, as after a real reboot)."""
        self._request("restart")

    def stats(self) -> dict[str, Any]:
        """Supervisor/watchdog state, counters (``malformed``, ``unsupported``, ``oversized``), parameters, the last
        setpoints ``[host monotonic s, kind, values]`` and log packets ``[firmware ms, host monotonic s]``."""
        return self._request("stats")

    def send_raw(self, datagram: bytes) -> None:
        """Send one raw datagram to the emulator's link port (malformed-packet tests)."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(datagram, ("127.0.0.1", self.port))


def start_crazyflie(**config: Any) -> CrazyflieEmulator:
    """Registry factory ``hw/crazyflie`` (group ``rcs.emulators``): start an emulated Crazyflie on a free UDP port.
    Keywords: those of :class:`CrazyflieEmulator`."""
    allowed = {"port", "max_arm_tilt_deg", "geofence", "ready_timeout", "request_timeout", "python"}
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise ConfigError(f"{ROBOT} emulator: unknown option {unknown[0]!r}; accepted: {', '.join(sorted(allowed))}")
    return CrazyflieEmulator(**config)


if __name__ == "__main__":
    sys.exit(main())
