"""Policy serving: wire protocol, policy server, robot-side client and chunk feed (see ``docs/protocol.md``).

Submodules are light (numpy, pyzmq, msgpack); import them directly::

    from rcs.serving.server import PolicyServer
    from rcs.serving.client import PolicyClient
    from rcs.serving.chunk_feed import ChunkFeed
"""

from rcs.serving.protocol import MsgType, ProtocolError, Schema, TensorSpec

__all__ = ["MsgType", "ProtocolError", "Schema", "TensorSpec"]
