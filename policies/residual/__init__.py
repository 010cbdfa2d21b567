"""Residual RL on a frozen base policy: a small per-step correction learned off-policy on top of a served base.

- :mod:`.features`: the residual's observation and its normalized action space (the base's MIN_MAX statistics);
- :mod:`.base_follower`: the base's action for each policy step, from the base served by ``rcs serve``;
- :mod:`.actor`: the residual actor (bounded, zero at initialisation) and its checkpoint folder;
- :mod:`.policy`: the composed policy (base + residual) served by ``rcs serve`` (loader kind ``residual``);
- :mod:`.env`: the pick-cube env seen by the residual learner (base inside, residual as the action);
- :mod:`.sac`: the off-policy learner (SAC, LayerNorm critic ensemble, n-step returns, demonstrations mixed in).
"""
