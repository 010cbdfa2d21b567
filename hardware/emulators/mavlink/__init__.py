"""The PX4 emulator's parts: :mod:`.firmware` (PX4's modes, arming checks, offboard handling and failsafe around a
simulated vehicle) and :mod:`.server` (the MAVLink 2 link: telemetry out, commands and setpoints in, in PX4's
NED/FRD frames). :mod:`hardware.emulators.px4` runs them as a process."""
