"""Evaluation throughput: the vLLM engine vs batched bf16 ``model.generate`` (what an HF-backend evaluator does).

GSM8K test, the first ``--problems`` problems (200 by default), greedy, 256 new tokens, the default
model. Each engine is started once (start-up reported apart), then the evaluation is repeated
``--repeats`` times, alternating engines; the table shows the median problems/s and the ratio.

Run (inside a main guard: vLLM starts workers with spawn):
    .venv/bin/python benchmarks/perf/eval_throughput.py [--problems 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

from grpo_bench.benchmark import prompt_token_ids
from grpo_bench.engine import SamplingConfig
from grpo_bench.models import DEFAULT_MODEL, eos_ids, load_policy
from grpo_bench.registry import default_registry
from grpo_bench.plugins.engines.hf import HFEngine


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-new-tokens", type=int, default=256)
    args = ap.parse_args()

    from grpo_bench.plugins.engines.vllm_engine import VLLMEngine

    bench = default_registry().get("benchmarks", "gsm8k")
    model, tok = load_policy(DEFAULT_MODEL, "bfloat16")
    ids = [prompt_token_ids(tok, bench, p) for p in bench.problems("test", args.problems)]
    sampling = SamplingConfig(args.max_new_tokens, 0.0, 1, 0, batch_size=64)
    t0 = time.perf_counter()
    engines = {"vllm (bf16)": VLLMEngine(model, tok, eos_ids(model, tok), dtype="bfloat16"),
               "hf generate (bf16, batch 64)": HFEngine(model, tok, eos_ids(model, tok))}
    startup = {"vllm (bf16)": time.perf_counter() - t0, "hf generate (bf16, batch 64)": 0.0}
    times: dict[str, list[float]] = {k: [] for k in engines}
    tokens: dict[str, int] = {}
    for r in range(args.repeats):
        for name, engine in engines.items():
            t = time.perf_counter()
            out = engine.generate(ids, sampling)
            times[name].append(time.perf_counter() - t)
            tokens[name] = sum(len(g[0].token_ids) for g in out)
            print(f"  run {r + 1} {name}: {times[name][-1]:.1f} s", flush=True)
    print(f"\nGSM8K test, first {len(ids)} problems, greedy, {args.max_new_tokens} new tokens, "
          f"median of {args.repeats}\n")
    print("| engine | start-up (s) | wall (s) | problems/s | generated tok/s | runs (s) |")
    print("|---|---|---|---|---|---|")
    med = {}
    for name in engines:
        med[name] = statistics.median(times[name])
        runs = ", ".join(f"{x:.1f}" for x in times[name])
        print(f"| {name} | {startup[name]:.1f} | {med[name]:.1f} | {len(ids) / med[name]:.2f} | "
              f"{tokens[name] / med[name]:.0f} | {runs} |")
    names = list(engines)
    print(f"\nratio (problems/s, vllm / hf): {med[names[1]] / med[names[0]]:.2f}x")
    for engine in engines.values():
        engine.close()


if __name__ == "__main__":
    main()
