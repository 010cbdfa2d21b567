"""openpi-style transport baseline: websocket + msgpack, built the way openpi serves its policies.

Run inside the openpi side venv (``scripts/setup_bench_baselines.sh``)::

    PYTHONPATH=/work/main .venv-bench/openpi/bin/python -m sim.bench.baselines.openpi_style --requests 10000

It prints one JSON object (``p50_ms``, ``p99_ms``, ``req_per_s``, ``requests``, ...) on stdout.

What is openpi's own code and what is ours:

- Client: openpi's own ``openpi_client.websocket_client_policy.WebsocketClientPolicy`` from the PyPI package
  ``openpi-client==0.1.2`` (sync ``websockets`` client, ``compression=None, max_size=None``, receives the
  metadata frame on connect, then ``infer`` = ``Packer().pack(obs)`` -> ``send`` -> ``recv`` -> ``unpackb``).
- Wire format: openpi's own ``openpi_client.msgpack_numpy`` (ndarray -> ``{__ndarray__, data, dtype, shape}``).
- Server: openpi's server (``src/openpi/serving/websocket_policy_server.py``, class ``WebsocketPolicyServer``)
  is not in the PyPI package (it lives in the full ``openpi`` repo with JAX deps), so :class:`WebsocketPolicyServer`
  below is our re-implementation of it, following its structure: ``websockets.asyncio.server.serve(handler,
  host, port, compression=None, max_size=None, process_request=<GET /healthz check>)``; per connection a
  ``msgpack_numpy.Packer``, send ``packer.pack(metadata)`` first, then loop ``obs = unpackb(await recv())`` ->
  ``action = policy.infer(obs)`` (synchronously, on the event loop thread, as openpi does) -> add
  ``server_timing = {infer_ms, prev_total_ms}`` -> ``await send(packer.pack(action))``; on an exception send the
  traceback as a text frame and close with ``INTERNAL_ERROR``.
- Policy: a null policy (an ``openpi_client.base_policy.BasePolicy``) returning a constant (50, 7) float32
  chunk under ``"actions"``, as openpi policies do.

The server runs in a child process of this one (same process tree, loopback, port chosen by the OS), so the
client's and server's Python interpreters do not share a GIL, as in a real deployment.
"""

from __future__ import annotations

import argparse
import asyncio
import http
import logging
import os
import subprocess
import sys
import time
import traceback
from typing import Any

import websockets
import websockets.asyncio.server as _server
import websockets.frames
from openpi_client import base_policy as _base_policy
from openpi_client import msgpack_numpy
from openpi_client import websocket_client_policy as _client

from sim.bench import transport_request as _common

logger = logging.getLogger(__name__)

_READY = "OPENPI_STYLE_SERVER_PORT"


class NullPolicy(_base_policy.BasePolicy):
    """Ignores the observation and returns a constant (50, 7) float32 chunk."""

    def __init__(self) -> None:
        self._chunk = _common.null_chunk()

    def infer(self, obs: dict) -> dict:
        return {"actions": self._chunk}


class WebsocketPolicyServer:
    """Re-implementation of openpi's ``WebsocketPolicyServer`` (see module docstring for the mapping)."""

    def __init__(
        self, policy: _base_policy.BasePolicy, host: str = "127.0.0.1", port: int = 0, metadata: dict | None = None
    ) -> None:
        self._policy = policy
        self._host = host
        self._port = port
        self._metadata = metadata or {}

    async def run(self, on_ready: Any = None) -> None:
        async with _server.serve(
            self._handler, self._host, self._port, compression=None, max_size=None, process_request=_health_check
        ) as server:
            if on_ready is not None:
                on_ready(server.sockets[0].getsockname()[1])
            await server.serve_forever()

    async def _handler(self, websocket: _server.ServerConnection) -> None:
        packer = msgpack_numpy.Packer()
        await websocket.send(packer.pack(self._metadata))
        prev_total_time = None
        while True:
            try:
                start_time = time.monotonic()
                obs = msgpack_numpy.unpackb(await websocket.recv())
                infer_time = time.monotonic()
                action = dict(self._policy.infer(obs))
                infer_time = time.monotonic() - infer_time
                action["server_timing"] = {"infer_ms": infer_time * 1000}
                if prev_total_time is not None:
                    action["server_timing"]["prev_total_ms"] = prev_total_time * 1000
                await websocket.send(packer.pack(action))
                prev_total_time = time.monotonic() - start_time
            except websockets.ConnectionClosed:
                break
            except Exception:
                await websocket.send(traceback.format_exc())
                await websocket.close(
                    code=websockets.frames.CloseCode.INTERNAL_ERROR,
                    reason="Internal server error. Traceback included in previous frame.",
                )
                raise


def _health_check(connection: _server.ServerConnection, request: _server.Request) -> _server.Response | None:
    if request.path == "/healthz":
        return connection.respond(http.HTTPStatus.OK, "OK\n")
    return None


def serve() -> None:
    """Child-process entry point: serve the null policy, report the port on stdout, run until killed."""

    def ready(port: int) -> None:
        sys.stdout.write(f"{_READY} {port}\n")
        sys.stdout.flush()

    server = WebsocketPolicyServer(NullPolicy(), metadata={"action_horizon": 50, "action_dim": 7})
    asyncio.run(server.run(on_ready=ready))


def _start_server(timeout_s: float = 30.0) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sim.bench.baselines.openpi_style", "--serve"],
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    deadline = time.monotonic() + timeout_s
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"openpi-style server exited early (rc={proc.poll()})")
        if line.startswith(_READY):
            return proc, int(line.split()[1])
    proc.kill()
    raise RuntimeError("openpi-style server did not report its port in time")


def run(requests: int, warmup: int) -> dict[str, Any]:
    proc, port = _start_server()
    try:
        client = _client.WebsocketClientPolicy(host="127.0.0.1", port=port)
        meta = client.get_server_metadata()
        obs = _common.make_request()

        def call() -> None:
            reply = client.infer(obs)
            _common.check_chunk(reply["actions"])

        result = _common.measure(call, requests, warmup)
        client._ws.close()  # openpi-client 0.1.2 has no public close()
        result.update(
            system="openpi_style",
            server_metadata=meta,
            client="openpi_client.websocket_client_policy.WebsocketClientPolicy (openpi-client 0.1.2)",
            server="re-implementation of openpi WebsocketPolicyServer (websockets "
            f"{websockets.__version__}, msgpack_numpy)",
        )
        return result
    finally:
        _common.stop_child(proc)


def main(argv: list[str] | None = None) -> None:
    p = _common.base_parser(__doc__.splitlines()[0])
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if args.serve:
        serve()
        return
    _common.emit(run(args.requests, _common.default_warmup(args)))


if __name__ == "__main__":
    main()
