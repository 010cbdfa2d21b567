"""Shared by the robot-server tests: free loopback endpoints."""

from __future__ import annotations

from rcs.loopback import free_endpoint


def free_endpoints() -> tuple[str, str]:
    """Two ``tcp://127.0.0.1:PORT`` endpoints on ports free at the time of the call (state, command)."""
    return free_endpoint(), free_endpoint()
