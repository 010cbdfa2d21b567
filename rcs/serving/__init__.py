"""Policy serving: wire protocol, policy server, robot-side client and bridge (see ``docs/protocol.md``).

Submodules are light (numpy, pyzmq, msgpack); import them directly::

    from rcs.serving.server import PolicyServer
    from rcs.serving.client import PolicyClient, RobotBridge
"""

from rcs.serving.protocol import MsgType, ProtocolError, Schema, TensorSpec

__all__ = ["MsgType", "ProtocolError", "Schema", "TensorSpec"]
