"""Fit simulator parameters to a joint log with CMA-ES, and estimate each one's uncertainty.

Objective: the root-mean-square joint error (rad) between the log and its replay (:mod:`sim.sysid.replay`) with the
candidate parameters, searched in [0, 1] per parameter (:meth:`sim.sysid.parameters.Parameter.to_unit`) by CMA-ES
(``cma``), starting at the nominal model.

Uncertainty: at the optimum ``theta``, with the residuals ``r`` (N of them) and their Jacobian ``J`` by central
differences, Gauss-Newton gives ``cov = s^2 (J^T J)^-1`` with ``s^2 = |r|^2 / (N - p)``; the reported ``std`` is
the square root of its diagonal. Residuals of neighbouring frames are correlated, so this understates the
uncertainty; it is a ranking of how well each parameter is pinned down, not a calibrated interval.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sim.sysid.joint_log import JointLog
from sim.sysid.parameters import ARM_PARAMETERS, NOT_IDENTIFIED, Parameter, robot_config_of
from sim.sysid.replay import divergence, replay, residuals

log = logging.getLogger(__name__)

#: finite-difference steps for the Jacobian: relative for scales, absolute (one 2 ms physics step) for the delay
JACOBIAN_STEP = {"actuator_gain": 0.02, "actuator_damping": 0.02, "actuation_delay_s": 0.002}


@dataclass
class FitResult:
    """What a fit found.

    Attributes:
        values: name -> fitted value. std: name -> standard error (see the module docstring).
        nominal: name -> the nominal model's value.
        divergence_before, divergence_after: RMS joint error (rad) of the replay with the nominal and the fitted
            parameters.
        evaluations: replays the search ran.
        history: best divergence (rad) after each CMA-ES iteration.
        not_identified: parameters the log cannot identify, with why.
    """

    values: dict[str, float]
    std: dict[str, float]
    nominal: dict[str, float]
    divergence_before: float
    divergence_after: float
    evaluations: int
    history: list[float] = field(default_factory=list)
    not_identified: dict[str, str] = field(default_factory=dict)

    def robot_config(self) -> dict[str, Any]:
        """The calibrated robot options."""
        return robot_config_of(self.values)


def fit(
    joint_log: JointLog,
    robot: str = "sim/panda",
    parameters: tuple[Parameter, ...] = ARM_PARAMETERS,
    iterations: int = 80,
    population: int = 8,
    seed: int = 0,
    progress: Callable[[int, float], None] | None = None,
) -> FitResult:
    """CMA-ES over ``parameters`` for ``iterations`` generations of ``population`` replays of ``joint_log`` on
    ``robot``; ``progress(iteration, best divergence)`` after each generation."""
    with warnings.catch_warnings():
        # cma 4.5 warns on import when matplotlib is missing (only its plotting needs it; we do not plot)
        warnings.filterwarnings("ignore", message="Could not import matplotlib", category=UserWarning)
        import cma

    def values_of(u: np.ndarray) -> dict[str, float]:
        return {p.name: p.from_unit(x) for p, x in zip(parameters, u, strict=True)}

    def objective(values: dict[str, float]) -> float:
        return divergence(joint_log, replay(joint_log, robot, robot_config_of(values)))

    nominal = {p.name: p.nominal for p in parameters}
    before = objective(nominal)
    es = cma.CMAEvolutionStrategy(
        [p.to_unit(p.nominal) for p in parameters],
        0.2,
        {"bounds": [0.0, 1.0], "popsize": population, "maxiter": iterations, "seed": seed + 1, "verbose": -9},
    )
    best_u, best = np.array([p.to_unit(p.nominal) for p in parameters]), before
    history: list[float] = []
    evaluations = 1
    while not es.stop():
        candidates = es.ask()
        scores = [objective(values_of(np.asarray(u))) for u in candidates]
        evaluations += len(candidates)
        es.tell(candidates, scores)
        i = int(np.argmin(scores))
        if scores[i] < best:
            best, best_u = scores[i], np.asarray(candidates[i])
        history.append(best)
        if progress is not None:
            progress(len(history), best)
    values = values_of(best_u)
    std = _standard_errors(joint_log, robot, parameters, values)
    return FitResult(
        values, std, nominal, before, best, evaluations + 2 * len(parameters), history, dict(NOT_IDENTIFIED)
    )


def _standard_errors(
    joint_log: JointLog, robot: str, parameters: tuple[Parameter, ...], values: dict[str, float]
) -> dict[str, float]:
    """Gauss-Newton standard errors at ``values`` (module docstring); ``inf`` where the log does not constrain it."""
    r0 = residuals(joint_log, replay(joint_log, robot, robot_config_of(values)))
    columns = []
    for p in parameters:
        step = JACOBIAN_STEP.get(p.name, 0.01) * (values[p.name] if p.log else 1.0)
        lo, hi = max(p.low, values[p.name] - step), min(p.high, values[p.name] + step)
        plus = residuals(joint_log, replay(joint_log, robot, robot_config_of({**values, p.name: hi})))
        minus = residuals(joint_log, replay(joint_log, robot, robot_config_of({**values, p.name: lo})))
        columns.append((plus - minus) / (hi - lo) if hi > lo else np.zeros_like(r0))
    jac = np.stack(columns, axis=1)
    dof = max(1, r0.size - len(parameters))
    s2 = float(r0 @ r0) / dof
    try:
        cov = s2 * np.linalg.inv(jac.T @ jac)
        diag = np.diag(cov)
    except np.linalg.LinAlgError:
        diag = np.full(len(parameters), np.inf)
    return {p.name: float(np.sqrt(d)) if d >= 0 else float("inf") for p, d in zip(parameters, diag, strict=True)}
