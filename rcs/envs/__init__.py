"""Gymnasium environments built on the rcs device API.

Importing this package registers the ids (``rcs/PandaPickCube-v0``, ``rcs/SO101PickCube-v0``,
``rcs/QuadrotorHover-v0``, ``rcs/QuadrotorTrack-v0``) with gymnasium, the way gymnasium >= 1.0 expects
third-party envs to register (it no longer loads plugins itself). Registration stores names only; no
backend is imported until an env is made. Without importing first, use ``gym.make("rcs.envs:rcs/...")``.
"""

from rcs.envs.registration import ENVS, register_envs

register_envs()

__all__ = ["ENVS", "register_envs"]
