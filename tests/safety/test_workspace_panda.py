"""The arm filter's workspace box on the Panda's real forward kinematics (MuJoCo, via ``sim/panda``)."""

from __future__ import annotations

import numpy as np
import pytest

from rcs.safety.arm import ArmSafetyConfig, ArmSafetyFilter
from rcs.types import Command

pytest.importorskip("mujoco")


@pytest.fixture(scope="module")
def panda():
    import rcs

    return rcs.make_robot("sim/panda")


@pytest.mark.parametrize("lipschitz", [None, 1.1])  # 1.1 m: bound on the Panda's joint-axis-to-TCP distances
@pytest.mark.parametrize("rate, seed", [(100.0, 31950)])  # found by the long search of issue 14 (old code: 0.03 mm out)
def test_panda_tcp_stays_in_the_scene_box(panda, rate, seed, lipschitz):
    """A far joint target held up to 1.5 s from home drives the TCP through the box top; every tick stays in."""
    spec, box = panda.spec, panda.scene.workspace
    fk = lambda q: panda.kinematics.forward(q)[0]  # noqa: E731
    filt = ArmSafetyFilter(
        spec, ArmSafetyConfig(control_dt=1.0 / rate, workspace=box, tcp_position=fk, tcp_lipschitz=lipschitz)
    )
    home = np.array(spec.home)
    filt.reset(np.concatenate([home, [0.5]]))
    rng = np.random.default_rng(seed)
    target = rng.uniform(spec.lower, spec.upper)
    if rng.random() < 0.5:
        target = home + rng.normal(0, 0.8, spec.dof)
    for _ in range(int(rng.integers(10, int(1.5 * rate)))):
        out = filt.filter(Command("joint_positions", np.concatenate([target, [0.5]]))).values
        p = fk(out[: spec.dof])
        assert box.contains(p), (p, out)
    assert filt.log.counts.get("workspace", 0) > 0 and "workspace_unrecoverable" not in filt.log.counts
