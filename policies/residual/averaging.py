"""A Polyak average of the actor's weights: the residual a run deploys when ``average_tau > 0``.

After each actor step the average moves towards the online actor, ``theta_avg <- theta_avg + tau (theta -
theta_avg)``: an exponential moving average over about ``1 / tau`` actor steps. An off-policy actor's weights keep
moving with its critics (a run's evaluations swing by tens of points from one to the next); the average follows
the trend and drops the swing, as iterate averaging does for stochastic gradients (Polyak & Juditsky, 1992) and
weight averaging for RL policies (Nikishin et al., 2018, "Improving stability in deep RL with weight averaging").

It only decides which weights are evaluated and saved: exploration and the learning itself use the online actor.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from .actor import ResidualActor


class ActorAverage:
    """An exponential moving average of a :class:`ResidualActor`'s weights.

    Args:
        actor: the online actor; the average starts as its copy (a zero residual at initialisation).
        tau: the average's step towards the online weights per :meth:`update`, in (0, 1].
    """

    def __init__(self, actor: ResidualActor, tau: float) -> None:
        if not 0.0 < tau <= 1.0:
            raise ValueError(f"average_tau={tau!r}: need 0 < average_tau <= 1")
        self.tau = float(tau)
        self.actor = copy.deepcopy(actor).requires_grad_(False)

    def update(self, online: ResidualActor) -> None:
        """Move every weight (and LayerNorm parameter) a fraction ``tau`` of the way to ``online``'s."""
        with torch.no_grad():
            for p, avg in zip(online.parameters(), self.actor.parameters(), strict=True):
                avg.lerp_(p, self.tau)

    def state_dict(self) -> dict[str, Any]:
        return self.actor.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.actor.load_state_dict(state)


def load_average(average: ActorAverage | None, state: dict[str, Any]) -> None:
    """Restore ``average`` from a learner's saved ``state`` (``state["actor_average"]``, present when it was saved
    with an average).

    Raises:
        ValueError: the state has an average and the learner none, or the other way round (a run resumes with or
            without an average, as it started; another ``average_tau`` > 0 only changes its speed from then on).
    """
    saved = "actor_average" in state
    if saved != (average is not None):
        wanted = "average_tau > 0" if saved else "average_tau 0"
        raise ValueError(
            f"the training state was saved {'with' if saved else 'without'} an actor average: resume with {wanted}"
        )
    if average is not None:
        average.load_state_dict(state["actor_average"])
