"""Chunk executor with the device's command limits: its output needs nothing from the safety filter.

Issue 14 item 3: minimum-jerk interpolation overshot a gripper held at 1.0 (1.00037 > 1) and splice corrections
at seams exceeded the spec's per-tick acceleration, so the safety filter intervened hundreds of times in a
successful episode. With :attr:`ExecutorConfig.limits` every output is inside the bounds and the velocity and
acceleration limits, relative to what was executed, and an :class:`ArmSafetyFilter` built from the same limits
changes nothing.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rcs.control.chunking import (
    ActionChunk,
    ChunkExecutor,
    CommandLimits,
    ExecutorConfig,
    limits_of_safety_filter,
)
from rcs.errors import ConfigError
from rcs.safety.arm import ArmSafetyConfig, ArmSafetyFilter
from rcs.safety.quadrotor import QuadrotorSafetyConfig, QuadrotorSafetyFilter
from rcs.spec import ArmSpec, GripperSpec, JointSpec
from rcs.types import Command
from tests.safety.fixtures import FENCE, QUAD

DT = 0.01  # 100 Hz, the rate `rcs eval` runs the Panda at
POLICY_DT = 10 * DT
#: rounding of sums and differences of O(1) positions; far below any limit checked here (>= 1e-4 per tick)
EPS = 1e-12


def arm_filter() -> ArmSafetyFilter:
    """Two Panda-like joints (joint2's 7.5 rad/s^2 is the tightest) and a gripper."""
    joints = (
        JointSpec("j1", -2.8973, 2.8973, 2.175, 87.0, 15.0),
        JointSpec("j2", -1.7628, 1.7628, 2.175, 87.0, 7.5),
    )
    spec = ArmSpec("t", joints, GripperSpec(0.0, 0.08, 70.0), "base", "tcp", 1000.0, (0.0, 0.0))
    return ArmSafetyFilter(spec, ArmSafetyConfig(control_dt=DT))


def make_chunk(ex: ChunkExecutor, start: int, actions: np.ndarray) -> ActionChunk:
    return ActionChunk(start, np.asarray(actions, dtype=np.float64), ex.names, POLICY_DT, DT, time.monotonic())


def run_through_filter(
    ex: ChunkExecutor, filt: ArmSafetyFilter, deliveries: dict[int, list[ActionChunk]], ticks: int, start: np.ndarray
) -> np.ndarray:
    """The PolicyTask pipeline without the watchdog: executor -> filter -> fed back. Returns the executor's
    outputs, preceded by the start command twice (the executed history the limits are relative to)."""
    filt.reset(start)
    ex.reset(0, start)
    out = [start, start]
    for k in range(ticks):
        for c in deliveries.get(k, []):
            assert ex.submit(c) is None
        action = ex.step(k)
        assert action is not None, f"starved at tick {k}"
        out.append(action)
        safe = filt.filter(Command("joint_positions", action))
        ex.record_executed(k, safe.values)
    return np.array(out)


def violations(x: np.ndarray, limits: CommandLimits) -> dict[str, float]:
    """Largest excess over each limit along the command sequence ``x`` (T, D) (0 where respected)."""
    lower, upper = np.array(limits.lower), np.array(limits.upper)
    step = np.diff(x, axis=0)
    dv = np.diff(step, axis=0)
    return {
        "position": float(max(np.max(lower - x), np.max(x - upper), 0.0)),
        "velocity": float(max(np.max(np.abs(step) - np.array(limits.max_step)), 0.0)),
        "acceleration": float(max(np.max(np.abs(dv) - np.array(limits.max_dv)), 0.0)),
    }


def jumping_chunks(ex: ChunkExecutor) -> dict[int, list[ActionChunk]]:
    """Chunks every 40 ticks, delivered 6 ticks late, each 0.08 rad away from the last at the seam; the gripper
    closes from 0 to exactly 1.0 and stays there (minimum-jerk overshoots such a step)."""
    deliveries: dict[int, list[ActionChunk]] = {}
    for n, start in enumerate(range(0, 200, 40)):
        t = np.arange(8.0)
        j1 = 0.08 * n + 0.02 * t
        j2 = -0.08 * n * (-1) ** n + 0.01 * t
        grip = np.where(t + 4 * n >= 3, 1.0, 0.0)
        actions = np.stack([j1, j2, grip], axis=1)
        deliveries.setdefault(start + (6 if start else 0), []).append(make_chunk(ex, start, actions))
    return deliveries


def test_seam_jumps_and_gripper_at_one_stay_inside_the_limits_and_the_filter_never_intervenes():
    filt = arm_filter()
    limits = limits_of_safety_filter(filt)
    assert limits is not None and limits.upper[-1] == 1.0 and limits.max_dv[1] == pytest.approx(7.5 * DT * DT)
    start = np.zeros(3)

    # without limits (the old executor) the same chunks overshoot: what the filter had to fix
    free = ChunkExecutor(ExecutorConfig(names=filt.names, control_dt=DT))
    x_free = run_through_filter(free, filt, jumping_chunks(free), 200, start)
    v_free = violations(x_free, limits)
    assert x_free[:, 2].max() > 1.0 + 1e-4 and v_free["acceleration"] > 1e-4, v_free
    assert filt.log.counts.get("gripper_position_limit", 0) > 0 and filt.log.counts.get("acceleration_limit", 0) > 0

    filt = arm_filter()
    ex = ChunkExecutor(ExecutorConfig(names=filt.names, control_dt=DT, limits=limits))
    x = run_through_filter(ex, filt, jumping_chunks(ex), 200, start)
    v = violations(x, limits)
    assert all(excess <= EPS for excess in v.values()), v
    assert x[:, 2].max() <= 1.0 and x[:, 2].min() >= 0.0  # exactly inside, not within a tolerance
    assert filt.log.total == 0, filt.log.counts
    assert ex.limited_ticks > 0  # the limits really shaped this run
    # the committed plan a policy sees for inpainting is inside the bounds too
    assert ex.request().committed[:, 2].max() <= 1.0


def test_limits_keep_the_plan_when_it_is_already_inside_them():
    filt = arm_filter()
    limits = limits_of_safety_filter(filt)
    t = np.arange(10.0)
    actions = np.stack([0.01 * t, -0.005 * t, np.full(10, 0.5)], axis=1)  # slow, smooth, gripper mid-range
    ex_free = ChunkExecutor(ExecutorConfig(names=filt.names, control_dt=DT))
    ex = ChunkExecutor(ExecutorConfig(names=filt.names, control_dt=DT, limits=limits))
    start = actions[0].copy()
    x_free = run_through_filter(ex_free, arm_filter(), {0: [make_chunk(ex_free, 0, actions)]}, 100, start)
    x = run_through_filter(ex, arm_filter(), {0: [make_chunk(ex, 0, actions)]}, 100, start)
    np.testing.assert_array_equal(x, x_free)
    assert ex.limited_ticks == 0


@st.composite
def chunk_schedules(draw: st.DrawFn) -> list[tuple[int, int, np.ndarray]]:
    """(observation tick, delivery delay, actions): random joints, gripper values at 0, 1 or between, and a
    next observation before the previous chunk ends (later, the watchdog's fallback commands)."""
    schedule = []
    tick = 0
    for _ in range(draw(st.integers(1, 5))):
        h = draw(st.integers(1, 8))
        joints = draw(st.lists(st.lists(st.floats(-0.4, 0.4), min_size=2, max_size=2), min_size=h, max_size=h))
        grip = draw(st.lists(st.sampled_from([0.0, 1.0, 0.999, 0.5]), min_size=h, max_size=h))
        actions = np.column_stack([np.array(joints), np.array(grip)])
        delay = draw(st.integers(0, 8)) if schedule else 0  # the first arrives at once: no starved start
        schedule.append((tick, delay, actions))
        tick += draw(st.integers(delay + 1, max(delay + 1, h * 10 - 1)))
    return schedule


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schedule=chunk_schedules(), strategy=st.sampled_from(["splice", "ensemble", "blend", "sync"]))
def test_any_chunks_any_strategy_stay_inside_the_limits(schedule, strategy):
    filt = arm_filter()
    limits = limits_of_safety_filter(filt)
    assert limits is not None
    ex = ChunkExecutor(ExecutorConfig(names=filt.names, control_dt=DT, strategy=strategy, limits=limits))
    start = np.array([0.1, -0.1, 1.0])
    filt.reset(start)
    ex.reset(0, start)
    deliveries: dict[int, list[ActionChunk]] = {}
    for obs, delay, actions in schedule:
        deliveries.setdefault(obs + delay, []).append(make_chunk(ex, obs, actions))
    executed = [start, start]
    last = max(deliveries) + 90
    for k in range(last):
        for c in deliveries.get(k, []):
            ex.submit(c)  # a chunk that expired before its delivery is rejected: fine
        action = ex.step(k)
        if action is None:  # starved: from here on the watchdog's fallback commands, not the executor
            break
        executed.append(action)
        ex.record_executed(k, filt.filter(Command("joint_positions", action)).values)
    assert len(executed) > 2
    v = violations(np.array(executed), limits)
    assert all(excess <= EPS for excess in v.values()), v
    assert filt.log.total == 0, filt.log.counts


def test_bad_limits_are_one_line_config_errors():
    names = ("a", "b")
    ok = CommandLimits((-1.0, -1.0), (1.0, 1.0), (0.1, 0.1), (0.01, 0.01))
    with pytest.raises(ConfigError, match=r"limits has 2 axes but names has 3"):
        ExecutorConfig(names=(*names, "c"), control_dt=DT, limits=ok)
    with pytest.raises(ConfigError, match=r"limits.upper has 1 axes"):
        CommandLimits((-1.0, -1.0), (1.0,), (0.1, 0.1), (0.01, 0.01))
    with pytest.raises(ConfigError, match=r"limits.lower\[1\]=2.0 is above limits.upper\[1\]=1.0"):
        CommandLimits((-1.0, 2.0), (1.0, 1.0), (0.1, 0.1), (0.01, 0.01))
    with pytest.raises(ConfigError, match=r"limits.max_dv=.* must be > 0"):
        CommandLimits((-1.0, -1.0), (1.0, 1.0), (0.1, 0.1), (0.01, 0.0))
    with pytest.raises(ConfigError, match=r"limits.max_step=.* contains NaN"):
        CommandLimits((-1.0, -1.0), (1.0, 1.0), (0.1, float("nan")), (0.01, 0.01))


def test_quadrotor_filters_give_no_box_limits():
    cfg = QuadrotorSafetyConfig(control_dt=DT, geofence=FENCE, max_altitude=2.0)
    assert limits_of_safety_filter(QuadrotorSafetyFilter(QUAD, cfg)) is None


def test_panda_pipeline_with_executor_limits_needs_no_safety_intervention():
    """The PolicyTask pipeline on the simulated Panda at 100 Hz (executor -> watchdog -> filter -> robot), with
    the executor built from the filter's limits and no fade-in: chunks that jump at seams and a gripper closing
    to exactly 1.0 reach the robot without a single safety intervention."""
    pytest.importorskip("mujoco")
    import dataclasses

    import rcs
    from rcs.control.loop import ControlLoop
    from rcs.control.task import make_policy_task

    rate = 100.0
    robot = rcs.make_robot("sim/panda")
    robot.connect()
    try:
        robot.reset(seed=0)
        task = make_policy_task(robot, rate, watchdog={"fade_in_s": 0.0, "stop_after_s": 1.0, "disarm_after_s": 2.0})
        limits = limits_of_safety_filter(task.safety)
        assert limits is not None and limits.size == 8 and limits.upper[-1] == 1.0
        cfg = dataclasses.replace(task.executor.config, limits=limits)
        task.executor = ChunkExecutor(cfg)
        s = robot.read()
        home = np.concatenate([s.joint_positions, [s.gripper]])
        ex = task.executor

        def chunk_at(start: int, n: int) -> ActionChunk:
            t = np.arange(8.0)[:, None]
            joints = home[:7] + 0.05 * (-1) ** n * np.ones(7) + 0.01 * t  # 0.1 rad jumps between chunks
            grip = np.where(t + 4 * n >= 3, 1.0, 0.0)  # opens to exactly 1.0 and stays there
            return ActionChunk(start, np.hstack([joints, grip]), ex.names, POLICY_DT, 1.0 / rate, time.monotonic())

        class Driver:
            def read(self, tick: int):
                return task.read(tick)

            def compute(self, tick: int, state):
                if tick == 0:
                    task.engage()
                if tick % 40 == 0:
                    observed = max(tick - 5, 0)  # delivered 5 ticks after its observation
                    assert ex.submit(chunk_at(observed, tick // 40)) is None
                return task.compute(tick, state)

            def write(self, tick: int, command) -> None:
                task.write(tick, command)

        ControlLoop(Driver(), rate, robot=robot, paced=False).run(ticks=200)
        assert task.stage.value == "running" and ex.accepted == 5
        assert task.safety.log.total == 0, task.safety.log.counts
        assert ex.limited_ticks > 0  # the chunks did need shaping
    finally:
        robot.close()
        robot.simulation.close()
