import subprocess
import sys

import numpy as np
import pytest

import rcs
from rcs.errors import (
    ActionError,
    ConfigError,
    RegistryCollisionError,
    UnknownNameError,
)
from rcs.registry import Registry
from rcs.spec import DomainRandomization, JointSpec
from rcs.validation import (
    ClipReport,
    LimitPolicy,
    as_scalar,
    as_vector,
    enforce_bounds,
    limit_policy_of,
    positive_seconds,
)


def test_import_rcs_stays_light():
    code = (
        "import sys, rcs, rcs.envs.registration, rcs.cli.main;"
        "heavy = [m for m in ('torch', 'mujoco', 'lerobot', 'cv2', 'rclpy') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"import rcs pulled in heavy packages: {out}"


def test_unknown_robot_lists_known_names():
    with pytest.raises(UnknownNameError) as e:
        rcs.make_robot("sim/pandaa")
    msg = str(e.value)
    assert "sim/pandaa" in msg and "sim/panda" in msg and "sim/crazyflie" in msg


def test_registry_explicit_and_collisions():
    reg = Registry("widget", "rcs.tests.no_such_group")
    reg.register("a", lambda **kw: ("a", kw))
    assert reg.make("a", x=1) == ("a", {"x": 1})
    with pytest.raises(RegistryCollisionError, match="'a' is already registered"):
        reg.register("a", lambda: None)
    reg.register("a", lambda **kw: "replaced", replace=True)
    assert reg.make("a") == "replaced"
    with pytest.raises(UnknownNameError, match="known widgets: a"):
        reg.make("b")


def test_entry_point_collision_is_reported(monkeypatch):
    import importlib.metadata as md

    eps = [
        md.EntryPoint("x", "pkg_one.mod:make", "rcs.robots"),
        md.EntryPoint("x", "pkg_two.mod:make", "rcs.robots"),
    ]
    monkeypatch.setattr(md, "entry_points", lambda group: eps)
    reg = Registry("robot", "rcs.robots")
    with pytest.raises(RegistryCollisionError, match="pkg_one.mod:make.*pkg_two.mod:make"):
        reg.names()


@pytest.mark.parametrize(
    "value, field",
    [
        (np.zeros(2), "q.shape"),
        (np.zeros((3, 1)), "q.shape"),
        (np.array(["a", "b", "c"]), "q.dtype"),
        (np.array([True, False, True]), "q.dtype"),
        (np.array([0.0, np.nan, 0.0]), "q[1]"),
        (np.array([0.0, 0.0, np.inf]), "q[2]"),
    ],
)
def test_as_vector_names_the_field(value, field):
    with pytest.raises(ActionError) as e:
        as_vector("q", value, 3)
    assert e.value.field == field


def test_as_scalar_rejects_nan_and_arrays():
    with pytest.raises(ActionError, match="finite"):
        as_scalar("g", float("nan"))
    with pytest.raises(ActionError, match="single real number"):
        as_scalar("g", [1.0, 2.0])
    assert as_scalar("g", np.float32(0.5)) == 0.5


def test_enforce_bounds_raise_names_label_value_and_limit():
    with pytest.raises(ActionError) as e:
        enforce_bounds("q", np.array([0.0, 2.0]), [-1, -1], [1, 1], LimitPolicy.RAISE, labels=("j1", "j2"), unit="rad")
    assert e.value.field == "q[j2]" and e.value.value == 2.0 and "[-1, 1] rad" in e.value.limit


def test_enforce_bounds_clip_reports():
    report = ClipReport()
    out = enforce_bounds("q", np.array([0.0, 2.0, -3.0]), -1.0, 1.0, LimitPolicy.CLIP, report)
    np.testing.assert_array_equal(out, [0.0, 1.0, -1.0])
    assert report.counts == {"q": 1} and "clipped q[1]" in report.last


def test_limit_policy_of_accepts_members_and_values():
    assert limit_policy_of("hw/x", "clip") is LimitPolicy.CLIP
    assert limit_policy_of("hw/x", LimitPolicy.RAISE) is LimitPolicy.RAISE


@pytest.mark.parametrize("value", ["wrap", "", None, 1, ["raise"]])
def test_limit_policy_of_refuses_in_one_line_naming_device_and_choices(value):
    with pytest.raises(ConfigError) as e:
        limit_policy_of("hw/x", value)
    assert str(e.value) == f"hw/x: limit_policy={value!r} must be one of raise, clip"


def test_positive_seconds_accepts_the_half_open_range():
    assert positive_seconds("hw/x", "t_s", 2, 30.0) == 2.0 and type(positive_seconds("hw/x", "t_s", 2, 30.0)) is float
    assert positive_seconds("hw/x", "t_s", 30.0, 30.0) == 30.0  # the upper bound is inclusive
    assert positive_seconds("hw/x", "t_s", 1e-9, 30.0) == 1e-9


@pytest.mark.parametrize(
    "value", [0, 0.0, -1, 30.000001, float("nan"), float("inf"), -float("inf"), True, False, "1", None, [1.0]]
)
def test_positive_seconds_refuses_in_one_line_naming_device_field_and_range(value):
    with pytest.raises(ConfigError) as e:
        positive_seconds("hw/x", "t_s", value, 30.0)
    assert str(e.value) == f"hw/x: t_s={value!r} must be within (0, 30.0] s"


def test_specs_reject_bad_values():
    with pytest.raises(ConfigError, match="lower=1.0 must be < upper=0.0"):
        JointSpec("j", 1.0, 0.0, 1.0, 1.0)
    with pytest.raises(ConfigError, match="max_velocity"):
        JointSpec("j", 0.0, 1.0, 0.0, 1.0)
    with pytest.raises(ConfigError, match="mass"):
        DomainRandomization(mass=(1.2, 1.1))


def test_randomization_sampling_is_seeded_and_in_range():
    dr = DomainRandomization(mass=(0.8, 1.2), friction=(0.5, 1.5))
    a = dr.sample(np.random.default_rng(3))
    b = dr.sample(np.random.default_rng(3))
    assert a == b and 0.8 <= a["mass"] <= 1.2 and 0.5 <= a["friction"] <= 1.5 and a["actuator_gain"] == 1.0
