"""Scripted experts (demonstrators) for rcs tasks; they read observations and scene specs only."""

from rcs.experts.pick_cube import PickCubeExpert

__all__ = ["PickCubeExpert"]
