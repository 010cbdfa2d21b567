"""The arm filter's workspace check is bounded per tick (``workspace_fk_budget`` FK calls) and still keeps the TCP in
the box; the Lipschitz bound it prunes with comes from the model and is a true upper bound."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rcs.errors import ConfigError
from rcs.safety.arm import ArmSafetyConfig, ArmSafetyFilter
from rcs.spec import WorkspaceBox
from rcs.types import Command
from tests.safety.fixtures import PLANAR_BOX, planar_arm, planar_fk

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TOL = 1e-9


class CountingFk:
    """Wraps a TCP function and counts its calls (per tick, reset by the test)."""

    def __init__(self, fk):
        self.fk, self.calls = fk, 0

    def __call__(self, q):
        self.calls += 1
        return self.fk(q)


targets = st.one_of(
    st.lists(st.lists(st.floats(-3.0, 3.0), min_size=2, max_size=2), min_size=1, max_size=80),
    st.tuples(st.lists(st.floats(-3.0, 3.0), min_size=2, max_size=2), st.integers(10, 150)).map(
        lambda t: [t[0]] * t[1]
    ),
)


@SETTINGS
@given(
    targets=targets,
    accel=st.one_of(st.floats(1.0, 50.0), st.just(math.inf)),
    dt=st.sampled_from([0.002, 0.01, 0.02]),
    budget=st.sampled_from([2, 4, 8, 16]),
    lipschitz=st.sampled_from([None, (0.7, 0.3), 0.7]),
)
@example(targets=[[0.0001, 2.0]] * 40, accel=30.0, dt=0.01, budget=16, lipschitz=None)  # issue 14's case
@example(targets=[[0.0001, 2.0]] * 150, accel=1.0, dt=0.002, budget=16, lipschitz=(0.7, 0.3))  # 1500-tick braking
def test_fk_calls_per_tick_never_exceed_the_budget_and_the_tcp_stays_in(targets, accel, dt, budget, lipschitz):
    box = PLANAR_BOX
    fk = CountingFk(planar_fk)
    cfg = ArmSafetyConfig(
        control_dt=dt, workspace=box, tcp_position=fk, tcp_lipschitz=lipschitz, workspace_fk_budget=budget
    )
    filt = ArmSafetyFilter(planar_arm(accel), cfg)
    filt.reset(np.array([0.0, 0.5]))
    prev, prev_step = np.array([0.0, 0.5]), np.zeros(2)
    for t in targets:
        fk.calls = 0
        q = filt.filter(Command("joint_positions", np.array(t))).values
        assert fk.calls <= budget
        assert box.contains(planar_fk(q)), (q, planar_fk(q))
        d = q - prev
        assert np.all(np.abs(d) <= 3.0 * dt + TOL)
        assert np.all(np.abs(d - prev_step) <= accel * dt * dt + TOL)
        prev, prev_step = q, d
    # Braking never needed a check of its own: it always followed the previous step's proven braking path.
    assert "workspace_unrecoverable" not in filt.log.counts


def test_slow_braking_bulge_is_caught_with_the_lipschitz_bound():
    """Issue 14's slow-braking sibling (the arc's apex just above the box top), checked through the Lipschitz
    pruning: the apex lies between pruned points, so a wrong radius would let the TCP out."""
    top = 0.3 + 0.3 - 1e-5  # apex of the arc at a = 0
    box = WorkspaceBox((-0.9, -1.0, -0.5), (0.8, 1.0, top), frame="base")
    fk = CountingFk(planar_fk)
    cfg = ArmSafetyConfig(control_dt=0.02, workspace=box, tcp_position=fk, tcp_lipschitz=(0.7, 0.3))
    filt = ArmSafetyFilter(planar_arm(1.0, 1.0, (0.0, 0.5)), cfg)
    filt.reset(np.array([0.0, 0.5]))
    for _ in range(200):
        fk.calls = 0
        q = filt.filter(Command("joint_positions", np.array([0.0, 2.5]))).values
        assert fk.calls <= cfg.workspace_fk_budget
        assert planar_fk(q)[2] <= top, (q, planar_fk(q))
    assert filt.log.counts.get("workspace", 0) > 0 and "workspace_unrecoverable" not in filt.log.counts
    assert q[1] > 1.5  # gets close under the apex (b = pi/2) instead of stopping early


@pytest.mark.parametrize(
    "field, value",
    [("tcp_lipschitz", -1.0), ("tcp_lipschitz", math.inf), ("tcp_lipschitz", (0.0, 0.0)), ("workspace_fk_budget", 1)],
)
def test_bad_budget_settings_are_one_line_errors(field, value):
    box = PLANAR_BOX
    with pytest.raises(ConfigError, match=field):
        ArmSafetyConfig(control_dt=0.01, workspace=box, tcp_position=planar_fk, **{field: value})


def test_lipschitz_of_the_wrong_length_is_refused():
    box = PLANAR_BOX
    cfg = ArmSafetyConfig(control_dt=0.01, workspace=box, tcp_position=planar_fk, tcp_lipschitz=(0.7, 0.3, 0.1))
    with pytest.raises(ConfigError, match="tcp_lipschitz has 3 values"):
        ArmSafetyFilter(planar_arm(30.0), cfg)


# -- MuJoCo arms -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def panda():
    pytest.importorskip("mujoco")
    import rcs

    return rcs.make_robot("sim/panda")


@pytest.mark.parametrize("name", ["sim/panda", "sim/so101"])
def test_model_lipschitz_bound_is_a_true_upper_bound(name):
    """Finite differences (per joint) and random pairs of configurations never exceed the model's bound."""
    pytest.importorskip("mujoco")
    import rcs

    kin = rcs.make_robot(name).kinematics
    bound = kin.tcp_lipschitz()
    n = len(kin.joint_names)
    assert bound.shape == (n,) and np.all(np.isfinite(bound)) and np.all(bound > 0)
    rng = np.random.default_rng(0)
    h = 1e-6
    for _ in range(300):
        q = rng.uniform(kin.lower, kin.upper)
        p = kin.forward(q)[0]
        for i in range(n):
            e = np.zeros(n)
            e[i] = h
            assert np.linalg.norm(kin.forward(q + e)[0] - p) <= bound[i] * h + 1e-12, (name, i, q)
        q2 = rng.uniform(kin.lower, kin.upper) if rng.random() < 0.5 else q + rng.normal(0, 0.05, n)
        assert np.linalg.norm(kin.forward(q2)[0] - p) <= np.abs(q2 - q) @ bound + 1e-12


def test_arm_safety_config_takes_the_bound_from_the_kinematics(panda):
    from rcs.control.task import arm_safety_config

    cfg = arm_safety_config(panda, 500.0)
    np.testing.assert_allclose(cfg.tcp_lipschitz, panda.kinematics.tcp_lipschitz())


@pytest.mark.parametrize("rate", [500.0, 100.0])
def test_panda_fk_calls_per_tick_stay_within_the_budget(panda, rate):
    """Far joint targets and pushes through the box faces on the Panda's real FK, with the config the control
    loop builds: never more than the budget per tick, and the TCP never leaves the box."""
    from rcs.control.task import arm_safety_config

    spec, box = panda.spec, panda.scene.workspace
    fk = CountingFk(lambda q: panda.kinematics.forward(q)[0])
    cfg = dataclasses.replace(arm_safety_config(panda, rate), tcp_position=fk)
    home = np.array(spec.home)
    rng = np.random.default_rng(int(rate))
    worst = 0
    for episode in range(4):
        filt = ArmSafetyFilter(spec, cfg)
        filt.reset(np.concatenate([home, [0.5]]))
        target = rng.uniform(spec.lower, spec.upper) if episode % 2 else home + rng.normal(0, 0.8, spec.dof)
        for _ in range(int(0.6 * rate)):
            fk.calls = 0
            out = filt.filter(Command("joint_positions", np.concatenate([target, [0.5]]))).values
            worst = max(worst, fk.calls)
            assert box.contains(fk.fk(out[: spec.dof])), out
        assert "workspace_unrecoverable" not in filt.log.counts
    assert 0 < worst <= cfg.workspace_fk_budget
