"""Onboard flight control of a multirotor: the control laws a quadrotor runs, not the robot-agnostic runtime.

- :mod:`rcs.flight.controllers`: control allocation (mixer), body-rate PID and the position controller.
- :mod:`rcs.flight.trajectories`: reference trajectories with analytic derivatives.

Pure numpy; nothing is imported here, so each module loads only what it uses.
"""
