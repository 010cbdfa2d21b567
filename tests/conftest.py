"""Test-session setup shared by every test folder."""

import os
from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from rcs.heap import frozen_heap
from sim.mujoco.gl import configure_gl
from tests.scheduling import fifo_threads_left
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


@pytest.fixture(scope="module", autouse=True)
def no_realtime_thread_left_behind() -> Iterator[None]:
    """A test module that ran a real-time server or loop in this process stops every ``SCHED_FIFO`` thread it
    started (module-scoped: a module's fixture may keep a server for its tests; this one is torn down after it).

    One left running would preempt, or hand its priority to the threads it creates in, every later module (a busy
    machine's scheduling would then differ from a user's). Threads stopped with a join timeout get 2 s to end.
    """
    yield
    left = sorted(fifo_threads_left().values())
    assert not left, f"SCHED_FIFO threads still running after the module's tests: {left}"
