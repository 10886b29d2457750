"""Steps per CPU-hour: a committed suite's training config with its own settings vs the speed settings.

Every side trains the same suite's ``[train]`` configuration (default: the published
``benchmarks/arith-paper-variants.toml``: SmolLM2-135M-Instruct, vLLM engine, 4 prompts x G = 8,
48 new tokens, mu = 2, ``grpo``) for ``--steps`` steps (default: the suite's own ``steps``, so each
run is a whole training run), each run in a fresh subprocess. Model load and engine start-up are
timed apart (``start-up s``); the first step is a warm-up and is not timed. The repeats are the
seeds (``--seeds``, default 0 1 2): for each seed the sides run one after the other.

- ``before``: the suite exactly as committed (it pins ``bf16_autocast = false``, ``share_prompt = false``,
  ``adamw_fused = false``, ``bf16_weights = false`` and ``attention = "sdpa"``, as it was published);
- ``after-autocast``: the speed settings of the first measurement: ``AFTER`` with bf16 autocast over
  fp32 weights and sdpa attention (``AUTOCAST``), to show what the last two levers add;
- ``after``: the same suite with the speed settings in ``AFTER`` (docs/algorithms.md, "Speed settings");
- ``after-compiled``: ``after`` with vLLM's compiled engine (``enforce_eager = false``): faster
  generation for a longer start-up, so the script prints after how many steps it pays.

Printed: median samples/s, the per-phase split in seconds per step (generate, score, train; and
inside train: no-grad forward, forward+backward, clipping + AdamW, engine sync), start-up, peak RSS
and the ratio to the first side; the CPU model, its bf16 flags and torch's thread count. Then
the quality check: each seed's train-reward curve on every side (step 0 samples the same weights
on all sides, so it matches; later steps differ only through the update), the mean train reward
over the run per side and seed, and the mean over seeds of side - before with the smallest and
largest seed's difference. "No worse" reads: that mean is not below 0 by more than the
seed-to-seed spread.

``--floor``: the last step of every run is profiled (``torch.profiler``) and left out of the timing.
Printed per side: the seconds that step spent in matrix products (GEMM: vLLM's ``_C::onednn_mm`` and
``_C::weight_packed_linear``, torch's ``mm``, ``bmm``, ``addmm``, ``_weight_int8pack_mm``) and the
step's own AdamW and engine-sync time, and the ceiling: the baseline's seconds per step over
GEMM + AdamW + sync, the ratio a side would reach if everything else in the step (attention
softmax, norms, activations, casts, sampling, Python) took no time, with today's matrix kernels.
A target above the ceiling cannot be met without doing less arithmetic (fewer tokens, fewer
passes) or faster matrix kernels.

Run: .venv/bin/python benchmarks/perf/defaults_throughput.py [--suite S] [--steps N] [--seeds 0 1 2]
     [--sides before after-autocast after after-compiled] [--floor]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

from child import peak_rss_gib, report, run_child

#: the speed settings, as [train] overrides (the levers measured here; docs/algorithms.md "Speed settings")
AFTER = {"bf16_autocast": "auto", "share_prompt": True, "adamw_fused": "auto", "micro_batch_size": 64,
         "micro_batch_tokens": 4096, "inert_row_stats": False, "bf16_weights": "auto", "attention": "auto",
         "keep_freed_memory": "auto"}
#: the first measurement's speed settings: AFTER less bf16 working weights and eager attention
AUTOCAST = {"bf16_weights": False, "attention": "sdpa"}
#: the third side: AFTER with vLLM's compiled (torch.compile) engine instead of eager mode
COMPILED = {"enforce_eager": False}
SIDES = ("before", "after-autocast", "after", "after-compiled")
PHASES = ("gen_s", "score_s", "train_s", "nograd_fwd_s", "fwd_bwd_s", "optim_s", "sync_s")
#: the matrix-product kernels (self time) that ``--floor`` sums: vLLM's CPU GEMMs and torch's
GEMMS = ("_C::onednn_mm", "_C::weight_packed_linear", "aten::mm", "aten::bmm", "aten::addmm", "aten::baddbmm",
         "aten::_weight_int8pack_mm")


class LastStepProfile:
    """A ``Trainer.on_step`` callback that profiles the run's last step (the profiler starts when the
    step before it ends) and keeps the seconds spent in each GEMM kernel."""

    def __init__(self, steps: int):
        self.steps, self.done, self.prof, self.gemm_s, self.row = steps, 0, None, None, None

    def __call__(self, row: dict) -> None:
        from torch.profiler import ProfilerActivity, profile

        self.done += 1
        if self.done == self.steps - 1:
            self.prof = profile(activities=[ProfilerActivity.CPU])
            self.prof.__enter__()
        elif self.done == self.steps and self.prof is not None:
            self.prof.__exit__(None, None, None)
            totals = {e.key: e.self_cpu_time_total for e in self.prof.key_averages()}
            self.gemm_s = sum(totals.get(k, 0.0) for k in GEMMS) / 1e6
            self.row = row


def run_side(suite_path: str, side: str, steps: int, seed: int, floor: bool = False) -> dict:
    import dataclasses

    import torch

    from grpo_bench.config import TrainConfig, load_suite
    from grpo_bench.config.suite import AUTO_SWITCHES, resolve_auto
    from grpo_bench.execute.session import Session
    from grpo_bench.registry import default_registry
    from grpo_bench.training import Trainer

    registry = default_registry()
    suite = load_suite(suite_path, registry)
    tr = suite.train
    overrides = {"steps": steps, "checkpoint_every": 0}
    if side.startswith("after"):
        overrides |= AFTER | (AUTOCAST if side == "after-autocast" else {})
        for key in set(AUTO_SWITCHES) & set(overrides):
            overrides[key] = resolve_auto(key, overrides[key], suite.suite.device, SystemExit)
    cfg = dataclasses.replace(TrainConfig(**{k: getattr(tr, k) for k in TrainConfig.__dataclass_fields__}),
                              **overrides)
    if side == "after-compiled":
        suite.suite.engine_options = dict(suite.suite.engine_options) | COMPILED
    t0 = time.perf_counter()
    session = Session(suite, registry)
    startup_s = time.perf_counter() - t0
    try:
        variant = suite.variants[0]
        algo = registry.get("algorithms", variant.algorithm)(**dict(variant.options))
        bench = registry.get("benchmarks", tr.benchmark)
        scorer = session.scorer(list(tr.rewards), dict(tr.reward_weights))
        probe = LastStepProfile(steps) if floor else None
        with tempfile.TemporaryDirectory() as tmp:
            rows = Trainer(session.model, session.tokenizer, session.engine, algo, scorer, bench,
                           bench.problems(tr.split), cfg, seed, tmp, on_step=probe).train()
    finally:
        session.close()
    timed = rows[1:-1] if floor else rows[1:] if len(rows) > 1 else rows
    out = {"steps": len(timed), "samples": sum(r["samples"] for r in timed), "wall_s": sum(r["step_s"] for r in timed),
           "bf16_autocast": cfg.bf16_autocast, "peak_rss_gib": peak_rss_gib(), "startup_s": startup_s,
           "reward_curve": [r["reward_mean"] for r in rows], "threads": torch.get_num_threads()}
    for k in PHASES:
        out[k] = sum(r.get(k, 0.0) for r in timed) / len(timed)
    if probe is not None and probe.gemm_s is not None:  # the profiled step's GEMM time and its AdamW and sync
        out |= {"gemm_s": probe.gemm_s, "floor_s": probe.gemm_s + probe.row["optim_s"] + probe.row["sync_s"]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="benchmarks/arith-paper-variants.toml")
    ap.add_argument("--steps", type=int, help="steps per run (default: the suite's steps)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="one run per side per seed")
    ap.add_argument("--sides", nargs="+", choices=SIDES, default=["before", "after-autocast", "after"],
                    help="the first is the baseline (after-compiled: add it to see the compiled engine)")
    ap.add_argument("--floor", action="store_true",
                    help="profile each run's last step (not timed): GEMM seconds per step and the ceiling")
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.side:
        report(run_side(args.suite, args.side, args.steps, args.seed, args.floor))
        return
    from grpo_bench.config import load_suite
    from grpo_bench.provenance import bf16_support, cpu_model
    from grpo_bench.registry import default_registry

    steps = args.steps or load_suite(args.suite, default_registry()).train.steps
    if args.floor and steps < 3:
        raise SystemExit("--floor needs at least 3 steps (an untimed first step, timed steps, the profiled last one)")
    results: dict[str, list[dict]] = {side: [] for side in args.sides}
    for seed in args.seeds:
        for side in results:
            cmd = [sys.executable, __file__, "--side", side, "--suite", args.suite, "--steps", str(steps),
                   "--seed", str(seed)] + (["--floor"] if args.floor else [])
            res = run_child(cmd, side)
            results[side].append(res)
            print(f"  seed {seed} {side}: {res['samples'] / res['wall_s']:.2f} samples/s "
                  f"(bf16_autocast={res['bf16_autocast']}, start-up {res['startup_s']:.0f} s)", flush=True)
    print(f"\nCPU: {cpu_model()} (bf16: {bf16_support('cpu') or 'none'}); torch threads: "
          f"{results[args.sides[0]][0].get('threads')}; suite {args.suite}; {steps} steps per run, first untimed; "
          f"median of {len(args.seeds)} runs per side (seeds {' '.join(map(str, args.seeds))})")
    print(f"after = before + {AFTER}; after-autocast = after + {AUTOCAST}; "
          f"after-compiled = after + engine_options {COMPILED}\n")
    print("| settings | samples/s | ratio | generate s/step | score | train | (no-grad fwd | fwd+bwd | "
          "clip+AdamW | sync) | start-up s | peak RSS GiB |")
    print("|---" * 12 + "|")
    med, base = {}, args.sides[0]
    for side, runs in results.items():
        med[side] = statistics.median(x["samples"] / x["wall_s"] for x in runs)
        ph = [statistics.median(x[k] for x in runs) for k in PHASES]
        print(f"| {side} | {med[side]:.2f} | {med[side] / med[base]:.2f}x | " + " | ".join(f"{v:.2f}" for v in ph)
              + f" | {statistics.median(x['startup_s'] for x in runs):.0f} | {max(x['peak_rss_gib'] for x in runs):.1f} |")
    sides = list(results)
    for side in sides[1:]:
        s_base = statistics.median(x["wall_s"] / x["steps"] for x in results[base])
        s_side = statistics.median(x["wall_s"] / x["steps"] for x in results[side])
        extra = statistics.median(x["startup_s"] for x in results[side]) - statistics.median(x["startup_s"] for x in results[base])
        gain = s_base - s_side
        even = f"pays for its extra start-up ({extra:+.0f} s) after {extra / gain:.0f} steps" if extra > 0 and gain > 0 else \
            f"start-up {extra:+.0f} s"
        print(f"{side}: {gain:.2f} s/step saved vs {base}; {even}")
    if args.floor:
        print_floor(results, base)
    print_curves(args.seeds, results)


def print_floor(results: dict[str, list[dict]], base: str) -> None:
    """GEMM seconds of each side's profiled step and the ceiling on the ratio to ``base``."""
    s_base = statistics.median(x["wall_s"] / x["steps"] for x in results[base])
    print(f"\nceiling (--floor): {base} takes {s_base:.2f} s/step; a side whose step did nothing but its "
          "matrix products, its AdamW step and its engine sync would reach\n")
    print("| settings | s/step | GEMM s/step | + AdamW + sync | ceiling |")
    print("|---" * 5 + "|")
    for side, runs in results.items():
        if any("floor_s" not in x for x in runs):
            continue
        s_side = statistics.median(x["wall_s"] / x["steps"] for x in runs)
        gemm = statistics.median(x["gemm_s"] for x in runs)
        floor = statistics.median(x["floor_s"] for x in runs)
        print(f"| {side} | {s_side:.2f} | {gemm:.2f} | {floor:.2f} | {s_base / floor:.2f}x |")


def print_curves(seeds: list[int], results: dict[str, list[dict]]) -> None:
    """Train reward per step for each seed and side, then the per-seed means and their differences."""
    sides = list(results)
    curves = {side: [x["reward_curve"] for x in runs] for side, runs in results.items()}
    n = min(len(c) for runs in curves.values() for c in runs)
    heads = [f"seed {s} {side}" for s in seeds for side in sides]
    print("\ntrain reward (mean over the step's samples)\n")
    print("| step | " + " | ".join(heads) + " |")
    print("|---" * (len(heads) + 1) + "|")
    for t in range(n):
        cells = [f"{curves[side][i][t]:.3f}" for i in range(len(seeds)) for side in sides]
        print(f"| {t} | " + " | ".join(cells) + " |")
    base = sides[0]
    print("\n| seed | " + " | ".join(f"{side}: mean train reward" for side in sides) + " | "
          + " | ".join(f"{side} - {base}" for side in sides[1:]) + " |")
    print("|---" * (2 * len(sides)) + "|")
    diffs: dict[str, list[float]] = {side: [] for side in sides[1:]}
    for i, s in enumerate(seeds):
        means = {side: statistics.fmean(curves[side][i][:n]) for side in sides}
        for side in sides[1:]:
            diffs[side].append(means[side] - means[base])
        print(f"| {s} | " + " | ".join(f"{means[side]:.3f}" for side in sides) + " | "
              + " | ".join(f"{means[side] - means[base]:+.3f}" for side in sides[1:]) + " |")
    for side, d in diffs.items():
        print(f"mean {side} - {base} over {len(seeds)} seeds: {statistics.fmean(d):+.3f} "
              f"(per seed {min(d):+.3f} to {max(d):+.3f})")


if __name__ == "__main__":
    main()
