"""How safety interventions are counted, logged and worded.

Every filter (and the chunk executor's limit checks) records each intervention with its reason in an
:class:`InterventionLog`; messages show the values that decided them with :func:`format_distinct`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

#: Changes smaller than this (rounding noise, e.g. 1.0000000000000002) are applied but not reported.
REPORT_TOL = 1e-9


@dataclass
class InterventionLog:
    """Counts interventions per reason, over the whole run and per episode, and logs them sparingly.

    The first intervention of each reason *in an episode* is logged at WARNING (with its values), later ones
    at DEBUG only (a 500 Hz loop would otherwise write a line per tick); :meth:`end_episode` then logs one
    line with the episode's counts. Call :meth:`end_episode` at every episode boundary (or
    :meth:`start_episode` before one) so each episode's first intervention of a kind is visible again.

    Attributes:
        name: label used in log messages (e.g. ``"arm safety"``).
        counts: number of ticks on which each reason intervened, since construction.
        episode_counts: the same since the current episode started.
        episodes: episodes ended so far.
        last: message of the most recent intervention.
    """

    name: str
    counts: dict[str, int] = field(default_factory=dict)
    episode_counts: dict[str, int] = field(default_factory=dict)
    episodes: int = 0
    last: str = ""

    def record(self, reason: str, detail: str) -> None:
        """Count one intervention of ``reason`` and log ``detail``."""
        self.counts[reason] = self.counts.get(reason, 0) + 1
        n = self.episode_counts.get(reason, 0) + 1
        self.episode_counts[reason] = n
        self.last = f"{reason}: {detail}"
        if n == 1:
            log.warning("%s intervened (%s): %s", self.name, reason, detail)
        elif log.isEnabledFor(logging.DEBUG):
            log.debug("%s intervened (%s, #%d this episode): %s", self.name, reason, n, detail)

    @property
    def total(self) -> int:
        """All interventions of every reason."""
        return sum(self.counts.values())

    def summary(self) -> dict[str, int]:
        """A copy of the per-reason counts since construction."""
        return dict(self.counts)

    def episode_summary(self) -> dict[str, int]:
        """A copy of the per-reason counts of the current episode."""
        return dict(self.episode_counts)

    def end_episode(self, label: str = "") -> dict[str, int]:
        """Log the episode's counts in one line (INFO; WARNING if it had interventions), then start a new one.

        Args:
            label: how the episode is named in the line (e.g. ``"seed 3"``); default: its ordinal.

        Returns:
            The ended episode's per-reason counts.
        """
        counts = self.episode_summary()
        self.episodes += 1
        name = label or f"#{self.episodes}"
        if counts:
            parts = ", ".join(f"{reason} {n}" for reason, n in sorted(counts.items()))
            log.warning("%s: episode %s: %d interventions (%s)", self.name, name, sum(counts.values()), parts)
        else:
            log.info("%s: episode %s: no interventions", self.name, name)
        self.episode_counts = {}
        return counts

    def start_episode(self) -> None:
        """Start counting a new episode; an episode that was not ended is ended (and logged) first."""
        if self.episode_counts:
            self.end_episode()
        else:
            self.episode_counts = {}


def format_distinct(*values: float) -> list[str]:
    """``values`` with the fewest significant digits (at least 6) that keep unequal values apart.

    ``1.00037`` against a bound of ``1`` prints as ``1.00037``, not ``1``: a message must show the violation.
    """
    floats = [float(v) for v in values]
    for digits in range(6, 18):
        out = [f"{v:.{digits}g}" for v in floats]
        if all((out[i] == out[j]) == (floats[i] == floats[j]) for i in range(len(out)) for j in range(i)):
            return out
    return [repr(v) for v in floats]
