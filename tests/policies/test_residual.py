"""Residual RL on a frozen base (policies/residual): the composition, the base follower against a real policy
server, the composed checkpoint served by real `rcs serve` processes (the shipped diffusion checkpoint as the base),
the residual env, and the TD3 learner.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from rcs.control.priorities import fifo_permitted
from rcs.errors import ConfigError
from rcs.serving.client import PolicyClient, ServerError
from rcs.serving.policy import RequestContext
from rcs.serving.protocol import Schema, TensorSpec
from tests.processes import child_pids

torch = pytest.importorskip("torch")

from policies.residual.actor import ResidualActor  # noqa: E402
from policies.residual.base_follower import BaseFollower, BaseUnavailable, MidRangeBase  # noqa: E402
from policies.residual.checkpoint import base_ref, copy, initial_space, load, save  # noqa: E402
from policies.residual.demos import expert_in_layout, residual_toward  # noqa: E402
from policies.residual.features import MinMax, ResidualSpace, entry_bounds  # noqa: E402
from policies.residual.sac import Sac, SacConfig  # noqa: E402
from policies.residual.td3 import NStepReplay, Td3, Td3Config  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
BASE = REPO / "policies" / "checkpoints" / "pick_cube_rcs_diffusion"


def small_space(scale: float | tuple[float, ...] = 0.1) -> ResidualSpace:
    stats = {"observation.state": MinMax(np.array([-1.0, 0.0]), np.array([1.0, 4.0]))}
    bounds = scale if isinstance(scale, tuple) else (scale,) * 3
    return ResidualSpace(
        ("observation.state",), stats, MinMax(np.array([0.0, -2.0, 0.0]), np.array([1.0, 2.0, 1.0])), bounds
    )


# -- the composition ---------------------------------------------------------------------------------------------
def test_the_residual_moves_the_base_by_scale_in_normalized_units_and_no_further():
    space = small_space(0.1)
    base = np.array([0.5, 1.0, 0.2])
    assert np.array_equal(space.compose(base, np.zeros(3)), base)  # zero residual: exactly the base
    # +1 moves each entry by scale x its half-range: 0.1 * 0.5, 0.1 * 2, 0.1 * 0.5
    np.testing.assert_allclose(space.compose(base, np.ones(3)), base + [0.05, 0.2, 0.05])
    np.testing.assert_allclose(space.compose(base, np.full(3, 7.0)), base + [0.05, 0.2, 0.05])  # clipped to [-1, 1]
    with pytest.raises(ValueError, match="residual action: expected 3 finite values"):
        space.compose(base, np.array([0.0, np.nan, 0.0]))
    with pytest.raises(ValueError, match="base action: expected 3 finite values"):
        space.compose(np.array([0.5, np.inf, 0.2]), np.zeros(3))
    obs = space.observe({"observation.state": np.array([0.0, 2.0])}, base)
    np.testing.assert_allclose(obs, [0.0, 0.0, 0.0, 0.5, -0.6], atol=1e-6)
    assert obs.dtype == np.float32 and space.observation_dim == 5
    with pytest.raises(ValueError, match="residual input observation.state: expected 2 finite values"):
        space.observe({"observation.state": np.array([0.0, np.nan])}, base)
    with pytest.raises(ValueError, match="residual input observation.state: missing"):
        space.observe({}, base)


def test_each_entry_has_its_own_bound_and_the_largest_reaches_the_whole_range():
    space = small_space((0.1, 0.1, 2.0))  # the last entry like a gripper command in [0, 1]
    base = np.array([0.5, 1.0, 1.0])  # the base opens the gripper fully
    np.testing.assert_allclose(space.compose(base, np.array([1.0, -1.0, -1.0])), [0.55, 0.8, 0.0])
    np.testing.assert_allclose(space.compose(np.array([0.5, 1.0, 0.0]), np.ones(3)), [0.55, 1.2, 1.0])
    for bad, message in (
        ((0.1, 0.1), "expected 3 bounds"),
        ((0.1, 0.1, 2.5), "entry 2: 2.5 must be in \\(0, 2.0\\]"),
        ((0.1, float("nan"), 0.1), "entry 1: nan"),
        ((0.0, 0.1, 0.1), "entry 0: 0.0"),
    ):
        with pytest.raises(ConfigError, match=message):
            small_space(bad)


def test_bounds_are_named_by_the_bases_action_entries_and_saved_compactly():
    names = ("x", "y", "gripper")
    assert entry_bounds(names, 0.1, {"gripper": 2.0}) == (0.1, 0.1, 2.0)
    assert entry_bounds(names, 0.1) == (0.1, 0.1, 0.1)
    with pytest.raises(
        ConfigError, match="entry scale 'grip': the base's action has no such entry \\(x, y, gripper\\)"
    ):
        entry_bounds(names, 0.1, {"grip": 2.0})
    uniform, mixed = small_space(0.1), small_space((0.1, 0.1, 2.0))
    assert uniform.as_dict()["scale"] == 0.1  # the layout of checkpoints saved before per-entry bounds
    assert mixed.as_dict()["scale"] == [0.1, 0.1, 2.0]
    for space in (uniform, mixed):
        assert ResidualSpace.from_dict(json.loads(json.dumps(space.as_dict()))).scale == space.scale
    with pytest.raises(ConfigError, match="residual space: malformed"):
        ResidualSpace.from_dict({**mixed.as_dict(), "scale": ["wide", 0.1, 0.1]})


def test_the_chunk_phase_is_read_one_hot_and_spaces_saved_without_it_read_none():
    plain = small_space(0.1)
    phased = ResidualSpace(plain.inputs, plain.stats, plain.action, plain.scale, phase_steps=4)
    state, base = {"observation.state": np.array([0.0, 2.0])}, np.array([0.5, 1.0, 0.2])
    assert phased.observation_dim == plain.observation_dim + 4
    for k in range(4):
        obs = phased.observe(state, base, k)
        np.testing.assert_array_equal(obs[: plain.observation_dim], plain.observe(state, base))
        np.testing.assert_array_equal(obs[plain.observation_dim :], np.eye(4)[k])
    for bad in (None, -1, 4):
        with pytest.raises(ValueError, match=f"residual chunk step: {bad} must be in \\[0, 4\\)"):
            phased.observe(state, base, bad)
    assert ResidualSpace.from_dict(json.loads(json.dumps(phased.as_dict()))).phase_steps == 4
    assert "phase_steps" not in plain.as_dict()  # the layout of checkpoints saved before the phase: they read 0
    assert ResidualSpace.from_dict(plain.as_dict()).phase_steps == 0
    with pytest.raises(ConfigError, match="residual space: malformed .*phase_steps='8' must be an integer"):
        ResidualSpace.from_dict({**plain.as_dict(), "phase_steps": "8"})
    with pytest.raises(ConfigError, match="residual phase_steps=-1: must be 0"):
        ResidualSpace(plain.inputs, plain.stats, plain.action, plain.scale, phase_steps=-1)


def test_an_untrained_actor_is_exactly_zero():
    actor = ResidualActor(25, 10, (64, 64))
    x = torch.randn(32, 25) * 10
    assert torch.equal(actor(x), torch.zeros(32, 10))


# -- the base follower against a real policy server -----------------------------------------------------------------
SCHEMA = Schema(
    (TensorSpec("observation.state", (2,), "float32", ""),),
    TensorSpec("action", (4, 3), "float32", ""),
    0.05,
)


class CountingBase:
    """Chunk ``i`` (the i-th request) holds ``[i, k, state[0]]`` in row ``k``; sleeps ``delay_s`` per request."""

    schema = SCHEMA
    checkpoint_id = "counting-base"

    def __init__(self) -> None:
        self.calls = 0
        self.delay_s = 0.0

    def infer(self, observations):
        out = []
        for o in observations:
            time.sleep(self.delay_s)
            self.calls += 1
            out.append(np.array([[self.calls, k, o["observation.state"][0]] for k in range(4)], np.float32))
        return out


@pytest.fixture
def counting_base():
    from rcs.serving.server import PolicyServer

    policy = CountingBase()
    server = PolicyServer(policy, "tcp://127.0.0.1:0")
    endpoint = server.start()
    client = PolicyClient(endpoint, SCHEMA)
    client.handshake(5.0)
    yield policy, client
    client.close()
    server.stop()


def test_the_follower_steps_through_the_bases_horizon_and_asks_again(counting_base):
    policy, client = counting_base
    follower = BaseFollower(client, replan_steps=3, policy_dt=0.05, budget_s=5.0)
    obs = {"observation.state": np.array([7.0, 0.0], np.float32)}
    rows = [follower.action(obs, RequestContext(1, t, 0.05 * t)).tolist() for t in range(7)]
    # chunk 1 rows 0..2 (replan_steps 3 of its 4), then chunk 2 rows 0..2, then chunk 3
    assert rows == [[1, 0, 7], [1, 1, 7], [1, 2, 7], [2, 0, 7], [2, 1, 7], [2, 2, 7], [3, 0, 7]]
    # a late observation takes the row of its time, not the next row
    assert follower.action(obs, RequestContext(1, 7, 0.05 * 8)).tolist() == [3, 2, 7]
    # time beyond the horizon: a fresh chunk, never a row of the past
    assert follower.action(obs, RequestContext(1, 8, 0.05 * 20)).tolist() == [4, 0, 7]
    # a new session, or a tick that went back (a new episode): a fresh chunk
    assert follower.action(obs, RequestContext(2, 9, 0.05 * 21)).tolist() == [5, 0, 7]
    assert follower.action(obs, RequestContext(2, 0, 0.0)).tolist() == [6, 0, 7]
    assert follower.requests == policy.calls == 6


def test_the_follower_reports_each_actions_step_in_its_chunk(counting_base):
    _, client = counting_base
    follower = BaseFollower(client, replan_steps=3, policy_dt=0.05, budget_s=5.0)
    obs = {"observation.state": np.array([7.0, 0.0], np.float32)}
    steps = []
    for t, capture_time in enumerate((0.0, 0.05, 0.10, 0.15, 0.25, 0.30, 0.35)):  # one period skipped at 0.20
        row = follower.action(obs, RequestContext(1, t, capture_time))
        steps.append((follower.chunk_step(1), int(row[1])))
    assert steps == [(0, 0), (1, 1), (2, 2), (0, 0), (2, 2), (0, 0), (1, 1)]  # k is the row the action came from
    follower.action(obs, RequestContext(2, 0, 0.0))
    assert (follower.chunk_step(1), follower.chunk_step(2)) == (1, 0)  # per robot session
    with pytest.raises(KeyError):
        follower.chunk_step(3)  # never asked


def test_robots_sharing_the_follower_keep_their_own_chunks(counting_base):
    """Two robots on one composed server, their steps interleaved: each follows the chunk of its own session."""
    policy, client = counting_base
    follower = BaseFollower(client, replan_steps=3, policy_dt=0.05, budget_s=5.0)
    a = {"observation.state": np.array([1.0, 0.0], np.float32)}
    b = {"observation.state": np.array([2.0, 0.0], np.float32)}
    rows = []
    for t in range(3):
        rows.append(follower.action(a, RequestContext(10, t, 0.05 * t)).tolist())
        rows.append(follower.action(b, RequestContext(20, t, 0.05 * t)).tolist())
    assert rows == [[1, 0, 1], [2, 0, 2], [1, 1, 1], [2, 1, 2], [1, 2, 1], [2, 2, 2]]
    assert policy.calls == 2


def test_a_late_base_raises_and_its_chunk_is_never_used(counting_base):
    policy, client = counting_base
    follower = BaseFollower(client, replan_steps=4, policy_dt=0.05, budget_s=0.2)
    obs = {"observation.state": np.array([1.0, 0.0], np.float32)}
    assert follower.action(obs, RequestContext(1, 0, 0.0)).tolist() == [1, 0, 1]
    follower.reset()
    policy.delay_s = 0.5
    with pytest.raises(BaseUnavailable, match="base policy"):
        follower.action(obs, RequestContext(1, 1, 0.05))
    # the old chunk's row 1 would still be within its horizon: it is not used, the base is asked again
    policy.delay_s = 0.0
    time.sleep(0.6)  # the late reply arrives meanwhile and must be ignored
    assert follower.action(obs, RequestContext(1, 2, 0.10))[0] == 3
    assert follower.failures == 1


# -- the composed checkpoint behind real `rcs serve` processes ---------------------------------------------------
@pytest.fixture(scope="module")
def composed(tmp_path_factory) -> Path:
    """A composed checkpoint over the shipped diffusion base with an untrained (zero) residual."""
    base = base_ref(BASE)
    space = initial_space(base, 0.1)
    assert initial_space(base, 0.1, {"gripper": 2.0}).scale == (0.1,) * 9 + (2.0,)  # by the base's action names
    actor = ResidualActor(space.observation_dim, space.action_dim, (64, 64))
    return save(
        tmp_path_factory.mktemp("composed") / "zero", actor.state_dict(), space, (64, 64), base, "zero-residual"
    )


@pytest.fixture(scope="module")
def observations():
    from rcs.envs.base import CameraConfig
    from rcs.envs.registration import build_env, register_envs
    from rcs.recording.features import observation_to_features

    register_envs()
    env = build_env("rcs/PandaPickCube-v0", cameras=(CameraConfig("front", 96, 96),))
    try:
        out = []
        for seed in (3, 4):
            obs, _ = env.reset(seed=seed)
            out.append(observation_to_features(obs, ["front"], env.unwrapped.environment_state_layout))
        return out
    finally:
        env.close()


def test_the_composed_checkpoint_names_its_base_and_is_small(composed):
    meta = json.loads((composed / "residual.json").read_text())
    assert (composed / meta["base"]["path"]).resolve() == BASE.resolve()
    assert meta["base"]["replan_steps"] == 8 and meta["base"]["policy_dt"] == 0.05
    manifest = json.loads((composed / "rcs_policy.json").read_text())
    assert manifest["kind"] == "residual"
    config = json.loads((composed / "config.json").read_text())
    assert config["n_action_steps"] == 1 and config["horizon"] == 2  # the residual acts every policy step
    assert sum(f.stat().st_size for f in composed.iterdir()) < 200_000


def test_the_shipped_residual_is_trained_on_reality_a_over_the_shipped_base():
    shipped = REPO / "policies" / "checkpoints" / "pick_cube_residual_reality_a"
    residual = load(shipped)
    assert residual.base.directory == BASE.resolve()
    assert residual.base.checkpoint_id == json.loads((BASE / "rcs_policy.json").read_text())["checkpoint_id"]
    assert residual.training["robot"] == "reality-a" and residual.training["env_steps"] == 100_000
    assert residual.state_dict["head.weight"].abs().sum() > 0  # not the zero-initialised head
    assert sum(f.stat().st_size for f in shipped.iterdir()) < 1_000_000


def test_served_with_a_zero_residual_it_is_exactly_the_served_base(serve, composed, observations):
    base_server = serve("--policy", str(BASE))
    composed_server = serve("--policy", str(composed))
    base = PolicyClient(base_server.endpoint, None)
    both = PolicyClient(composed_server.endpoint, None)
    try:
        welcome = both.handshake(10.0)
        assert welcome.schema.action.shape == (2, 10) and welcome.checkpoint_id == "zero-residual"
        base.handshake(10.0)
        for obs in observations:
            chunk = base.request(obs, 0, time.monotonic(), budget_s=30.0).actions
            t0 = time.monotonic()
            # one episode's first 8 steps (same observation: the base's chunk is its plan for it)
            rows = [both.request(obs, t + 1, t0 + 0.05 * t, budget_s=30.0).actions for t in range(8)]
            # bit for bit: the residual starts at the base; each chunk's second action is the base's next one
            assert np.array_equal(np.stack([r[0] for r in rows]), chunk[:8])
            assert np.array_equal(np.stack([r[1] for r in rows]), chunk[1:9])
    finally:
        base.close()
        both.close()


def phase_reading_actor(space: ResidualSpace) -> ResidualActor:
    """An actor that reads only the chunk phase: its first entry is tanh(0.1 k) x a constant for the phase's k,
    every other entry 0 (the trunk passes the one-hot through, the head weighs its k-th unit by k)."""
    n, width = space.phase_steps, space.phase_steps
    actor = ResidualActor(space.observation_dim, space.action_dim, (width, width))
    with torch.no_grad():
        first, second = actor.trunk[0], actor.trunk[3]
        first.weight.zero_()
        first.weight[:, space.observation_dim - n :] = torch.eye(n)
        second.weight.copy_(torch.eye(width))
        for layer in (first, second):
            layer.bias.zero_()
        actor.head.weight[0] = 0.1 * torch.arange(n, dtype=torch.float32)
    return actor


def test_served_with_the_chunk_phase_each_step_reads_its_place_in_the_bases_chunk(serve, observations, tmp_path):
    """A residual trained with the phase (``--chunk-phase``), served: step t of a chunk gets the correction the
    actor gives for phase t, i.e. the server feeds the follower's k, not a constant."""
    base_ref_ = base_ref(BASE)
    space = initial_space(base_ref_, 0.1, chunk_phase=True)
    assert space.phase_steps == base_ref_.replan_steps == 8
    actor = phase_reading_actor(space)
    composed = save(tmp_path / "phase", actor.state_dict(), space, (8, 8), base_ref_, "phase-residual")
    assert load(composed).space.phase_steps == 8
    wrong = tmp_path / "wrong"
    shutil.copytree(composed, wrong)
    meta = json.loads((wrong / "residual.json").read_text())
    meta["space"]["phase_steps"] = 4
    (wrong / "residual.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="phase_steps=4 must be 0 or its base's replan_steps \\(8\\)"):
        load(wrong)
    base_server = serve("--policy", str(BASE))
    composed_server = serve("--policy", str(composed))
    base = PolicyClient(base_server.endpoint, None)
    both = PolicyClient(composed_server.endpoint, None)
    try:
        base.handshake(10.0)
        both.handshake(10.0)
        obs = observations[0]
        chunk = base.request(obs, 0, time.monotonic(), budget_s=30.0).actions
        t0 = time.monotonic()
        rows = np.stack([both.request(obs, t + 1, t0 + 0.05 * t, budget_s=30.0).actions[0] for t in range(8)])
        with torch.no_grad():
            residuals = [actor(torch.as_tensor(space.observe(obs, chunk[k], k)[None]))[0].numpy() for k in range(8)]
        expected = np.stack([space.compose(chunk[k], residuals[k]) for k in range(8)])
        assert len({round(float(r[0]), 6) for r in residuals}) == 8  # a different correction for every phase
        np.testing.assert_allclose(rows, expected, rtol=0, atol=1e-5)
        np.testing.assert_array_equal(rows[:, 1:], chunk[:8, 1:])  # the actor moves the first entry only
    finally:
        base.close()
        both.close()


def test_a_non_finite_residual_is_refused_and_no_chunk_is_sent(serve, composed, observations, tmp_path):
    from safetensors.torch import load_file, save_file

    broken = tmp_path / "nan"
    shutil.copytree(composed, broken)
    weights = load_file(str(broken / "actor.safetensors"))
    weights["head.bias"] = torch.full_like(weights["head.bias"], float("nan"))
    save_file(weights, str(broken / "actor.safetensors"))
    server = serve("--policy", str(broken))
    client = PolicyClient(server.endpoint, None)
    try:
        client.handshake(10.0)
        with pytest.raises(ServerError, match="residual action: expected 10 finite values"):
            client.request(observations[0], 1, time.monotonic(), budget_s=30.0)
    finally:
        client.close()


def test_a_composed_checkpoint_refuses_another_base(serve, composed, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(composed, other)
    meta = json.loads((other / "residual.json").read_text())
    meta["base"]["path"] = str(BASE)
    meta["base"]["checkpoint_id"] = "another-base/000100"
    (other / "residual.json").write_text(json.dumps(meta))
    with pytest.raises(RuntimeError, match="base is 'another-base/000100'.*refusing another base"):
        serve("--policy", str(other))


def test_served_realtime_its_base_is_served_realtime_too(serve, composed):
    """The base is on the same control path as the composed policy: `rcs serve --realtime` starts the base's
    `rcs serve` with `--realtime` (its I/O thread, the process's main thread, SCHED_FIFO); a plain one does not."""
    if not fifo_permitted(1)[0]:
        pytest.skip("SCHED_FIFO is not permitted on this machine")
    for flags, expected in (((), os.SCHED_OTHER), (("--realtime",), os.SCHED_FIFO)):
        server = serve(*flags, "--policy", str(composed))
        (base,) = child_pids(server.proc.pid)
        assert os.sched_getscheduler(base) == expected, flags
        server.kill()


# -- the learner -------------------------------------------------------------------------------------------------
def test_n_step_returns_stop_at_the_end_of_an_episode():
    buf = NStepReplay(1, 1, 16, n_step=3, gamma=0.5)
    for t in range(4):  # rewards 1, 2, 3, 4; terminated after the 4th step
        buf.add(np.array([t]), np.array([0.0]), float(t + 1), np.array([t + 1]), terminated=t == 3, truncated=False)
    s = buf.state()
    np.testing.assert_allclose(s["ret"], [1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3 + 0.25 * 4, 3 + 0.5 * 4, 4])
    np.testing.assert_allclose(s["next_obs"][:, 0], [3, 4, 4, 4])
    np.testing.assert_allclose(s["discount"], [0.125, 0.125, 0.25, 0.5])
    np.testing.assert_allclose(s["done"], [0, 1, 1, 1])


#: the learners, built per test (a seeded torch generator each)
LEARNERS = {
    "td3": lambda: Td3(
        4, 2, Td3Config(hidden=(64, 64), n_step=1, batch_size=64, demo_fraction=0.0, explore_noise=0.5, actor_starts=0)
    ),
    "sac": lambda: Sac(
        4, 2, SacConfig(hidden=(64, 64), n_step=1, batch_size=64, demo_fraction=0.0, actor_starts=0, residual_penalty=0)
    ),
}


@pytest.fixture
def one_torch_thread():
    """The learners as ``rcs train-residual`` runs them (``policies/residual/train.py``: one torch thread): with
    torch's default of one thread per core, a 2-core machine beside other load spends the updates in its thread
    pool's barriers (6x slower beside two busy processes, 10 s -> 69 s)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.mark.parametrize("learner", LEARNERS)
def test_the_learner_learns_a_residual_that_a_sparse_reward_asks_for(learner, one_torch_thread):
    """A one-step task: reward 1 only when the residual's first entry has the sign of the observation's first
    entry and is beyond 0.3; the zero-initialised actor earns nothing until it learns."""
    rng = np.random.default_rng(0)
    agent = LEARNERS[learner]()
    buf = NStepReplay(4, 2, 5000, 1, agent.config.gamma)

    def reward(obs: np.ndarray, act: np.ndarray) -> float:
        return float(np.sign(obs[0]) * act[0] > 0.3)

    test = rng.normal(size=(200, 4)).astype(np.float32)
    assert sum(reward(o, agent.act(o, explore=False)) for o in test) == 0
    for step in range(3000):
        obs = rng.normal(size=4).astype(np.float32)
        act = agent.act(obs, explore=True)
        buf.add(obs, act, reward(obs, act), obs, terminated=True, truncated=False)
        if step >= 200:
            agent.update(agent.batch(buf, None))
    assert sum(reward(o, agent.act(o, explore=False)) for o in test) >= 190


# -- rcs train-residual ------------------------------------------------------------------------------------------
def test_train_residual_evaluates_checkpoints_and_resumes(tmp_path):
    """A tiny run on the shifted robot with two expert-guided demonstrations: evaluations and checkpoints every 100
    steps; rerun with more steps, it resumes from its training state (demonstrations included); the checkpoint it
    wrote is a composed checkpoint that names its base; resuming it under another residual bound is refused."""
    import subprocess

    from tests.policies.conftest import ENV, RCS, last_json, rcs

    out = tmp_path / "run"
    common = (
        "--shift",
        "reality-a",
        "--output",
        str(out),
        "--learning-starts",
        "50",
        "--eval-every",
        "100",
        "--actor-starts",
        "0",
    )
    first = last_json(rcs("train-residual", *common, "--steps", "200", "--eval-episodes", "1", "--demos", "2").stdout)
    assert first["env_steps"] == 200 and [c["env_steps"] for c in first["curve"]] == [0, 100, 200]
    demonstrated = first["demonstrations"]
    assert demonstrated["episodes"] == 2 and demonstrated["kept"] >= 1, demonstrated
    demos = torch.load(out / "training_state.pt", weights_only=False)["demos"]
    assert len(demos["obs"]) <= demonstrated["env_steps"] and demos["ret"].max() > 0  # successful episodes only
    assert np.abs(demos["act"]).max() <= 1.0 and np.abs(demos["act"]).max() > 0  # bounded residuals toward the expert
    assert (out / "success.png").is_file() and (out / "success.csv").read_text().count("\n") == 4
    second = rcs("train-residual", *common, "--steps", "300", "--eval-episodes", "1", "--demos", "2")
    assert "resumed at 200 env steps" in second.stderr and "demonstrations:" not in second.stderr  # kept, not rerun
    resumed = torch.load(out / "training_state.pt", weights_only=False)["demos"]
    assert np.array_equal(resumed["obs"], demos["obs"])
    result = last_json(second.stdout)
    assert [c["env_steps"] for c in result["curve"]] == [0, 100, 200, 300] and result["episodes"] >= first["episodes"]
    meta = json.loads((out / "checkpoint" / "residual.json").read_text())
    assert meta["training"]["robot"] == "reality-a" and meta["training"]["env_steps"] == 300
    best = max((r, s) for s, r in [(c["env_steps"], c["success_rate"]) for c in result["curve"]] if s > 0)
    assert result["best"] == {"checkpoint": str(out / "best"), "env_steps": best[1], "success_rate": best[0]}
    assert json.loads((out / "best" / "residual.json").read_text())["training"]["env_steps"] == best[1]
    assert (out / "checkpoint" / meta["base"]["path"]).resolve() == BASE.resolve()
    trained = torch.load(out / "training_state.pt", weights_only=False)["agent"]["actor"]["head.weight"]
    assert trained.abs().sum() > 0  # the updates moved the residual away from zero
    # shipped elsewhere, it still names the same base
    moved = copy(out / "checkpoint", tmp_path / "ship" / "deep" / "residual")
    assert load(moved).base.directory == BASE.resolve()
    assert json.loads((moved / "residual.json").read_text())["base"]["path"] != meta["base"]["path"]
    # resumed under another bound, the actor would not act as it learned to: refused in one line, nothing changed
    state = (out / "training_state.pt").read_bytes()
    other = subprocess.run(
        [RCS, "train-residual", *common, "--steps", "400", "--entry-scale", "gripper=2"],
        capture_output=True,
        text=True,
        env=ENV,
    )
    assert other.returncode != 0 and "Traceback" not in other.stderr, other.stderr
    assert (
        "trained with bounds [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1], this command asks for" in other.stderr
    )
    assert (out / "training_state.pt").read_bytes() == state
    with_phase = subprocess.run(
        [RCS, "train-residual", *common, "--steps", "400", "--chunk-phase"], capture_output=True, text=True, env=ENV
    )
    assert with_phase.returncode != 0 and "Traceback" not in with_phase.stderr, with_phase.stderr
    assert "trained without the chunk phase (--chunk-phase): resume with the run's" in with_phase.stderr
    assert (out / "training_state.pt").read_bytes() == state


def test_train_residual_with_an_actor_average_saves_the_average_and_resumes_only_with_one(tmp_path):
    """``--average-tau``: the checkpoint holds the averaged actor (the training state's ``actor_average``), not the
    online one; resuming that run without an average is refused in one line and changes nothing."""
    import subprocess

    from tests.policies.conftest import ENV, RCS, last_json, rcs

    out = tmp_path / "run"
    common = ("--shift", "reality-a", "--output", str(out), "--learning-starts", "50", "--eval-every", "100")
    common += ("--eval-episodes", "1", "--actor-starts", "0")
    result = last_json(rcs("train-residual", *common, "--steps", "100", "--average-tau", "0.05").stdout)
    assert result["env_steps"] == 100
    agent = torch.load(out / "training_state.pt", weights_only=False)["agent"]
    saved = load(out / "checkpoint").state_dict
    assert set(saved) == set(agent["actor_average"])
    assert all(torch.equal(saved[k], agent["actor_average"][k]) for k in saved)
    assert not torch.equal(saved["head.weight"], agent["actor"]["head.weight"])  # the average trails the actor
    assert saved["head.weight"].abs().sum() > 0  # and has moved from the zero residual
    state = (out / "training_state.pt").read_bytes()
    proc = subprocess.run([RCS, "train-residual", *common, "--steps", "200"], capture_output=True, text=True, env=ENV)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "saved with an actor average: resume with average_tau > 0" in proc.stderr
    assert (out / "training_state.pt").read_bytes() == state


def test_the_best_evaluation_is_the_highest_trained_one_and_the_latest_of_equals():
    from policies.residual.train import best_point

    assert best_point([(0, 0.9)]) is None  # the base alone is no trained residual
    assert best_point([(0, 0.9), (100, 0.5), (200, 0.7), (300, 0.7), (400, 0.6)]) == (300, 0.7)


def test_train_residual_refuses_bad_robot_and_bound_options(tmp_path):
    import subprocess

    from tests.policies.conftest import ENV, RCS

    bad = tmp_path / "calibrated.json"
    bad.write_text(json.dumps({"robot": "sim/so101", "robot_config": {}}))
    for args, message in (
        (("--shift", "reality-z"), "reality-z"),
        (("--robot-config", str(bad)), "calibrates 'sim/so101', the env runs 'sim/panda'"),
        (("--robot-config", str(tmp_path / "missing.json")), "missing.json: unreadable"),
        (("--entry-scale", "grip=2"), "entry scale 'grip': the base's action has no such entry (x, y, z,"),
        (("--entry-scale", "gripper=3"), "residual scale of gripper: 3.0 must be in (0, 2.0]"),
        (("--entry-scale", "gripper=-1"), "residual scale of gripper: -1.0 must be in (0, 2.0]"),
        (("--entry-scale", "gripper=nan"), "residual scale of gripper: nan must be in (0, 2.0]"),
        (("--entry-scale", "gripper=wide"), "'gripper=wide': expected NAME=BOUND"),
        (("--entry-scale", "gripper"), "'gripper': expected NAME=BOUND"),
    ):
        proc = subprocess.run(
            [RCS, "train-residual", "--output", str(tmp_path / "o"), *args], capture_output=True, text=True, env=ENV
        )
        assert proc.returncode != 0 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_the_actor_waits_for_its_critics_and_the_targets_follow_meanwhile():
    rng = np.random.default_rng(1)
    agent = Td3(4, 2, Td3Config(hidden=(32, 32), batch_size=16, demo_fraction=0.0, actor_starts=10), seed=1)
    buf = NStepReplay(4, 2, 100, n_step=1, gamma=0.9)
    for _ in range(50):
        obs = rng.normal(size=4)
        buf.add(obs, rng.uniform(-1, 1, 2), float(rng.random() > 0.5), obs, terminated=True, truncated=False)
    target_before = [p.clone() for p in agent.critic_target.parameters()]
    losses = [agent.update(agent.batch(buf, None)) for _ in range(10)]
    assert not any("actor_loss" in loss for loss in losses)
    assert torch.equal(agent.actor.head.weight, torch.zeros_like(agent.actor.head.weight))  # still exactly the base
    assert any(not torch.equal(a, b) for a, b in zip(target_before, agent.critic_target.parameters(), strict=True))
    losses = [agent.update(agent.batch(buf, None)) for _ in range(4)]
    assert sum("actor_loss" in loss for loss in losses) == 2  # every policy_delay (2) updates from here
    assert agent.actor.head.weight.abs().sum() > 0


def test_sac_resumes_exactly_from_its_state_dict():
    rng = np.random.default_rng(2)
    cfg = SacConfig(hidden=(32, 32), batch_size=16, demo_fraction=0.0, actor_starts=0)
    buf = NStepReplay(4, 2, 100, n_step=1, gamma=0.9)
    for _ in range(50):
        obs = rng.normal(size=4)
        buf.add(obs, rng.uniform(-1, 1, 2), float(rng.random() > 0.5), obs, terminated=True, truncated=False)
    agent = Sac(4, 2, cfg, seed=3)
    for _ in range(5):  # the next update is the 6th: an actor update (policy_delay 2)
        agent.update(agent.batch(buf, None))
    saved = io.BytesIO()  # through torch.save, as the training state is (an optimizer's state_dict is live)
    torch.save(agent.state_dict(), saved)
    saved.seek(0)
    again = Sac(4, 2, cfg, seed=99)
    again.load_state_dict(torch.load(saved, weights_only=False))
    torch.manual_seed(5)
    ours = agent.update(agent.batch(buf, None))
    torch.manual_seed(5)
    theirs = again.update(again.batch(buf, None))
    assert ours == theirs and "actor_loss" in ours
    obs = rng.normal(size=4).astype(np.float32)
    assert np.array_equal(agent.act(obs, explore=False), again.act(obs, explore=False))


@pytest.mark.parametrize("learner", [Td3Config, SacConfig])
def test_the_averaged_actor_trails_the_online_one_and_is_what_acts_deterministically(learner):
    """With ``average_tau`` the deployed actor is ``avg <- avg + tau (online - avg)`` after each actor step (checked
    against the same sum done here), exploration stays on the online actor, and the average resumes with the rest;
    a state with an average cannot resume without one (and the other way round)."""
    rng = np.random.default_rng(4)
    cfg = learner(hidden=(32, 32), batch_size=16, demo_fraction=0.0, actor_starts=0, average_tau=0.25)
    buf = NStepReplay(4, 2, 100, n_step=1, gamma=0.9)
    for _ in range(50):
        obs = rng.normal(size=4)
        buf.add(obs, rng.uniform(-1, 1, 2), float(rng.random() > 0.5), obs, terminated=True, truncated=False)
    agent = cfg.build(4, 2, seed=3)
    expected = [p.detach().clone() for p in agent.actor.parameters()]
    actor_steps = 0
    for _ in range(12):
        if "actor_loss" in agent.update(agent.batch(buf, None)):
            actor_steps += 1
            expected = [e + 0.25 * (p.detach() - e) for e, p in zip(expected, agent.actor.parameters(), strict=True)]
    assert actor_steps == 6  # every policy_delay (2) updates
    for e, a in zip(expected, agent.deployed_actor().parameters(), strict=True):
        torch.testing.assert_close(a, e)
    obs = rng.normal(size=4).astype(np.float32)
    with torch.no_grad():
        averaged = agent.deployed_actor()(torch.as_tensor(obs)[None])[0].numpy()
        online = agent.actor(torch.as_tensor(obs)[None])[0].numpy()
    assert np.allclose(agent.act(obs, explore=False), averaged) and not np.allclose(averaged, online)
    saved = io.BytesIO()
    torch.save(agent.state_dict(), saved)
    saved.seek(0)
    state = torch.load(saved, weights_only=False)
    again = cfg.build(4, 2, seed=99)
    again.load_state_dict(state)
    assert np.array_equal(again.act(obs, explore=False), agent.act(obs, explore=False))
    without = dataclasses.replace(cfg, average_tau=0.0).build(4, 2, seed=99)
    with pytest.raises(ValueError, match="saved with an actor average: resume with average_tau > 0"):
        without.load_state_dict(state)
    with pytest.raises(ValueError, match="saved without an actor average: resume with average_tau 0"):
        again.load_state_dict(without.state_dict())
    with pytest.raises(ValueError, match="average_tau=1.5"):
        learner(average_tau=1.5)


def test_a_mid_range_base_acts_at_the_middle_of_the_action_range():
    space = small_space(scale=1.0)
    base = MidRangeBase(space.action, replan_steps=8, policy_dt=0.05)
    actions = base.actions({}, RequestContext(1, 0, 0.0), 3)
    np.testing.assert_allclose(actions, [[0.5, 0.0, 0.5]] * 3)
    # with scale 1 the learner alone spans the whole range of the base's data
    np.testing.assert_allclose(space.compose(actions[0], np.array([-1.0, 1.0, 0.0])), [0.0, 2.0, 0.5])


def test_train_residual_from_scratch_serves_no_base_and_writes_no_checkpoint(tmp_path):
    from tests.policies.conftest import last_json, rcs

    out = tmp_path / "scratch"
    args = ("--shift", "reality-a", "--scratch", "--learner", "sac", "--output", str(out), "--steps", "100")
    proc = rcs(
        "train-residual",
        *args,
        "--learning-starts",
        "50",
        "--eval-every",
        "100",
        "--eval-episodes",
        "1",
        "--actor-starts",
        "0",
        "--final-episodes",
        "1",
    )
    result = last_json(proc.stdout)
    assert (
        result["checkpoint"] is None
        and result["best"] is None
        and result["learner"] == "sac"
        and result["scratch"] is True
    )
    assert [c["env_steps"] for c in result["curve"]] == [0, 100] and result["final"]["first_seed"] == 10_000
    assert not (out / "checkpoint").exists() and not (out / "best").exists() and not (out / "base_serve.log").exists()
    saved = torch.load(out / "training_state.pt", weights_only=False)
    assert "log_std" in saved["agent"] and saved["agent"]["actor"]["head.weight"].abs().sum() > 0


def test_a_base_server_killed_mid_training_is_started_again_and_its_steps_are_dropped(tmp_path):
    """SIGKILL the base's `rcs serve` right after the first evaluation: a step without a base action is dropped
    (never stored), the server is started again, and the run ends at its step budget."""
    from tests.policies.conftest import ENV, last_json, train_residual_killing

    out = tmp_path / "run"
    args = ["--shift", "reality-a", "--output", str(out), "--steps", "200", "--learning-starts", "50"]
    args += ["--eval-every", "200", "--eval-episodes", "1", "--actor-starts", "0"]
    code, stdout, stderr = train_residual_killing(args, "0 env steps: eval success", ENV)
    assert code == 0, stderr[-3000:]
    result = last_json(stdout)
    # the kill lands before a step (dropped) or an episode's start (asked again after the restart)
    assert result["env_steps"] == 200 and result["dropped_steps"] == stderr.count("step dropped:")
    assert result["dropped_steps"] + stderr.count("episode start without a base action") >= 1, stderr[-3000:]
    assert "the base server had exited: started again (1 of 3 restarts)" in stderr
    assert (out / "base_serve.1.log").is_file()
    assert [c["env_steps"] for c in result["curve"]] == [0, 200]


def test_the_experts_action_is_put_in_the_bases_layout_and_followed_within_the_bound():
    names = ("x", "y", "z", "r11", "r21", "r31", "r12", "r22", "r32", "gripper")
    down = expert_in_layout(np.array([0.5, 0.1, 0.2, np.pi, 0.0, 0.0, 0.8]), names)  # tool pointing down
    np.testing.assert_allclose(down, [0.5, 0.1, 0.2, 1, 0, 0, 0, -1, 0, 0.8], atol=1e-12)
    with pytest.raises(ConfigError, match="absolute TCP pose"):
        expert_in_layout(np.zeros(7), ("j1", "j2", "gripper"))
    space = small_space(scale=0.1)  # action range [0, 1] x [-2, 2] x [0, 1]
    base = np.array([0.5, 0.0, 0.5])
    near = np.array([0.52, 0.1, 0.46])  # within 0.1 of the half-range of each entry
    np.testing.assert_allclose(space.compose(base, residual_toward(space, base, near)), near, atol=1e-6)
    far = residual_toward(space, base, np.array([1.0, -2.0, 0.5]))
    np.testing.assert_array_equal(far, [1.0, -1.0, 0.0])  # bounded like any residual


def test_a_cube_counts_as_dropped_when_it_falls_back_onto_the_table_after_being_lifted():
    from policies.residual.outcomes import CubeDrops, episode_outcome

    drops = CubeDrops(0.02)  # resting on the table
    heights = [0.02, 0.045, 0.03, 0.022, 0.02, 0.06, 0.2, 0.15, 0.027, 0.021, 0.1]
    assert [drops.update(z) for z in heights] == [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1]
    # nudged or slid without a lift (2.5 cm up), or lowered onto a goal above the table: no drop
    drops = CubeDrops(0.02)
    assert [drops.update(z) for z in (0.045, 0.02, 0.3, 0.12)] == [0, 0, 0, 0]
    assert episode_outcome(True, {"cube_drops": 2}) == "success"
    assert episode_outcome(False, {"cube_drops": 1, "failure": "safety fault"}) == "failure"
    assert [episode_outcome(False, {"cube_drops": n, "failure": None}) for n in (1, 0)] == [
        "timeout_after_a_drop",
        "timeout",
    ]


def test_bench_residual_lockstep_evaluates_the_shipped_residual_and_its_zeroed_base():
    from tests.policies.conftest import last_json, rcs

    result = last_json(rcs("bench", "residual-lockstep", "--episodes", "2", "--json").stdout)
    assert result["shift"] == "reality-a" and len(result["policies"]) == 2
    for policy, figures in result["policies"].items():
        assert figures["episodes"] == 2 and figures["success_rate"] in (0.0, 0.5, 1.0), policy
        assert sum(figures["outcomes"].values()) == 2 and figures["outcomes"]["success"] == 2 * figures["success_rate"]
    assert any(p.endswith("zero_residual") for p in result["policies"])
