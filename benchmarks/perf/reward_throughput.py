"""Scoring throughput (samples/s) of ``math_verify`` and ``code_tests`` through RewardScorer.

Workloads: 200 math samples built from GSM8K test gold answers (half right, half wrong; boxed or
``#### N``), and 100 MBPP test-split reference solutions (all pass). For each reward and worker
count the scorer is warmed up once (worker start-up and imports are not counted), then the batch
is scored ``--repeats`` times, the sides taking turns; the table shows the median.

``--sandbox none bwrap zygote weak`` scores code_tests in each sandbox mode (docs/sandbox.md) in the same
invocation: ``zygote`` forks each sample's sandbox from a pre-imported zygote instead of starting
bubblewrap and an interpreter per sample; ``weak`` is the same judge/proxy protocol without bubblewrap, so the difference is what
bubblewrap costs; ``none`` is the baseline without any sandbox, the way code was run before the
sandbox existed: one plain ``python3 -I -B -c`` subprocess per sample running the program, its
setup and its tests together (exit status 0 = pass), one sample at a time. The machine is shared
(2 cores, other developers' jobs): absolute numbers are noisy, the ratios between sides measured
in one invocation are what counts.

``--old PKGDIR`` adds a side ``bwrap (old)``: code_tests from another version of the package,
measured in the same invocation (its scorer's workers import ``grpo_bench`` from PKGDIR, a folder
holding a ``grpo_bench`` package). To build one for commit C::

    mkdir -p /tmp/old /tmp/oldpkg && git archive C harness plugins | tar -x -C /tmp/old
    cp -r /tmp/old/harness /tmp/oldpkg/grpo_bench
    ln -s /tmp/old/plugins /tmp/oldpkg/grpo_bench/plugins

(the version must speak the same scorer-worker protocol: 1702ab1 does; the sandbox before issue 8,
a6c6ca6, was measured by running this script in a worktree at that commit).

Run: .venv/bin/python benchmarks/perf/reward_throughput.py [--workers 1 2] [--repeats 3]
     [--sandbox none bwrap zygote weak] [--old PKGDIR] [--only code_tests]
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
from grpo_bench.sandbox.runner import sandbox_python
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


def code_tests_unsandboxed(prompts, completions, tests=None, entry_point=None, setup_code=None,
                           program_prefix=None, **kwargs) -> list[float | None]:
    """The no-sandbox baseline: one plain subprocess per sample (program, setup, tests in one interpreter)."""
    import subprocess

    from grpo_bench.plugins.rewards.code_tests import extract_program
    from grpo_bench.rewards import completion_text

    scores: list[float | None] = []
    for i, completion in enumerate(completions):
        entry = entry_point[i] if entry_point else None
        check = f"check({entry})" if entry and "def check(" in tests[i] else ""
        parts = (program_prefix[i] if program_prefix else "", extract_program(completion_text(completion)),
                 setup_code[i] if setup_code else "", tests[i], check)
        script = "\n\n".join(part for part in parts if part)
        try:
            proc = subprocess.run([sandbox_python(), "-I", "-B", "-c", script], capture_output=True, timeout=5.0)
            scores.append(1.0 if proc.returncode == 0 else 0.0)
        except subprocess.TimeoutExpired:
            scores.append(0.0)
    return scores


def warm_scorer(name, fn, completions, columns, workers: int) -> RewardScorer:
    """A scorer whose workers have started and scored once (start-up and imports are not counted)."""
    scorer = RewardScorer({name: fn}, timeout_s=30.0, workers=workers)
    scorer.score([""] * 2 * workers, completions[:2 * workers], {k: v[:2 * workers] for k, v in columns.items()})
    return scorer


def timed(scorer, name, completions, columns) -> float:
    t0 = time.perf_counter()
    result = scorer.score([""] * len(completions), completions, columns)
    seconds = time.perf_counter() - t0
    counts = result.count_summary()[name]
    assert counts["error"] == counts["timeout"] == 0, counts
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sandbox", nargs="+", default=["none", "bwrap"], choices=["none", "bwrap", "zygote", "weak"],
                    help="code_tests sandbox modes to measure (zygote: each sample's sandbox forked by a zygote; "
                         "weak: without bubblewrap; none: no sandbox)")
    ap.add_argument("--old", metavar="PKGDIR", help="also measure code_tests (bwrap) from the grpo_bench in PKGDIR")
    ap.add_argument("--only", choices=["math_verify", "code_tests"], help="measure one reward only")
    args = ap.parse_args()
    workloads = [("math_verify", math_verify, "-", *math_batch())]
    workloads += [("code_tests", code_tests_unsandboxed if mode == "none" else code_tests, mode, *code_batch())
                  for mode in args.sandbox]
    if args.old:
        workloads.append(("code_tests", code_tests, "bwrap (old)", *code_batch()))
    workloads = [w for w in workloads if not args.only or w[0] == args.only]
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores, shared with other developers' jobs (load "
          f"{os.getloadavg()[0]:.1f}): absolute numbers are noisy, compare the rows of one invocation")
    print("| reward | sandbox | samples | workers | samples/s (median) | runs (s) |")
    print("|---|---|---|---|---|---|")
    for workers in args.workers:
        scorers = []
        for name, fn, mode, completions, columns in workloads:
            if mode not in ("-", "none"):
                os.environ["GRPO_BENCH_SANDBOX"] = mode.split()[0]  # inherited by the scorer's worker processes
            saved = os.environ.get("PYTHONPATH")
            if mode == "bwrap (old)":  # its workers find the old package first (PYTHONPATH precedes the install)
                os.environ["PYTHONPATH"] = args.old
            try:
                scorers.append(warm_scorer(name, fn, completions, columns, workers))
            finally:
                os.environ.pop("PYTHONPATH", None)
                if saved is not None:
                    os.environ["PYTHONPATH"] = saved
        times: list[list[float]] = [[] for _ in workloads]
        try:
            for _ in range(args.repeats):  # the sides take turns, so that a burst of load hits them alike
                for k, (name, fn, mode, completions, columns) in enumerate(workloads):
                    times[k].append(timed(scorers[k], name, completions, columns))
        finally:
            for scorer in scorers:
                scorer.close()
        for (name, fn, mode, completions, columns), runs in zip(workloads, times):
            rate = len(completions) / statistics.median(runs)
            print(f"| {name} | {mode} | {len(completions)} | {workers} | {rate:.1f} | "
                  f"{', '.join(f'{t:.2f}' for t in runs)} |", flush=True)


if __name__ == "__main__":
    main()
