"""The Python API: ``grpo_bench.run_suite`` and ``grpo_bench.evaluate`` (imported lazily from the package).

Both work from a script without an ``if __name__ == "__main__":`` guard and from a notebook: reward
workers start from a fixed module (:mod:`grpo_bench.scoring.worker`), never from the caller's
script, and the vLLM engine runs in-process. Bad input raises :class:`grpo_bench.errors.UserError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def run_suite(suite: str | Path, results_dir: str | Path = "results", overrides: list[str] | None = None,
              variants: list[str] | None = None, verbose: bool = False, *, rewards: dict | None = None,
              algorithms: dict | None = None, benchmarks: dict | None = None) -> Path:
    """Run a suite file (as ``grpo-bench run``); returns the suite's results folder.

    ``overrides``: ``--set`` items such as ``["train.steps=50", "variants.grpo.eps_high=0.28"]``.
    ``rewards``, ``algorithms``, ``benchmarks``: plain Python objects by the name the suite uses, added
    for this call only (no packaging, no decorator): ``{"short": fn}`` with ``fn(prompts, completions,
    **columns)``, ``{"plain_pg": PlainPG}`` (an :class:`~grpo_bench.algorithm.Algorithm` subclass),
    ``{"mine": MyBenchmark}`` (a :class:`~grpo_bench.benchmark.Benchmark` subclass or instance). A
    name that is taken, or an object of the wrong kind, is a :class:`~grpo_bench.errors.UserError`.
    """
    from .config import load_suite
    from .execute import runner
    from .execute.logs import setup_console
    from .registry import default_registry, with_objects

    setup_console(verbose)
    registry = with_objects(default_registry(), "run_suite()", rewards=rewards, algorithms=algorithms,
                            benchmarks=benchmarks)
    loaded = load_suite(suite, registry, overrides)
    return runner.run_suite(loaded, registry, Path(results_dir), variants, verbose=verbose)


def evaluate(model: str, benchmark: str, split: str = "test", limit: int | None = None, *,
             max_new_tokens: int = 256, samples: int = 0, temperature: float = 1.0, batch_size: int = 64,
             seed: int = 0, engine: str = "auto", engine_options: dict | None = None, dtype: str = "float32",
             device: str = "auto", data: str = "bundled", with_records: bool = False, version: int = 0) -> Any:
    """Evaluate one model (folder, hub id, ``smollm2-135m-instruct`` or ``tiny-random``) on a benchmark
    split: the summary dict (pass@1, mean@k, ...), or (summary, per-problem records) with ``with_records``.
    ``version``: the benchmark's version (0: its default; docs/leaderboard.md, "Benchmark versions")."""
    from .config import EvalConfig
    from .config.suite import default_engine
    from .evaluation import evaluate as run_eval
    from .execute.session import pick_device
    from .hub import check_dataset, check_model
    from .models import eos_ids, load_policy
    from .registry import default_registry
    from .scoring import RewardScorer

    registry = default_registry()
    bench = registry.get("benchmarks", benchmark).at_version(version)  # version 0: the benchmark's default
    check_model(model)
    bench.use_data(data)
    if bench.data_source == "hub" and bench.hub_dataset:
        check_dataset(benchmark, bench.hub_dataset)
    engine_cls = registry.get("engines", default_engine() if engine == "auto" else engine)
    options = dict(engine_options or {})
    engine_cls.check_options(options)
    policy, tokenizer = load_policy(model, dtype, pick_device(device))
    eng = engine_cls(policy, tokenizer, eos_ids(policy, tokenizer), **options)
    scorer = RewardScorer({bench.eval_reward: registry.get("rewards", bench.eval_reward)})
    try:
        cfg = EvalConfig(max_new_tokens, samples, temperature, batch_size, seed)
        summary, records = run_eval(eng, tokenizer, bench, split, limit, scorer, cfg)
    finally:
        scorer.close()
        eng.close()
    summary["model"] = model
    return (summary, records) if with_records else summary
