"""Scoring throughput (samples/s) of ``math_verify`` and ``code_tests`` through RewardScorer.

Workloads: 200 math samples built from GSM8K test gold answers (half right, half wrong; boxed or
``#### N``), and 100 MBPP test-split reference solutions (all pass). For each reward and worker
count the scorer is warmed up once (worker start-up and imports are not counted), then the batch
is scored ``--repeats`` times; the table shows the median.

Run: .venv/bin/python benchmarks/perf/reward_throughput.py [--workers 1 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

from grpo_bench.benchmark import reward_columns
from grpo_bench.plugins.benchmarks.code_data import MBPP
from grpo_bench.plugins.benchmarks.math_data import GSM8K
from grpo_bench.plugins.rewards.code_tests import code_tests
from grpo_bench.plugins.rewards.math_answer import math_verify
from grpo_bench.scoring import RewardScorer


def math_batch(n: int = 200):
    golds = [p.answer for p in GSM8K().problems("test", n)]
    completions = [(f"So the answer is \\boxed{{{g}}}." if i % 4 == 0 else f"Thus.\n#### {g}") if i % 2 == 0
                   else f"So the answer is \\boxed{{{int(float(g)) + 1}}}." for i, g in enumerate(golds)]
    return completions, {"answer": golds}


def code_batch(n: int = 100):
    problems = MBPP().problems("test", n)
    columns = reward_columns(problems)
    return [f"```python\n{p.answer}\n```" for p in problems], columns


def measure(name, fn, completions, columns, workers: int, repeats: int) -> list[float]:
    scorer = RewardScorer({name: fn}, timeout_s=30.0, workers=workers)
    try:
        scorer.score([""] * 2 * workers, completions[:2 * workers], {k: v[:2 * workers] for k, v in columns.items()})
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            result = scorer.score([""] * len(completions), completions, columns)
            times.append(time.perf_counter() - t0)
            counts = result.count_summary()[name]
            assert counts["error"] == counts["timeout"] == 0, counts
        return times
    finally:
        scorer.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    workloads = [("math_verify", math_verify, *math_batch()), ("code_tests", code_tests, *code_batch())]
    print("| reward | samples | workers | samples/s (median) | runs (s) |")
    print("|---|---|---|---|---|")
    for name, fn, completions, columns in workloads:
        for workers in args.workers:
            times = measure(name, fn, completions, columns, workers, args.repeats)
            rate = len(completions) / statistics.median(times)
            print(f"| {name} | {len(completions)} | {workers} | {rate:.1f} | {', '.join(f'{t:.2f}' for t in times)} |",
                  flush=True)


if __name__ == "__main__":
    main()
