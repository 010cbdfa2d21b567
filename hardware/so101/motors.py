"""The SO-101 follower's servos as lerobot's ``so_follower`` declares them: names, bus ids, model, norm modes.

Ids 1-6 on one Feetech bus, all STS3215 (12-bit encoder, 4096 ticks per turn, 1 Mbaud). The five arm joints are
normalized by lerobot in degrees (0 deg = the middle of the calibrated range), the gripper in 0..100 of its
calibrated range (0 = closed). Names match the simulated SO-101's joints (``sim.mujoco.arm.SO101``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from rcs.errors import LinkLostError

try:  # pyserial's POSIX backend lets termios errors through (tcdrain on a pty whose other end closed)
    from termios import error as _TermiosError
except ImportError:  # Windows
    _TermiosError = OSError

#: what a serial link failure surfaces as through lerobot's bus and pyserial; IndexError: scservo_sdk indexes into
#: a reply shorter than the register it asked for (a stray late packet of the same servo id taken as the answer)
LINK_ERRORS: tuple[type[BaseException], ...] = (ConnectionError, OSError, _TermiosError, IndexError)

log = logging.getLogger(__name__)

DEVICE = "hw/so101"
MODEL = "sts3215"
RESOLUTION = 4096  # encoder ticks per turn
MAX_TICK = RESOLUTION - 1
ARM_MOTORS: tuple[tuple[str, int], ...] = (
    ("shoulder_pan", 1),
    ("shoulder_lift", 2),
    ("elbow_flex", 3),
    ("wrist_flex", 4),
    ("wrist_roll", 5),
)
GRIPPER = "gripper"
GRIPPER_ID = 6
MOTOR_IDS: dict[str, int] = {**dict(ARM_MOTORS), GRIPPER: GRIPPER_ID}
#: lerobot records no range for this joint: it turns all the way round, its range is the whole encoder.
FULL_TURN_JOINT = "wrist_roll"


def make_bus(port: str, calibration: dict[str, Any] | None = None) -> Any:
    """lerobot's ``FeetechMotorsBus`` for the SO-101 follower on ``port`` (not connected yet).

    ``calibration``: motor name -> ``lerobot.motors.MotorCalibration`` (needed for normalized reads/writes).
    """
    from lerobot.motors import Motor, MotorNormMode
    from lerobot.motors.feetech import FeetechMotorsBus

    motors = {name: Motor(i, MODEL, MotorNormMode.DEGREES) for name, i in ARM_MOTORS}
    motors[GRIPPER] = Motor(GRIPPER_ID, MODEL, MotorNormMode.RANGE_0_100)
    return FeetechMotorsBus(port=port, motors=motors, calibration=calibration)


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (lerobot's bus errors span several)."""
    text = " ".join(str(exc).split())
    if isinstance(exc, IndexError | _TermiosError):  # their messages alone do not say what went wrong
        text = f"{type(exc).__name__} {text}"
    return text or type(exc).__name__


def drain(bus: Any, quiet_s: float = 0.1, max_s: float = 0.5) -> None:
    """Discard bytes arriving on the port until it has been quiet for ``quiet_s`` (at most ``max_s``).

    After a missed reply: a reply that arrives late would otherwise be taken for the answer to the next request
    (scservo_sdk matches replies by servo id only), e.g. a 2-byte position read as a 1-byte Status.
    """
    port = bus.port_handler
    start = quiet_from = time.monotonic()
    while True:
        now = time.monotonic()
        if now - quiet_from >= quiet_s or now - start >= max_s:
            return
        waiting = port.getBytesAvailable()
        if waiting:
            port.readPort(waiting)
            quiet_from = time.monotonic()
        else:
            time.sleep(0.002)


def sync_read(bus: Any, data_name: str, motors: list[str] | None = None, *, normalize: bool = True) -> dict:
    """lerobot's ``bus.sync_read`` that also checks every servo's reply was complete.

    scservo_sdk returns 0 for a servo whose reply was shorter than the register (a stray packet of the same id),
    which lerobot would pass on as a position; this raises ``ConnectionError`` instead, so it is retried.
    """
    from lerobot.motors.motors_bus import get_address

    values = bus.sync_read(data_name, motors, normalize=normalize)
    names = list(bus.motors) if motors is None else motors
    addr, length = get_address(bus.model_ctrl_table, bus.motors[names[0]].model, data_name)
    short = [bus.motors[n].id for n in names if not bus.sync_reader.isAvailable(bus.motors[n].id, addr, length)]
    if short:
        raise ConnectionError(f"incomplete {data_name} reply from servo id(s) {short}")
    return values


def with_retry(
    bus: Any, what: str, fn: Callable[..., Any], *args: Any, timeout_s: float, device: str = DEVICE, **kwargs: Any
) -> Any:
    """``fn(*args, **kwargs)`` on ``bus``, retried on serial errors until ``timeout_s`` s after the first failure.

    For idempotent operations only (reads, register writes). A busy host can miss lerobot's packet timeout
    (about 50 ms) once in a while without the link being gone; a bus that stays silent (or a port that keeps
    failing) for ``timeout_s`` is lost: :class:`LinkLostError` names the port and what failed, on one line: the
    last failure, and the first too where it differs (a persistent fault, e.g. an implausible reading, stays named
    when a busy host also missed a reply meanwhile).
    Before each retry the port is drained (:func:`drain`), so a late reply cannot be taken for the next one.
    """
    start, first = None, ""
    while True:
        try:
            return fn(*args, **kwargs)
        except LINK_ERRORS as exc:
            now = time.monotonic()
            start = now if start is None else start
            first = first or one_line(exc)
            if now - start >= timeout_s:
                last = one_line(exc)
                also = f" (first failure: {first})" if first != last else ""
                raise LinkLostError(f"{device} on {bus.port}: {what} failed: {last}{also}") from exc
            log.debug("%s on %s: %s failed, retrying: %s", device, bus.port, what, one_line(exc))
            try:
                drain(bus)
            except Exception:  # a dead port fails here too; the next attempt reports it
                time.sleep(0.01)


def connect_retried(connect: Callable[[], None], bus: Any, timeout_s: float, pause_s: float = 0.05) -> None:
    """``connect()`` (lerobot's connect, with its handshake), retried for ``timeout_s`` s.

    lerobot's handshake pings each servo once without retry, so one reply that a busy host took too long to read
    (a garbage-collector pause, a descheduled process) fails it; at connect, waiting costs nothing, so a handshake
    is retried for a time rather than a number of tries. lerobot leaves the port open when its handshake fails:
    it is closed before the next try. The last failure is raised as lerobot raised it.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            connect()
            return
        except (*LINK_ERRORS, RuntimeError):
            try:
                bus.port_handler.closePort()
            except Exception as exc:  # noqa: BLE001 - a port whose other end died may fail to close; it is released
                log.debug("%s: closing the port after a failed handshake: %s", bus.port, one_line(exc))
            if time.monotonic() >= deadline:
                raise
            time.sleep(pause_s)
