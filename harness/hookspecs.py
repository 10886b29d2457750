"""The plugin hooks. Each returns a ``{name: object}`` mapping; see docs/plugins.md.

A plugin is any module (or object) that implements some of these hooks, exposed through the
entry-point group ``grpo_bench``. The built-ins in ``plugins/`` are registered the same way.
"""

from __future__ import annotations

import pluggy

from . import PROJECT

hookspec = pluggy.HookspecMarker(PROJECT)


@hookspec
def grpo_bench_rewards() -> dict:
    """Reward functions ``fn(prompts, completions, **dataset_columns) -> list[float | None]``."""


@hookspec
def grpo_bench_algorithms() -> dict:
    """Algorithm classes (subclasses of :class:`grpo_bench.algorithm.Algorithm`)."""


@hookspec
def grpo_bench_benchmarks() -> dict:
    """Benchmark instances (subclasses of :class:`grpo_bench.benchmark.Benchmark`)."""


@hookspec
def grpo_bench_engines() -> dict:
    """Rollout-engine classes (subclasses of :class:`grpo_bench.engine.RolloutEngine`)."""
