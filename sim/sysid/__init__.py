"""System identification: fit a simulated robot's parameters to logs of a (real or shifted) robot (``rcs sysid``)."""
