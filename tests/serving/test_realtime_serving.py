"""`rcs serve --realtime`: the serving threads run SCHED_FIFO below the control loop where permitted, and a
thread that is refused it says so once per role."""

from __future__ import annotations

import logging
import os

import pytest

from rcs.control import priorities
from rcs.control.priorities import LOOP_PRIORITY, PATH_PRIORITY, promote_current_thread


def test_realtime_serving_threads_are_fifo_below_the_loop(serve) -> None:
    if not priorities.fifo_permitted(1)[0]:
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


_REALTIME_SOCKET = """
import logging, sys, zmq
from rcs.control.priorities import IO_PRIORITY, fifo_permitted, realtime_io_threads
logging.basicConfig(level=logging.WARNING)
ctx = zmq.Context()
realtime_io_threads(ctx)
ctx.socket(zmq.PAIR).bind("tcp://127.0.0.1:*")  # starts the I/O thread with the options
print("bound", fifo_permitted(IO_PRIORITY)[0])
ctx.destroy(linger=0)
"""


def test_a_realtime_socket_where_fifo_is_refused_warns_and_works() -> None:
    """libzmq aborts the process when its I/O thread is refused the scheduling options it was given; where this
    process may not run SCHED_FIFO (here: root without CAP_SYS_NICE), the options are not given and it warns."""
    import shutil
    import subprocess
    import sys

    command = [sys.executable, "-c", _REALTIME_SOCKET]
    if os.geteuid() == 0:  # root may: drop the capability that permits it
        if shutil.which("setpriv") is None:
            pytest.skip("setpriv (util-linux) is needed to drop CAP_SYS_NICE")
        command = ["setpriv", "--bounding-set", "-sys_nice", "--inh-caps", "-sys_nice", *command]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    bound, permitted = proc.stdout.split()
    assert bound == "bound"
    if permitted == "False":  # not where an rtprio limit permits it without the capability
        assert "ZeroMQ I/O threads keep the default scheduler: SCHED_FIFO priority 70 not permitted" in proc.stderr
