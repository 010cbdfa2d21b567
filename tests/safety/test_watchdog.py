"""Watchdog stages and timings in simulation, stop behaviour, fade-in, and the latching e-stop."""

from __future__ import annotations

import io
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from rcs.control.chunking import ActionChunk
from rcs.control.loop import ControlLoop
from rcs.control.task import PolicyTask, make_policy_task
from rcs.errors import ConfigError
from rcs.safety.quadrotor import QuadrotorSafetyConfig
from rcs.safety.watchdog import (
    EStop,
    KeyboardEStop,
    Stage,
    Watchdog,
    WatchdogConfig,
    install_estop_signal_handler,
    min_jerk_ramp,
)
from rcs.spec import WorkspaceBox

pytest.importorskip("mujoco")
import rcs

RATE = 500.0
DT = 1.0 / RATE


class Hooked:
    """A task wrapper that calls ``hook(tick)`` before each compute and records stages and commands."""

    def __init__(self, task: PolicyTask, hook: Callable[[int], None] = lambda tick: None) -> None:
        self.task, self.hook = task, hook
        self.stages: list[Stage] = []
        self.commands: list[np.ndarray] = []  # after the safety filter
        self.requested: list[np.ndarray] = []  # before it
        self.states: list[Any] = []

    def read(self, tick: int) -> Any:
        return self.task.read(tick)

    def compute(self, tick: int, state: Any) -> Any:
        self.hook(tick)
        out = self.task.compute(tick, state)
        self.stages.append(self.task.stage)
        self.commands.append(np.array(out.values))
        self.requested.append(np.array(self.task.last_command.values))  # type: ignore[union-attr]
        self.states.append(state)
        return out

    def write(self, tick: int, command: Any) -> None:
        self.task.write(tick, command)


@pytest.fixture(scope="module")
def panda():
    robot = rcs.make_robot("sim/panda")
    robot.connect()
    yield robot
    robot.close()
    robot.simulation.close()


def _arm_task(panda, **watchdog) -> PolicyTask:
    panda.reset(seed=0)
    return make_policy_task(panda, RATE, watchdog={"fade_in_s": 0.0, **watchdog})


def _constant_chunk(
    task: PolicyTask, tick: int, target: np.ndarray, h: int = 10, policy_dt: float = 0.01
) -> ActionChunk:
    return ActionChunk(tick, np.tile(target, (h, 1)), task.executor.names, policy_dt, DT, time.monotonic())


def _hold_vector(panda) -> np.ndarray:
    s = panda.read()
    return np.concatenate([s.joint_positions, [s.gripper]])


def _first(stages: list[Stage], stage: Stage) -> int:
    return stages.index(stage)


def test_hold_stop_disarm_timings_in_simulation(panda):
    task = _arm_task(panda)  # defaults: stop after 200 ms, disarm after 1 s
    target = _hold_vector(panda)
    target[0] += 0.05
    sent = {}

    def hook(tick: int) -> None:
        if tick == 0:
            task.engage()
        if tick == 1:
            sent["chunk"] = _constant_chunk(task, 1, target)  # 10 actions x 5 ticks: covers ticks 1..50
            assert task.executor.submit(sent["chunk"]) is None

    rec = Hooked(task, hook)
    loop = ControlLoop(rec, RATE, robot=panda, paced=False)
    loop.run(ticks=700)
    s = rec.stages
    assert s[1] is Stage.RUNNING and all(x is Stage.RUNNING for x in s[1:51])
    assert s[51] is Stage.HOLD  # first tick without a fresh action
    np.testing.assert_array_equal(rec.requested[51], rec.commands[50])  # holds the last command ...
    q0 = np.array(rec.commands)[:, 0]
    a_max = panda.spec.max_acceleration[0] * DT * DT
    assert abs(q0[51] - q0[50]) <= abs(q0[50] - q0[49]) - a_max + 1e-12  # ... braking at the acceleration limit
    assert _first(s, Stage.STOPPING) == 1 + 100  # 200 ms after the chunk arrived
    assert _first(s, Stage.DISARMED) == 1 + 500  # 1 s after the chunk arrived
    assert all(x is Stage.DISARMED for x in s[501:])
    # it came to rest and stays there, within every limit
    q = np.array(rec.commands)[:, :7]
    assert np.abs(np.diff(q[-100:], axis=0)).max() < 1e-12
    assert np.all(q >= panda.spec.lower) and np.all(q <= panda.spec.upper)
    assert np.abs(panda.read().joint_velocities).max() < 0.05
    # a disarmed arm ignores new chunks until re-engaged
    assert task.executor.submit(_constant_chunk(task, 700, target + 0.1)) is None
    loop.run(ticks=20)
    assert rec.stages[-20:] == [Stage.DISARMED] * 20


def test_custom_timeouts_and_fresh_chunks_keep_it_running(panda):
    task = _arm_task(panda, stop_after_s=0.05, disarm_after_s=0.3)
    target = _hold_vector(panda)

    def hook(tick: int) -> None:
        if tick == 0:
            task.engage()
        if tick < 200 and tick % 20 == 0:  # a fresh chunk every 40 ms < 50 ms
            task.executor.submit(_constant_chunk(task, tick, target))

    rec = Hooked(task, hook)
    ControlLoop(rec, RATE, robot=panda, paced=False).run(ticks=400)
    s = rec.stages
    assert all(x is Stage.RUNNING for x in s[:200])
    last_chunk = 180
    assert _first(s, Stage.STOPPING) == last_chunk + 25 and _first(s, Stage.DISARMED) == last_chunk + 150


def test_stop_decelerates_smoothly(panda):
    task = _arm_task(panda, stop_after_s=0.05, disarm_after_s=0.5)
    home = _hold_vector(panda)
    ramp = home + np.outer(np.linspace(0, 0.3, 60), np.r_[1.0, np.zeros(7)])  # moving at 0.3 rad / 0.6 s

    def hook(tick: int) -> None:
        if tick == 0:
            task.engage()
            task.executor.submit(ActionChunk(0, ramp, task.executor.names, 0.01, DT, time.monotonic()))

    rec = Hooked(task, hook)
    ControlLoop(rec, RATE, robot=panda, paced=False).run(ticks=150)
    q0 = np.array(rec.commands)[:, 0]
    stop = _first(rec.stages, Stage.STOPPING)
    v = np.diff(q0) / DT
    assert abs(v[stop - 2]) > 0.2  # it was moving when the stop began
    assert np.all(np.abs(np.diff(v[stop - 1 :])) <= panda.spec.max_acceleration[0] * DT + 1e-9)
    assert abs(v[-1]) < 1e-9  # and came to rest


def test_a_stop_on_a_loop_that_skips_ticks_keeps_its_time_and_distance():
    """The stop ramp advances with control ticks, not calls: a loaded loop that wakes every 5th tick stops at the
    same point, at the same tick, as one that runs every tick."""
    from rcs.safety.watchdog import ArmFallback, Command, CommandHistory

    def stop(every: int) -> dict[int, float]:
        """Ticks since the stop began -> distance travelled since, calling every ``every`` ticks."""
        fallback = ArmFallback(lambda state: np.zeros(1), control_dt=DT, stop_time_s=0.2)  # 100 ticks
        history = CommandHistory()
        history.push(Command("joint_positions", np.array([0.0])), 0)
        history.push(Command("joint_positions", np.array([0.001 * every])), every)  # 0.5 rad/s in either case
        out = {}
        for tick in range(2 * every, 300, every):
            command = fallback.command(Stage.STOPPING, None, history, tick)
            history.push(command, tick)
            out[tick - every] = float(command.values[0]) - 0.001 * every
        return out

    every_tick, every_fifth = stop(1), stop(5)
    distance = 0.001 * (100 - 1) / 2  # v (N - 1) / 2
    for trace in (every_tick, every_fifth):
        assert min(n for n, d in trace.items() if d == pytest.approx(distance, abs=1e-12)) <= 100  # 0.2 s
        assert max(trace.values()) == pytest.approx(distance, abs=1e-12)  # and no further
    for n in (5, 50, 100):
        assert every_fifth[n] == pytest.approx(every_tick[n], abs=1e-12)  # the same point at the same tick


def test_fade_in_ramps_from_hold_to_policy(panda):
    panda.reset(seed=0)
    task = make_policy_task(panda, RATE, watchdog={"fade_in_s": 0.2, "stop_after_s": 1.0, "disarm_after_s": 2.0})
    start = _hold_vector(panda)
    target = start.copy()
    target[-1] = 0.2  # gripper: no joint dynamics limits in the way

    def hook(tick: int) -> None:
        if tick == 0:
            task.engage()
        if tick in (0, 40):  # the second chunk is spliced during the fade: it must not be faded twice
            assert task.executor.submit(_constant_chunk(task, tick, target, h=50)) is None

    rec = Hooked(task, hook)
    ControlLoop(rec, RATE, robot=panda, paced=False).run(ticks=150)
    g = np.array(rec.commands)[:, -1]
    alpha = np.array([min_jerk_ramp((k + 1) / 100) for k in range(150)])
    # after the splice window (16 ticks) the executor outputs the target: what is left is the fade-in
    np.testing.assert_allclose(g[20:], start[-1] + alpha[20:] * (target[-1] - start[-1]), atol=1e-9)
    assert g[0] == pytest.approx(start[-1], abs=1e-3) and np.all(np.diff(g) <= 1e-12)
    assert g[99:] == pytest.approx(0.2)


def test_bad_chunks_in_the_loop_are_rejected_and_the_arm_holds(panda):
    task = _arm_task(panda)
    good = _hold_vector(panda)
    good[0] += 0.02
    names = task.executor.names
    now = time.monotonic
    bad = {
        30: ActionChunk(30, np.tile(good, (10, 1)), names[::-1], 0.01, DT, now()),  # joint order
        31: ActionChunk(31, np.tile(good[:-1], (10, 1)), names, 0.01, DT, now()),  # shape
        32: ActionChunk(32, np.full((10, 8), np.nan), names, 0.01, DT, now()),  # NaN
        33: ActionChunk(33, np.tile(good, (10, 1)).astype(np.int64), names, 0.01, DT, now()),  # dtype
        34: ActionChunk(90, np.tile(good, (10, 1)), names, 0.01, DT, now()),  # future tick
        35: ActionChunk(35, np.tile(good, (10, 1)), names, 0.01, DT, now() - 10.0),  # stale timestamp
    }
    reasons = []

    def hook(tick: int) -> None:
        if tick == 0:
            task.engage()
            task.executor.submit(_constant_chunk(task, 0, good, h=4))  # covers ticks 0..19
        if tick in bad:
            reasons.append(task.executor.submit(bad[tick]).reason)  # type: ignore[union-attr]

    rec = Hooked(task, hook)
    ControlLoop(rec, RATE, robot=panda, paced=False).run(ticks=80)
    assert reasons == ["names", "shape", "non_finite", "dtype", "future_tick", "stale_timestamp"]
    assert rec.stages[19] is Stage.RUNNING and all(s is Stage.HOLD for s in rec.stages[20:80])
    q = np.array(rec.commands)
    assert np.isfinite(q).all() and np.abs(np.diff(q[-20:], axis=0)).max() < 1e-12  # holding still
    assert task.report()["chunk_rejections"] == dict.fromkeys(reasons, 1)


# -- e-stop ---------------------------------------------------------------------------------------------


def test_estop_latches_until_reset_and_reengage(panda):
    task = _arm_task(panda)
    home = _hold_vector(panda)
    away = home.copy()
    away[0] += 0.3

    def hook(tick: int) -> None:
        if tick == 0:
            task.engage()
        if tick % 20 == 0:
            task.executor.submit(_constant_chunk(task, tick, away))
        if tick == 60:
            task.estop.trigger("test")

    rec = Hooked(task, hook)
    loop = ControlLoop(rec, RATE, robot=panda, paced=False)
    loop.run(ticks=300)
    s = rec.stages
    assert s[59] is Stage.RUNNING and all(x is Stage.ESTOP for x in s[60:])
    q = np.array(rec.commands)[:, 0]
    assert np.abs(np.diff(q[-50:])).max() < 1e-12  # stopped, despite fresh chunks arriving
    assert task.estop.triggered and task.estop.reason == "test"
    task.engage()  # refused while latched
    loop.run(ticks=5)
    assert rec.stages[-1] is Stage.ESTOP
    task.estop.reset()
    loop.run(ticks=5)
    assert rec.stages[-1] is Stage.DISARMED  # reset alone does not resume
    task.engage()
    loop.run(ticks=30)
    assert rec.stages[-1] is Stage.RUNNING


def test_estop_object_semantics():
    e = EStop()
    assert not e.triggered
    e.trigger("first")
    e.trigger("second")
    assert e.triggered and e.reason == "first" and e.count == 2
    e.reset()
    assert not e.triggered and e.reason == ""
    wd = Watchdog(WatchdogConfig(control_dt=0.01), e)
    wd.engage(0)
    e.trigger("x")
    assert wd.update(1, True, 0) is Stage.ESTOP and not wd.engaged


def test_estop_from_signal():
    e = EStop()
    restore = install_estop_signal_handler(e, (signal.SIGUSR1, signal.SIGINT))
    try:
        os.kill(os.getpid(), signal.SIGUSR1)
        for _ in range(100):
            if e.triggered:
                break
            time.sleep(0.001)
        assert e.triggered and e.reason == "signal SIGUSR1"
        with pytest.raises(KeyboardInterrupt):  # a second Ctrl-C while latched still interrupts
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.1)
    finally:
        restore()
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL


def test_estop_from_keyboard_pipe():
    e = EStop()
    r, w = os.pipe()
    with os.fdopen(r, "rb", buffering=0) as stream, KeyboardEStop(e, stream):
        os.write(w, b"xy")
        time.sleep(0.1)
        assert not e.triggered
        os.write(w, b"e")
        for _ in range(200):
            if e.triggered:
                break
            time.sleep(0.005)
    os.close(w)
    assert e.triggered and e.reason == "keyboard 'e'"


def test_estop_from_keyboard_text_stream():
    e = EStop()
    with KeyboardEStop(e, io.StringIO("ab c")) as kb:
        kb._thread.join(timeout=1.0)  # type: ignore[union-attr]
    assert e.triggered and e.reason == "keyboard ' '"


def test_watchdog_config_validation():
    with pytest.raises(ConfigError):
        WatchdogConfig(control_dt=0.01, stop_after_s=1.0, disarm_after_s=0.5)


# -- quadrotor: hold, then land; never cut thrust in the air ---------------------------------------------


def test_quadrotor_holds_then_lands_and_disarms_on_the_ground():
    rate = 100.0
    quad = rcs.make_robot("sim/crazyflie")
    quad.connect()
    try:
        quad.reset(seed=0)
        cfg = QuadrotorSafetyConfig(
            control_dt=1 / rate, geofence=WorkspaceBox((-2.0, -2.0, 0.0), (2.0, 2.0, 3.0)), max_altitude=2.0
        )
        task = make_policy_task(quad, rate, safety=cfg, watchdog={"fade_in_s": 0.0})
        hover = np.array([0.0, 0.0, 1.0, 0.0])
        feed_until = 400  # 4 s of fresh chunks, then the policy goes silent

        def hook(tick: int) -> None:
            if tick == 1:
                quad.arm()
                task.engage()
            if 1 <= tick < feed_until and tick % 10 == 1:
                task.executor.submit(
                    ActionChunk(tick, np.tile(hover, (20, 1)), task.executor.names, 0.01, 1 / rate, time.monotonic())
                )

        rec = Hooked(task, hook)
        ControlLoop(rec, rate, robot=quad, paced=False).run(ticks=1100)
        z = np.array([s.position[2] for s in rec.states])
        thrust = np.array([s.motor_thrusts.sum() for s in rec.states])
        last_chunk = feed_until - 9  # the last tick with tick % 10 == 1
        assert z[feed_until - 1] == pytest.approx(1.0, abs=0.1)  # flying at 1 m
        stop, disarm = _first(rec.stages, Stage.STOPPING), _first(rec.stages, Stage.DISARMED)
        assert stop == last_chunk + 20 and disarm == last_chunk + 100
        assert np.abs(z[feed_until:disarm] - 1.0).max() < 0.1  # holds position
        airborne = np.flatnonzero(z[disarm:] > 0.05) + disarm
        assert len(airborne) > 100 and np.all(thrust[airborne] > 0.3 * quad.spec.hover_thrust)  # never cut in air
        assert np.all(np.diff(z[disarm + 50 : airborne[-1]]) < 0.01)  # descending
        final = quad.read()
        assert final.position[2] < 0.05 and not final.armed  # landed, then disarmed
        assert "disarm_in_air" not in task.safety.log.counts
    finally:
        quad.close()
