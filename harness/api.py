"""The Python API: ``grpo_bench.run_suite`` and ``grpo_bench.evaluate`` (imported lazily from the package).

Both work from a script without an ``if __name__ == "__main__":`` guard and from a notebook: reward
workers start from a fixed module (:mod:`grpo_bench.scoring.worker`), never from the caller's
script, and the vLLM engine runs in-process. Bad input raises :class:`grpo_bench.errors.UserError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .errors import UserError


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


@dataclass
class EvalRequest:
    """One evaluation, as ``grpo_bench.evaluate`` and ``grpo-bench eval`` both describe it (the same names).

    ``limit``: the first N problems (0 or None: the whole split); ``version``: the benchmark's version (0: its
    default; docs/leaderboard.md, "Benchmark versions"); ``data``: "bundled" or "hub"."""
    model: str
    benchmark: str
    split: str = "test"
    limit: int | None = 0
    max_new_tokens: int = 256
    samples: int = 0
    temperature: float = 1.0
    batch_size: int = 64
    seed: int = 0
    engine: str = "auto"
    engine_options: dict = field(default_factory=dict)
    dtype: str = "float32"
    device: str = "auto"
    data: str = "bundled"
    version: int = 0


_INT_FIELDS = ("limit", "max_new_tokens", "samples", "batch_size", "seed", "version")


def check_eval_request(req: EvalRequest, flag: Callable[[str], str]) -> None:
    """Every setting of ``req`` but the model (:func:`grpo_bench.hub.check_model` checks it), with the suite
    loader's bounds, before anything is loaded or written; ``flag`` names a setting in messages
    (``--max-new-tokens`` for the command, ``grpo_bench.evaluate: max_new_tokens`` for the API)."""
    from .config.options import check_fields
    from .config.schema import EvalConfig, EvalTarget, SuiteMeta
    from .config.suite import check_device

    def err(key: str, msg: str) -> UserError:
        return UserError(f"{flag(key.split('.')[-1])}: {msg}")

    for key in _INT_FIELDS:
        value = getattr(req, key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise err(key, f"expected an integer, got {value!r}")
    if isinstance(req.temperature, bool) or not isinstance(req.temperature, (int, float)):
        raise err("temperature", f"expected a number, got {req.temperature!r}")
    check_fields(req, err, "", schema=EvalConfig)  # the suite's [eval] limits, and the seed's
    check_fields(req, err, "", schema=EvalTarget, keys=("limit",))
    check_fields(req, err, "", schema=SuiteMeta, keys=("dtype", "data"))
    check_device(req.device, lambda msg: err("device", msg))


def run_evaluation(req: EvalRequest, flag: Callable[[str], str] = str) -> tuple[dict, list[dict]]:
    """The one evaluation path of the API and the command: check, load, generate, grade; (summary, records)."""
    from .config import EvalConfig
    from .config.suite import default_engine
    from .evaluation import evaluate as run_eval
    from .hub import check_dataset, check_model
    from .models import eos_ids, load_policy, pick_device
    from .registry import default_registry
    from .scoring import RewardScorer

    req.limit = req.limit or 0
    check_eval_request(req, flag)
    registry = default_registry()
    bench = registry.get("benchmarks", req.benchmark).at_version(req.version)  # version 0: the default
    check_model(req.model)
    bench.use_data(req.data)
    if bench.data_source == "hub" and bench.hub_dataset:
        check_dataset(req.benchmark, bench.hub_dataset)
    engine_cls = registry.get("engines", default_engine() if req.engine == "auto" else req.engine)
    engine_cls.check_options(req.engine_options)
    policy, tokenizer = load_policy(req.model, req.dtype, pick_device(req.device))
    engine = engine_cls(policy, tokenizer, eos_ids(policy, tokenizer), **req.engine_options)
    scorer = RewardScorer({bench.eval_reward: registry.get("rewards", bench.eval_reward)})
    try:
        cfg = EvalConfig(req.max_new_tokens, req.samples, req.temperature, req.batch_size, req.seed)
        summary, records = run_eval(engine, tokenizer, bench, req.split, req.limit or None, scorer, cfg)
    finally:
        scorer.close()
        engine.close()
    summary["model"] = req.model
    return summary, records


def evaluate(model: str, benchmark: str, split: str = "test", limit: int | None = None, *,
             max_new_tokens: int = 256, samples: int = 0, temperature: float = 1.0, batch_size: int = 64,
             seed: int = 0, engine: str = "auto", engine_options: dict | None = None, dtype: str = "float32",
             device: str = "auto", data: str = "bundled", with_records: bool = False, version: int = 0) -> Any:
    """Evaluate one model (folder, hub id, ``smollm2-135m-instruct`` or ``tiny-random``) on a benchmark
    split: the summary dict (pass@1, mean@k, ...), or (summary, per-problem records) with ``with_records``.
    Settings as :class:`EvalRequest` (the same checks as ``grpo-bench eval``: a bad one is a UserError)."""
    req = EvalRequest(model, benchmark, split, limit, max_new_tokens, samples, temperature, batch_size, seed,
                      engine, dict(engine_options or {}), dtype, device, data, version)
    summary, records = run_evaluation(req, flag=lambda key: f"grpo_bench.evaluate: {key}")
    return (summary, records) if with_records else summary
