"""In a Python without Isaac Lab (the main .venv), asking for the Isaac backend is one clear line, no traceback."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from rcs.errors import ConfigError
from tests.isaac.conftest import REPO


@pytest.mark.skipif(importlib.util.find_spec("isaaclab") is not None, reason="this Python has Isaac Lab")
def test_factory_names_the_setup_script_and_venv() -> None:
    from sim.isaac.arm import make_isaac_panda

    with pytest.raises(ConfigError) as e:
        make_isaac_panda()
    msg = str(e.value)
    assert "bash scripts/setup_isaac.sh" in msg and ".venv-isaac" in msg and "\n" not in msg


@pytest.mark.skipif(importlib.util.find_spec("isaaclab") is not None, reason="this Python has Isaac Lab")
def test_importing_the_backend_is_light() -> None:
    code = "import sys, sim.isaac.arm, sim.isaac.convert, sim.isaac.scene; assert 'isaaclab' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)


def test_unknown_option_names_it() -> None:
    from sim.isaac.arm import make_isaac_panda

    with pytest.raises(ConfigError, match="unknown option.*num_envz"):
        make_isaac_panda(num_envz=4)
