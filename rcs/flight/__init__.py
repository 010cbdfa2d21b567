"""Onboard flight control of a multirotor: the control laws a quadrotor runs, not the robot-agnostic runtime.

- :mod:`rcs.flight.controllers`: control allocation (mixer), body-rate PID and the position controller.
- :mod:`rcs.flight.trajectories`: reference trajectories with analytic derivatives.
- :mod:`rcs.flight.hover_task`: the learned-hover task (observation, action mapping, reward, success), shared by
  the batched trainer, the MuJoCo evaluation and the deployed policy.

Pure numpy; nothing is imported here, so each module loads only what it uses.
"""
