"""The learned flight policy: shipped checkpoint (numpy-only inference, hover in MuJoCo), the PPO learner, the
``rcs train-flight`` command, and serving the checkpoint with ``rcs serve``."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from policies.flight import model
from rcs.flight import hover_task
from sim.bench.flight import fly, shipped_checkpoint
from sim.mujoco.quadrotor import CRAZYFLIE_SPEC, make_crazyflie

RCS = str(Path(sys.executable).with_name("rcs"))
TARGET = np.array([0.0, 0.0, 1.0])


def test_shipped_checkpoint_describes_itself_and_runs_without_torch():
    ckpt = shipped_checkpoint()
    meta = json.loads((ckpt / model.LAYOUT_NAME).read_text())
    assert meta["observation"]["names"] == list(hover_task.OBSERVATION_NAMES)
    assert meta["motors"]["positions_m"] == [list(p) for p in CRAZYFLIE_SPEC.rotor_positions]
    assert meta["control_rate_hz"] == 100.0 and meta["action"]["range"] == [-1.0, 1.0]
    code = (
        "import sys, numpy as np\n"
        "from policies.flight import model\n"
        f"p = model.load({str(ckpt)!r})\n"
        "a = p(np.zeros((3, p.obs_dim), np.float32))\n"
        "assert a.shape == (3, 4) and (np.abs(a) <= 1).all()\n"
        "assert 'torch' not in sys.modules, 'numpy inference imported torch'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize("seed", [20_000, 20_001, 20_002])
def test_shipped_policy_hovers_the_mujoco_crazyflie(seed):
    """From a benchmark-like start (<= 0.3 m off, <= 30 deg tilt), 6 s on the MuJoCo vehicle: within 0.1 m over
    the last 2 s (the MuJoCo model, not the batch model the policy was trained on)."""
    vehicle = make_crazyflie()
    vehicle.connect()
    try:
        errors = fly(vehicle, "learned", seed, 6.0, TARGET, model.load(shipped_checkpoint()))
    finally:
        vehicle.close()
    assert np.isfinite(errors).all(), "crashed or diverged"
    assert hover_task.hover_success(errors, 0.01), f"last 2 s max error {errors[-200:].max():.3f} m"


def test_shipped_policy_follows_the_figure_eight():
    """The reference's position, velocity and acceleration in the observation: after the 8 s ramp the MuJoCo vehicle
    follows the 1 m x 0.5 m figure-eight (0.8 m/s peak) within 0.1 m RMS over the next 4 s (a hover-only policy, or
    the position setpoint alone, lags about 0.4 m)."""
    from rcs.flight.trajectories import FigureEight
    from sim.bench.flight import FIGURE_EIGHT

    reference = FigureEight(center=TARGET[:2], height=float(TARGET[2]), **FIGURE_EIGHT)
    vehicle = make_crazyflie()
    vehicle.connect()
    try:
        errors = fly(vehicle, "learned", 20_000, 12.0, TARGET, model.load(shipped_checkpoint()), reference=reference)
    finally:
        vehicle.close()
    after_ramp = errors[800:]
    assert np.isfinite(after_ramp).all(), "crashed or diverged"
    assert np.sqrt(np.mean(after_ramp**2)) < 0.1, f"RMS {np.sqrt(np.mean(after_ramp**2)):.3f} m"


def test_ppo_improves_on_an_easy_hover_and_exports_what_it_trained(tmp_path):
    """A few seconds of PPO on the nominal vehicle from near-hover starts: the mean episode return rises clearly;
    the numpy checkpoint reproduces the torch actor's mean."""
    import torch

    from policies.flight.ppo import ActorCritic, PpoConfig, train
    from rcs.spec import DomainRandomization
    from sim.batch.hover_env import HoverStarts

    cfg = PpoConfig(
        seed=1,
        max_seconds=600.0,  # the step budget binds: the run is deterministic
        max_steps=64 * 32 * 24,
        num_envs=64,
        rollout_steps=32,
        episode_s=2.0,
        starts=HoverStarts(position_radius=0.2, tilt=0.2, yaw=0.5, linear_velocity=0.1, angular_velocity=0.5),
        disturbance=(0.0, 0.0),  # the easy problem: no push to cancel, no link delay
        action_delay_s=(0.0, 0.0),
    )
    result = train(CRAZYFLIE_SPEC, DomainRandomization(), tmp_path / "ckpt", cfg)
    first, last = np.mean(result.returns[:3]), np.mean(result.returns[-3:])
    assert last > first + 20.0, (first, last, result.returns)
    policy = model.load(result.checkpoint)
    agent = ActorCritic(policy.obs_dim, policy.act_dim, cfg.hidden, cfg.init_log_std)
    lins = [m for m in agent.actor if isinstance(m, torch.nn.Linear)]
    for i, lin in enumerate(lins):
        w, b = policy.layers[i]
        lin.weight.data = torch.as_tensor(w)
        lin.bias.data = torch.as_tensor(b)
    obs = np.random.default_rng(0).normal(size=(8, policy.obs_dim)).astype(np.float32)
    with torch.no_grad():
        want = agent.actor(torch.as_tensor(obs)).clamp(-1, 1).numpy()
    np.testing.assert_allclose(policy(obs), want, atol=1e-5)


def test_train_flight_command_writes_checkpoint_and_curve(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [RCS, "train-flight", "--output", str(out), "--max-seconds", "4", "--num-envs", "32", "--seed", "3"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["env_steps"] > 0 and "iter" in proc.stderr
    for name in ("model.safetensors", "flight_policy.json", "rcs_policy.json"):
        assert (out / "checkpoint" / name).is_file()
    assert (out / "returns.png").stat().st_size > 1000 and (out / "returns.csv").is_file()
    bad = subprocess.run(
        [RCS, "train-flight", "--output", str(out), "--max-seconds", "-1"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "--max-seconds" in bad.stderr and "Traceback" not in bad.stderr


def test_served_checkpoint_holds_the_simulated_vehicle(tmp_path):
    """``rcs serve`` (a real process) serves the shipped checkpoint; this test closes the loop at 100 Hz around the
    MuJoCo Crazyflie through the policy protocol (PolicyClient), 4 s from a 0.2 m, 15 deg start."""
    from rcs.flight.observation import FlightObservation
    from rcs.serving.client import PolicyClient
    from rcs.serving.policy import load_policy
    from sim.bench.flight import episode_start

    ckpt = shipped_checkpoint()
    schema = load_policy(ckpt).schema  # the flight_mlp loader, as rcs serve runs it
    serve = subprocess.Popen(
        [RCS, "serve", "--policy", str(ckpt), "--bind", "tcp://127.0.0.1:0"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    vehicle = make_crazyflie()
    client = None
    try:
        endpoint = ""
        deadline = time.monotonic() + 60.0
        assert serve.stderr is not None
        while not endpoint and time.monotonic() < deadline:
            line = serve.stderr.readline()
            if not line:
                break
            if " on tcp://" in line:
                endpoint = line.strip().rsplit(" on ", 1)[1].split()[0]
        assert endpoint, "rcs serve did not report its endpoint"
        client = PolicyClient(endpoint, schema, name="test_flight_policy")
        client.handshake(timeout_s=30.0)
        vehicle.connect()
        vehicle.reset(seed=0)
        vehicle.arm()
        p0, q0 = episode_start(7, TARGET)
        hover = np.full(4, CRAZYFLIE_SPEC.hover_thrust / 4)
        vehicle.set_vehicle_state(p0, q0, np.zeros(3), np.zeros(3), hover)
        inputs = FlightObservation(TARGET, schema.policy_dt, 4)
        inputs.reset(hover / CRAZYFLIE_SPEC.max_thrust)
        errors = []
        for tick in range(400):
            reply = client.request(inputs(vehicle.read()), tick, budget_s=10.0)
            u = reply.actions[0].astype(np.float64)
            vehicle.command_motor_thrusts(u)
            inputs.commanded(u)
            vehicle.advance(0.01)
            errors.append(float(np.linalg.norm(vehicle.read().position - TARGET)))
        assert max(errors[-100:]) < 0.1, f"last 1 s max error {max(errors[-100:]):.3f} m"
    finally:
        if client is not None:
            client.close()
        vehicle.close()
        serve.kill()
        serve.wait(10)
