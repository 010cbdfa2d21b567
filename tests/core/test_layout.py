"""The core's layout stays as issue 15 left it: one concept per module, unique names, dependencies one way."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

import rcs.geometry
import rcs.registry
from rcs.geometry import quat_from_euler_rpy, tilt_of, yaw_of

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "rcs"


def _modules(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def _imported_modules(path: Path) -> set[str]:
    """Every module an ``import``/``from ... import`` in ``path`` names, at any depth (lazy imports too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def test_public_class_names_are_unique_in_the_core():
    where: dict[str, list[str]] = defaultdict(list)
    for path in _modules(CORE):
        for node in ast.parse(path.read_text(), str(path)).body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                where[node.name].append(str(path.relative_to(ROOT)))
    clashes = {name: paths for name, paths in where.items() if len(paths) > 1}
    assert clashes == {}, f"public classes defined in more than one core module: {clashes}"


def test_top_level_core_modules_are_not_shadowed_by_subpackage_modules():
    top = {p.stem for p in CORE.glob("*.py") if p.stem != "__init__"}
    nested = [p for p in _modules(CORE) if p.parent != CORE and p.stem in top]
    assert nested == [], f"modules named like a top-level core module: {[str(p.relative_to(ROOT)) for p in nested]}"


#: the packages around the core: they depend on it, never the reverse
OUTER = ("sim", "hardware", "policies", "rcs_ros2")


def test_the_core_imports_nothing_from_the_outer_packages():
    """Lazy imports included: the outer packages reach the core through entry points (robots, loaders, benchmarks,
    commands), so a robot-side process or a ROS 2 node that imports rcs never drags them in."""
    offenders = sorted(
        f"{p.relative_to(ROOT)}: {m}" for p in _modules(CORE) for m in _imported_modules(p) if m.split(".")[0] in OUTER
    )
    assert offenders == [], f"core modules importing outer packages: {offenders}"


def test_policies_do_not_import_the_evaluation_runner():
    offenders = [
        str(p.relative_to(ROOT))
        for p in _modules(ROOT / "policies")
        if any(m == "rcs.envs.served" or m.startswith("rcs.envs.served.") for m in _imported_modules(p))
    ]
    assert offenders == [], f"policies/ must not depend on rcs.envs.served: {offenders}"


def test_importing_the_safety_package_loads_none_of_its_modules():
    code = "import sys, rcs.safety; print(sorted(m for m in sys.modules if m.startswith('rcs.safety.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_ros2_nodes_use_the_core_orientation_helpers_instead_of_their_own():
    core_functions = {
        node.name
        for node in ast.parse(Path(rcs.geometry.__file__).read_text()).body
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_")
    }
    duplicates = [
        f"{p.relative_to(ROOT)}:{node.name}"
        for p in _modules(ROOT / "ros2_ws" / "src")
        for node in ast.walk(ast.parse(p.read_text(), str(p)))
        if isinstance(node, ast.FunctionDef) and node.name in core_functions
    ]
    assert duplicates == [], f"ros2_ws redefines rcs.geometry functions: {duplicates}"


@pytest.mark.parametrize("yaw", [-3.0, -1.2, 0.0, 0.7, 3.1])
def test_yaw_of_and_tilt_of_read_back_a_roll_pitch_yaw_orientation(yaw):
    q = quat_from_euler_rpy(0.3, -0.2, yaw)
    assert yaw_of(q) == pytest.approx(yaw, abs=1e-12)
    # body z after roll 0.3 then pitch -0.2: cos(tilt) = cos(roll) cos(pitch)
    assert tilt_of(q) == pytest.approx(float(np.arccos(np.cos(0.3) * np.cos(-0.2))), abs=1e-12)


def test_registry_docstring_example_is_a_declared_entry_point():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    doc = rcs.registry.__doc__ or ""
    groups = re.findall(r'\[project\.entry-points\."([^"]+)"\]', doc)
    examples = re.findall(r'^\s*"([^"]+)" = "([^"]+)"\s*$', doc, flags=re.MULTILINE)
    assert groups and examples, "the registry docstring should show how a backend declares a factory"
    for name, target in examples:
        assert declared[groups[0]].get(name) == target, f"docstring example {name} = {target} is not in pyproject.toml"
