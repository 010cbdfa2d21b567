"""Chunk executor: validation with reasons, interpolation, splicing of delayed chunks, strategies, starvation."""

from __future__ import annotations

import argparse
import threading
import time

import numpy as np
import pytest

from rcs.control.chunking import (
    ActionChunk,
    ChunkExecutor,
    ExecutorConfig,
    chunk_to_ticks,
    interpolate_linear,
    interpolate_minimum_jerk,
    seam_correction_basis,
)
from rcs.errors import ConfigError

NAMES = ("a", "b")
DT = 0.01


def make_executor(strategy: str = "splice", **kw) -> ChunkExecutor:
    return ChunkExecutor(ExecutorConfig(names=NAMES, control_dt=DT, strategy=strategy, **kw))


def chunk(start: int, actions, policy_dt: float = 2 * DT, **kw) -> ActionChunk:
    fields = dict(names=NAMES, control_dt=DT, timestamp=time.monotonic())
    fields.update(kw)
    return ActionChunk(start, np.asarray(actions, dtype=np.float64), policy_dt=policy_dt, **fields)


def ramp(h: int, slope=(1.0, -0.5), offset=(0.0, 0.0)) -> np.ndarray:
    return np.asarray(offset) + np.arange(h)[:, None] * np.asarray(slope) * 0.01


# -- interpolation ------------------------------------------------------------------------------------


@pytest.mark.parametrize("interp", [interpolate_linear, interpolate_minimum_jerk])
def test_interpolation_passes_through_every_action(interp):
    rng = np.random.default_rng(0)
    actions = rng.normal(size=(7, 3))
    np.testing.assert_allclose(interp(actions, np.arange(7.0)), actions, atol=1e-12)


def test_minimum_jerk_reproduces_quadratics_and_is_smooth():
    t = np.arange(8.0)
    actions = np.stack([0.3 * t**2 - t + 2.0, -0.1 * t**2], axis=1)
    u = np.linspace(0, 7, 141)
    expected = np.stack([0.3 * u**2 - u + 2.0, -0.1 * u**2], axis=1)
    np.testing.assert_allclose(interpolate_minimum_jerk(actions, u), expected, atol=1e-9)
    # C2 on a generic signal: third differences stay small, unlike linear interpolation's velocity steps
    sig = np.sin(np.arange(10.0))[:, None]
    fine = np.linspace(0, 9, 181)

    def jerk(x: np.ndarray) -> float:
        return float(np.abs(np.diff(x[:, 0], 3)).max())

    assert jerk(interpolate_minimum_jerk(sig, fine)) < 0.1 * jerk(interpolate_linear(sig, fine))


def test_chunk_to_ticks_covers_every_policy_step():
    c = chunk(0, ramp(5), policy_dt=3 * DT)
    values = chunk_to_ticks(c, "linear")
    assert c.length_ticks == 15 and len(values) == 15
    np.testing.assert_allclose(values[::3], c.actions)
    np.testing.assert_allclose(values[12:], np.repeat(c.actions[-1:], 3, axis=0))  # last action held


def test_seam_basis_matches_offsets_and_vanishes():
    basis = seam_correction_basis(10)
    assert basis.shape == (10, 3)
    np.testing.assert_allclose(basis[-1], 0.0, atol=1e-12)  # c(W) = 0
    # constant offsets on the last three ticks decay smoothly from that constant
    decay = basis @ np.ones(3)
    assert -1e-12 <= decay[-1] < decay[0] <= 1.0 and np.all(np.diff(decay) <= 1e-12)


# -- validation ---------------------------------------------------------------------------------------


def _bad_chunks(now: float):
    good = dict(names=NAMES, control_dt=DT, timestamp=now, policy_dt=2 * DT)
    a = ramp(6)
    return [
        (ActionChunk(0, a, **{**good, "names": ("b", "a")}), "names", "joint order"),
        (ActionChunk(0, a, **{**good, "names": ("a", "c")}), "names", "names differ"),
        (ActionChunk(0, a.astype(int), **good), "dtype", "dtype"),
        (ActionChunk(0, a[:, :1], **good), "shape", "shape"),
        (ActionChunk(0, a[0], **good), "shape", "shape"),
        (ActionChunk(0, np.zeros((0, 2)), **good), "shape", "shape"),
        (ActionChunk(0, np.where(np.eye(6, 2) > 0, np.nan, a), **good), "non_finite", "not finite"),
        (ActionChunk(0, a, **{**good, "control_dt": 0.002}), "timing", "control_dt"),
        (ActionChunk(0, a, **{**good, "policy_dt": 0.0}), "timing", "policy_dt"),
        (ActionChunk(0.5, a, **good), "timing", "start_tick"),  # type: ignore[arg-type]
        (ActionChunk(50, a, **good), "future_tick", "after the current tick"),
        (ActionChunk(0, a, **{**good, "timestamp": now + 1.0}), "future_timestamp", "future"),
        (ActionChunk(0, a, **{**good, "timestamp": now - 5.0}), "stale_timestamp", "old"),
        (ActionChunk(0, a, **{**good, "timestamp": float("nan")}), "stale_timestamp", "finite"),
        ("not a chunk", "type", "ActionChunk"),
    ]


def test_bad_chunks_are_rejected_with_a_reason():
    now = 100.0
    ex = ChunkExecutor(ExecutorConfig(names=NAMES, control_dt=DT), clock=lambda: now)
    for k in range(3):
        ex.step(k)
    for bad, reason, words in _bad_chunks(now):
        rejection = ex.submit(bad)  # type: ignore[arg-type]
        assert rejection is not None, reason
        assert rejection.reason == reason and words in rejection.message, rejection
    assert ex.accepted == 0 and ex.step(3) is None
    assert ex.rejections.counts["names"] == 2 and ex.rejections.total == 15


def test_stale_and_expired_ticks_are_rejected():
    ex = make_executor(max_delay_ticks=20)
    for k in range(100):
        ex.step(k)
    assert ex.submit(chunk(70, ramp(10))).reason == "stale_tick"
    short = ChunkExecutor(ExecutorConfig(names=NAMES, control_dt=DT, max_delay_ticks=50))
    for k in range(100):
        short.step(k)
    assert short.submit(chunk(80, ramp(5))).reason == "expired"  # covers ticks 80..89 < 99


def test_rejected_chunk_leaves_the_plan_running():
    ex = make_executor()
    ex.submit(chunk(0, ramp(10)))
    before = [ex.step(k) for k in range(5)]
    assert ex.submit(chunk(5, ramp(10)[:, ::-1].copy(), names=("b", "a"))).reason == "names"
    after = ex.step(5)
    np.testing.assert_allclose(after, chunk_to_ticks(chunk(0, ramp(10)))[5])
    assert all(v is not None for v in before)


# -- splicing -----------------------------------------------------------------------------------------


def _run(ex: ChunkExecutor, deliveries: dict[int, ActionChunk], ticks: int) -> list[np.ndarray | None]:
    out = []
    for k in range(ticks):
        if k in deliveries:
            assert ex.submit(deliveries[k]) is None
        out.append(ex.step(k))
    return out


@pytest.mark.parametrize("delay", [0, 1, 2, 3, 6, 12])
def test_splice_keeps_committed_actions_and_continues_from_them(delay):
    window = 8
    ex = make_executor(splice_ticks=window)
    first = chunk(0, ramp(15))  # 30 ticks
    obs = 10
    second = chunk(obs, ramp(15, slope=(-1.0, 0.5), offset=(0.3, -0.2)))  # a different plan, far away
    out = _run(ex, {0: first, obs + delay: second}, 40)
    a, b = chunk_to_ticks(first), chunk_to_ticks(second)
    arrival = obs + delay
    for k in range(arrival):  # what executed while the policy was thinking stays committed
        np.testing.assert_allclose(out[k], a[k])
    for k in range(arrival + window, 40):  # after the seam: exactly the new plan
        np.testing.assert_allclose(out[k], b[k - obs])
    x = np.array(out)
    # continuous across the seam: the biggest step near the seam stays within a few plan-steps
    plan_step = max(np.abs(np.diff(a, axis=0)).max(), np.abs(np.diff(b, axis=0)).max())
    seam_steps = np.abs(np.diff(x[arrival - 3 : arrival + window + 1], axis=0)).max()
    jump = np.abs(b[arrival - obs] - a[arrival]).max()
    assert seam_steps < plan_step + 0.25 * jump
    assert ex.starved_ticks == 0 and ex.delays == [0, delay] and ex.seam_ticks == [0, arrival]


def test_splice_of_a_consistent_chunk_changes_nothing():
    ex = make_executor()
    long = chunk(0, ramp(30))
    cont = chunk(10, ramp(30)[5:])  # same plan, re-predicted from tick 10
    out = _run(ex, {0: long, 14: cont}, 50)
    np.testing.assert_allclose(np.array(out), chunk_to_ticks(long)[:50], atol=1e-12)


def test_splice_continues_from_what_was_actually_executed():
    ex = make_executor(splice_ticks=4)
    ex.submit(chunk(0, np.zeros((10, 2))))
    for k in range(10):
        ex.step(k)
        ex.record_executed(k, np.full(2, 0.5))  # e.g. the safety filter held the arm elsewhere
    ex.submit(chunk(10, np.zeros((10, 2))))
    np.testing.assert_allclose(ex.step(10), 0.5 * (seam_correction_basis(4)[0] @ np.ones(3)))
    assert np.allclose([ex.step(k) for k in range(14, 18)], 0.0)


def test_sync_starts_from_the_first_action_and_starves_while_waiting():
    ex = make_executor("sync")
    first = chunk(0, ramp(5))  # 10 ticks
    second = chunk(10, ramp(5, offset=(1.0, 1.0)))
    out = _run(ex, {0: first, 14: second}, 20)
    assert all(v is None for v in out[10:14]) and ex.starved_ticks == 4
    np.testing.assert_allclose(out[14], second.actions[0])


@pytest.mark.parametrize("strategy", ["sync", "splice"])
def test_streamed_single_actions_are_held_until_the_next_within_hold_last_s(strategy):
    """A policy streaming one action per request (a flight policy at the loop's rate): each action arrives a tick
    after its observation and is held until the next; past hold_last_s the executor is starved, and a chunk
    arriving after its hold is refused as expired."""
    ex = make_executor(strategy, hold_last_s=2 * DT)
    one = lambda start, v: chunk(start, np.full((1, 2), v), policy_dt=DT)  # noqa: E731
    out = _run(ex, {1: one(0, 1.0), 2: one(1, 2.0), 4: one(2, 3.0)}, 9)
    np.testing.assert_allclose(out[1], 1.0)  # arrived a tick late, inside its hold: applied at once
    np.testing.assert_allclose(out[2:4], 2.0)  # held while the next one is late
    np.testing.assert_allclose(out[4:7], 3.0)  # its own tick, then held two more ticks
    assert out[7] is None and out[8] is None and ex.held_ticks == 1 + 2
    assert ex.submit(one(5, 4.0)).reason == "expired"  # 5 + 1 + 2 held <= tick 8
    assert "held 2 more" in ex.rejections.last
    with pytest.raises(ConfigError, match="hold_last_s"):
        make_executor(hold_last_s=-0.01)


def test_ensemble_weights_oldest_most():
    m = 0.5
    ex = make_executor("ensemble", ensemble_decay=m)
    out = _run(ex, {0: chunk(0, np.zeros((10, 2))), 4: chunk(4, np.ones((10, 2)))}, 24)  # ticks 0-19, 4-23
    np.testing.assert_allclose(out[3], 0.0)
    w_new = np.exp(-m) / (1 + np.exp(-m))
    np.testing.assert_allclose(out[10], w_new)  # both chunks cover tick 10
    np.testing.assert_allclose(out[21], 1.0)  # only the new one is left


def test_blend_is_lerobot_weighted_average():
    ex = make_executor("blend")
    out = _run(ex, {0: chunk(0, np.zeros((10, 2))), 6: chunk(5, np.ones((10, 2)))}, 24)
    np.testing.assert_allclose(out[5], 0.0)
    np.testing.assert_allclose(out[6], 0.7)  # overlap: 0.3 * old + 0.7 * new
    np.testing.assert_allclose(out[21], 1.0)  # beyond the old chunk: new only


def test_starvation_is_counted_only_after_a_chunk():
    ex = make_executor()
    assert ex.step(0) is None and ex.starved_ticks == 0
    _run(ex, {1: chunk(1, ramp(2))}, 10)  # covers ticks 1..4
    assert ex.starved_ticks == 5


def test_request_exposes_committed_actions_and_delay():
    ex = make_executor()
    _run(ex, {3: chunk(0, ramp(10))}, 6)
    req = ex.request()
    assert req.tick == 5 and req.delay_estimate_ticks == 3
    np.testing.assert_allclose(req.committed, chunk_to_ticks(chunk(0, ramp(10)))[5:])


def test_concurrent_submission():
    ex = make_executor()
    done = threading.Event()
    rejected = []

    def policy() -> None:
        for i in range(40):
            tick = max(0, ex.tick)
            r = ex.submit(chunk(tick, ramp(20, offset=(i, i))))
            if r is not None:
                rejected.append(r)
            time.sleep(0.0005)
        done.set()

    t = threading.Thread(target=policy)
    t.start()
    k = 0
    while not done.is_set() or k < 5:
        ex.step(k)
        k += 1
        time.sleep(0.0001)
    t.join()
    ex.step(k)
    assert ex.accepted + len(rejected) == 40 and ex.accepted >= 30


# -- benchmark (short) --------------------------------------------------------------------------------


def test_chunk_seam_benchmark_meets_targets_for_splice():
    pytest.importorskip("mujoco")
    from sim.bench import chunks

    parser = argparse.ArgumentParser()
    chunks.add_arguments(parser)
    args = parser.parse_args(["--seconds", "2.0", "--delays", "0", "8", "16", "--strategies", "splice", "sync"])
    result = chunks.run(args)
    assert result["targets_met"]["all"], result["strategies"]["splice"]
    for m in result["strategies"]["splice"].values():
        assert m["starved_ticks"] == 0 and m["seam_jerk_ratio"] <= 1.5
    sync = result["strategies"]["sync"]
    assert sync["8"]["starved_ticks"] > 0 and sync["8"]["seam_jerk_ratio"] > 1.5
