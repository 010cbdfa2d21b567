"""Short garbage-collector pauses for processes that talk to hardware in real time.

A full (generation-2) collection walks every tracked object. A process that has imported torch and lerobot
holds over half a million of them, so one full collection stops every Python thread for about 0.2 s (0.21 s
measured here after importing torch, mujoco and lerobot's dataset and policy modules). That is longer than a
servo bus's packet timeout (scservo_sdk: about 34 ms at 1 Mbit/s), than a 20 Hz recording period and than any
control period. :func:`frozen_heap` collects once, then moves the survivors into the interpreter's permanent
generation (:func:`gc.freeze`), so later collections only walk objects created afterwards.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

_depth = 0  # frozen_heap blocks open in this process: the permanent generation is the outermost one's


@contextmanager
def frozen_heap(disable: bool = False) -> Iterator[None]:
    """Collect, freeze everything alive, run the block, then unfreeze (and re-enable the collector).

    Nested in another :func:`frozen_heap` (a test session freezes its imports in one), the outer block owns the
    permanent generation: this one neither collects nor freezes nor unfreezes (:func:`gc.unfreeze` would thaw the
    outer freeze too), it only switches the collector off if asked.

    Args:
        disable: also switch the cyclic collector off inside the block (reference counting still frees
            acyclic garbage). For short real-time sections; a long session (a recording) keeps it on so cyclic
            garbage made meanwhile is still freed, by collections that now only walk the new objects.
    """
    global _depth
    was_enabled = gc.isenabled()
    owner = _depth == 0
    if owner:
        gc.collect()
        gc.freeze()
    _depth += 1
    if disable:
        gc.disable()
    try:
        yield
    finally:
        _depth -= 1
        if owner:
            gc.unfreeze()
        if was_enabled:
            gc.enable()
