"""grpo-bench: a reward-pluggable benchmark harness for critic-free RL fine-tuning of LLMs.

Data flows one way, and the sub-packages follow it::

    config (suite schema, loading)  ->  execute (plan -> executor -> finalize)
        -> training (rollout engine, scoring of rewards, algorithm)  ->  evaluation
        -> report (leaderboard, plots, HTML, compare)

Plugins add rewards, algorithms, benchmarks, rollout engines, advantage estimators and executors,
each named once where it is defined (``@register_reward("name")``, ... in :mod:`grpo_bench.declare`)
or through the pluggy hooks in :mod:`grpo_bench.hookspecs`; their contracts live in
:mod:`grpo_bench.rewards`, :mod:`grpo_bench.algorithm`, :mod:`grpo_bench.benchmark`,
:mod:`grpo_bench.engine` and :mod:`grpo_bench.execute.executors`.
"""

import pluggy

__version__ = "0.1.0"
PROJECT = "grpo_bench"

#: Decorate a plugin's hook functions with this (``@hookimpl``).
hookimpl = pluggy.HookimplMarker(PROJECT)

from .declare import (  # noqa: E402 - after PROJECT; the decorators import nothing of the package
    register_advantage,
    register_algorithm,
    register_benchmark,
    register_engine,
    register_executor,
    register_reward,
)

__all__ = ["hookimpl", "register_reward", "register_algorithm", "register_benchmark", "register_engine",
           "register_advantage", "register_executor", "run_suite", "evaluate", "__version__"]


def __getattr__(name):
    """``grpo_bench.run_suite`` and ``grpo_bench.evaluate``, imported on first use (see :mod:`grpo_bench.api`)."""
    if name in ("run_suite", "evaluate"):
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'grpo_bench' has no attribute {name!r}")
