"""rcs: the light core of the robot learning stack.

Imports only light packages (numpy, gymnasium, pyzmq, msgpack). Backends (MuJoCo in ``sim``, drivers in
``hardware``) plug in through :mod:`rcs.registry`. Frames and units: see :mod:`rcs.geometry`.
"""

from rcs.devices import Arm, Camera, Device, IkResult, Quadrotor, Simulated
from rcs.errors import (
    ActionError,
    ConfigError,
    NotConnectedError,
    RcsError,
    UnknownNameError,
)
from rcs.geometry import Pose
from rcs.registry import cameras, make_camera, make_robot, make_teleop, robots, teleops
from rcs.spec import (
    ArmSpec,
    CameraSpec,
    DomainRandomization,
    GripperSpec,
    JointSpec,
    QuadrotorSpec,
    TableSceneSpec,
    WorkspaceBox,
)
from rcs.types import ArmState, CameraFrame, CameraIntrinsics, QuadrotorState
from rcs.validation import LimitPolicy

__version__ = "0.1.0"

__all__ = [
    "ActionError",
    "Arm",
    "ArmSpec",
    "ArmState",
    "Camera",
    "CameraFrame",
    "CameraIntrinsics",
    "CameraSpec",
    "ConfigError",
    "Device",
    "DomainRandomization",
    "GripperSpec",
    "IkResult",
    "JointSpec",
    "LimitPolicy",
    "NotConnectedError",
    "Pose",
    "Quadrotor",
    "QuadrotorSpec",
    "QuadrotorState",
    "RcsError",
    "Simulated",
    "TableSceneSpec",
    "UnknownNameError",
    "WorkspaceBox",
    "cameras",
    "make_camera",
    "make_robot",
    "make_teleop",
    "robots",
    "teleops",
]
