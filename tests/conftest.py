"""Test-session setup shared by every test folder."""

from sim.mujoco.gl import configure_gl

# Test modules may import mujoco directly; MuJoCo reads MUJOCO_GL at its first import, so choose the
# headless backend before collection imports any of them.
configure_gl()
