"""Free loopback ports and ZMQ endpoints for processes started on this machine (servers, views, test robots)."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the kernel's pick; another process may take it before
    the caller binds it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_endpoint() -> str:
    """A ``tcp://127.0.0.1:PORT`` endpoint on a port from :func:`free_port`."""
    return f"tcp://127.0.0.1:{free_port()}"
