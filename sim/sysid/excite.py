"""Joint logs of a simulated robot driven by an excitation (``rcs sysid --collect``): what ``rcs sysid`` fits.

On a real robot the log comes from ``rcs deploy`` (its run log); here a simulated robot, nominal or shifted
(:mod:`rcs.shifts`), follows a smooth multi-sine around its home pose and the measured joints and sent targets are
written in the run-log layout (:func:`rcs.deploy.run_log.run_log_features`), one episode per excitation.

Excitation per joint ``i``: ``q_i(t) = home_i + r(t) sum_j a_ij sin(2 pi f_ij t + phi_ij)`` with three components,
``f`` log-uniform in [0.3, 3] Hz, ``a`` inversely proportional to ``f`` (random shares) and summing to
``amplitude`` rad, ``r(t)`` a 0.5 s smooth ramp from rest; clipped
0.05 rad inside the joint limits. The gripper stays open.

``joint_noise_rad`` adds white Gaussian noise to the logged joint positions (a real encoder's noise; the
simulator's own readings are exact), so a fit on simulated logs meets what a fit on a robot's log meets.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rcs.errors import ConfigError
from rcs.registry import make_robot
from rcs.spec import ArmSpec

RAMP_S = 0.5  # s: the excitation fades in from rest over this long
MARGIN = 0.05  # rad: targets stay this far inside the joint limits


def excitation(
    spec: ArmSpec, seconds: float, rate_hz: float, rng: np.random.Generator, amplitude: float = 0.25
) -> np.ndarray:
    """(T, n) joint targets (rad), one row per control tick (see the module docstring)."""
    t = np.arange(int(round(seconds * rate_hz))) / rate_hz
    n = spec.dof
    freq = np.exp(rng.uniform(np.log(0.3), np.log(3.0), (n, 3)))
    phase = rng.uniform(0.0, 2 * np.pi, (n, 3))
    # equal velocity amplitude per component: fast ones are small (a servo's lag and a delay differ in how the phase
    # grows with frequency, so both low and high frequencies are needed to tell them apart)
    weight = rng.dirichlet(np.ones(3), n) / freq
    weight *= amplitude / weight.sum(axis=1, keepdims=True)
    wave = (weight[None] * np.sin(2 * np.pi * freq[None] * t[:, None, None] + phase[None])).sum(axis=2)
    wave -= wave[0]  # start exactly at home
    ramp = np.clip(t / RAMP_S, 0.0, 1.0)
    ramp = ramp * ramp * (3 - 2 * ramp)  # smoothstep: no jump in target velocity at the start
    q = np.asarray(spec.home) + ramp[:, None] * wave
    return np.clip(q, spec.lower + MARGIN, spec.upper - MARGIN)


def collect(
    root: str | Path,
    robot: str = "sim/panda",
    robot_config: Mapping[str, Any] | None = None,
    episodes: int = 20,
    seconds: float = 4.0,
    rate_hz: int = 100,
    seed: int = 0,
    joint_noise_rad: float = 0.0,
) -> Path:
    """Drive ``robot`` (with ``robot_config``) through ``episodes`` excitations and log them at ``rate_hz`` into a
    new LeRobot dataset at ``root``, joint readings with ``joint_noise_rad`` (rad, standard deviation) of noise;
    returns its folder."""
    from rcs.deploy.run_log import CAPTURE_TIME, INTERVENTIONS, LATENESS, STAGE, run_log_features
    from rcs.recording.features import ACTION, STATE
    from rcs.recording.writer import Recorder

    if Path(root).exists():
        raise ConfigError(f"--collect={root}: already exists (a log is never overwritten)")
    if episodes < 1 or not seconds > 0 or rate_hz < 1 or not joint_noise_rad >= 0:
        raise ConfigError(
            f"episodes={episodes}, seconds={seconds}, rate_hz={rate_hz}, joint_noise_rad={joint_noise_rad}: "
            "expected >= 1, > 0, >= 1, >= 0"
        )
    arm = make_robot(robot, **dict(robot_config or {}))
    spec: ArmSpec = arm.spec
    names = list(spec.joint_names)
    recorder = Recorder(
        root,
        fps=int(rate_hz),
        features=run_log_features(names, [*names, "gripper"]),
        robot_type=robot,
        recording={"source": "sim.sysid.excite", "robot": robot, "state_rate_hz": rate_hz, "seconds": seconds},
    )
    rng = np.random.default_rng(seed)
    dt = 1.0 / rate_hz
    try:
        with arm:
            for _ in range(episodes):
                arm.reset(seed=int(rng.integers(2**31)))
                targets = excitation(spec, seconds, rate_hz, rng)
                recorder.start_episode("sysid excitation")
                sent = np.r_[spec.home, 1.0]
                for k, target in enumerate(targets):
                    state = arm.read()
                    measured = state.joint_positions + rng.normal(0.0, joint_noise_rad, spec.dof)
                    recorder.add_frame(
                        {
                            STATE: np.r_[measured, state.gripper].astype(np.float32),
                            ACTION: sent.astype(np.float32),
                            INTERVENTIONS: np.zeros(1, np.float32),
                            LATENESS: np.zeros(2, np.float32),
                            STAGE: np.ones(1, np.int64),
                            CAPTURE_TIME: np.array([k * dt]),
                        }
                    )
                    arm.command_joint_positions(target)
                    arm.command_gripper(1.0)
                    sent = np.r_[target, 1.0]
                    arm.advance(dt)
                recorder.save_episode()
    finally:
        recorder.close()
        sim = getattr(arm, "simulation", None)
        if sim is not None:
            sim.close()
    return Path(recorder.root)
