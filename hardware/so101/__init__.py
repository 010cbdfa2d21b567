"""The SO-101 follower arm on its Feetech STS3215 servo bus, through lerobot's own ``FeetechMotorsBus``.

:mod:`hardware.so101.follower` is the :class:`rcs.devices.Arm` driver registered as ``hw/so101``;
:mod:`hardware.so101.calibration` reads, checks and writes lerobot's calibration files and runs lerobot's
calibration flow with a pluggable operator (a person at the console, or an emulator's scripted hand).
"""
