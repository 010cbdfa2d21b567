"""Safety layer: the filter on the path to every robot write, the watchdog and the e-stop.

Every command that reaches a robot passes through :class:`rcs.safety.arm.ArmSafetyFilter` or
:class:`rcs.safety.quadrotor.QuadrotorSafetyFilter`. Light by design (numpy and the standard library only):
it must be importable wherever a robot is driven. Import from the module that holds a concept; this package
imports nothing, so using one part never loads the others:

- :mod:`rcs.safety.base`: the :class:`~rcs.safety.base.SafetyFilter` interface, malformed-command checks.
- :mod:`rcs.safety.interventions`: :class:`~rcs.safety.interventions.InterventionLog`, message formatting.
- :mod:`rcs.safety.limits`: per-axis limiter math (:class:`~rcs.safety.limits.AxisLimiter`, braking).
- :mod:`rcs.safety.arm`: the arm filter and its workspace check.
- :mod:`rcs.safety.quadrotor`: the quadrotor filter.
- :mod:`rcs.safety.watchdog`: the watchdog, fallbacks and the e-stop.
"""
