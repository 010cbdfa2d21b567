"""The Crazyflie 2.x through Bitcraze's cflib: :mod:`.driver` (``hw/crazyflie``) and :mod:`.telemetry`."""
