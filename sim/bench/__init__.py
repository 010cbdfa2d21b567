"""Benchmarks of the stack, each run on the simulated robots: one module per ``rcs bench NAME``.

Each module exposes ``add_arguments(parser)`` and ``run(args) -> dict`` and is registered under the
``rcs.benchmarks`` entry points in ``pyproject.toml`` (``rcs bench`` finds them there; the core never imports
this package). Modules: :mod:`.loop`, :mod:`.chunks`, :mod:`.transport` (with :mod:`.transport_ours`,
:mod:`.transport_request` and the third-party :mod:`.baselines`), :mod:`.ros2`, :mod:`.record`, :mod:`.sim`,
:mod:`.policy`.

This ``__init__`` imports nothing: the transport baselines import :mod:`.transport_request` from side venvs
that hold neither MuJoCo nor torch.
"""
