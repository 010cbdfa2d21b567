"""``rcs bench chunks``: smoothness at chunk seams and starvation per chunk-execution strategy.

A synthetic policy drives a simulated arm on a repeated A -> B -> A motion that passes an obstacle either
above or below (the dodge direction is picked at random for every chunk: a bimodal policy). Chunks arrive
``delay`` control ticks after the observation they were computed from, for delays 0, 2, 4, 8 and 16 ticks,
and go through the full pipeline (executor -> watchdog -> safety filter -> simulated robot), unpaced.

Per strategy and delay the benchmark reports the largest jerk at seams (from the tick a new chunk is
merged, including any starved ticks just before it, through ``splice_ticks + 3`` ticks after) divided by
the largest jerk *inside* the chunks the policy produced (their own control-rate trajectories between the
first and the last action), and the
number of starved ticks. Jerk is the norm over joints of the third difference of the commanded joint
positions (before the safety filter, i.e. what the strategy asked for) divided by ``dt**3``.

Strategies: ``sync``, ``ensemble``, ``blend`` (see :mod:`rcs.control.chunking`) with a policy that knows
nothing about the executor, and ``splice`` with a policy that conditions on the committed actions of
:class:`rcs.control.chunking.ChunkRequest` (as real-time-chunking policies do by inpainting: here it picks
the dodge direction the committed actions already follow and starts from the committed action for its
tick). ``splice_unguided`` runs the splice with the plain random policy, to show what the executor alone
achieves, and ``ensemble_guided`` / ``blend_guided`` give the other strategies the same guided policy, so
every strategy is also measured like for like.

Requests: ``sync`` asks for a chunk when the previous one is exhausted (the robot is starved while the
policy thinks); the others ask every ``min(H/2, H - delay - 2)`` ticks (``H`` = chunk length in ticks), with
several requests in flight when the delay exceeds that period. The watchdog's stop timeout is raised for the
benchmark so that ``sync``'s starvation is measured rather than turned into a controlled stop.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

import rcs
from rcs.control.chunking import ActionChunk, ChunkRequest, chunk_to_ticks
from rcs.control.loop import ControlLoop
from rcs.control.task import PolicyTask, arm_safety_config, make_policy_task
from rcs.devices import Arm, Simulated

log = logging.getLogger(__name__)

#: Targets of the issue for our strategy.
TARGET_RATIO = 1.5

#: Benchmark strategy name -> (executor strategy, whether the policy conditions on committed actions).
STRATEGY_RUNS: dict[str, tuple[str, bool]] = {
    "sync": ("sync", False),
    "ensemble": ("ensemble", False),
    "blend": ("blend", False),
    "splice": ("splice", True),
    "splice_unguided": ("splice", False),
    # The same guided policy under the other strategies, so the comparison with "splice" is like for like.
    "ensemble_guided": ("ensemble", True),
    "blend_guided": ("blend", True),
}


# ---------------------------------------------------------------------------------------------------------
# The synthetic task and policy
# ---------------------------------------------------------------------------------------------------------


def _ramp(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * x * (10.0 + x * (-15.0 + 6.0 * x))


@dataclass(frozen=True)
class BimodalMotion:
    """Joint-space A -> B -> A motion (rad) with an obstacle passed above (+1) or below (-1).

    Attributes:
        start: (n,) joint positions of A.
        delta: (n,) B - A.
        dodge: (n,) joint offset at the middle of a traverse for mode +1 (mode -1 mirrors it).
        traverse_s: duration of one traverse (s).
        dwell_s: rest at each end (s).
        dt: control period (s).
    """

    start: np.ndarray
    delta: np.ndarray
    dodge: np.ndarray
    traverse_s: float
    dwell_s: float
    dt: float

    @classmethod
    def for_arm(cls, arm: Arm, dt: float, traverse_s: float = 1.5, dwell_s: float = 0.25) -> BimodalMotion:
        """Amplitudes from the spec's joint ranges (first joint travels, the next two dodge)."""
        spec = arm.spec
        span = spec.upper - spec.lower
        delta = np.zeros(spec.dof)
        dodge = np.zeros(spec.dof)
        delta[0] = 0.12 * span[0]
        dodge[1 : min(3, spec.dof)] = 0.06 * span[1 : min(3, spec.dof)]
        return cls(np.asarray(spec.home, dtype=np.float64), delta, dodge, traverse_s, dwell_s, dt)

    def path(self, ticks: np.ndarray, mode: int) -> np.ndarray:
        """(M, n) joint positions at control ``ticks`` (float) in dodge ``mode``."""
        t = np.asarray(ticks, dtype=np.float64) * self.dt
        cycle = 2.0 * (self.traverse_s + self.dwell_s)
        tc = np.mod(t, cycle)
        half = self.traverse_s + self.dwell_s
        out_leg = tc < half
        s = np.where(out_leg, tc - self.dwell_s, tc - half - self.dwell_s) / self.traverse_s
        s = np.clip(s, 0.0, 1.0)
        progress = np.where(out_leg, _ramp(s), 1.0 - _ramp(s))
        bump = np.sin(np.pi * s) ** 4  # C3 at both ends: no jerk impulse when a traverse starts
        return self.start + progress[:, None] * self.delta + (mode * bump)[:, None] * self.dodge


class BimodalPolicy:
    """A chunked policy on :class:`BimodalMotion`: from the observed command it converges to the path of a
    dodge mode chosen at random. ``guided`` emulates a real-time-chunking policy that inpaints the committed
    actions: it starts from the committed action for its tick and keeps the mode they already follow.

    Args:
        motion: the task.
        horizon: actions per chunk.
        ticks_per_action: control ticks between actions.
        rng: random generator for the mode choice.
        guided: condition on :attr:`ChunkRequest.committed` (real-time-chunking style).
        extra: constant trailing columns (e.g. the gripper).
    """

    def __init__(
        self,
        motion: BimodalMotion,
        horizon: int,
        ticks_per_action: int,
        rng: np.random.Generator,
        guided: bool,
        extra: np.ndarray,
    ) -> None:
        self.motion = motion
        self.horizon = horizon
        self.r = ticks_per_action
        self.rng = rng
        self.guided = guided
        self.extra = extra
        self.modes: list[int] = []

    def _plan(self, tick: int, observed: np.ndarray, mode: int, offsets: np.ndarray) -> np.ndarray:
        """Joint positions at ``tick + offsets`` (ticks) converging from ``observed`` to the mode's path."""
        dof = len(self.motion.start)
        base = self.motion.path(tick + offsets, mode)
        start_error = observed[:dof] - self.motion.path(np.array([tick]), mode)[0]
        decay = 1.0 - _ramp(offsets / ((self.horizon - 1) * self.r))
        return base + decay[:, None] * start_error

    def __call__(self, request: ChunkRequest, observed: np.ndarray) -> np.ndarray:
        """(H, D) actions for the observation at ``request.tick``."""
        dof = len(self.motion.start)
        if self.guided and len(request.committed):
            # Inpainting, as real-time chunking does: start from the committed action for this tick and
            # follow the dodge mode the committed actions already follow.
            observed = request.committed[0]
            offsets = np.arange(len(request.committed), dtype=np.float64)
            err = {
                m: float(np.sum((self._plan(request.tick, observed, m, offsets) - request.committed[:, :dof]) ** 2))
                for m in (-1, 1)
            }
            mode = min(err, key=err.__getitem__)
        else:
            mode = int(self.rng.choice([-1, 1]))
        self.modes.append(mode)
        q = self._plan(request.tick, observed, mode, np.arange(self.horizon, dtype=np.float64) * self.r)
        return np.hstack([q, np.tile(self.extra, (self.horizon, 1))]) if len(self.extra) else q


# ---------------------------------------------------------------------------------------------------------
# One run
# ---------------------------------------------------------------------------------------------------------


class _DelayedPolicyTask:
    """Wraps a :class:`PolicyTask`: requests chunks on schedule, delivers each ``delay`` ticks later, records."""

    def __init__(self, task: PolicyTask, policy: BimodalPolicy, delay: int, period: int | None, dt: float) -> None:
        self.task = task
        self.policy = policy
        self.delay = delay
        self.period = period  # None: synchronous (request when exhausted)
        self.dt = dt
        self.pending: list[tuple[int, ActionChunk]] = []
        self.last_request: int | None = None
        self.chunks: list[ActionChunk] = []
        self.commanded: list[np.ndarray] = []
        self.starved: list[bool] = []

    def read(self, tick: int) -> Any:
        return self.task.read(tick)

    def _due(self, tick: int) -> bool:
        if self.period is None:
            return not self.pending and self.task.executor.remaining(tick) == 0
        return self.last_request is None or tick - self.last_request >= self.period

    def compute(self, tick: int, state: Any) -> Any:
        ex = self.task.executor
        if self._due(tick):
            self.last_request = tick
            last = self.task.history.last
            observed = last.values if last is not None else self.task.hold_vector(state)  # type: ignore[misc]
            actions = self.policy(ex.request(tick), observed)
            chunk = ActionChunk(tick, actions, ex.names, self.policy.r * self.dt, self.dt, time.monotonic())
            self.pending.append((tick + self.delay, chunk))
        while self.pending and self.pending[0][0] <= tick:
            _, chunk = self.pending.pop(0)
            rejection = ex.submit(chunk)
            if rejection is None:
                self.chunks.append(chunk)
            else:
                log.warning("benchmark chunk rejected: %s", rejection.message)
        before = ex.starved_ticks
        safe = self.task.compute(tick, state)
        self.starved.append(ex.starved_ticks > before)
        cmd = self.task.last_command
        self.commanded.append(np.array(cmd.values if cmd is not None else safe.values))
        return safe

    def write(self, tick: int, command: Any) -> None:
        self.task.write(tick, command)


def jerk_norms(x: np.ndarray, dt: float) -> np.ndarray:
    """(M,) norm over columns of the third difference of (M, n) positions / dt^3 (first three are 0)."""
    out = np.zeros(len(x))
    if len(x) >= 4:
        third = x[3:] - 3.0 * x[2:-1] + 3.0 * x[1:-2] - x[:-3]
        out[3:] = np.linalg.norm(third, axis=1) / dt**3
    return out


def seam_mask(n: int, seams: list[int], starved: np.ndarray, after: int) -> np.ndarray:
    """Ticks belonging to a seam: each merge tick, the starved run right before it, and ``after`` ticks."""
    mask = np.zeros(n, dtype=bool)
    for a in seams:
        lo = a
        while lo - 1 >= 0 and starved[lo - 1]:
            lo -= 1
        mask[max(0, lo) : min(n, a + after + 1)] = True
    return mask


def run_one(arm: Arm, args: argparse.Namespace, strategy: str, delay: int, seed: int) -> dict[str, Any]:
    """One strategy at one delay; returns its metrics."""
    executor_strategy, guided = STRATEGY_RUNS[strategy]
    rate, r, h = args.rate, args.ticks_per_action, args.horizon
    dt = 1.0 / rate
    if isinstance(arm, Simulated):
        arm.reset(seed=seed)
    task = make_policy_task(
        arm,
        rate,
        safety=arm_safety_config(arm, rate),
        executor={
            "strategy": executor_strategy,
            "interpolation": args.interpolation,
            "splice_ticks": args.splice_ticks,
        },
        watchdog={"stop_after_s": 30.0, "disarm_after_s": 60.0, "fade_in_s": 0.0},
    )
    motion = BimodalMotion.for_arm(arm, dt)
    extra = np.array([1.0]) if arm.spec.gripper is not None else np.zeros(0)
    policy = BimodalPolicy(motion, h, r, np.random.default_rng(seed), guided, extra)
    chunk_ticks = h * r
    period = None if executor_strategy == "sync" else max(1, min(chunk_ticks // 2, chunk_ticks - delay - 2))
    runner = _DelayedPolicyTask(task, policy, delay, period, dt)
    loop = ControlLoop(runner, rate, robot=arm, paced=False, log_every_s=0)
    task.engage()
    loop.run(ticks=int(round(args.seconds * rate)))

    dof = arm.spec.dof
    commanded = np.array(runner.commanded)[:, :dof]
    starved = np.array(runner.starved)
    jerk = jerk_norms(commanded, dt)
    ex = task.executor
    seams = ex.seam_ticks[1:]  # the first merge starts from rest: a start-up, not a seam between chunks
    mask = seam_mask(len(jerk), seams, starved, args.splice_ticks + 3)
    mask[:3] = False
    knots_span = (h - 1) * r + 1  # ticks from the first to the last action (the held tail is not the policy's)
    chunk_jerk = max(
        float(jerk_norms(chunk_to_ticks(c, args.interpolation)[:knots_span, :dof], dt).max()) for c in runner.chunks
    )
    seam_max = float(jerk[mask].max()) if mask.any() else 0.0
    interior = jerk[~mask]
    interior[:3] = 0.0
    modes = policy.modes
    return {
        "seam_jerk_ratio": round(seam_max / chunk_jerk, 3) if chunk_jerk > 0 else None,
        "seam_max_jerk": round(seam_max, 2),
        "chunk_max_jerk": round(chunk_jerk, 2),
        "interior_max_jerk": round(float(interior.max()) if len(interior) else 0.0, 2),
        "starved_ticks": ex.starved_ticks,
        "chunks": ex.accepted,
        "mode_switches": sum(a != b for a, b in itertools.pairwise(modes)),
        "safety_interventions": task.safety.log.total,
    }


# ---------------------------------------------------------------------------------------------------------
# CLI entry points
# ---------------------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``rcs bench chunks``."""
    parser.add_argument("--robot", default="sim/panda", help="registered simulated arm")
    parser.add_argument("--rate", type=float, default=200.0, help="control rate (Hz)")
    parser.add_argument("--ticks-per-action", type=int, default=2, help="control ticks per policy action")
    parser.add_argument("--horizon", type=int, default=20, help="actions per chunk")
    parser.add_argument("--delays", type=int, nargs="+", default=[0, 2, 4, 8, 16], help="inference delays (ticks)")
    parser.add_argument(
        "--strategies",
        nargs="+",
        default=list(STRATEGY_RUNS),
        choices=list(STRATEGY_RUNS),
        help="chunk merge strategies to compare (default: all)",
    )
    parser.add_argument(
        "--interpolation",
        default="minimum_jerk",
        choices=["linear", "minimum_jerk"],
        help="policy-rate actions to control ticks (default minimum_jerk)",
    )
    parser.add_argument("--splice-ticks", type=int, default=16, help="splice correction window (ticks)")
    parser.add_argument("--seconds", type=float, default=6.0, help="simulated seconds per run")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the scene reset and of the synthetic bimodal policy (default 0)"
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run every strategy at every delay; returns the JSON-ready result."""
    arm = rcs.make_robot(args.robot)
    if not isinstance(arm, Arm):
        raise SystemExit(f"--robot {args.robot!r} is not an arm")
    chunk_ticks = args.horizon * args.ticks_per_action
    results: dict[str, dict[str, Any]] = {}
    try:
        arm.connect()
        for strategy in args.strategies:
            results[strategy] = {}
            for delay in args.delays:
                results[strategy][str(delay)] = run_one(arm, args, strategy, delay, args.seed)
                log.info("bench chunks: %s delay %d: %s", strategy, delay, results[strategy][str(delay)])
    finally:
        arm.close()
        sim = getattr(arm, "simulation", None)
        if sim is not None and hasattr(sim, "close"):
            sim.close()
    ours = results.get("splice", {})
    met = {
        d: (m["seam_jerk_ratio"] is not None and m["seam_jerk_ratio"] <= TARGET_RATIO)
        and (int(d) >= chunk_ticks or m["starved_ticks"] == 0)
        for d, m in ours.items()
    }
    return {
        "robot": args.robot,
        "rate_hz": args.rate,
        "policy_dt": args.ticks_per_action / args.rate,
        "chunk_ticks": chunk_ticks,
        "interpolation": args.interpolation,
        "splice_ticks": args.splice_ticks,
        "delays": list(args.delays),
        "strategies": results,
        "targets_met": {"splice": met, "all": all(met.values()) if met else False},
    }
