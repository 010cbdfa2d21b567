"""Teleop recording: ``ros2 launch rcs_ros2 teleop_recording.launch.py teleop:=keyboard root:=data/demos``.

Runs ``rcs record`` (a teleop device or the scripted expert drives the simulated robot; every saved episode is
committed atomically into a LeRobotDataset). ``rcs record`` drives its own simulated robot through the env, so
this launch file starts no robot server and no bridge; it exists so that recording sits in the same launch
tree as the rest of a ROS deployment. Needs launch (not on PyPI).
"""

from launch.actions import DeclareLaunchArgument, ExecuteProcess
from launch.substitutions import LaunchConfiguration

from launch import LaunchDescription


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [
            DeclareLaunchArgument("rcs", default_value="rcs", description="the rcs command of the main venv"),
            DeclareLaunchArgument("robot", default_value="sim/panda"),
            DeclareLaunchArgument("teleop", default_value="expert", description="registered teleop device (rcs list)"),
            DeclareLaunchArgument("episodes", default_value="2"),
            DeclareLaunchArgument("root", default_value="outputs/teleop_recording", description="dataset folder"),
            ExecuteProcess(
                cmd=[
                    LaunchConfiguration("rcs"),
                    "record",
                    "--robot",
                    LaunchConfiguration("robot"),
                    "--teleop",
                    LaunchConfiguration("teleop"),
                    "--episodes",
                    LaunchConfiguration("episodes"),
                    "--root",
                    LaunchConfiguration("root"),
                ],
                name="rcs_record",
                output="screen",
                sigterm_timeout="30",
            ),
        ]
    )
