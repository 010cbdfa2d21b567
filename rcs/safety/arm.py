"""The arm safety filter: joint limits with braking, a Cartesian workspace box proven over the braking path.

Limits come from the arm's spec (joint position/velocity/acceleration limits); everything scene-specific
(workspace box, margins, scales) comes from :class:`ArmSafetyConfig`, never from constants in this file.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rcs.errors import ConfigError
from rcs.safety.base import hold_reason, short_repr
from rcs.safety.interventions import InterventionLog, format_distinct
from rcs.safety.limits import AxisLimiter, braking_path
from rcs.spec import ArmSpec, WorkspaceBox
from rcs.types import ArmState, Command, command_vector_of_arm

#: The arm filter keeps the TCP this far (m) inside the workspace box, so that floating-point rounding in the
#: forward kinematics can never leave it outside the configured box (found by the property test).
WORKSPACE_MARGIN = 1e-6


def box_violation(p: np.ndarray, box: WorkspaceBox, margin: float = 0.0) -> float:
    """Euclidean distance (m) of ``p`` outside ``box`` shrunk by ``margin`` on every side (0 inside)."""
    below = np.asarray(box.lower) + margin - p
    above = p - (np.asarray(box.upper) - margin)
    return float(np.linalg.norm(np.maximum(np.maximum(below, above), 0.0)))


TcpPositionFn = Callable[[np.ndarray], np.ndarray]
"""Joint positions (n,) rad -> TCP position (3,) m in the workspace box's frame."""


@dataclass(frozen=True)
class ArmSafetyConfig:
    """Per-robot, per-scene settings of :class:`ArmSafetyFilter`. Joint limits themselves come from the spec.

    Attributes:
        control_dt: control period (s) the per-tick limits are computed for.
        velocity_scale: fraction (0, 1] of the spec's joint velocity limits allowed.
        acceleration_scale: fraction (0, 1] of the spec's joint acceleration limits allowed.
        position_margin: rad (m for prismatic joints) kept clear of the spec's position limits.
        max_joint_step: optional extra per-tick delta cap (rad per tick), scalar or per joint.
        workspace: box the TCP must stay in, or ``None`` for no Cartesian limit.
        tcp_position: forward kinematics to the TCP position in ``workspace.frame`` (required with a
            workspace); e.g. ``lambda q: arm.kinematics.forward(q)[0]`` for a box in the arm's base frame.
        gripper_max_step: optional cap on the change of normalized gripper width per tick.
        workspace_bisection_steps: bisection iterations when the workspace box shortens a step.
        tcp_lipschitz: optional bound on how far the TCP moves per joint motion: ``L`` (m per rad, or per m for
            prismatic joints), a scalar or one value per joint, with ``|tcp(q1) - tcp(q2)| <= sum_i L_i *
            |q1_i - q2_i|`` for all configurations (for a revolute joint: the largest distance between its axis
            and the TCP; see ``MinkKinematics.tcp_lipschitz``). With it, one FK evaluation proves a whole
            joint-space neighbourhood inside the box, which keeps the workspace check within
            ``workspace_fk_budget`` away from the box faces. ``None``: only evaluated points count as proven,
            so a braking path longer than the budget is never proven and the arm is slowed until it fits.
        workspace_fk_budget: most FK evaluations per tick (the check's real-time bound). A step whose braking
            path is not proven inside the box within it is shortened or replaced by braking, which needs no
            FK evaluation (it follows the previous step's proven braking path).
    """

    control_dt: float
    velocity_scale: float = 1.0
    acceleration_scale: float = 1.0
    position_margin: float = 0.0
    max_joint_step: float | tuple[float, ...] | None = None
    workspace: WorkspaceBox | None = None
    tcp_position: TcpPositionFn | None = None
    gripper_max_step: float | None = None
    workspace_bisection_steps: int = 8
    tcp_lipschitz: float | tuple[float, ...] | None = None
    workspace_fk_budget: int = 16

    def __post_init__(self) -> None:
        if not self.control_dt > 0:
            raise ConfigError(f"control_dt={self.control_dt} must be > 0")
        for name in ("velocity_scale", "acceleration_scale"):
            if not 0 < getattr(self, name) <= 1:
                raise ConfigError(f"{name}={getattr(self, name)} must be in (0, 1]")
        if self.position_margin < 0:
            raise ConfigError(f"position_margin={self.position_margin} must be >= 0")
        if self.workspace is not None and self.tcp_position is None:
            raise ConfigError("workspace given without tcp_position (forward kinematics to the box frame)")
        if self.tcp_lipschitz is not None:
            values = np.atleast_1d(np.asarray(self.tcp_lipschitz, dtype=np.float64))
            if values.ndim != 1 or not np.all((values >= 0) & np.isfinite(values)) or not np.any(values > 0):
                raise ConfigError(f"tcp_lipschitz={self.tcp_lipschitz} must be finite, >= 0 and not all 0 (m/rad)")
        if not (isinstance(self.workspace_fk_budget, int) and self.workspace_fk_budget >= 2):
            raise ConfigError(f"workspace_fk_budget={self.workspace_fk_budget} must be an integer >= 2")


class ArmSafetyFilter:
    """Joint-space safety filter for an arm commanded in ``"joint_positions"`` mode.

    Command layout: the spec's joints in order, then the normalized gripper width if the arm has a gripper
    (see :attr:`names`). Each tick:

    1. anything that is not a finite real vector of the right length is replaced by a hold (``bad_shape``,
       ``bad_dtype``, ``non_finite``, ``bad_mode``);
    2. joints: position limits (spec minus margin), velocity limit (spec x scale), optional per-tick step cap
       and acceleration limit (spec x scale), with braking before position limits (:class:`AxisLimiter`);
    3. workspace: unless the TCP at the step and on every tick of the braking that may follow is proven inside
       the box within ``workspace_fk_budget`` FK calls, the step is shortened along the segment towards the
       maximal-braking step (bisection, same budget), which keeps every joint limit satisfied; braking itself
       needs no FK call (it follows the committed step's proven braking path);
    4. gripper: clipped to [0, 1] and optionally rate limited.

    The filter tracks its own last output: call :meth:`reset` with the measured state before use.
    """

    mode = "joint_positions"

    def __init__(self, spec: ArmSpec, config: ArmSafetyConfig) -> None:
        self.spec = spec
        self.config = config
        dt = config.control_dt
        lower = spec.lower + config.position_margin
        upper = spec.upper - config.position_margin
        if np.any(lower >= upper):
            raise ConfigError(f"position_margin={config.position_margin} leaves no range for arm {spec.name!r}")
        cap = None if config.max_joint_step is None else np.asarray(config.max_joint_step, dtype=np.float64)
        self.joints = AxisLimiter(
            spec.joint_names,
            lower,
            upper,
            spec.max_velocity * config.velocity_scale * dt,
            spec.max_acceleration * config.acceleration_scale * dt * dt,
            cap,
        )
        self.has_gripper = spec.gripper is not None
        self.gripper = AxisLimiter(
            ("gripper",),
            np.zeros(1),
            np.ones(1),
            np.array([np.inf if config.gripper_max_step is None else config.gripper_max_step]),
            np.array([np.inf]),
        )
        self.log = InterventionLog(f"arm safety ({spec.name})")
        self._weights: np.ndarray | None = None
        if config.tcp_lipschitz is not None:
            weights = np.atleast_1d(np.asarray(config.tcp_lipschitz, dtype=np.float64))
            if weights.shape not in ((1,), (spec.dof,)):
                raise ConfigError(f"tcp_lipschitz has {weights.size} values; arm {spec.name!r} has {spec.dof} joints")
            self._weights = np.broadcast_to(weights, (spec.dof,)).copy()
        #: m: how far outside the box shrunk by WORKSPACE_MARGIN the committed command and its braking path
        #: are proven to stay at most (0 while inside); new steps must not go further out.
        self._workspace_violation = 0.0
        #: the committed command's braking path, proven within ``_workspace_violation`` (None: not proven).
        self._tail: np.ndarray | None = np.empty((0, spec.dof))
        # Ring buffer of FK certificates (joint position, signed distance), each proving a joint-space ball.
        self._cert_q = np.zeros((_CERTIFICATES, spec.dof))
        self._cert_s = np.zeros(_CERTIFICATES)
        self._cert_n = self._cert_next = 0
        self._fk_left = 0
        self.fk_calls = 0  #: FK evaluations of the workspace check since construction (for benchmarks)

    @property
    def names(self) -> tuple[str, ...]:
        """Names of the command vector's elements."""
        return self.spec.joint_names + (("gripper",) if self.has_gripper else ())

    @property
    def size(self) -> int:
        """Length of the command vector."""
        return len(self.names)

    def reset(self, state: ArmState | np.ndarray) -> None:
        """Start from a measured :class:`ArmState` (or a command vector), at rest."""
        values = command_vector_of_arm(state, self.has_gripper) if isinstance(state, ArmState) else np.asarray(state)
        values = np.asarray(values, dtype=np.float64)
        self.joints.reset(values[: self.spec.dof])
        outside = self.joints.outside()
        if outside.any():
            i = int(np.argmax(outside))
            value, lower, upper = format_distinct(self.joints.q[i], self.joints.lower[i], self.joints.upper[i])
            self.log.record(
                "position_limit",
                f"{self.joints.names[i]}={value} measured outside [{lower}, {upper}]; commands head back inside at "
                "the velocity and acceleration limits",
            )
        if self.has_gripper:
            g = values[self.spec.dof]
            self.gripper.reset(np.array([0.0 if not np.isfinite(g) else float(np.clip(g, 0.0, 1.0))]))
        cfg = self.config
        self._workspace_violation = 0.0
        self._tail = np.empty((0, self.spec.dof))  # at rest: braking is holding still
        self._cert_n = self._cert_next = 0
        if cfg.workspace is not None and cfg.tcp_position is not None:
            self._workspace_violation = box_violation(
                np.asarray(cfg.tcp_position(self.joints.q)), cfg.workspace, WORKSPACE_MARGIN
            )

    @property
    def last_output(self) -> np.ndarray:
        """The most recently committed command vector."""
        return np.concatenate([self.joints.q, self.gripper.q]) if self.has_gripper else self.joints.q.copy()

    def filter(self, command: Command, state: object = None) -> Command:
        """Return a command within every limit; ``state`` is unused (the filter tracks its own output)."""
        reason = "bad_mode" if command.mode != self.mode else hold_reason(command.values, self.size)
        if reason is not None:
            self.log.record(reason, f"replaced {command.mode!r} command {short_repr(command.values)} by a hold")
            values = self.last_output
        else:
            values = np.asarray(command.values, dtype=np.float64)
        dof = self.spec.dof
        q = self.joints.limit(values[:dof], self.log)
        if self.config.workspace is not None:
            q = self._limit_workspace(q)
        self.joints.commit(q)
        if not self.has_gripper:
            return Command(self.mode, q.copy())
        g = self.gripper.limit(values[dof:], self.log, prefix="gripper_")
        self.gripper.commit(g)
        return Command(self.mode, np.concatenate([q, g]))

    # -- workspace --------------------------------------------------------------------------------------
    def _signed_distance(self, q: np.ndarray) -> float:
        """One FK evaluation (counted against the tick's budget): the TCP's signed distance (m) to the box
        shrunk by WORKSPACE_MARGIN (> 0: that far outside, < 0: that far inside every face)."""
        self._fk_left -= 1
        self.fk_calls += 1
        cfg = self.config
        assert cfg.workspace is not None and cfg.tcp_position is not None
        return signed_box_distance(np.asarray(cfg.tcp_position(q)), cfg.workspace, WORKSPACE_MARGIN)

    def _workspace_check(self, q: np.ndarray, allowed: float) -> _WorkspaceCheck:
        """Whether committing ``q`` provably keeps the TCP no further than ``allowed`` (m) outside the box shrunk
        by WORKSPACE_MARGIN, now *and on every tick of the braking that may follow*, within the FK budget.

        Checking only ``q`` and the braking rest point is not enough: the TCP moves on a curve while the joints
        brake, and the curve can bulge out of the box between its ends (e.g. over the top of an arc). Points are
        evaluated adaptively (``q``, the rest point, then the middle of the longest unproven run); with a
        Lipschitz bound every evaluated point (and every certificate kept from earlier evaluations) proves all
        path points within a weighted joint distance of ``allowed - signed distance`` (the TCP moves at most
        that far). When the budget runs out first the step counts as not proven (``exhausted``).
        """
        path = np.vstack([q[None, :], braking_path(q, q - self.joints.q, self.joints.max_dv)])
        covered = np.zeros(len(path), dtype=bool)
        weights = self._weights
        if weights is not None and self._cert_n:
            qc, sc = self._cert_q[: self._cert_n], self._cert_s[: self._cert_n]
            useful = sc < allowed
            if useful.any():
                dist = np.abs(path[:, None, :] - qc[None, useful, :]) @ weights
                covered |= np.any(dist <= allowed - sc[useful], axis=1)
        if self._workspace_violation > 0:
            covered[0] = False  # evaluate q itself, so that the level can come down when moving back inside
        order = [0, len(path) - 1]
        worst, ahead, at_q = -math.inf, 0, None
        while True:
            todo = [i for i in order if not covered[i]]
            if not todo:
                runs = _uncovered_runs(covered)
                if not runs:
                    return _WorkspaceCheck(True, False, path, at_q, worst, ahead)
                start, stop = max(runs, key=lambda r: r[1] - r[0])
                todo = [(start + stop - 1) // 2]
            i = todo[0]
            if self._fk_left <= 0:
                return _WorkspaceCheck(False, True, path, at_q, worst, ahead)
            s = self._signed_distance(path[i])
            covered[i] = True
            if i == 0:
                at_q = s
            if s > worst:
                worst, ahead = s, i
            if s > allowed:
                return _WorkspaceCheck(False, False, path, at_q, worst, ahead)
            if weights is not None:
                covered |= np.abs(path - path[i]) @ weights <= allowed - s
                slot = self._cert_next % _CERTIFICATES
                self._cert_q[slot], self._cert_s[slot] = path[i], s
                self._cert_next += 1
                self._cert_n = min(self._cert_n + 1, _CERTIFICATES)

    def _commit_checked(self, check: _WorkspaceCheck, allowed: float) -> np.ndarray:
        """Make ``check``'s candidate the committed one: its braking path is the proven tail from now on."""
        self._tail = check.path[1:]
        self._workspace_violation = max(check.at_q, 0.0) if check.at_q is not None else allowed
        return check.path[0]

    def _limit_workspace(self, q: np.ndarray) -> np.ndarray:
        """``q`` if it and its whole braking path provably stay in the box, else the largest proven fraction of
        the way from the maximal-braking step towards it, else braking.

        Braking needs no FK call: the committed command's braking path was proven, and braking from it follows
        the rest of that same path (up to rounding, far below WORKSPACE_MARGIN), so the box holds by induction
        from the rest state of :meth:`reset`. Where the braking command is not that path's next point (never
        expected; the joint limiter would have had to cut braking short) it is checked like any candidate.
        """
        self._fk_left = self.config.workspace_fk_budget
        allowed = self._workspace_violation  # no further out than now (0 while the TCP is inside)
        asked = self._workspace_check(q, allowed)
        if asked.ok:
            return self._commit_checked(asked, allowed)
        # Joint limits win over the box: an arm measured past a joint limit heads back inside it even while its
        # TCP is outside the box (the driver refuses a position past a joint limit; the box is ours).
        braking = self.joints.brake()
        tail = self._tail
        expected = self.joints.q if tail is None or len(tail) == 0 else tail[0]
        inductive = tail is not None and float(np.max(np.abs(braking - expected), initial=0.0)) <= _BRAKING_TOL
        brake: _WorkspaceCheck | None = None
        if not inductive:
            brake = self._workspace_check(braking, allowed)
        best: _WorkspaceCheck | None = None
        fraction, low, high = 0.0, 0.0, 1.0
        for _ in range(self.config.workspace_bisection_steps):
            if self._fk_left <= 0:
                break
            mid = 0.5 * (low + high)
            check = self._workspace_check(braking + mid * (q - braking), allowed)
            if check.ok:
                low, best, fraction = mid, check, mid
            else:
                high = mid
        box = self.config.workspace
        assert box is not None
        where = "at the commanded step" if asked.ticks_ahead == 0 else f"{asked.ticks_ahead} ticks into braking"
        reason = "workspace"  # a violation found, or none found but the budget ran out before the proof
        if asked.exhausted:
            why = (
                f"could not prove the TCP stays in the workspace box {list(box.lower)}..{list(box.upper)} "
                f"({box.frame} frame) over the step's braking path within {self.config.workspace_fk_budget} "
                "FK evaluations"
            )
        else:
            why = (
                f"TCP would leave the workspace box {list(box.lower)}..{list(box.upper)} ({box.frame} frame) "
                f"by {_mm(asked.worst - allowed)} {where}"
            )
        if best is not None:
            self.log.record(reason, f"{why}; step shortened to {fraction:.3g} of the way from braking to the request")
            return self._commit_checked(best, allowed)
        if inductive:
            self.log.record(reason, f"{why}; braking along the proven path")
            self._tail = tail[1:] if tail is not None and len(tail) else tail
            return braking
        assert brake is not None
        if brake.ok:
            self.log.record(reason, f"{why}; braking")
            return self._commit_checked(brake, allowed)
        self.log.record(
            "workspace_unrecoverable",
            f"TCP leaves (or is not proven to stay in) the workspace box {list(box.lower)}..{list(box.upper)} "
            f"({box.frame} frame) even when braking as hard as allowed (worst point found {_mm(brake.worst - allowed)} "
            f"beyond the allowed, {brake.ticks_ahead} ticks ahead); braking anyway",
        )
        self._tail = None
        if brake.at_q is not None:
            self._workspace_violation = max(brake.at_q, allowed, 0.0)
        return braking


#: FK certificates (joint position, signed distance) kept across ticks: each proves a joint-space ball.
_CERTIFICATES = 32
#: rad: a braking command this close to the proven path's next point is that point up to rounding (cumulative
#: sums over long paths differ by ~1e-13 rad; 1e-9 rad moves a TCP by far less than WORKSPACE_MARGIN).
_BRAKING_TOL = 1e-9


@dataclass(frozen=True)
class _WorkspaceCheck:
    """Outcome of :meth:`ArmSafetyFilter._workspace_check` (distances in m, signed: > 0 outside)."""

    ok: bool  #: the candidate and its whole braking path are proven within the allowed distance
    exhausted: bool  #: not proven because the FK budget ran out (no violation found)
    path: np.ndarray  #: (k + 1, n) the candidate, then its braking path
    at_q: float | None  #: signed distance at the candidate itself, if it was evaluated
    worst: float  #: largest signed distance evaluated (-inf if none)
    ticks_ahead: int  #: where ``worst`` is: 0 = the candidate itself, k = k ticks into braking


def _uncovered_runs(covered: np.ndarray) -> list[tuple[int, int]]:
    """Maximal ``[start, stop)`` index ranges of ``False`` in ``covered``."""
    edges = np.flatnonzero(np.diff(np.concatenate([[1], covered.astype(np.int8), [1]])))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def signed_box_distance(p: np.ndarray, box: WorkspaceBox, margin: float = 0.0) -> float:
    """Signed distance (m) of ``p`` to ``box`` shrunk by ``margin``: Euclidean distance outside (> 0), minus the
    distance to the nearest face inside (<= 0). It is 1-Lipschitz, so the TCP provably stays in the box while
    it moves less than ``-distance``."""
    lower = np.asarray(box.lower) + margin
    upper = np.asarray(box.upper) - margin
    outside = box_violation(p, box, margin)
    if outside > 0:
        return outside
    return -float(min(np.min(p - lower), np.min(upper - p)))


def _mm(metres: float) -> str:
    """A distance in m as mm with 3 significant digits (never rounds a real violation to 0)."""
    return f"{metres * 1000.0:.3g} mm"
