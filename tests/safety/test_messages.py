"""Intervention and watchdog messages show the values that decided them, and are not written once per tick."""

from __future__ import annotations

import logging
import math
import re

import numpy as np

from rcs.safety.arm import ArmSafetyConfig, ArmSafetyFilter
from rcs.safety.interventions import InterventionLog, format_distinct
from rcs.safety.limits import AxisLimiter
from rcs.safety.watchdog import Stage, Watchdog, WatchdogConfig
from rcs.spec import ArmSpec, GripperSpec, JointSpec
from rcs.types import Command
from tests.safety.fixtures import PLANAR_BOX, planar_arm, planar_fk

FILTER = "rcs.safety.interventions"
WATCHDOG = "rcs.safety.watchdog"


def _messages(caplog, level=logging.WARNING) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= level]


def test_acceleration_limit_message_says_asked_commanded_and_allowed_in_order(caplog):
    # Moving at 0.011 per tick with a change of at most 0.0004: a step of 0.0104 cannot be reached this tick.
    lim = AxisLimiter(("joint2",), np.array([-10.0]), np.array([10.0]), np.array([0.02]), np.array([0.0004]))
    lim.reset(np.zeros(1), np.array([0.011]))
    caplog.set_level(logging.WARNING, FILTER)
    out = lim.limit(np.array([0.0104]), InterventionLog("t"))
    assert math.isclose(out[0], 0.0106)
    (msg,) = _messages(caplog)
    assert "joint2: step 0.0104 per tick asked, 0.0106 commanded (allowed [0.0106, 0.0114], acceleration limit" in msg


def test_gripper_just_above_one_is_shown_with_the_digits_of_the_violation(caplog):
    spec = ArmSpec("t", (JointSpec("a", -1, 1, 1, 1, 10),), GripperSpec(0.0, 0.08, 20.0), "b", "t", 100, (0.0,))
    filt = ArmSafetyFilter(spec, ArmSafetyConfig(control_dt=0.01))
    filt.reset(np.array([0.0, 0.5]))
    caplog.set_level(logging.WARNING, FILTER)
    filt.filter(Command("joint_positions", np.array([0.0, 1.0000003])))
    (msg,) = _messages(caplog)
    assert "gripper=1.0000003 outside [0, 1]" in msg


def test_format_distinct_keeps_unequal_values_apart():
    assert format_distinct(1.00037, 0.0, 1.0) == ["1.00037", "0", "1"]
    assert format_distinct(1.0 + 3e-9, 1.0) == ["1.000000003", "1"]
    assert format_distinct(0.5, 0.5) == ["0.5", "0.5"]


def test_workspace_message_gives_the_real_violation_not_zero(caplog):
    # The case: the step itself is inside the box, its braking path is not.
    spec = planar_arm(30.0)
    filt = ArmSafetyFilter(spec, ArmSafetyConfig(control_dt=0.01, workspace=PLANAR_BOX, tcp_position=planar_fk))
    filt.reset(np.array([0.0001, 0.5]))
    caplog.set_level(logging.WARNING, FILTER)
    for _ in range(40):
        filt.filter(Command("joint_positions", np.array([0.0001, 2.0])))
    (msg,) = [m for m in _messages(caplog) if "(workspace)" in m]
    assert "violation 0.0 mm" not in msg
    found = re.search(r"by ([0-9.e+-]+) mm (\d+) ticks into braking", msg)
    assert found is not None, msg
    assert float(found.group(1)) > 0.0 and int(found.group(2)) > 0


def test_interventions_log_one_warning_per_reason_and_an_episode_summary(caplog):
    report = InterventionLog("arm safety (t)")
    caplog.set_level(logging.DEBUG, FILTER)
    for _ in range(500):
        report.record("acceleration_limit", "x")
        report.record("gripper_position_limit", "y")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2  # the first of each reason; the other 998 at DEBUG
    assert report.episode_summary() == {"acceleration_limit": 500, "gripper_position_limit": 500}
    caplog.clear()
    assert report.end_episode("seed 3") == {"acceleration_limit": 500, "gripper_position_limit": 500}
    assert _messages(caplog) == [
        "arm safety (t): episode seed 3: 1000 interventions (acceleration_limit 500, gripper_position_limit 500)"
    ]
    assert report.episode_summary() == {} and report.summary()["acceleration_limit"] == 500
    caplog.clear()
    report.record("acceleration_limit", "x")  # a new episode's first is visible again
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    report.start_episode()  # ends the unended episode (logged), then starts a new one
    assert report.episodes == 2 and report.episode_summary() == {}


def test_watchdog_transitions_always_say_why(caplog):
    wd = Watchdog(WatchdogConfig(control_dt=0.01, stop_after_s=0.2, disarm_after_s=1.0, fade_in_s=0.0))
    caplog.set_level(logging.DEBUG, WATCHDOG)
    wd.engage(0)
    wd.update(0, True, 0)
    for tick in range(1, 120):
        wd.update(tick, False, 0)
    assert wd.stage is Stage.DISARMED
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("watchdog:")]
    stopping = next(m for m in lines if "-> stopping" in m)
    assert stopping == (
        "watchdog: hold -> stopping at tick 20: no fresh chunk for 20 ticks since the last chunk "
        "(0.2 s >= stop_after_s 0.2 s)"
    )
    assert any(m.startswith("watchdog: stopping -> disarmed at tick 100: no fresh chunk for 100 ticks") for m in lines)
    assert all(re.match(r"watchdog: \w+ -> \w+ at tick \d+: \S", m) for m in lines)
    assert wd.reason.startswith("no fresh chunk for 100 ticks")


def test_watchdog_flapping_between_running_and_hold_is_not_logged_per_tick(caplog):
    wd = Watchdog(WatchdogConfig(control_dt=0.002, fade_in_s=0.0))
    caplog.set_level(logging.INFO, WATCHDOG)
    wd.engage(0)
    for tick in range(200):  # starved every other tick, chunks keep arriving
        wd.update(tick, tick % 2 == 0, tick)
    assert len([r for r in caplog.records if r.getMessage().startswith("watchdog:")]) <= 3
    caplog.clear()
    summary = wd.end_episode("seed 1")
    assert summary["ticks_in_stage"] == {"running": 100, "hold": 100}
    assert summary["transitions"]["running->hold"] == 100
    (msg,) = _messages(caplog, logging.INFO)
    assert msg.startswith("watchdog: episode seed 1: ticks running 100, hold 100; transitions ")
    assert wd.episode_summary() == {"ticks_in_stage": {}, "transitions": {}}
