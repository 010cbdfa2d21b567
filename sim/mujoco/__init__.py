"""MuJoCo backend: simulated arms, quadrotor and cameras behind the rcs device API.

MuJoCo reads ``MUJOCO_GL`` when it is first imported, so the one import-time action of this package is to
default it for headless offscreen rendering (see :mod:`sim.mujoco.gl`) before any submodule imports mujoco.
"""

from sim.mujoco.gl import configure_gl

configure_gl()
