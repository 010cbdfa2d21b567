"""Name -> factory registries backed by Python entry points.

Backends declare factories in their ``pyproject.toml``::

    [project.entry-points."rcs.robots"]
    "sim/panda" = "sim.mujoco.arm:make_panda"

Core code never imports a backend: the factory module is imported only when its name is made. Two
distributions declaring the same name for different factories is an error that names both. Code can also register factories
directly (tests, notebooks) with :meth:`Registry.register`.
"""

from __future__ import annotations

import importlib.metadata as md
import threading
from collections.abc import Callable
from typing import Any

from rcs.errors import RegistryCollisionError, UnknownNameError

Factory = Callable[..., Any]


class Registry:
    """One kind of pluggable thing (``robot``, ``camera``, ``teleop``...)."""

    def __init__(self, kind: str, group: str) -> None:
        self.kind = kind
        self.group = group
        self._explicit: dict[str, Factory] = {}
        self._entry_points: dict[str, md.EntryPoint] | None = None
        self._lock = threading.Lock()

    def _discover(self) -> dict[str, md.EntryPoint]:
        with self._lock:
            if self._entry_points is None:
                found: dict[str, md.EntryPoint] = {}
                for ep in md.entry_points(group=self.group):
                    prior = found.get(ep.name)
                    if prior is not None and prior.value != ep.value:
                        raise RegistryCollisionError(
                            f"{self.kind} {ep.name!r} is registered twice in entry-point group {self.group!r}: "
                            f"{prior.value} ({_dist(prior)}) and {ep.value} ({_dist(ep)})"
                        )
                    found[ep.name] = ep
                self._entry_points = found
            return self._entry_points

    def register(self, name: str, factory: Factory, *, replace: bool = False) -> None:
        """Register ``factory`` under ``name``; a duplicate raises unless ``replace``."""
        if not replace and (name in self._explicit or name in self._discover()):
            raise RegistryCollisionError(f"{self.kind} {name!r} is already registered")
        self._explicit[name] = factory

    def unregister(self, name: str) -> None:
        self._explicit.pop(name, None)

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        return sorted(set(self._explicit) | set(self._discover()))

    def factory(self, name: str) -> Factory:
        """The factory for ``name``; raises :class:`UnknownNameError` listing the known names."""
        if name in self._explicit:
            return self._explicit[name]
        ep = self._discover().get(name)
        if ep is None:
            raise UnknownNameError(self.kind, name, self.names())
        return ep.load()

    def make(self, name: str, /, **config: Any) -> Any:
        """Create the thing registered as ``name`` with keyword configuration."""
        return self.factory(name)(**config)


def _dist(ep: md.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"from {dist.name}" if dist is not None else "unknown distribution"


robots = Registry("robot", "rcs.robots")
cameras = Registry("camera", "rcs.cameras")
teleops = Registry("teleop", "rcs.teleops")
#: wire-protocol emulators of physical robots, named like the robot they stand in for (``"hw/so101"``): a factory
#: ``start(**config) -> rcs.emulator.RobotEmulator`` starts one (its own process) and says how to connect to it.
emulators = Registry("emulator", "rcs.emulators")
#: batched envs for ``gym.make_vec`` (rcs.envs.vector), named ``"<task>@<robot>"``: ``make(num_envs, **task config)
#: -> gymnasium.vector.VectorEnv`` stepping every env in the robot's own simulator at once.
vector_envs = Registry("batched env", "rcs.vector_envs")
#: named reality shifts of simulated robots (rcs.shifts): ``factory() -> rcs.shifts.RealityShift``
shifts = Registry("reality shift", "rcs.shifts")
benchmarks = Registry("benchmark", "rcs.benchmarks")  # entries name modules: add_arguments(parser), run(args)
#: ``rcs`` subcommands of the outer packages (rcs.cli.main): entries name modules with SUMMARY, add_arguments(parser)
#: and run(args).
commands = Registry("command", "rcs.commands")
#: policy checkpoint kinds for ``rcs serve``: ``loader(path: Path, manifest: dict) -> Policy``.
policy_loaders = Registry("policy loader", "rcs.policy_loaders")
#: per lerobot policy type, loaded before a checkpoint of that type (policies.lerobot_adapter): a module whose
#: import registers a type defined outside lerobot (``rcs_diffusion = "policies.rcs_diffusion"``), or an
#: idempotent callable applying a vendored workaround for lerobot's code of that type
#: (``pi0 = "policies.pi0.lerobot_workarounds:fix_pi0_projector_width"``).
lerobot_policy_plugins = Registry("lerobot policy type", "rcs.lerobot_policies")


def make_robot(name: str, /, **config: Any) -> Any:
    """Create a robot by registered name, e.g. ``make_robot("sim/panda", scene="pick_cube")``."""
    return robots.make(name, **config)


def make_camera(name: str, /, **config: Any) -> Any:
    """Create a camera by registered name."""
    return cameras.make(name, **config)


def start_emulator(name: str, /, **config: Any) -> Any:
    """Start the wire-protocol emulator of the physical robot ``name`` (e.g. ``"hw/so101"``); returns a
    :class:`rcs.emulator.RobotEmulator` whose ``robot_config`` connects ``make_robot(name, ...)`` to it."""
    return emulators.make(name, **config)


def make_teleop(name: str, /, **config: Any) -> Any:
    """Create a teleoperation device by registered name."""
    return teleops.make(name, **config)
