"""Policy deployment with the controller in ROS: ``ros2 launch rcs_ros2 policy_deployment.launch.py``.

``rcs serve`` (the policy, here the Panda hold policy manifest), ``rcs robot`` (the simulated Panda),
``robot_bridge`` (the robot in ROS) and ``policy_node`` (the policy's chunks as JointTrajectory on
``joint_trajectory``, which the bridge executes through the safety filter). Needs launch and launch_ros.
"""

from launch.actions import DeclareLaunchArgument, ExecuteProcess
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("rcs_ros2")
    rcs = LaunchConfiguration("rcs")
    return LaunchDescription(
        [
            DeclareLaunchArgument("rcs", default_value="rcs", description="the rcs command of the main venv"),
            DeclareLaunchArgument(
                "policy",
                default_value=PathJoinSubstitution([share, "config", "policies", "panda_hold.json"]),
                description="policy manifest or checkpoint for rcs serve",
            ),
            ExecuteProcess(
                cmd=[rcs, "serve", "--policy", LaunchConfiguration("policy"), "--bind", "tcp://127.0.0.1:5555"],
                name="rcs_serve",
                output="screen",
            ),
            ExecuteProcess(
                cmd=[rcs, "robot", "--config", PathJoinSubstitution([share, "config", "robots", "sim_panda.yaml"])],
                name="rcs_robot",
                output="screen",
                sigterm_timeout="10",
            ),
            Node(
                package="rcs_ros2",
                executable="robot_bridge",
                name="rcs_robot_bridge",
                output="screen",
                parameters=[PathJoinSubstitution([share, "config", "robot_bridge_panda.yaml"])],
            ),
            Node(
                package="rcs_ros2",
                executable="policy_node",
                name="rcs_policy_node",
                output="screen",
                parameters=[PathJoinSubstitution([share, "config", "policy_node_panda.yaml"])],
            ),
        ]
    )
