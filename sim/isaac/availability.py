"""Whether this Python can run the Isaac Lab backend, as one clear error instead of an ImportError traceback."""

from __future__ import annotations

import importlib.util
import sys

from rcs.errors import ConfigError

SETUP_COMMAND = "bash scripts/setup_isaac.sh"
VENV = ".venv-isaac"
#: the import names the backend needs: Isaac Lab, its Newton physics extension, and the MJCF -> USD converter
REQUIRED = ("isaaclab", "isaaclab_newton", "mujoco_usd_converter")


def require_isaaclab(what: str) -> None:
    """Raise :class:`ConfigError` (one line) unless Isaac Lab and the converter are importable here.

    Args:
        what: the thing being built, named in the message (e.g. ``"isaac/panda"``).
    """
    missing = [name for name in REQUIRED if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(
            f"{what} needs Isaac Lab 3 ({', '.join(missing)} not installed in {sys.prefix}): run "
            f"`{SETUP_COMMAND}` and use {VENV}/bin/python"
        )
