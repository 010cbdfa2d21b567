"""Streaming joint targets into one long-lived franky joint impedance motion.

franky 2.0's :class:`franky.JointImpedanceTrackingMotion` is a client-side joint impedance controller (torque
interface, 1 kHz in franky's control thread) that reads the latest :class:`franky.JointReference` every cycle.
:class:`ImpedanceStream` owns that motion and turns each joint target of the control loop into a reference:

- position: the target, approached at most at the velocity cap (``dynamics_factor`` x the Panda's maximum joint
  velocities) per call, so a jump in the target (a first command far from the arm, a one-shot command) becomes a
  ramp instead of a torque step; the stack's chunk executor and safety filter keep normal streams far below it;
- velocity: the finite difference of the references over the last ``VELOCITY_WINDOW`` s (one difference over
  2 ms amplifies timing jitter of a loaded host; 20 ms averages it). Measured against franky-sim (0.1 rad,
  0.25 Hz sinusoid on joint 1 at 500 Hz): this velocity feed-forward cuts the lag from ~120 ms (dq = 0: the
  damping term then brakes every motion) to ~40 ms;
- a background thread takes over when no target came for ``STALE_AFTER`` s: it carries the ramp on to the last
  target (a one-shot command reaches its target, as on every other arm of the stack), then zeroes the reference
  velocity (a stream that stops would otherwise leave the arm pushed ``damping/stiffness x dq`` past its target).
"""

from __future__ import annotations

import threading
import time
from collections import deque

import franky
import numpy as np

VELOCITY_WINDOW = 0.02  # s of reference history for the velocity feed-forward
MAX_STEP_TIME = 0.02  # s: the most elapsed time one call may ramp over (a 50 Hz loop still tracks its targets)
STALE_AFTER = 0.02  # s without a target before the reference velocity is zeroed
WATCHDOG_PERIOD = 0.005  # s


class ImpedanceStream:
    """One running :class:`franky.JointImpedanceTrackingMotion` and the reference shaping in front of it.

    Args:
        stiffness: (7,) N m/rad joint stiffness.
        damping: (7,) N m s/rad joint damping.
        max_velocity: (7,) rad/s cap on the reference velocity (already scaled by the dynamics factor).
        lower, upper: (7,) rad joint limits for franky's soft joint-limit repulsion.
    """

    def __init__(
        self, stiffness: np.ndarray, damping: np.ndarray, max_velocity: np.ndarray, lower: np.ndarray, upper: np.ndarray
    ) -> None:
        self.motion = franky.JointImpedanceTrackingMotion(
            stiffness=stiffness, damping=damping, lower_joint_limits=lower, upper_joint_limits=upper
        )
        self._max_velocity = np.asarray(max_velocity, dtype=float)
        self._lock = threading.Lock()
        self._reference: np.ndarray | None = None
        self._target: np.ndarray | None = None  # the last commanded target (rad)
        self._last_call = 0.0
        self._history: deque[tuple[float, np.ndarray]] = deque()
        self._moving = False  # the last reference has a non-zero velocity
        self._stop = threading.Event()
        self._watchdog: threading.Thread | None = None

    def start(self, robot: franky.Robot, q: np.ndarray) -> None:
        """Hold ``q`` (rad, the arm's current position) and hand the motion to franky without blocking."""
        q = np.asarray(q, dtype=float)
        with self._lock:
            self._reference, self._target = q.copy(), q.copy()
            self._last_call = time.monotonic()
            self._history.clear()
            self._history.append((self._last_call, q.copy()))
            self.motion.set_reference(franky.JointReference(q=q, dq=np.zeros(len(q))))
        robot.move(self.motion, asynchronous=True)
        self._watchdog = threading.Thread(target=self._watch, name="hw/panda-reference-watchdog", daemon=True)
        self._watchdog.start()

    def update(self, target: np.ndarray) -> np.ndarray:
        """Publish the reference for a new joint target (rad); returns the reference position sent."""
        now = time.monotonic()
        with self._lock:
            assert self._reference is not None, "start() first"
            self._target = np.asarray(target, dtype=float).copy()
            reference = self._advance(now)
            self._last_call = now
            return reference

    def _advance(self, now: float) -> np.ndarray:
        """Move the reference toward the target by the velocity cap over the time since the last reference
        (at most ``MAX_STEP_TIME``), with the velocity feed-forward of the recent references. Lock held."""
        assert self._reference is not None and self._target is not None
        elapsed = now - self._history[-1][0] if self._history else MAX_STEP_TIME
        step = self._max_velocity * min(elapsed, MAX_STEP_TIME)
        reference = self._reference + np.clip(self._target - self._reference, -step, step)
        self._history.append((now, reference))
        while len(self._history) > 2 and now - self._history[0][0] > VELOCITY_WINDOW:
            self._history.popleft()
        t_old, q_old = self._history[0]
        dq = (reference - q_old) / (now - t_old) if now > t_old else np.zeros(len(reference))
        dq = np.clip(dq, -self._max_velocity, self._max_velocity)
        self.motion.set_reference(franky.JointReference(q=reference, dq=dq))
        self._reference, self._moving = reference, bool(np.any(dq))
        return reference

    def hold(self) -> None:
        """Keep the last reference position with zero velocity (the stream stopped)."""
        with self._lock:
            if self._reference is not None and self._moving:
                self.motion.set_reference(franky.JointReference(q=self._reference, dq=np.zeros(len(self._reference))))
                self._moving = False
                self._history.clear()
                self._history.append((time.monotonic(), self._reference.copy()))

    def brake(self, q: np.ndarray) -> None:
        """Hold ``q`` (rad, the arm's measured position) with zero velocity: the damping brings the arm to rest."""
        q = np.asarray(q, dtype=float)
        with self._lock:
            self._reference, self._target, self._moving = q.copy(), q.copy(), False
            self.motion.set_reference(franky.JointReference(q=q, dq=np.zeros(len(q))))

    def close(self) -> None:
        """Stop the watchdog (the motion itself is ended by the robot's next motion or stop)."""
        self._stop.set()
        if self._watchdog is not None and self._watchdog is not threading.current_thread():
            self._watchdog.join(timeout=1.0)

    def _watch(self) -> None:
        while not self._stop.wait(WATCHDOG_PERIOD):
            if time.monotonic() - self._last_call <= STALE_AFTER:
                continue  # the stream is alive: it moves the reference itself
            with self._lock:
                unreached = (
                    self._reference is not None
                    and self._target is not None
                    and not np.array_equal(self._reference, self._target)
                )
                if unreached:
                    self._advance(time.monotonic())
            if not unreached:
                self.hold()
