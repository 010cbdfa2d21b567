"""Shared by the robot-server tests: free loopback endpoints."""

from __future__ import annotations

import socket


def free_endpoints() -> tuple[str, str]:
    """Two ``tcp://127.0.0.1:PORT`` endpoints on ports free at the time of the call (state, command)."""
    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    return f"tcp://127.0.0.1:{ports[0]}", f"tcp://127.0.0.1:{ports[1]}"
