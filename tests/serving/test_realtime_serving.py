"""`rcs serve --realtime`: the serving threads run SCHED_FIFO below the control loop where permitted, and a
thread that is refused it says so once per role."""

from __future__ import annotations

import logging
import os
import threading

import pytest

from rcs.control import priorities
from rcs.control.priorities import LOOP_PRIORITY, PATH_PRIORITY, promote_current_thread


def _fifo_permitted() -> bool:
    out: list[bool] = []

    def probe() -> None:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
            out.append(True)
        except OSError:
            out.append(False)

    t = threading.Thread(target=probe)
    t.start()
    t.join()
    return out[0]


def test_realtime_serving_threads_are_fifo_below_the_loop(serve) -> None:
    if not _fifo_permitted():
        pytest.skip("SCHED_FIFO is not permitted on this machine (the warning path is tested below)")
    server = serve("--realtime")
    tasks = os.listdir(f"/proc/{server.proc.pid}/task")
    policies = {int(t): os.sched_getscheduler(int(t)) for t in tasks}
    fifo = [t for t, p in policies.items() if p == os.SCHED_FIFO]
    # the I/O thread (the main thread runs the server) and the inference worker at least
    assert server.proc.pid in fifo and len(fifo) >= 2, policies
    assert {os.sched_getparam(t).sched_priority for t in fifo} <= {PATH_PRIORITY, priorities.IO_PRIORITY}
    assert PATH_PRIORITY < priorities.IO_PRIORITY < LOOP_PRIORITY


def test_plain_serving_keeps_the_default_scheduler(serve) -> None:
    server = serve()
    tasks = os.listdir(f"/proc/{server.proc.pid}/task")
    assert all(os.sched_getscheduler(int(t)) == os.SCHED_OTHER for t in tasks)


def test_a_refused_promotion_warns_once_per_role(monkeypatch, caplog) -> None:
    def refuse(*_args: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    monkeypatch.setattr(priorities, "_warned", set())
    with caplog.at_level(logging.WARNING, logger="rcs.control.priorities"):
        results = [promote_current_thread("policy feed") for _ in range(3)] + [
            promote_current_thread("MAVLink receive")
        ]
    assert results == [False] * 4
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2, warnings
    assert "policy feed thread keeps the default scheduler" in warnings[0] and "SCHED_FIFO priority 60" in warnings[0]
