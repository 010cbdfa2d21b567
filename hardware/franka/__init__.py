"""Franka Panda driver (registry name ``hw/panda``) on franky-control, franky's Python binding of libfranka.

Modules: :mod:`.arm` (the :class:`rcs.devices.Arm` driver), :mod:`.config` (its keyword config and the
real-time choice), :mod:`.faults` (franky exceptions to the stack's errors), :mod:`.gripper` (the Franka Hand).
The emulator the tests run it against is :mod:`hardware.emulators.franka` (franky-sim in its own venv).
"""
