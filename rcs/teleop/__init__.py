"""Teleoperation devices behind one interface (docs/record.md): keyboard, gamepad, SpaceMouse, leader arm,
scripted expert. Devices register under the entry-point group ``rcs.teleops``; factories take the env first."""

from rcs.teleop.base import EpisodeEvent, PolicyTeleop, Teleop, TeleopCommand

__all__ = ["EpisodeEvent", "PolicyTeleop", "Teleop", "TeleopCommand"]
