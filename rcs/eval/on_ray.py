"""``rcs eval --workers N``: the same evaluation spread over N Ray workers (a local Ray cluster, or an existing one
at ``--ray-address``).

Each worker is a Ray actor holding one :class:`rcs.eval.evaluation.EvalWorker`: its own env, its own ``rcs serve``
child (or the shared ``--endpoint``) and the same real-time episode runner as the single-process path, so an
episode is run exactly as ``rcs eval`` runs it. The driver hands out one seed at a time to whichever worker is
free, writes the videos and the summary (:func:`rcs.eval.evaluation.summary_of`, outcomes in seed order): the same
fields, per-episode detail and files as the single-process path, plus ``workers``, ``reruns`` and
``missing_seeds``.

A worker that dies mid-episode (its process killed, its node lost, its server gone) costs that episode, never the
success rate's honesty: the seed is rerun on a worker that is alive (Ray restarts a dead worker once), at most
``reruns`` times; a seed that still has no outcome is reported in ``missing_seeds`` and counted nowhere else.

Ray is imported only here, when asked for (``pip install rcs-stack[ray]``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rcs.errors import ConfigError, RcsError
from rcs.eval.evaluation import (
    EvalConfig,
    EvalWorker,
    check_config,
    episode_line,
    summary_of,
    write_video,
)
from rcs.eval.server_process import SERVER_START_TIMEOUT_S

log = logging.getLogger(__name__)

#: s for all workers to build their env and answer (their servers load the checkpoint), or to come back
#: after a restart
WORKER_START_TIMEOUT_S = SERVER_START_TIMEOUT_S + 60.0

#: object store of a local cluster (bytes): episode outcomes and video frames pass through it
LOCAL_OBJECT_STORE_BYTES = 512 * 1024 * 1024


class EvalActor:
    """The body of one Ray worker: an :class:`EvalWorker` built in the worker's process.

    A setting the worker cannot run with is kept as a message for :meth:`ready` rather than raised, so the
    driver reports it in one line instead of Ray's actor-creation traceback.
    """

    def __init__(self, config: EvalConfig, niceness: int = 0) -> None:
        self._error = ""
        self._worker: EvalWorker | None = None
        run_at_niceness(niceness)
        try:
            self._worker = EvalWorker(config)
        except RcsError as e:
            self._error = str(e)

    def ready(self) -> dict[str, Any]:
        """``{"error": ...}``, or the worker's process id, served checkpoint, description and video rate."""
        if self._worker is None:
            return {"error": self._error}
        return {
            "pid": os.getpid(),
            "checkpoint": self._worker.checkpoint,
            "description": self._worker.description,
            "video_fps": self._worker.video_fps,
        }

    def run(self, seed: int, video: bool) -> Any:
        """One episode (:class:`rcs.eval.episodes.EpisodeOutcome`)."""
        if self._worker is None:
            raise ConfigError(self._error)
        return self._worker.run(seed, video)


def run_at_niceness(niceness: int) -> None:
    """Run this process (and the policy server it starts) at ``niceness``, the driver's.

    Ray starts its workers at niceness 15 (its ``worker_niceness``) so that its own daemons win; a real-time
    episode in such a worker starves whenever anything else runs on the machine. Lowering niceness needs root or
    ``CAP_SYS_NICE``; without them the worker stays where it is, with a warning.
    """
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if current <= niceness:
        return
    try:
        os.setpriority(os.PRIO_PROCESS, 0, niceness)
    except PermissionError:
        log.warning(
            "Ray worker at niceness %d, not %d (no CAP_SYS_NICE): its real-time episodes starve on a busy machine",
            current,
            niceness,
        )


@dataclass
class _Slot:
    """One worker as the driver sees it."""

    index: int
    actor: Any
    pid: int = 0
    alive: bool = True
    restarting: Any = None  # the ready() call of a worker that is coming back after a death
    back_by: float = 0.0  # time.monotonic() by which it must be back
    deaths: int = 0


@dataclass
class _Ledger:
    """Which seeds ran, are waiting, were rerun or are missing."""

    pending: deque[int]
    attempts: dict[int, int] = field(default_factory=dict)
    outcomes: list[Any] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)


def evaluate_on_ray(
    config: EvalConfig,
    say: Callable[[str], None] | None = None,
    workers: int = 2,
    address: str | None = None,
    reruns: int = 1,
) -> dict[str, Any]:
    """Run the evaluation ``config`` describes on ``workers`` Ray workers; returns the summary (the fields of
    :func:`rcs.eval.evaluation.evaluate` plus ``workers``, ``reruns``, ``missing_seeds``) and writes
    ``summary.json``.

    Args:
        config: the evaluation (``config.view`` is refused: a live view shows one robot).
        say: one progress line per episode and per worker event.
        workers: Ray workers (>= 1), one CPU each.
        address: an existing cluster (``"host:port"`` of its head, or ``"auto"``); ``None`` starts a local one
            with ``workers`` CPUs that ends with the evaluation.
        reruns: times a seed is rerun after the worker running it died.

    Raises:
        ConfigError: a bad setting (one line, from the first worker that met it), Ray missing, no cluster at
            ``address``, or workers that never started.
    """
    say = say or (lambda text: None)
    check_config(config)
    if workers < 1:
        raise ConfigError(f"--workers={workers} must be >= 1")
    if config.view is not None:
        raise ConfigError("--view shows one robot: it does not go with --workers")
    config = dataclasses.replace(config, policy=Path(config.policy).absolute(), out=Path(config.out).absolute())
    ray = connect_ray(address, workers)
    t0 = time.monotonic()
    slots: list[_Slot] = []
    try:
        remote = ray.remote(EvalActor).options(num_cpus=1, max_restarts=1, max_task_retries=0)
        niceness = os.getpriority(os.PRIO_PROCESS, 0)
        slots = [
            _Slot(k, remote.remote(dataclasses.replace(config, out=config.out / f"worker_{k}"), niceness))
            for k in range(workers)
        ]
        say(f"rcs eval: {config.policy} on {config.env}, {config.episodes} episodes on {workers} Ray workers")
        infos = await_ready(ray, [slot.actor for slot in slots])
        description, fps = infos[0]["description"], float(infos[0]["video_fps"])
        for slot, info in zip(slots, infos, strict=True):
            slot.pid = int(info["pid"])
            say(f"  worker {slot.index} ready: pid {slot.pid}, serving {info['checkpoint']}")
        ledger = _Ledger(deque(range(config.episodes)))
        _run_seeds(ray, config, slots, ledger, reruns, fps, say)
    finally:
        for slot in slots:
            ray.kill(slot.actor, no_restart=True)
        ray.shutdown()
    reran = {str(config.seed + i): n - 1 for i, n in sorted(ledger.attempts.items()) if n > 1}
    missing = sorted(config.seed + i for i in ledger.missing)
    if missing:
        say(f"  {len(missing)} episodes missing (seeds {missing}): their workers died {reruns + 1} times")
    return summary_of(
        config,
        ledger.outcomes,
        time.monotonic() - t0,
        description,
        workers=workers,
        reruns=reran,
        missing_seeds=missing,
    )


def connect_ray(address: str | None, workers: int) -> Any:
    """``ray``, initialised: on the cluster at ``address`` or a new local one with ``workers`` CPUs."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--workers needs Ray: pip install 'rcs-stack[ray]'") from None
    options: dict[str, Any] = {"log_to_driver": False, "logging_level": "warning"}
    try:
        if address is None:
            # a local cluster lives as long as this evaluation: no token written under ~/.ray for it
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
            ray.init(
                num_cpus=workers,
                include_dashboard=False,
                object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                **options,
            )
        else:
            _check_reachable(address)
            ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = f"at --ray-address={address}" if address else "on this machine"
        raise ConfigError(f"no Ray cluster {where}: {str(e).splitlines()[0]}") from None
    return ray


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Raise ConnectionError unless a TCP connection to ``host:port`` opens: Ray itself retries an absent head for
    minutes before it gives up."""
    if address == "auto":
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"expected host:port, got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise ConnectionError(f"{host}:{port} does not accept connections ({e.strerror or e})") from None


def await_ready(ray: Any, actors: list[Any]) -> list[dict[str, Any]]:
    """Each worker's ``ready()`` (a dict, with ``error`` for a setting it cannot run); the first error as one line."""
    refs = [actor.ready.remote() for actor in actors]
    done, waiting = ray.wait(refs, num_returns=len(refs), timeout=WORKER_START_TIMEOUT_S)
    if waiting:
        raise ConfigError(
            f"{len(waiting)} of {len(actors)} Ray workers did not start within {WORKER_START_TIMEOUT_S:.0f} s "
            f"(each needs 1 free CPU of the cluster: see 'ray status')"
        )
    infos = []
    for ref in refs:
        try:
            info = ray.get(ref)
        except ray.exceptions.RayActorError as e:
            raise ConfigError(f"a Ray worker died while starting: {str(e).splitlines()[0]}") from None
        if "error" in info:
            raise ConfigError(info["error"])
        infos.append(info)
    return infos


def _run_seeds(
    ray: Any,
    config: EvalConfig,
    slots: list[_Slot],
    ledger: _Ledger,
    reruns: int,
    fps: float,
    say: Callable[[str], None],
) -> None:
    """Hand out episodes one at a time to free workers until each has an outcome or is missing."""
    running: dict[Any, tuple[_Slot, int]] = {}  # episode call -> (worker, episode index)
    while ledger.pending or running:
        busy = {slot.index for slot, _ in running.values()}
        for slot in slots:
            if ledger.pending and slot.alive and slot.restarting is None and slot.index not in busy:
                i = ledger.pending.popleft()
                ledger.attempts[i] = ledger.attempts.get(i, 0) + 1
                running[slot.actor.run.remote(config.seed + i, i < config.videos)] = (slot, i)
        coming_back = {slot.restarting: slot for slot in slots if slot.restarting is not None}
        if not running and not coming_back:
            ledger.missing.extend(ledger.pending)  # no worker is left to run them
            ledger.pending.clear()
            break
        done, _ = ray.wait([*running, *coming_back], num_returns=1, timeout=WORKER_START_TIMEOUT_S)
        if not done:
            raise ConfigError(f"no Ray worker answered within {WORKER_START_TIMEOUT_S:.0f} s")
        ref = done[0]
        if ref in coming_back:
            _back(ray, coming_back[ref], say)
            continue
        slot, i = running.pop(ref)
        try:
            outcome = ray.get(ref)
        except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError) as e:
            why = str(e).strip().splitlines()[-1][:200]
            again = ledger.attempts[i] <= reruns
            say(
                f"  worker {slot.index} (pid {slot.pid}) failed on seed {config.seed + i} ({why}): "
                + ("rerunning it" if again else "reported missing")
            )
            (ledger.pending.appendleft if again else ledger.missing.append)(i)
            _restart(ray, slot, isinstance(e, ray.exceptions.RayTaskError))
            continue
        ledger.outcomes.append(outcome)
        video = write_video(config.out, outcome, fps)
        say(episode_line(i, config.episodes, outcome, video, where=f"worker {slot.index}"))


def _restart(ray: Any, slot: _Slot, alive: bool) -> None:
    """After a failed episode: a worker whose process lives on is killed (its episode runner or server is in an
    unknown state) so that Ray restarts it; then wait for its :meth:`EvalActor.ready` (Ray gives up on a worker
    after its one restart: it is then left out)."""
    slot.deaths += 1
    if slot.deaths > 1:
        slot.alive = False
        if alive:
            ray.kill(slot.actor, no_restart=True)
        return
    if alive:
        ray.kill(slot.actor, no_restart=False)
    slot.back_by = time.monotonic() + WORKER_START_TIMEOUT_S
    slot.restarting = slot.actor.ready.remote()


def _back(ray: Any, slot: _Slot, say: Callable[[str], None]) -> None:
    """A restarted worker answered, is still coming back (asked again), or is gone for good (left out)."""
    ref, slot.restarting = slot.restarting, None
    try:
        info = ray.get(ref)
    except ray.exceptions.ActorUnavailableError:  # Ray is still restarting it: ask again
        if time.monotonic() < slot.back_by:
            time.sleep(0.5)
            slot.restarting = slot.actor.ready.remote()
            return
        info = {"error": f"not back within {WORKER_START_TIMEOUT_S:.0f} s"}
    except ray.exceptions.RayActorError:
        info = {"error": "it did not come back"}
    if "error" in info:
        slot.alive = False
        say(f"  worker {slot.index} left out: {info['error']}")
        return
    slot.pid = int(info["pid"])
    say(f"  worker {slot.index} restarted: pid {slot.pid}")
