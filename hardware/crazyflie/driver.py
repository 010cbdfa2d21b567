"""The Crazyflie 2.x as an :class:`rcs.devices.Quadrotor` (registry name ``hw/crazyflie``), through Bitcraze's cflib.

Same spec as the simulated Crazyflie (``sim/crazyflie``: :data:`sim.mujoco.quadrotor.CRAZYFLIE_SPEC`, rotor order
m1..m4 = the firmware's). The link is cflib's ``Crazyflie`` on any cflib URI: ``radio://0/80/2M/E7E7E7E7E7``
(Crazyradio), ``usb://0``, or ``udp://host:port`` (the emulator, :mod:`hardware.emulators.crazyflie`).

Connect: ``open_link`` and wait (``connect_timeout_s``) until cflib is fully connected (platform info, log and
parameter tables of contents - cached by CRC in ``toc_cache_dir`` - and every parameter value); set
``flightmode.stabModeRoll/Pitch`` to 0 (RATE) and ``motorPowerSet.enable`` to 0; start the three log blocks of
:mod:`hardware.crazyflie.telemetry` at ``log_period_ms`` (default 10 ms: 100 Hz) and wait for the first sample.

Per call:

- :meth:`read`: the newest assembled log sample not returned before (waiting up to ``link_timeout_s`` for it),
  timestamped with its host arrival time (see :mod:`hardware.crazyflie.telemetry` for frames and units).
- :meth:`arm` / :meth:`disarm`: the supervisor's arming request (cflib ``supervisor.send_arming_request``);
  waits until the logged supervisor bit field confirms it. A refusal raises :class:`ArmingRefusedError` with the
  firmware's reason (its console line ``SUPERVISOR: arming refused: ...``, else the bit field: locked, tumbled).
- :meth:`command_position`: generic commander position setpoint (``send_position_setpoint``, yaw in deg).
- :meth:`command_thrust_rates`: the firmware has no body-rate setpoint in the generic commander; the legacy RPYT
  setpoint in RATE mode (set at connect) is one: ``send_setpoint(deg(wx), deg(wy), -deg(wz), thrust)`` (cflib
  negates the pitch and the firmware negates it back against ``-gyro.y``; the legacy yaw rate is clockwise
  positive). Thrust ``round(T / max collective thrust * 65535)``: linear in thrust, an approximation of the real
  PWM -> thrust curve (collective thrusts below ~1.5 % are motors off, the firmware's ``MIN_THRUST``).
- :meth:`command_motor_thrusts`: the firmware's ``motorPowerSet`` parameters (``m1..m4`` = round(u * 65535),
  then ``enable`` = 1; PWM ratio, linear in thrust only approximately). Parameter writes are acknowledged one
  at a time: a slow path (a few round trips per command) for tests and system identification, not for 100 Hz
  control. Dropped while disarmed (as the simulated vehicle does); any other command sets ``enable`` back to 0.

Setpoints must keep coming: the firmware levels out after 0.5 s without one and stops the motors after 2 s.

Link loss: cflib's ``connection_lost`` / link error callback, or no complete log sample for ``link_timeout_s``,
latch :class:`rcs.errors.LinkLostError` naming ``hw/crazyflie`` and the URI; every later call raises it until
:meth:`close`, which always works.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from hardware.crazyflie.telemetry import Sample, Telemetry
from rcs.devices import Quadrotor
from rcs.errors import ConfigError, DeviceFaultError, LinkLostError
from rcs.types import QuadrotorState
from rcs.validation import LimitPolicy, limit_policy_of, positive_seconds
from sim.mujoco.quadrotor import CRAZYFLIE_SPEC

log = logging.getLogger(__name__)

DEVICE = "hw/crazyflie"
CONFIG_KEYS = (
    "uri",
    "limit_policy",
    "link_timeout_s",
    "connect_timeout_s",
    "arm_timeout_s",
    "log_period_ms",
    "toc_cache_dir",
)
_DRIVERS_READY = False
_DRIVERS_LOCK = threading.Lock()


def _init_drivers() -> None:
    """cflib's link drivers, once per process (``init_drivers`` appends to a global list on every call)."""
    global _DRIVERS_READY
    with _DRIVERS_LOCK:
        if not _DRIVERS_READY:
            import cflib.crtp

            cflib.crtp.init_drivers()
            _DRIVERS_READY = True


def default_toc_cache_dir() -> Path:
    """Where cflib caches the tables of contents by CRC (``$XDG_CACHE_HOME/rcs/cflib-toc``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rcs" / "cflib-toc"


def _first_line(text: object) -> str:
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    return lines[0] if lines else "(no message)"


class ArmingRefusedError(DeviceFaultError):
    """The Crazyflie's supervisor refused to arm; ``reason`` says why (tilted, locked, outside the geofence...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(DEVICE, "supervisor", f"arming refused: {reason}")


class CrazyflieQuadrotor(Quadrotor):
    """A Crazyflie 2.x over cflib (see the module docstring for what each call does on the link).

    Args:
        uri: cflib link URI (``radio://0/80/2M/E7E7E7E7E7``, ``udp://127.0.0.1:19850``...).
        limit_policy: ``"raise"`` (default) or ``"clip"`` for out-of-limit commands.
        link_timeout_s: s without a complete log sample before the link counts as lost.
        connect_timeout_s: s to wait for cflib's full connection (table of contents and parameters).
        arm_timeout_s: s to wait for the supervisor to confirm arming or disarming.
        log_period_ms: log period (ms, multiple of 10, 10..1000).
        toc_cache_dir: cflib's table-of-contents cache folder (default :func:`default_toc_cache_dir`).
    """

    def __init__(
        self,
        uri: str,
        limit_policy: LimitPolicy | str = LimitPolicy.RAISE,
        link_timeout_s: float = 1.0,
        connect_timeout_s: float = 20.0,
        arm_timeout_s: float = 2.0,
        log_period_ms: int = 10,
        toc_cache_dir: str | Path | None = None,
    ) -> None:
        if not isinstance(uri, str) or "://" not in uri:
            raise ConfigError(f"{DEVICE}: uri={uri!r} must be a cflib URI such as radio://0/80/2M/E7E7E7E7E7")
        policy = limit_policy_of(DEVICE, limit_policy)
        link_timeout_s = positive_seconds(DEVICE, "link_timeout_s", link_timeout_s, 30.0)
        connect_timeout_s = positive_seconds(DEVICE, "connect_timeout_s", connect_timeout_s, 120.0)
        arm_timeout_s = positive_seconds(DEVICE, "arm_timeout_s", arm_timeout_s, 30.0)
        if type(log_period_ms) is not int or not 10 <= log_period_ms <= 1000 or log_period_ms % 10:
            raise ConfigError(f"{DEVICE}: log_period_ms={log_period_ms!r} must be a multiple of 10 within 10..1000")
        super().__init__(CRAZYFLIE_SPEC, policy)
        self.uri = uri
        self.link_timeout_s = link_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.arm_timeout_s = arm_timeout_s
        self.log_period_ms = log_period_ms
        self.toc_cache_dir = Path(toc_cache_dir) if toc_cache_dir is not None else default_toc_cache_dir()
        self._cf: Any = None
        self._telemetry = Telemetry(self.spec, log_period_ms)
        self._log_configs: list[Any] = []
        self._failure: Exception | None = None  # latched LinkLostError
        self._lost = threading.Event()
        self._lost_reason = ""
        self._read_seq = 0
        self._armed = False
        self._motor_mode = False
        self._console = ""
        self._console_lock = threading.Lock()

    @property
    def last_sample(self) -> Sample | None:
        """The newest telemetry sample (state, firmware time stamp ms, battery V, supervisor bits), or ``None``."""
        return self._telemetry.sample

    # -- link -------------------------------------------------------------------------------------------------
    def _link_name(self) -> str:
        return f"{DEVICE} on {self.uri}"

    def _on_lost(self, _uri: str, message: str) -> None:
        self._lost_reason = _first_line(message)
        self._lost.set()

    def _on_console(self, text: str) -> None:
        with self._console_lock:
            self._console = (self._console + text)[-2000:]

    def _console_lines(self) -> list[str]:
        """The console's complete lines: a line arrives in packets of at most 30 bytes, and its unterminated head
        (e.g. a reason cut after "m out") must not be read as the whole line."""
        with self._console_lock:
            complete = self._console[: self._console.rfind("\n") + 1]
        return [ln.strip() for ln in complete.splitlines() if ln.strip()]

    def _check(self) -> None:
        """Raise the latched link failure, or latch one now (lost callback, or telemetry silent too long)."""
        if self._failure is not None:
            raise self._failure
        if self._lost.is_set():
            self._failure = LinkLostError(f"{self._link_name()}: link lost: {self._lost_reason}")
        else:
            last = self._telemetry.last_capture()
            if last is not None and time.monotonic() - last > self.link_timeout_s:
                self._failure = LinkLostError(
                    f"{self._link_name()}: no telemetry for {time.monotonic() - last:.1f} s "
                    f"(link_timeout_s={self.link_timeout_s})"
                )
        if self._failure is not None:
            self._armed = False
            raise self._failure

    def _connect(self) -> None:
        _init_drivers()
        from cflib.crazyflie import Crazyflie

        self._failure, self._read_seq, self._armed, self._motor_mode = None, 0, False, False
        self._lost.clear()
        self._telemetry = Telemetry(self.spec, self.log_period_ms)
        self.toc_cache_dir.mkdir(parents=True, exist_ok=True)
        cf = Crazyflie(rw_cache=str(self.toc_cache_dir))
        done, failed = threading.Event(), []
        cf.fully_connected.add_callback(lambda _uri: done.set())
        cf.connection_failed.add_callback(lambda _uri, msg: (failed.append(_first_line(msg)), done.set()))
        cf.connection_lost.add_callback(self._on_lost)
        cf.console.receivedChar.add_callback(self._on_console)
        self._cf = cf
        try:
            cf.open_link(self.uri)
            if not done.wait(self.connect_timeout_s) or failed or self._lost.is_set():
                why = failed[0] if failed else self._lost_reason or f"not connected within {self.connect_timeout_s} s"
                raise LinkLostError(f"{self._link_name()}: cannot connect: {why}")
            self._set_param("flightmode.stabModeRoll", 0)
            self._set_param("flightmode.stabModePitch", 0)
            self._set_param("motorPowerSet.enable", 0)
            self._log_configs = self._telemetry.log_configs()
            for lc in self._log_configs:
                cf.log.add_config(lc)
                lc.start()
            if self._telemetry.wait_newer(0, self.connect_timeout_s) is None:
                raise LinkLostError(
                    f"{self._link_name()}: no telemetry within {self.connect_timeout_s} s of connecting"
                )
            self._armed = self._telemetry.sample is not None and self._telemetry.sample.state.armed
        except BaseException:
            self._shutdown_link()
            raise

    def _set_param(self, name: str, value: float) -> None:
        """Write a parameter and wait for the firmware's echo (``link_timeout_s``)."""
        cf = self._cf
        group, field = name.split(".")
        cf.param.set_value(name, value)
        deadline = time.monotonic() + max(self.link_timeout_s, 1.0)
        while time.monotonic() < deadline:
            current = cf.param.values.get(group, {}).get(field)
            if current is not None and float(current) == float(value):
                return
            if self._lost.is_set():
                break
            time.sleep(0.002)
        raise LinkLostError(f"{self._link_name()}: parameter {name}={value} not confirmed by the firmware")

    def _shutdown_link(self) -> None:
        cf, self._cf = self._cf, None
        if cf is None:
            return
        try:
            cf.close_link()
        except Exception as e:  # a dead link must not stop close()
            log.debug("%s: close_link: %s", self._link_name(), e)

    def _close(self) -> None:
        cf = self._cf
        try:
            if cf is not None and self._failure is None and not self._lost.is_set() and cf.link is not None:
                cf.commander.send_stop_setpoint()
                if self._motor_mode:
                    cf.param.set_value("motorPowerSet.enable", 0)
                cf.supervisor.send_arming_request(False)
                for lc in self._log_configs:
                    lc.delete()
        except Exception as e:
            log.debug("%s: close: %s", self._link_name(), e)
        finally:
            self._log_configs = []
            self._armed = False
            self._shutdown_link()

    # -- Quadrotor hooks --------------------------------------------------------------------------------------
    def _read(self) -> QuadrotorState:
        self._check()
        sample = self._telemetry.wait_newer(self._read_seq, self.link_timeout_s)
        if sample is None:
            self._check()
            self._failure = LinkLostError(f"{self._link_name()}: no telemetry for {self.link_timeout_s} s")
            raise self._failure
        self._read_seq = sample.seq
        return sample.state

    def _set_armed(self, armed: bool) -> None:
        self._check()
        with self._console_lock:
            self._console = ""
        if self._motor_mode:
            self._leave_motor_mode()
        self._cf.supervisor.send_arming_request(bool(armed))
        deadline = time.monotonic() + self.arm_timeout_s
        seq = self._telemetry.sample.seq if self._telemetry.sample else 0
        while time.monotonic() < deadline:
            sample = self._telemetry.wait_newer(seq, min(self.link_timeout_s, max(deadline - time.monotonic(), 0.0)))
            self._check()
            if sample is None:
                continue
            seq = sample.seq
            if sample.state.armed == armed:
                self._armed = armed
                return
            refused = [ln for ln in self._console_lines() if "arming refused" in ln]
            if armed and refused:
                raise ArmingRefusedError(refused[-1].split("arming refused:", 1)[1].strip())
        if not armed:
            raise DeviceFaultError(DEVICE, "supervisor", f"disarm not confirmed within {self.arm_timeout_s} s")
        bits = self._telemetry.sample.supervisor if self._telemetry.sample else 0
        reasons = [text for bit, text in ((6, "locked"), (5, "tumbled")) if bits >> bit & 1]
        raise ArmingRefusedError(
            ", ".join(reasons) or f"not confirmed within {self.arm_timeout_s} s (supervisor bits 0x{bits:04x})"
        )

    def emergency_stop(self) -> None:
        """The firmware's emergency stop (cflib ``supervisor.send_emergency_stop``): the motors stop at once and the
        supervisor locks; the Crazyflie must be restarted before it arms again."""
        self._require_connected()
        self._check()
        self._cf.supervisor.send_emergency_stop()
        self._armed = False

    def _leave_motor_mode(self) -> None:
        self._cf.param.set_value("motorPowerSet.enable", 0)
        self._motor_mode = False

    def _write_motor_thrusts(self, u: np.ndarray) -> None:
        self._check()
        if not self._armed:
            log.debug("motor command dropped: disarmed")
            return
        for i, value in enumerate(u, start=1):
            self._cf.param.set_value(f"motorPowerSet.m{i}", int(round(float(value) * 65535)))
        if not self._motor_mode:
            self._cf.param.set_value("motorPowerSet.enable", 1)
            self._motor_mode = True

    def _write_thrust_rates(self, thrust: float, rates: np.ndarray) -> None:
        self._check()
        if self._motor_mode:
            self._leave_motor_mode()
        raw = int(round(thrust / self.spec.max_collective_thrust * 65535))
        wx, wy, wz = (math.degrees(float(r)) for r in rates)
        self._cf.commander.send_setpoint(wx, wy, -wz, min(max(raw, 0), 0xFFFF))

    def _write_position(self, position: np.ndarray, yaw: float) -> None:
        self._check()
        if self._motor_mode:
            self._leave_motor_mode()
        x, y, z = (float(v) for v in position)
        self._cf.commander.send_position_setpoint(x, y, z, math.degrees(yaw))


def make_crazyflie(**config: Any) -> CrazyflieQuadrotor:
    """Registry factory ``hw/crazyflie``. Keys: ``uri`` (required), ``limit_policy``, ``link_timeout_s``,
    ``connect_timeout_s``, ``arm_timeout_s``, ``log_period_ms``, ``toc_cache_dir`` (see
    :class:`CrazyflieQuadrotor`)."""
    unknown = sorted(set(config) - set(CONFIG_KEYS))
    if unknown:
        raise ConfigError(f"{DEVICE}: unknown config key {unknown[0]!r}; accepted keys: {', '.join(CONFIG_KEYS)}")
    if "uri" not in config:
        raise ConfigError(
            f"{DEVICE}: config key 'uri' is required (e.g. radio://0/80/2M/E7E7E7E7E7); "
            f"accepted keys: {', '.join(CONFIG_KEYS)}"
        )
    return CrazyflieQuadrotor(**config)
