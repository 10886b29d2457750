"""Numerics side by side: the ratio noise floor, the real inner-step movement and the training time.

What it measures, for each numerics below, on the default model (SmolLM2-135M-Instruct) at the
published arith suites' settings (8 prompts x G = 8, 48 new tokens sampled at temperature 0.5 once
in float32 and replayed to every side, integer_answer rewards, GRPO with group-std advantages, mu = 2,
micro-batch 16, AdamW betas (0.9, 0.99), grad clip 1, shared prompts, eager attention): one real
training step (``Trainer.step``: the code every run runs) from the same starting weights, and from it

- ``floor``: ``noise_floor_k3_seq``, the sequence k3 when every weight is nudged by +-1e-7
  (training/noise_floor.py);
- ``KL 1e-5`` / ``KL 1e-6``: ``kl_old_k3_seq``, the sequence k3 between the first and the second inner
  pass, i.e. what one AdamW step at that learning rate moved the log-probs as the run's numerics see it;
- ``train s``: the training phase's seconds (``train_s``: forward+backward of both passes, AdamW, floor),
  median over the repeats at lr 1e-6; generation is not part of it (the rollout engine's numerics are
  its own).

``x floor`` = KL 1e-6 / floor: the issue's criterion is at least 10 (the positive control of the
published suites trains at 1e-6).

The numerics:
  fp32                float32 weights and arithmetic
  bf16-autocast       float32 weights, forward/backward under torch.autocast(bfloat16)
  bf16-autocast+head  the same with the LM head in float32 ([train] fp32_lm_head)
  fp16-autocast       float32 weights under torch.autocast(float16) (no loss scaling: a measurement of
                      the forward's resolution, not a training setting the harness offers)
  bf16-weights        bf16 working weights over float32 master weights ([train] bf16_weights)
  bf16-weights+head   the same with the LM head in float32
  bf16-offgrid        bf16 autocast, float32 weights moved off the bf16 grid by less than half a bf16 unit
                      (uniform), so bf16(w) is unchanged at the start but small updates cross rounding
                      boundaries in proportion to their size (measurement only)

All sides run in one process (the model loads once), in round-robin order over the repeats so that
a slow minute of a shared machine falls on every side. Ratios are what to compare; absolute seconds
move with the machine.

Run: .venv/bin/python benchmarks/perf/ratio_noise.py [--repeats 3] [--sides fp32 bf16-autocast ...]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

SIDES = {
    "fp32": dict(bf16_autocast=False, bf16_weights=False),
    "bf16-autocast": dict(bf16_autocast=True, bf16_weights=False),
    "bf16-autocast+head": dict(bf16_autocast=True, bf16_weights=False, fp32_lm_head=True),
    "fp16-autocast": dict(bf16_autocast=True, bf16_weights=False, autocast_dtype="float16"),
    "bf16-weights": dict(bf16_autocast=True, bf16_weights=True),
    "bf16-weights+head": dict(bf16_autocast=True, bf16_weights=True, fp32_lm_head=True),
    "bf16-offgrid": dict(bf16_autocast=True, bf16_weights=False, offgrid=True),
}
PROMPTS, G, MAX_NEW, TEMPERATURE = 8, 8, 48, 0.5


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def replay_engine_class():
    from grpo_bench.engine import RolloutEngine

    class ReplayEngine(RolloutEngine):
        """Returns the completions it was given, whatever it is asked: every side trains on the same batch."""

        name = "replay"

        def __init__(self, prompts, groups):
            self.groups = {tuple(p): g for p, g in zip(prompts, groups)}

        def generate(self, prompts, sampling, progress=None):
            return [self.groups[tuple(p)] for p in prompts]

        def sync_weights(self, model):
            pass

    return ReplayEngine


def sample_batch(model, tokenizer, bench, problems):
    from grpo_bench.benchmark import prompt_token_ids
    from grpo_bench.engine import SamplingConfig
    from grpo_bench.models import eos_ids
    from grpo_bench.plugins.engines.hf import HFEngine

    engine = HFEngine(model, tokenizer, eos_ids(model, tokenizer))
    prompts = [prompt_token_ids(tokenizer, bench, p) for p in problems]
    return prompts, engine.generate(prompts, SamplingConfig(MAX_NEW, TEMPERATURE, G, seed=0, batch_size=64))


def offgrid(model, seed: int = 0) -> None:
    """Move every float32 weight by u * (half a bf16 unit), u uniform in (-1, 1): bf16(w) is unchanged."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            bf = p.to(torch.bfloat16)
            up = torch.nextafter(bf, torch.full_like(bf, float("inf"))).float() - bf.float()
            u = torch.rand(p.shape, generator=gen) * 2 - 1
            p.add_(u * up.abs() * 0.49)


def one_step(side: str, lr: float, ctx: dict) -> dict:
    """Reset the weights, build a Trainer with this side's numerics, run step 0, return its row."""
    import torch
    from grpo_bench.config.schema import TrainConfig
    from grpo_bench.training.trainer import Trainer

    model, settings = ctx["model"], dict(SIDES[side])
    model.load_state_dict(ctx["base"])
    if settings.pop("offgrid", False):
        offgrid(model)
    dtype = settings.pop("autocast_dtype", "bfloat16")
    cfg = TrainConfig(steps=1, prompts_per_step=PROMPTS, group_size=G, max_new_tokens=MAX_NEW, temperature=TEMPERATURE,
                      learning_rate=lr, mu=2, micro_batch_size=16, checkpoint_every=0, noise_floor_every=1,
                      adamw_fused=False, attention="eager", keep_freed_memory=True, **settings)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(model, ctx["tokenizer"], ctx["engine"], ctx["algorithm"], ctx["scorer"], ctx["bench"],
                          ctx["problems"], cfg, seed=0, run_dir=Path(tmp))
        if dtype == "float16":
            trainer._autocast = lambda: torch.autocast(device_type="cpu", dtype=torch.float16)
        try:
            trainer.take_model()
            row = trainer.step(0)
        finally:
            trainer.release_model()
    return {k: row.get(k) for k in ("kl_old_k3_seq", "kl_old_k3_token", "noise_floor_k3_seq", "noise_floor_k3_token",
                                    "train_s", "trained_frac", "reward_mean")}


def setup(batch_cache: Path | None) -> dict:
    import pickle

    import torch
    from grpo_bench.models import DEFAULT_MODEL, load_policy
    from grpo_bench.plugins.algorithms.grpo import GRPO
    from grpo_bench.registry import default_registry
    from grpo_bench.scoring import RewardScorer
    from grpo_bench.training.trainer import prompt_order, step_problems

    registry = default_registry()
    model, tokenizer = load_policy(DEFAULT_MODEL, "float32")
    bench = registry.get("benchmarks", "arith")
    problems = bench.problems("train")
    chosen = step_problems(problems, prompt_order(len(problems), 0), 0, PROMPTS)
    if batch_cache and batch_cache.exists():
        prompts, groups = pickle.loads(batch_cache.read_bytes())
    else:
        torch.manual_seed(0)
        prompts, groups = sample_batch(model, tokenizer, bench, chosen)
        if batch_cache:
            batch_cache.write_bytes(pickle.dumps((prompts, groups)))
    scorer = RewardScorer({"integer_answer": registry.get("rewards", "integer_answer")})
    return dict(model=model, tokenizer=tokenizer, bench=bench, problems=chosen, engine=replay_engine_class()(prompts, groups),
                algorithm=GRPO(), scorer=scorer, base={k: v.detach().clone() for k, v in model.state_dict().items()})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3, help="steps at lr 1e-6 per side (the timing median)")
    ap.add_argument("--sides", nargs="+", default=list(SIDES), choices=list(SIDES))
    ap.add_argument("--json", type=Path, help="also write every measurement here")
    ap.add_argument("--batch-cache", type=Path, help="keep the sampled batch in this file and reuse it when it exists "
                                                     "(sampling is deterministic: seed 0)")
    args = ap.parse_args()
    t0 = time.time()
    ctx = setup(args.batch_cache)
    print(f"batch sampled and scored in {time.time() - t0:.0f} s; CPU: {cpu_name()}", flush=True)
    rows: dict[str, list[dict]] = {s: [] for s in args.sides}
    big: dict[str, dict] = {}
    for r in range(args.repeats):
        for side in args.sides:
            rows[side].append(one_step(side, 1e-6, ctx))
            print(f"repeat {r} {side}: {json.dumps(rows[side][-1])}", flush=True)
    for side in args.sides:
        big[side] = one_step(side, 1e-5, ctx)
        print(f"lr 1e-5 {side}: {json.dumps(big[side])}", flush=True)
    with contextlib.suppress(Exception):
        ctx["scorer"].close()
    print_table(args.sides, rows, big)
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu_name(), "lr_1e-6": rows, "lr_1e-5": big}, indent=1))


def print_table(sides, rows, big) -> None:
    med = lambda side, key: statistics.median(x[key] for x in rows[side])  # noqa: E731
    base = med(sides[0], "train_s")
    print(f"\nCPU: {cpu_name()}; medians over {len(rows[sides[0]])} steps at lr 1e-6, one at lr 1e-5; "
          f"trained rows {rows[sides[0]][0]['trained_frac']:.2f} of the batch\n")
    print("| numerics | floor (k3 seq) | KL lr 1e-6 | x floor | KL lr 1e-5 | x floor | train s | vs " + sides[0] + " |")
    print("|---|---|---|---|---|---|---|---|")
    for side in sides:
        floor, small, large = med(side, "noise_floor_k3_seq"), med(side, "kl_old_k3_seq"), big[side]["kl_old_k3_seq"]
        print(f"| {side} | {floor:.2e} | {small:.2e} | {small / floor:.1f} | {large:.2e} | {large / floor:.1f} | "
              f"{med(side, 'train_s'):.2f} | {base / med(side, 'train_s'):.2f}x |")


if __name__ == "__main__":
    main()
