"""What a robot server can observe for a policy: each named entry of a policy's vector inputs, from the robot.

A policy's schema names every entry of its vector inputs (``observation.state``: ``joint1 .. gripper tcp_x ..``,
``observation.environment_state``: ``cube_x .. target_z``). :class:`RobotObservation` resolves each name once, when
the link is built, to where the robot measures it, and then fills the vectors from each state:

=============================  ==================================================================
entry name                     source
=============================  ==================================================================
a joint of the spec            ``ArmState.joint_positions`` (rad)
``gripper``                    ``ArmState.gripper`` (normalized width)
``tcp_x tcp_y tcp_z``          ``ArmState.tcp_position`` (m, arm base frame)
``tcp_qw .. tcp_qz``           ``ArmState.tcp_quaternion`` (w x y z)
``<object>_x|y|z``             ``robot.object_pose(<object>)`` position (m, world frame)
``<object>_qw|qx|qy|qz``       ``robot.object_pose(<object>)`` quaternion (w x y z)
=============================  ==================================================================

Object entries need a robot that tracks objects (an ``object_pose(name)`` method: a simulated scene, or a
motion-capture tracker beside a physical arm); a robot that cannot give an entry is refused when the link is built,
with the entries it can give, never fed a zero.

A quadrotor feeds a learned flight policy (:class:`VehicleObservation`): the inputs of
:mod:`rcs.flight.observation` (state, position-error integral, last motor command, hover target).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from rcs.errors import ConfigError
from rcs.flight.observation import TARGET_NAMES, FlightObservation, state_names
from rcs.flight.prediction import MAX_HORIZON_S, StatePredictor, ThrustEstimate
from rcs.types import ArmState, QuadrotorState

#: entry-name suffix -> (object pose part, index): position (m) or quaternion (w x y z)
_OBJECT_PARTS: dict[str, tuple[int, int]] = {
    "_x": (0, 0),
    "_y": (0, 1),
    "_z": (0, 2),
    "_qw": (1, 0),
    "_qx": (1, 1),
    "_qy": (1, 2),
    "_qz": (1, 3),
}
_TCP = {"tcp_x": ("tcp_position", 0), "tcp_y": ("tcp_position", 1), "tcp_z": ("tcp_position", 2)}
_TCP.update({f"tcp_q{a}": ("tcp_quaternion", i) for i, a in enumerate("wxyz")})

#: prediction horizons a :class:`VehicleObservation` keeps for its report
HORIZONS_KEPT = 2000

#: a source reads one float from (state, object poses of this tick)
Source = Callable[[ArmState, Mapping[str, tuple[np.ndarray, np.ndarray]]], float]


def _state_field(field: str, index: int) -> Source:
    return lambda state, _objects: float(np.asarray(getattr(state, field)).reshape(-1)[index])


def _object_part(name: str, part: int, index: int) -> Source:
    return lambda _state, objects: float(objects[name][part][index])


class RobotObservation:
    """Fills a policy's named vector inputs from an arm's state (see the module docstring).

    Args:
        robot: the arm (its spec names the joints; ``object_pose`` if it tracks objects).
        vectors: vector input name -> its entry names, in the policy's order.

    Raises:
        ConfigError: an entry the robot cannot give, naming it and what the robot gives.
    """

    def __init__(self, robot: Any, vectors: Mapping[str, Sequence[str]]) -> None:
        self.robot = robot
        joints = tuple(robot.spec.joint_names)
        has_gripper = getattr(robot.spec, "gripper", None) is not None
        tracks = callable(getattr(robot, "object_pose", None))
        self.objects: list[str] = []
        self._sources: dict[str, list[Source]] = {}
        for key, names in vectors.items():
            sources = []
            for name in names:
                source = self._resolve(str(name), joints, has_gripper, tracks)
                if source is None:
                    gives = [*joints, *(["gripper"] if has_gripper else []), *_TCP]
                    also = "; <object>_x.. / _qw.. of tracked objects" if tracks else "; it tracks no objects"
                    raise ConfigError(
                        f"policy input {key} entry {name!r}: robot {type(robot).__name__} gives {gives}{also}"
                    )
                sources.append(source)
            self._sources[key] = sources

    def _resolve(self, name: str, joints: tuple[str, ...], has_gripper: bool, tracks: bool) -> Source | None:
        if name in joints:
            return _state_field("joint_positions", joints.index(name))
        if name == "gripper":
            return _state_field("gripper", 0) if has_gripper else None
        if name in _TCP:
            return _state_field(*_TCP[name])
        for suffix, (part, index) in _OBJECT_PARTS.items():
            if tracks and name.endswith(suffix) and len(name) > len(suffix):
                obj = name[: -len(suffix)]
                try:
                    self.robot.object_pose(obj)
                except Exception:  # noqa: BLE001 unknown object: the robot's own error type varies
                    return None
                if obj not in self.objects:
                    self.objects.append(obj)
                return _object_part(obj, part, index)
        return None

    @property
    def keys(self) -> tuple[str, ...]:
        """The vector inputs it fills."""
        return tuple(self._sources)

    def vectors(self, state: ArmState) -> dict[str, np.ndarray]:
        """Each vector input (float32) from ``state`` and this moment's object poses."""
        objects = {name: self.robot.object_pose(name) for name in self.objects}
        return {
            key: np.array([source(state, objects) for source in sources], dtype=np.float32)
            for key, sources in self._sources.items()
        }


def vector_inputs(observation: Iterable[Any]) -> dict[str, tuple[str, ...]]:
    """Vector inputs (name -> entry names) of a schema's observation specs: the float ones with names."""
    return {
        spec.name: tuple(spec.names)
        for spec in observation
        if spec.names and len(spec.shape) == 1 and str(spec.dtype).startswith("float")
    }


def arm_command_names(robot: Any) -> tuple[str, ...]:
    """An arm's command vector names: its joints, then ``gripper`` when it has one (the executor's order)."""
    spec = robot.spec
    return tuple(spec.joint_names) + (("gripper",) if getattr(spec, "gripper", None) is not None else ())


class VehicleObservation:
    """Fills a flight policy's inputs from a quadrotor's state (:mod:`rcs.flight.observation`).

    The policy's memories (position-error integral, last motor command) start afresh whenever the policy does
    not drive the vehicle (not engaged, held, landing): its first observation after taking over has no
    integral and the motor command the vehicle was flying with.

    With ``predict``, a driving policy is fed the state predicted ``horizon_s`` ahead under the last written motor
    command (:class:`rcs.flight.prediction.StatePredictor`, horizon capped at
    :data:`rcs.flight.prediction.MAX_HORIZON_S`): the shipped hover policy tolerates about 2 ms between its
    observation and the motors, a served one behind a MAVLink link sees 5-6 ms.

    Args:
        robot: the quadrotor (its spec: rotor count, hover thrust; mass, inertia, rotor layout to predict).
        vectors: the policy's vector inputs (must be exactly the flight layout).
        mode: the policy's command mode (``motor_thrusts``: the ``u`` entries are what it commanded).
        control_dt: s between two requests (the integral's step).
        target: hover point (m, world); ``None``: the vehicle's position when the policy takes over.
        predict: compensate the latency by prediction (``policy.latency_compensation``).

    Raises:
        ConfigError: inputs other than the flight layout, or another mode.
    """

    MODE = "motor_thrusts"

    def __init__(
        self,
        robot: Any,
        vectors: Mapping[str, Sequence[str]],
        mode: str,
        control_dt: float,
        target: Sequence[float] | None = None,
        predict: bool = True,
    ) -> None:
        spec = robot.spec
        n = spec.num_rotors
        expected = {"observation.state": state_names(n), "observation.target": TARGET_NAMES}
        given = {key: tuple(names) for key, names in vectors.items()}
        if given != expected:
            raise ConfigError(f"policy inputs {given}: a quadrotor gives a flight policy's {expected}")
        if mode != self.MODE:
            raise ConfigError(f"policy.mode={mode!r}: a flight policy's actions are {self.MODE!r} (policy.mode)")
        self._target: np.ndarray | None = None if target is None else np.asarray(target, dtype=np.float64)
        self._hover = np.full(n, spec.hover_thrust / (n * spec.max_thrust))
        self.memory = FlightObservation(np.zeros(3) if self._target is None else self._target, control_dt, n)
        self.predictor = StatePredictor(spec) if predict else None
        # the rotors' thrusts from the commands written: the prediction's starting point, nothing else reads them
        self.thrusts = ThrustEstimate(spec) if predict else None
        #: s: the horizons of the latest predictions, oldest first
        self.horizons: deque[float] = deque(maxlen=HORIZONS_KEPT)

    def vectors(
        self,
        state: QuadrotorState,
        driving: bool,
        last_command: np.ndarray | None = None,
        horizon_s: float = 0.0,
    ) -> dict[str, np.ndarray]:
        """The request's inputs for ``state``; ``driving``: the policy's commands reach the motors now;
        ``last_command``: the normalized motor thrusts last written (``None``: not a motor command);
        ``horizon_s``: s from the state's capture until the request's action is expected at the motors."""
        if not driving:
            here: np.ndarray = np.asarray(state.position, dtype=np.float64)
            self.memory.target = self._target if self._target is not None else here
            self.memory.reset(self._hover if last_command is None else last_command)
            if self.thrusts is not None:
                self.thrusts.reset(state.motor_thrusts, state.timestamp)
        elif last_command is not None:
            self.memory.commanded(last_command)
            if self.predictor is not None and self.thrusts is not None:
                thrusts = self.thrusts.advance(last_command, state.timestamp)
                if horizon_s > 0.0:
                    horizon = min(float(horizon_s), MAX_HORIZON_S)
                    state = self.predictor(state, last_command, horizon, thrusts)
                    self.horizons.append(horizon)
        return self.memory(state)
