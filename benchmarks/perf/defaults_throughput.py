"""Steps per CPU-hour: a committed suite's training config with its own settings vs the new defaults.

Both sides train the same suite's ``[train]`` configuration (default: the published
``benchmarks/arith-paper-variants.toml``: SmolLM2-135M-Instruct, vLLM engine, 4 prompts x G = 8,
48 new tokens, mu = 2, ``grpo``) for ``--steps`` steps (default: the suite's own
``steps``, so each run is a whole training run), each run in a fresh subprocess (model load and engine
start-up are not timed; the first step is a warm-up and is not timed). The repeats are the seeds
(``--seeds``, default 0 1 2): for each seed the two sides run one after the other.

- ``before``: the suite exactly as committed (it pins ``bf16_autocast = false`` and
  ``share_prompt = false``, as it was published);
- ``after``: the same suite with the new defaults (``--set`` style overrides listed in ``AFTER``).

Printed: median samples/s, the per-phase split (generate, score, train, of which engine sync) in
seconds per step, peak RSS, and the ratio after / before; plus the CPU model and its bf16 flags.
Then the quality check: each seed's train-reward curve on both sides (step 0 samples the same
weights on both sides, so it matches; later steps differ only through the update), the mean
train reward over the run per side and seed, and the mean over seeds of after - before with the
smallest and largest seed's difference. "No worse" reads: that mean is not below 0 by more
than the seed-to-seed spread.

Run: .venv/bin/python benchmarks/perf/defaults_throughput.py [--suite S] [--steps N] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile

from child import peak_rss_gib, report, run_child

#: what the new defaults change, as [train] overrides (the levers measured here)
AFTER = {"bf16_autocast": "auto", "share_prompt": True}
PHASES = ("gen_s", "score_s", "train_s", "nograd_fwd_s", "fwd_bwd_s", "optim_s", "sync_s")


def run_side(suite_path: str, side: str, steps: int, seed: int) -> dict:
    import dataclasses

    from grpo_bench.config import TrainConfig, load_suite
    from grpo_bench.config.suite import AUTO_SWITCHES, resolve_auto
    from grpo_bench.execute.session import Session
    from grpo_bench.registry import default_registry
    from grpo_bench.training import Trainer

    registry = default_registry()
    suite = load_suite(suite_path, registry)
    tr = suite.train
    overrides = {"steps": steps, "checkpoint_every": 0}
    if side == "after":
        overrides |= AFTER
        for key in set(AUTO_SWITCHES) & set(overrides):
            overrides[key] = resolve_auto(key, overrides[key], suite.suite.device, SystemExit)
    cfg = dataclasses.replace(TrainConfig(**{k: getattr(tr, k) for k in TrainConfig.__dataclass_fields__}),
                              **overrides)
    session = Session(suite, registry)
    try:
        variant = suite.variants[0]
        algo = registry.get("algorithms", variant.algorithm)(**dict(variant.options))
        bench = registry.get("benchmarks", tr.benchmark)
        scorer = session.scorer(list(tr.rewards), dict(tr.reward_weights))
        with tempfile.TemporaryDirectory() as tmp:
            rows = Trainer(session.model, session.tokenizer, session.engine, algo, scorer, bench,
                           bench.problems(tr.split), cfg, seed, tmp).train()
    finally:
        session.close()
    timed = rows[1:] if len(rows) > 1 else rows
    out = {"steps": len(timed), "samples": sum(r["samples"] for r in timed), "wall_s": sum(r["step_s"] for r in timed),
           "bf16_autocast": cfg.bf16_autocast, "peak_rss_gib": peak_rss_gib(),
           "reward_curve": [r["reward_mean"] for r in rows]}
    for k in PHASES:
        out[k] = sum(r.get(k, 0.0) for r in timed) / len(timed)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="benchmarks/arith-paper-variants.toml")
    ap.add_argument("--steps", type=int, help="steps per run (default: the suite's steps)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="one run per side per seed")
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--side", choices=["before", "after"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.side:
        report(run_side(args.suite, args.side, args.steps, args.seed))
        return
    from grpo_bench.config import load_suite
    from grpo_bench.provenance import bf16_support, cpu_model
    from grpo_bench.registry import default_registry

    steps = args.steps or load_suite(args.suite, default_registry()).train.steps
    results: dict[str, list[dict]] = {"before": [], "after": []}
    for seed in args.seeds:
        for side in results:
            cmd = [sys.executable, __file__, "--side", side, "--suite", args.suite, "--steps", str(steps),
                   "--seed", str(seed)]
            res = run_child(cmd, side)
            results[side].append(res)
            print(f"  seed {seed} {side}: {res['samples'] / res['wall_s']:.2f} samples/s "
                  f"(bf16_autocast={res['bf16_autocast']})", flush=True)
    print(f"\nCPU: {cpu_model()} (bf16: {bf16_support('cpu') or 'none'}); suite {args.suite}; "
          f"{steps} steps per run, first untimed; median of {len(args.seeds)} runs per side (seeds "
          f"{' '.join(map(str, args.seeds))})")
    print(f"after = before + {AFTER}\n")
    print("| settings | samples/s | generate s/step | score s/step | train s/step | (sync s/step) | peak RSS GiB |")
    print("|---|---|---|---|---|---|---|")
    med = {}
    for side, runs in results.items():
        sps = [x["samples"] / x["wall_s"] for x in runs]
        med[side] = statistics.median(sps)
        ph = [statistics.median(x[k] for x in runs) for k in PHASES]
        print(f"| {side} | {med[side]:.2f} | {ph[0]:.2f} | {ph[1]:.2f} | {ph[2]:.2f} | {ph[3]:.2f} | "
              f"{max(x['peak_rss_gib'] for x in runs):.1f} |")
    print(f"\nratio after / before (samples/s): {med['after'] / med['before']:.2f}x")
    print_curves(args.seeds, results)


def print_curves(seeds: list[int], results: dict[str, list[dict]]) -> None:
    """Train reward per step for each seed and side, then the per-seed means and their differences."""
    curves = {side: [x["reward_curve"] for x in runs] for side, runs in results.items()}
    n = min(len(c) for runs in curves.values() for c in runs)
    heads = [f"seed {s} {side}" for s in seeds for side in ("before", "after")]
    print("\ntrain reward (mean over the step's samples)\n")
    print("| step | " + " | ".join(heads) + " |")
    print("|---" * (len(heads) + 1) + "|")
    for t in range(n):
        cells = [f"{curves[side][i][t]:.3f}" for i in range(len(seeds)) for side in ("before", "after")]
        print(f"| {t} | " + " | ".join(cells) + " |")
    diffs = []
    print("\n| seed | before: mean train reward | after: mean train reward | after - before |")
    print("|---|---|---|---|")
    for i, s in enumerate(seeds):
        b, a = (statistics.fmean(curves[side][i][:n]) for side in ("before", "after"))
        diffs.append(a - b)
        print(f"| {s} | {b:.3f} | {a:.3f} | {a - b:+.3f} |")
    print(f"\nmean after - before over {len(seeds)} seeds: {statistics.fmean(diffs):+.3f} "
          f"(per seed {min(diffs):+.3f} to {max(diffs):+.3f})")


if __name__ == "__main__":
    main()
