"""Test-session setup shared by every test folder."""

import os

from sim.mujoco.gl import configure_gl

# Nothing may download at run time: any hub access in a test (or in a subprocess it starts) fails loudly.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

# Test modules may import mujoco directly; MuJoCo reads MUJOCO_GL at its first import, so choose the
# headless backend before collection imports any of them.
configure_gl()
