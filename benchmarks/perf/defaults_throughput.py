"""Steps per CPU-hour: a committed suite's training config with its own settings vs the new defaults.

Both sides train the same suite's ``[train]`` configuration (default: the published
``benchmarks/arith-paper-variants.toml``: SmolLM2-135M-Instruct, vLLM engine, 4 prompts x G = 8,
48 new tokens, mu = 2, ``grpo``) from the same seed for ``--steps`` steps, each in a fresh
subprocess (model load and engine start-up are not timed; the first step is a warm-up and is not
timed). Sides alternate for ``--repeats`` rounds.

- ``before``: the suite exactly as committed (it pins ``bf16_autocast = false`` and
  ``share_prompt = false``, as it was published);
- ``after``: the same suite with the new defaults (``--set`` style overrides listed in ``AFTER``).

Printed: median samples/s, the per-phase split (generate, score, train, of which engine sync) in
seconds per step, peak RSS, and the ratio after / before; plus the CPU model and its bf16 flags.

Run: .venv/bin/python benchmarks/perf/defaults_throughput.py [--suite S] [--steps 4] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile

#: what the new defaults change, as [train] overrides (the levers measured here)
AFTER = {"bf16_autocast": "auto", "share_prompt": True}
PHASES = ("gen_s", "score_s", "train_s", "sync_s")


def run_side(suite_path: str, side: str, steps: int, seed: int) -> dict:
    import dataclasses

    from grpo_bench.config import TrainConfig, load_suite
    from grpo_bench.config.suite import resolve_bf16
    from grpo_bench.execute.session import Session
    from grpo_bench.registry import default_registry
    from grpo_bench.training import Trainer

    registry = default_registry()
    suite = load_suite(suite_path, registry)
    tr = suite.train
    overrides = {"steps": steps, "checkpoint_every": 0}
    if side == "after":
        overrides |= AFTER
        overrides["bf16_autocast"] = resolve_bf16(overrides["bf16_autocast"], suite.suite.device, SystemExit)
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
           "bf16_autocast": cfg.bf16_autocast, "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
           "reward_curve": [r["reward_mean"] for r in rows]}
    for k in PHASES:
        out[k] = sum(r.get(k, 0.0) for r in timed) / len(timed)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="benchmarks/arith-paper-variants.toml")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--side", choices=["before", "after"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.side:
        print("RESULT " + json.dumps(run_side(args.suite, args.side, args.steps, args.seed)), flush=True)
        return
    from grpo_bench.provenance import bf16_support, cpu_model

    results: dict[str, list[dict]] = {"before": [], "after": []}
    for r in range(args.repeats):
        for side in results:
            cmd = [sys.executable, __file__, "--side", side, "--suite", args.suite, "--steps", str(args.steps),
                   "--seed", str(args.seed)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
            if proc.returncode != 0 or not line:
                print(proc.stderr[-3000:], file=sys.stderr)
                raise SystemExit(f"{side} failed (exit {proc.returncode})")
            res = json.loads(line[0][7:])
            results[side].append(res)
            print(f"  round {r + 1} {side}: {res['samples'] / res['wall_s']:.2f} samples/s "
                  f"(bf16_autocast={res['bf16_autocast']})", flush=True)
    print(f"\nCPU: {cpu_model()} (bf16: {bf16_support('cpu') or 'none'}); suite {args.suite}; "
          f"{args.steps} steps per run, first untimed; median of {args.repeats} runs per side")
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


if __name__ == "__main__":
    main()
