"""A PX4 autopilot over MAVLink 2 (pymavlink): :mod:`hardware.px4.driver` is the :class:`rcs.devices.Quadrotor`
registered as ``hw/px4``; :mod:`hardware.px4.protocol` states PX4's mode encoding, motor numbering and the
MAVLink constants both the driver and the emulator (:mod:`hardware.emulators.px4`) use."""
