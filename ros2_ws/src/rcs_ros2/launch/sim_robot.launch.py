"""Simulated robot + robot bridge: ``ros2 launch rcs_ros2 sim_robot.launch.py [robot:=sim_crazyflie]``.

Starts ``rcs robot`` (from the main venv: pass ``rcs:=/path/to/.venv/bin/rcs`` unless it is on PATH) with the
robot server config ``config/robots/<robot>.yaml`` and the ``robot_bridge`` node with
``config/robot_bridge_<model>.yaml``. Needs launch and launch_ros (a ROS 2 install; they are not on PyPI).
"""

from launch.actions import DeclareLaunchArgument, ExecuteProcess
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("rcs_ros2")
    robot = LaunchConfiguration("robot")
    return LaunchDescription(
        [
            DeclareLaunchArgument("rcs", default_value="rcs", description="the rcs command of the main venv"),
            DeclareLaunchArgument("robot", default_value="sim_panda", description="config/robots/<robot>.yaml"),
            DeclareLaunchArgument(
                "bridge_params",
                default_value="robot_bridge_panda.yaml",
                description="config/<file> with the robot_bridge parameters",
            ),
            ExecuteProcess(
                cmd=[
                    LaunchConfiguration("rcs"),
                    "robot",
                    "--config",
                    PathJoinSubstitution([share, "config", "robots", [robot, ".yaml"]]),
                ],
                name="rcs_robot",
                output="screen",
                sigterm_timeout="10",
            ),
            Node(
                package="rcs_ros2",
                executable="robot_bridge",
                name="rcs_robot_bridge",
                output="screen",
                parameters=[PathJoinSubstitution([share, "config", LaunchConfiguration("bridge_params")])],
            ),
        ]
    )
