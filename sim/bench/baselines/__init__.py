"""Third-party transport baselines for ``rcs bench transport``.

Each module here runs ONLY as a subprocess inside its own side venv (``.venv-bench/<name>``, created by
``scripts/setup_bench_baselines.sh``) because the third-party packages conflict with each other and with the
stack (openpi-client pins numpy<2; lerobot pulls torch). The light core must never import these modules; use
:func:`sim.bench.baselines.runner.run_baseline` instead.

This ``__init__`` and :mod:`sim.bench.transport_request` depend on numpy and the standard library only.
"""
