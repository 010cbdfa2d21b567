"""ament_python package rcs_ros2: console scripts robot_bridge and policy_node, launch files, parameter files."""

from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "rcs_ros2"
HERE = Path(__file__).resolve().parent
# The robot server configs live once, in the repository's launch/robots/; the launch files find them here.
# (paths relative to this file, as setuptools requires for data_files)
ROBOT_CONFIGS = sorted(glob("../../../launch/robots/*.yaml", root_dir=HERE))
POLICY_MANIFESTS = sorted(glob("../../../launch/policies/*.json", root_dir=HERE))

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", sorted(glob("launch/*.launch.py"))),
        (f"share/{PACKAGE}/config", sorted(glob("config/*.yaml"))),
        (f"share/{PACKAGE}/config/robots", ROBOT_CONFIGS),
        (f"share/{PACKAGE}/config/policies", POLICY_MANIFESTS),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="rcs maintainers",
    maintainer_email="maintainers@example.org",
    description="ROS 2 robot bridge and policy node of the rcs stack (ZeroMQ to the stack, light core only).",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            f"robot_bridge = {PACKAGE}.robot_bridge:main",
            f"policy_node = {PACKAGE}.policy_node:main",
            f"state_probe = {PACKAGE}.state_probe:main",
        ],
    },
)
