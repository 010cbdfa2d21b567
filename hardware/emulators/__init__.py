"""Wire-protocol emulators of physical robots (each runs as its own process and implements
:class:`rcs.emulator.RobotEmulator`): ``so101`` (a Feetech STS3215 servo bus backed by the MuJoCo SO-101)."""
