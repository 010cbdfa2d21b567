"""Safety layer: the filter on the path to every robot write, the watchdog and the e-stop.

Light by design (numpy and the standard library only): it must be importable wherever a robot is driven.
"""

from rcs.safety.filter import (
    ArmSafetyConfig,
    ArmSafetyFilter,
    AxisLimiter,
    Command,
    InterventionLog,
    QuadrotorSafetyConfig,
    QuadrotorSafetyFilter,
    SafetyFilter,
)
from rcs.safety.watchdog import (
    ArmFallback,
    EStop,
    KeyboardEStop,
    QuadrotorFallback,
    Stage,
    Watchdog,
    WatchdogConfig,
    install_estop_signal_handler,
)

__all__ = [
    "ArmFallback", "ArmSafetyConfig", "ArmSafetyFilter", "AxisLimiter", "Command", "EStop", "InterventionLog",
    "KeyboardEStop", "QuadrotorFallback", "QuadrotorSafetyConfig", "QuadrotorSafetyFilter", "SafetyFilter",
    "Stage", "Watchdog", "WatchdogConfig", "install_estop_signal_handler",
]
