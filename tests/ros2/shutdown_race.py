"""Run in the ROS venv: rcs_ros2.common.run exits 0 when rclpy's signal handler shuts the context down while the
executor builds its wait set (emulated: the race's exact exception after the context is shut down)."""

import sys

import rclpy
from rclpy._rclpy_pybind11 import RCLError
from rclpy.node import Node
from rcs_ros2 import common


def racing_spin(node):
    rclpy.shutdown()  # what the SIGTERM handler does, from another thread, at the wrong moment
    raise RCLError(
        "failed to initialize wait set: the given context is not valid, either rcl_init() was not "
        "called or rcl_shutdown() was called., at ./src/rcl/wait.c:130"
    )


def failing_spin(node):
    raise RCLError("failed to initialize wait set: the given context is not valid")  # context still ok: a bug


common.rclpy.spin = racing_spin
code = common.run(lambda: Node("race_check"))
common.rclpy.spin = failing_spin
try:
    common.run(lambda: Node("race_check_2"))
    raised = False
except RCLError:
    raised = True
print({"race_exit_code": code, "real_error_raised": raised})
sys.exit(0 if code == 0 and raised else 1)
