"""Evaluation of a policy checkpoint in simulation through the real robot path (``rcs eval``, ``rcs demo``).

- :mod:`rcs.eval.inputs`: what a checkpoint reads and writes (:func:`read_policy_inputs`, JSON only) and the
  schema the robot side requires of it (:func:`expected_schema`);
- :mod:`rcs.eval.episodes`: one episode of an env's robot driven by the served policy through
  :class:`rcs.control.policy_link.PolicyLink` under the real-time control loop (:class:`EpisodeRunner`);
- :mod:`rcs.eval.evaluation`: the policy server child process, the run of many episodes (:func:`evaluate`
  with an :class:`EvalConfig`) and its JSON summary.

The env is used through its public task interface only (:class:`rcs.envs.base.RobotEnv`: ``observe``,
``task_measures``, ``failure_reason``, ``wrong_object_lifted``, ``instruction``): a task declares its own
success test and failure reasons. Submodules import gymnasium and the simulator lazily where they need them.
"""
