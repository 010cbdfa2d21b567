"""rcs.heap.frozen_heap: freezes the heap for a block, and leaves an outer freeze to its owner.

Run in a fresh interpreter: this test process froze its own imports at collection (tests/conftest.py).
"""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import gc
from rcs.heap import frozen_heap

junk = [[i] for i in range(1000)]
start = gc.get_freeze_count()  # the interpreter may freeze a few objects of its own at startup
assert gc.isenabled()
with frozen_heap():
    outer = gc.get_freeze_count()
    assert outer >= start + 1000 and gc.isenabled(), outer
    more = [[i] for i in range(1000)]
    with frozen_heap(disable=True):  # nested: only switches the collector off
        assert gc.get_freeze_count() == outer and not gc.isenabled()
    assert gc.get_freeze_count() == outer and gc.isenabled()
assert gc.get_freeze_count() == 0 and gc.isenabled()  # unfreeze thaws everything
gc.disable()
with frozen_heap(disable=True):
    assert not gc.isenabled()
assert not gc.isenabled()  # a collector that was off stays off
print("ok")
"""


def test_frozen_heap_freezes_for_the_block_and_respects_an_outer_freeze():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
