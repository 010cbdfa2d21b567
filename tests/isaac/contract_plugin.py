"""pytest plugin for running the robot contract suite in .venv-isaac against ``isaac/panda`` only.

Used by test_isaac_contract.py: ``pytest tests/contract/test_robot_contract.py -p tests.isaac.contract_plugin``.
The other registered robots belong to the main .venv's run of the same suite.
"""

from __future__ import annotations

from typing import Any

ROBOT = "isaac/panda"


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    keep, drop = [], []
    for item in items:
        spec = getattr(item, "callspec", None)
        (keep if spec is not None and spec.params.get("rig") == ROBOT else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
    items[:] = keep
