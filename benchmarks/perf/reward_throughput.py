"""Scoring throughput (samples/s) of ``math_verify`` and ``code_tests`` through RewardScorer.

Workloads: 200 math samples built from GSM8K test gold answers (half right, half wrong; boxed or
``#### N``), and 100 MBPP test-split reference solutions (all pass). For each reward and worker
count the scorer is warmed up once (worker start-up and imports are not counted), then the batch
is scored ``--repeats`` times; the table shows the median.

``--sandbox bwrap weak`` scores code_tests in each sandbox mode (docs/sandbox.md) in the same
invocation: ``weak`` is the same judge/proxy protocol without bubblewrap, so the difference is what
bubblewrap costs. The sandbox before issue 8 (hand-written namespaces, tests inside the program's
interpreter) is measured by running this script at commit a6c6ca6 in a temporary worktree
(``git worktree add --detach /tmp/old a6c6ca6``), with ``grpo_bench`` imported from there.

Run: .venv/bin/python benchmarks/perf/reward_throughput.py [--workers 1 2] [--repeats 3] [--sandbox bwrap weak]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from grpo_bench.benchmark import reward_columns
from grpo_bench.plugins.benchmarks.code_data import MBPP
from grpo_bench.registry import default_registry
from grpo_bench.plugins.rewards.code_tests import code_tests
from grpo_bench.plugins.rewards.math_answer import math_verify
from grpo_bench.provenance import cpu_model
from grpo_bench.scoring import RewardScorer


def math_batch(n: int = 200):
    golds = [p.answer for p in default_registry().get("benchmarks", "gsm8k").problems("test", n)]
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
    ap.add_argument("--sandbox", nargs="+", default=["bwrap"], choices=["bwrap", "weak"],
                    help="code_tests sandbox modes to measure (weak: without bubblewrap)")
    ap.add_argument("--only", choices=["math_verify", "code_tests"], help="measure one reward only")
    args = ap.parse_args()
    workloads = [("math_verify", math_verify, "-", *math_batch())]
    workloads += [("code_tests", code_tests, mode, *code_batch()) for mode in args.sandbox]
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores (a shared machine: timings are noisy)")
    print("| reward | sandbox | samples | workers | samples/s (median) | runs (s) |")
    print("|---|---|---|---|---|---|")
    for name, fn, mode, completions, columns in workloads:
        if args.only and name != args.only:
            continue
        if mode != "-":
            os.environ["GRPO_BENCH_SANDBOX"] = mode  # inherited by the scorer's worker processes
        for workers in args.workers:
            times = measure(name, fn, completions, columns, workers, args.repeats)
            rate = len(completions) / statistics.median(times)
            print(f"| {name} | {mode} | {len(completions)} | {workers} | {rate:.1f} | "
                  f"{', '.join(f'{t:.2f}' for t in times)} |", flush=True)


if __name__ == "__main__":
    main()
