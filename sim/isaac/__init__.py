"""Isaac Lab 3 backend (kit-less: Newton physics with the MuJoCo-Warp solver, no Isaac Sim).

Runs only in the Python that has Isaac Lab (``.venv-isaac``, made by ``bash scripts/setup_isaac.sh``); importing
this package and :mod:`sim.isaac.arm` is light everywhere, Isaac Lab is imported only when a robot is built.

- :mod:`sim.isaac.convert`: our shipped MJCF -> USD (mujoco-usd-converter), cached, plus the one attribute fix.
- :mod:`sim.isaac.scene`: the pick-cube scene's table and cube, read from our scene MJCF.
- :mod:`sim.isaac.world`: the Isaac Lab simulation (one per process) holding the robot, table and cube.
- :mod:`sim.isaac.arm`: the Panda behind :class:`rcs.devices.Arm`, registered as ``"isaac/panda"``.
- :mod:`sim.isaac.mirror`: pixels: Isaac's state drawn by MuJoCo's renderer from the same scene MJCF.

Importing this package sets MuJoCo's OpenGL backend (:mod:`sim.mujoco.gl`, no mujoco import): Isaac Lab and the
mirror import mujoco, and MuJoCo reads ``MUJOCO_GL`` once, at its first import.
"""

from sim.mujoco.gl import configure_gl

configure_gl()
