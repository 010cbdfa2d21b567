"""Test-session setup shared by every test folder."""

import os
from contextlib import ExitStack

from rcs.heap import frozen_heap
from sim.mujoco.gl import configure_gl
from tests.serving.rcs_serve import serve  # noqa: F401  (fixture: `rcs serve` subprocesses, any test folder)

# Nothing may download at run time: any hub access in a test (or in a subprocess it starts) fails loudly.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

# Test modules may import mujoco directly; MuJoCo reads MUJOCO_GL at its first import, so choose the
# headless backend before collection imports any of them.
configure_gl()


_FROZEN = ExitStack()


def pytest_collection_finish(session: object) -> None:
    """Freeze what collection imported out of later garbage collections (until the session ends).

    This process holds every test module's imports (torch, lerobot, mujoco, ...): over half a million objects,
    and a full collection of them stops every thread for about 0.2 s (:mod:`rcs.heap`). Tests that run a driver or
    a lerobot bus in this process against an emulated serial bus have packet timeouts of tens of ms; a robot-side
    process has no such heap (``rcs record`` and the control loop freeze theirs the same way). Blocks of the code
    under test that freeze the heap nest inside this one (they leave it frozen).
    """
    _FROZEN.enter_context(frozen_heap())


def pytest_sessionfinish(session: object, exitstatus: int) -> None:
    _FROZEN.close()
