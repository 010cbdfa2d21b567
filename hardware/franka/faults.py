"""franky/libfranka exceptions to the stack's errors, each as one line naming the device.

- the link died (UDP state timeout, TCP reset: ``NetworkException``; libfranka's state read reports it as a
  bare ``RuntimeError("Net Exception")``) -> :class:`rcs.errors.LinkLostError` naming the host;
- the controller refused or aborted a motion (reflex, safety, rejected command: ``ControlException``,
  ``CommandException``) or reports errors in its state -> :class:`rcs.errors.DeviceFaultError` with component
  ``"controller"`` and the controller's own reason.
"""

from __future__ import annotations

from collections.abc import Iterable

import franky

from hardware.franka.config import DEVICE
from rcs.errors import DeviceFaultError, LinkLostError, RcsError

_LINK_ERRORS = (franky.NetworkException, franky.ProtocolException, franky.IncompatibleVersionException)
_CONTROLLER_ERRORS = (franky.ControlException, franky.CommandException, franky.Exception)


def one_line(exc: BaseException) -> str:
    """The exception's message on one line, without libfranka's ``libfranka: `` prefix and state dump."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.removeprefix("libfranka: ").strip()


def is_link_error(exc: BaseException) -> bool:
    """Whether ``exc`` from franky means the network link to the robot is gone."""
    if isinstance(exc, _LINK_ERRORS):
        return True
    # libfranka's NetworkException crosses some franky calls (Robot.state) as a plain RuntimeError.
    return type(exc) is RuntimeError and "Net" in str(exc)


def translate(exc: BaseException, host: str, link: str = "robot") -> RcsError | None:
    """The stack's error for a franky exception raised while talking to ``host``, or None if not franky's."""
    if is_link_error(exc):
        return LinkLostError(f"{DEVICE} {link} on {host}: link lost: {one_line(exc)}")
    if isinstance(exc, _CONTROLLER_ERRORS):
        return DeviceFaultError(DEVICE, "controller", one_line(exc))
    return None


def error_names(errors: object) -> list[str]:
    """Names of the flags set in a franky ``Errors`` value (its str is a JSON-like list of names)."""
    text = str(errors).strip()
    if text in ("", "[]"):
        return []
    return [name.strip().strip('"') for name in text.strip("[]").split(",") if name.strip()]


def state_fault(names: Iterable[str], mode: object) -> DeviceFaultError:
    """The fault for a robot state that reports errors (``current_errors``) in robot mode ``mode``."""
    mode_name = str(mode).rsplit(".", 1)[-1]
    return DeviceFaultError(DEVICE, "controller", f"{', '.join(names)} (robot mode {mode_name})")
