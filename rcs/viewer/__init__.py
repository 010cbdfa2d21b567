"""Live views of a running robot (rerun): see :mod:`rcs.viewer.robot_view`."""
