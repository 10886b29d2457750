"""The plugin hooks: the six things a plugin can add, and the rules each must keep.

A plugin is any module (or object) that implements some of these hooks, or names its objects with
the decorators of :mod:`grpo_bench.declare` (``@register_reward("name")``, ...: the simpler way,
which fills the same tables), exposed through the entry-point group ``grpo_bench`` in its
``pyproject.toml``::

    [project.entry-points.grpo_bench]
    my_plugin = "my_package.my_plugin"

or named by a suite (``[suite] plugins = ["my_module"]``, no packaging). Each hook takes no
arguments and returns a ``{name: object}`` mapping. The built-ins in ``plugins/`` are registered
the same way. Rules the registry enforces (:mod:`grpo_bench.registry`):

- a name is registered once; a second plugin offering the same name is ignored and reported;
- for algorithms, benchmarks, engines and executors the key must equal the object's ``name``;
- each object must be of its kind (the base class below, or a function for rewards and advantages);
- a hook whose name is not one of these (``grpo_bench_reward``) is reported with the nearest name;
- a hook that raises, or returns something other than a dict, is reported (``grpo-bench plugins``)
  and the other plugins still load.
"""

from __future__ import annotations

import pluggy

from . import PROJECT

hookspec = pluggy.HookspecMarker(PROJECT)


@hookspec
def grpo_bench_rewards() -> dict:
    """Reward functions: ``{name: fn}``.

    ``fn(prompts, completions, **columns) -> list[float | None]`` with one value per completion
    (the contract, with its rules and a worked example, is :mod:`grpo_bench.rewards`). Rewards run
    in worker processes with a wall-clock limit; a call that raises, hangs or returns a non-number
    is counted as an error for that sample, never as a score.
    """


@hookspec
def grpo_bench_algorithms() -> dict:
    """Algorithm classes: ``{name: cls}``, subclasses of :class:`grpo_bench.algorithm.Algorithm`.

    ``cls(**options)`` must reject unknown or ill-typed options with a
    :class:`grpo_bench.errors.UserError`; :meth:`~grpo_bench.algorithm.Algorithm.advantages` maps
    ``[P, G]`` rewards to ``[P, G]`` advantages; :meth:`~grpo_bench.algorithm.Algorithm.loss`
    returns a scalar whose gradient, summed over micro-batches, is the step's gradient (so it
    divides by the whole batch, never by the micro-batch). Keep one file per algorithm with its
    formula in the docstring.
    """


@hookspec
def grpo_bench_benchmarks() -> dict:
    """Benchmark instances: ``{name: obj}``, subclasses of :class:`grpo_bench.benchmark.Benchmark`.

    A benchmark lists its ``splits``, returns :class:`~grpo_bench.benchmark.Problem` rows in a fixed
    order from ``load_split`` (ids unique within a split), fixes its prompt (template and system
    prompt, recorded with every result) and names the reward that decides correctness
    (``eval_reward``, which must return 1.0 for a correct answer).
    """


@hookspec
def grpo_bench_engines() -> dict:
    """Rollout-engine classes: ``{name: cls}``, subclasses of :class:`grpo_bench.engine.RolloutEngine`.

    The rules (same samples for the same seed, weights synced after every step, EOS kept in the
    token ids, options as keyword arguments checked before any write) are in :mod:`grpo_bench.engine`.
    """


@hookspec
def grpo_bench_advantages() -> dict:
    """Advantage estimators: ``{name: fn}``, selected by an algorithm's ``advantage`` option.

    ``fn(rewards, lengths, *, delta, std) -> advantages``: ``[P, G]`` float tensors in, a ``[P, G]``
    tensor out (``lengths``: completion tokens; ``delta`` > 0 keeps a denominator away from 0; ``std``
    is "unbiased" or "population"). Deterministic, finite for finite input, and never called with an
    empty batch (see :func:`grpo_bench.algorithm.compute_advantages`).
    """


@hookspec
def grpo_bench_executors() -> dict:
    """Executor classes: ``{name: cls}``, subclasses of :class:`grpo_bench.execute.executors.Executor`,
    chosen with ``grpo-bench run --executor NAME``. The contract (``execute(plan, registry)``, resumable,
    one lock per run) is in :mod:`grpo_bench.execute.executors`.
    """
