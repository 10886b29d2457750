"""The ``grpo-bench`` command: run, eval, leaderboard, compare, plugins."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from .errors import UserError


def _cmd_run(args) -> int:
    from .config import load_suite
    from .execute import run_suite
    from .registry import default_registry

    registry = default_registry()
    suite = load_suite(args.suite, registry)
    out = run_suite(suite, registry, Path(args.results_dir), args.variant)
    print((out / "leaderboard.md").read_text())
    print(f"results: {out}")
    return 0


def _cmd_eval(args) -> int:
    import json

    from .config import EvalConfig
    from .config.suite import default_engine
    from .evaluation import evaluate
    from .execute.session import pick_device
    from .io import atomic_write_json, write_jsonl
    from .models import eos_ids, load_policy
    from .registry import default_registry
    from .scoring import RewardScorer

    registry = default_registry()
    bench = registry.get("benchmarks", args.benchmark)
    engine_cls = registry.get("engines", default_engine() if args.engine == "auto" else args.engine)
    options = parse_engine_options(args.engine_option or [])
    engine_cls.check_options(options)
    check_eval_options(args)
    model, tokenizer = load_policy(args.model, args.dtype, pick_device(args.device))
    engine = engine_cls(model, tokenizer, eos_ids(model, tokenizer), **options)
    scorer = RewardScorer({bench.eval_reward: registry.get("rewards", bench.eval_reward)})
    try:
        cfg = EvalConfig(args.max_new_tokens, args.samples, args.temperature, args.batch_size, args.seed)
        summary, records = evaluate(engine, tokenizer, bench, args.split, args.limit or None, scorer, cfg)
    finally:
        scorer.close()
        engine.close()
    summary["model"] = args.model
    if args.out:
        atomic_write_json(Path(args.out), summary)
        write_jsonl(Path(args.out).with_suffix(".records.jsonl"), records)
    print(json.dumps({k: v for k, v in summary.items() if k != "benchmark_spec"}, indent=2))
    return 0


def check_eval_options(args) -> None:
    """``grpo-bench eval``'s settings, with the suite loader's bounds, before anything is loaded or written."""
    from .config.suite import MAX_SEED, check_device, check_eval, check_model

    def err(key: str, msg: str) -> UserError:
        return UserError(f"--{key.split('.')[-1].replace('_', '-')}: {msg}")

    check_eval(args, err)
    if args.limit < 0:
        raise err("limit", f"must be >= 0 (0: the whole split), got {args.limit}")
    if not 0 <= args.seed <= MAX_SEED:
        raise err("seed", f"must be in [0, {MAX_SEED}] (seeds the RNGs), got {args.seed}")
    if args.dtype not in ("float32", "bfloat16", "float16"):
        raise err("dtype", f"expected float32, bfloat16 or float16, got {args.dtype!r}")
    check_device(args.device, lambda msg: err("device", msg))
    check_model(args.model, lambda msg: err("model", msg))


def _cmd_leaderboard(args) -> int:
    from .report import write_leaderboard

    print(write_leaderboard(Path(args.dir), args.reference, args.target))
    return 0


def _cmd_compare(args) -> int:
    import json

    from .report.compare import compare, to_markdown

    result = compare(Path(args.a), Path(args.b))
    print(json.dumps(result, indent=2) if args.json else to_markdown(result, Path(args.a), Path(args.b)))
    return 0


def _cmd_plugins(args) -> int:
    from .registry import KINDS, default_registry

    registry = default_registry()
    for kind in KINDS:
        print(f"{kind}:")
        for name in registry.names(kind):
            print(f"  {name:<16} {registry.tables[kind][name].source}")
    if registry.errors:
        print("plugin errors:")
        for err in registry.errors:
            print(f"  {err}")
    return 0


def parse_engine_options(items: list[str]) -> dict:
    """``["dtype=\"float32\"", "enforce_eager=true"]`` -> ``{"dtype": "float32", "enforce_eager": True}``."""
    import tomllib

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--engine-option {item!r}: expected KEY=VALUE")
        try:
            out[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = value  # a bare string
    return out


def build_parser() -> argparse.ArgumentParser:
    from .report.runs import DEFAULT_TARGET

    p = argparse.ArgumentParser(prog="grpo-bench", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="train and evaluate every variant x seed of a suite, then print the leaderboard")
    run.add_argument("suite", help="suite file (TOML)")
    run.add_argument("--results-dir", default="results", help="results root (default: results)")
    run.add_argument("--variant", action="append", help="run only this variant (repeatable)")
    run.set_defaults(fn=_cmd_run)

    ev = sub.add_parser("eval", help="evaluate one model on one benchmark")
    ev.add_argument("--model", required=True, help="model path, hub id, 'smollm2-135m-instruct' or 'tiny-random'")
    ev.add_argument("--benchmark", required=True)
    ev.add_argument("--split", default="test")
    ev.add_argument("--limit", type=int, default=0, help="first N problems (0: all)")
    ev.add_argument("--max-new-tokens", type=int, default=256)
    ev.add_argument("--samples", type=int, default=0, help="k for mean@k (0: greedy only)")
    ev.add_argument("--temperature", type=float, default=1.0)
    ev.add_argument("--batch-size", type=int, default=64)
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--engine", default="auto", help="rollout engine (default auto: vllm where it imports, else hf)")
    ev.add_argument("--engine-option", action="append", metavar="KEY=VALUE",
                    help="engine option, as in a suite's engine_options (repeatable; values are TOML)")
    ev.add_argument("--dtype", default="float32")
    ev.add_argument("--device", default="auto")
    ev.add_argument("--out", help="write the summary JSON here (records beside it)")
    ev.set_defaults(fn=_cmd_eval)

    lb = sub.add_parser("leaderboard", help="rebuild leaderboard.md/.csv/.json/.html and plots/ of a suite's results")
    lb.add_argument("dir")
    lb.add_argument("--reference", help="variant the differences are taken against (default: grpo, when present)")
    lb.add_argument("--target", type=float, default=DEFAULT_TARGET,
                    help=f"train accuracy for the 'steps to target' column (default: {DEFAULT_TARGET})")
    lb.set_defaults(fn=_cmd_leaderboard)

    cmp = sub.add_parser("compare", help="per-benchmark differences B - A between two suite or run folders")
    cmp.add_argument("a", help="results folder A (a suite's folder or one run's folder)")
    cmp.add_argument("b", help="results folder B")
    cmp.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    cmp.set_defaults(fn=_cmd_compare)

    pl = sub.add_parser("plugins", help="list rewards, algorithms, benchmarks and engines with their origin")
    pl.set_defaults(fn=_cmd_plugins)
    return p


def main(argv: list[str] | None = None) -> int:
    if os.environ.get("GRPO_BENCH_HUB") != "1":  # no network here: fail fast instead of retrying the hub
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=logging.INFO, format="[grpo-bench] %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except UserError as exc:
        print(f"grpo-bench: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
