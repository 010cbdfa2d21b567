"""Evaluation of a policy checkpoint in simulation through the real robot path (``rcs eval``, ``rcs demo``).

- :mod:`rcs.eval.inputs`: what a checkpoint reads and writes (:func:`read_policy_inputs`, JSON only) and the
  schema the robot side requires of it (:func:`expected_schema`);
- :mod:`rcs.eval.episodes`: one episode of an env's robot driven by the served policy through
  :class:`rcs.control.policy_link.PolicyLink` under the real-time control loop (:class:`EpisodeRunner`);
- :mod:`rcs.eval.server_process`: the policy server as a child process (``rcs serve``) and the handshake that
  waits for it;
- :mod:`rcs.eval.evaluation`: one process's robot, server and runner (:class:`EvalWorker`), the run of many
  episodes (:func:`evaluate` with an :class:`EvalConfig`), its JSON summary, and nominal-vs-shifted runs;
- :mod:`rcs.eval.on_ray`: the same evaluation spread over Ray workers (``rcs eval --workers``), a dead worker's
  episode rerun or reported missing;
- :mod:`rcs.eval.lockstep`: the robot path stepped in simulated time, for learning (residual RL).

The env is used through its public task interface only (:class:`rcs.envs.base.RobotEnv`: ``observe``,
``task_measures``, ``failure_reason``, ``wrong_object_lifted``, ``instruction``): a task declares its own
success test and failure reasons. Submodules import gymnasium and the simulator lazily where they need them.
"""
