"""The composed policy (base + residual) behind ``rcs serve``: loader kind ``residual`` (``rcs.policy_loaders``).

Serving a composed checkpoint (:mod:`policies.residual.checkpoint`) starts its base unchanged behind its own
``rcs serve`` process (or connects to ``base_endpoint`` from the manifest, a base already served elsewhere),
checks that the base's server reports the ``checkpoint_id`` the residual was trained on, and serves one action per
policy step::

    a_k = unnormalize(normalize(a_base[k]) + scale * actor(obs, a_base[k], [k]))

with ``a_base[k]`` the base's action for this step (:class:`policies.residual.base_follower.BaseFollower`) and
``[k]`` its index in the base's chunk, one-hot, for a residual trained with it (``phase_steps``). The
wire schema is the base's with chunks of :data:`~policies.residual.checkpoint.CHUNK_STEPS` (2) actions, of which
the robot executes the first and then asks again (``n_action_steps`` 1): the second, the base's next action with
the same correction, only bridges a reply that arrives a few milliseconds after the step's period ended (a
one-action chunk would leave the executor without an action for that gap, and the watchdog would hold). A base that is unreachable or late fails the request
(the robot's watchdog holds the arm); a non-finite residual fails it too: no chunk is sent.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rcs.errors import ConfigError
from rcs.eval.server_process import ServerProcess, wait_for_server
from rcs.loopback import free_endpoint
from rcs.serving.policy import LoadOptions, Observation, RequestContext
from rcs.serving.protocol import Schema, TensorSpec

from .base_follower import BaseFollower
from .checkpoint import CHUNK_STEPS, KIND, BaseRef, Composed
from .checkpoint import load as load_composed

log = logging.getLogger(__name__)

#: s: how long a starting base server may take to answer its first handshake (torch and the model load)
BASE_START_TIMEOUT_S = 180.0


def composed_schema(base: Schema) -> Schema:
    """The base's schema with chunks of :data:`CHUNK_STEPS` actions (the robot executes one per request)."""
    a = base.action
    action = TensorSpec(a.name, (CHUNK_STEPS, a.shape[-1]), a.dtype, a.unit, a.names)
    return Schema(base.observation, action, base.policy_dt)


class ResidualPolicy:
    """A :class:`rcs.serving.policy.SessionPolicy`: the base's per-step action plus the residual's correction.

    Args:
        composed: the loaded checkpoint.
        base_client: a :class:`rcs.serving.client.PolicyClient` of the base's server, handshake done
            (:func:`connect_base`).
        checkpoint_id: reported id.
        base_budget_s: the longest wait for a base chunk (s).
        base_server: the base's ``rcs serve`` process when this policy started it (stopped by :meth:`close`).
    """

    def __init__(
        self,
        composed: Composed,
        base_client: Any,
        checkpoint_id: str,
        base_budget_s: float,
        base_server: ServerProcess | None = None,
    ) -> None:
        import torch

        from .actor import ResidualActor

        welcome = base_client.welcome
        self.space = composed.space
        base_schema: Schema = welcome.schema
        if base_schema.action.shape[-1] != self.space.action_dim:
            raise ConfigError(
                f"base action has {base_schema.action.shape[-1]} entries, the residual {self.space.action_dim}"
            )
        self.schema = composed_schema(base_schema)
        self.checkpoint_id = checkpoint_id
        self.actor = ResidualActor(self.space.observation_dim, self.space.action_dim, composed.hidden)
        self.actor.load_state_dict(composed.state_dict)
        self.actor.eval()
        self._torch = torch
        self.follower = BaseFollower(base_client, composed.base.replan_steps, composed.base.policy_dt, base_budget_s)
        self._base_server = base_server
        self._tick = 0

    def infer(self, observations: Sequence[Observation]) -> list[np.ndarray]:
        """One robot's consecutive steps without request context (tools, tests): session 0, now as capture time."""
        contexts = []
        for _ in observations:
            self._tick += 1
            contexts.append(RequestContext(0, self._tick, time.monotonic()))
        return self.infer_sessions(observations, contexts)

    def infer_sessions(
        self, observations: Sequence[Observation], contexts: Sequence[RequestContext]
    ) -> list[np.ndarray]:
        """One (1, D) float32 action per observation (see the module docstring).

        Raises:
            BaseUnavailable: the base did not answer in time (the request fails, the robot holds).
            ValueError: a malformed input, or a non-finite residual (nothing is sent).
        """
        out = []
        for observation, context in zip(observations, contexts, strict=True):
            base = self.follower.actions(observation, context, CHUNK_STEPS)
            step = self.follower.chunk_step(context.session_id)
            x = self._torch.as_tensor(self.space.observe(observation, base[0], step)[None])
            with self._torch.no_grad():
                r = self.actor(x)[0].numpy()
            out.append(np.stack([self.space.compose(b, r) for b in base]).astype(np.float32))
        return out

    def close(self) -> None:
        """Close the base's client and stop the base server this policy started."""
        self.follower.client.close()
        if self._base_server is not None:
            self._base_server.stop()


def connect_base(
    base: BaseRef, endpoint: str | None, log_path: Path, realtime: bool = False
) -> tuple[Any, ServerProcess | None]:
    """A :class:`rcs.serving.client.PolicyClient` of the base, handshake done: at ``endpoint`` (a base served
    elsewhere) or, for ``None``, of a new ``rcs serve`` child (``--realtime`` with ``realtime``; returned too, to
    stop it).

    Raises:
        ConfigError: the base does not answer within :data:`BASE_START_TIMEOUT_S`, or reports another
            ``checkpoint_id`` than ``base`` names.
    """
    from rcs.serving.client import PolicyClient

    server = None
    if endpoint is None:
        endpoint = free_endpoint()
        server = ServerProcess(base.directory, endpoint, log_path, realtime=realtime)
    client = PolicyClient(endpoint, None, name="residual base")
    try:
        wait_for_server(endpoint, None, server, BASE_START_TIMEOUT_S)
        welcome = client.handshake(10.0)
        if welcome.checkpoint_id != base.checkpoint_id:
            raise ConfigError(
                f"the residual's base is {base.checkpoint_id!r}, the base server at {endpoint} reports "
                f"{welcome.checkpoint_id!r}: refusing another base"
            )
        return client, server
    except BaseException:
        client.close()
        if server is not None:
            server.stop()
        raise


def load(directory: Path, manifest: Mapping[str, Any], options: LoadOptions) -> ResidualPolicy:
    """Entry point ``rcs.policy_loaders`` ``residual``: the composed checkpoint in ``directory``, its base started
    behind ``rcs serve`` (``--realtime`` when ``options.realtime``: the base is on the same control path) or reached
    at the manifest's ``base_endpoint``."""
    composed = load_composed(directory)
    endpoint = manifest.get("base_endpoint")
    if endpoint is not None and not isinstance(endpoint, str):
        raise ConfigError(f"residual manifest in {directory}: base_endpoint={endpoint!r} must be a string")
    log_path = Path(tempfile.gettempdir()) / f"rcs-residual-base-{os.getpid()}.log"
    client, server = connect_base(composed.base, endpoint, log_path, options.realtime)
    try:
        budget = float(manifest.get("base_budget_s", composed.base.replan_steps * composed.base.policy_dt))
        return ResidualPolicy(composed, client, str(manifest.get("checkpoint_id", KIND)), budget, server)
    except BaseException:
        client.close()
        if server is not None:
            server.stop()
        raise
