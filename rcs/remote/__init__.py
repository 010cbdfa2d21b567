"""The robot side over ZeroMQ: a robot server process and its client (see docs/ros2.md, "Robot channel").

- :mod:`rcs.remote.server`: :class:`~rcs.remote.server.RobotServer` owns a robot, runs the real-time control
  loop with the safety filter and watchdog, publishes state and accepts commands (``rcs robot``).
- :mod:`rcs.remote.client`: :class:`~rcs.remote.client.RobotClient`, light (numpy, pyzmq, msgpack), used by
  the ROS 2 bridge node.
- :mod:`rcs.remote.wire`: the message format (the policy protocol's codec with its own magic and types).
- :mod:`rcs.remote.commands`: trajectory/target checks and resampling to control ticks.

Import the submodules directly; this package imports nothing at import time.
"""
