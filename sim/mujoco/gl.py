"""Choose MuJoCo's OpenGL backend before ``mujoco`` is imported.

On a machine without a display, offscreen rendering needs EGL (Mesa's llvmpipe works without a GPU) or
OSMesa. We default ``MUJOCO_GL`` to ``egl`` when no display is present and the user has not chosen one.
Called by ``sim/mujoco/__init__.py``, so it runs before any ``sim.mujoco`` submodule imports mujoco.
"""

from __future__ import annotations

import os


def configure_gl() -> str:
    """Set ``MUJOCO_GL`` (and ``PYOPENGL_PLATFORM``) if unset; return the backend in use."""
    if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
        os.environ["MUJOCO_GL"] = "egl"
    backend = os.environ.get("MUJOCO_GL", "glfw")
    if backend in ("egl", "osmesa"):
        os.environ.setdefault("PYOPENGL_PLATFORM", backend)
    return backend
