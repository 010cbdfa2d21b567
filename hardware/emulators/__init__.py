"""Wire-protocol emulators of physical robots, each its own process, its motion from our MuJoCo physics.

Arms (:class:`rcs.emulator.RobotEmulator`): ``so101`` (a Feetech STS3215 servo bus on a pseudo-terminal, package
``feetech``), ``franka`` (franky-sim, libfranka's network protocol, from its own venv). Multirotors
(:class:`rcs.emulator.VehicleEmulator`, physics in ``vehicle``): ``crazyflie`` (CRTP on cflib's UDP link, package
``crtp``), ``px4`` (a PX4 autopilot over MAVLink 2, package ``mavlink``). Cameras: ``mjpeg_camera`` (MJPEG over HTTP
from rendered frames). ``process`` starts any of them and waits for its ready line.
"""
