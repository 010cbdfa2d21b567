"""Exceptions raised by the stack. Every message names the field, the value and the limit."""

from __future__ import annotations

from collections.abc import Iterable


class RcsError(Exception):
    """Base class of all errors raised by rcs."""


class UnknownNameError(RcsError, KeyError):
    """A name looked up in a registry is not registered."""

    def __init__(self, kind: str, name: str, known: Iterable[str]) -> None:
        self.kind = kind
        self.name = name
        self.known = sorted(known)
        listing = ", ".join(self.known) if self.known else "(none registered)"
        super().__init__(f"unknown {kind} {name!r}; known {kind}s: {listing}")

    def __str__(self) -> str:  # KeyError would wrap the message in quotes
        return self.args[0]


class RegistryCollisionError(RcsError):
    """Two plugins registered the same name."""


class ActionError(RcsError, ValueError):
    """A command or action is malformed or outside the limits of the spec.

    Attributes:
        field: the name of the offending field, e.g. ``"joint_positions[3]"``.
        value: the offending value (as given).
        limit: a human-readable statement of the limit that was violated.
    """

    def __init__(self, field: str, value: object, limit: str) -> None:
        self.field = field
        self.value = value
        self.limit = limit
        super().__init__(f"{field}={_short(value)} violates {limit}")


class NotConnectedError(RcsError, RuntimeError):
    """A device method that needs a connection was called while disconnected."""


class ConfigError(RcsError, ValueError):
    """A configuration value is invalid."""


class LinkLostError(RcsError, ConnectionError):
    """The link to a physical device (serial bus, network socket) died while it was in use.

    The message names the device and the link (e.g. ``hw/so101 on /dev/ttyACM0``) and what failed. The device
    is no longer commanded; the caller's watchdog decides how to stop the rest of the system.
    """


class DeviceFaultError(RcsError, RuntimeError):
    """A physical device reports a fault (servo overload, overheating, voltage, controller reflex).

    Attributes:
        component: which part reports it (a joint or servo name, ``"gripper"``, ``"controller"``).
        reason: the device's own reason, in words (e.g. ``"overload"``, ``"temperature 72 C > 70 C"``).
    """

    def __init__(self, device: str, component: str, reason: str) -> None:
        self.device, self.component, self.reason = device, component, reason
        super().__init__(f"{device}: {component}: {reason}")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


class SimulationDivergedError(RcsError, RuntimeError):
    """A simulator's integration broke down: non-finite state, the physics engine's own instability warnings, or
    motion faster than its time step can resolve. The numbers it would return are meaningless; reset it."""
