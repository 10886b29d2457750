"""Model FLOPs utilisation of the training step: achieved FLOP/s against this machine's matmul peak.

Peak: the best of several square matmuls (``--size``) in bf16 and fp32. Achieved: a real GRPO
step of the default model (8 prompts x G = 8 on arith, mu = 1); the training phase's FLOPs are
counted as 2 * P * tokens for each no-grad forward and 6 * P * tokens for each forward+backward
(P = parameters, tokens = non-pad tokens of the micro-batches), divided by its wall time.
Generation is excluded (it is measured by step_throughput and eval_throughput).

Also prints the process's peak RSS: with ``--max-new-tokens 512`` this is the memory check for the
default model with G = 8 and 512-token completions.

Run: .venv/bin/python benchmarks/perf/mfu.py [--steps 3] [--max-new-tokens 128] [--engine vllm]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time

import torch


def matmul_peak(dtype: torch.dtype, size: int, repeats: int = 5) -> float:
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    torch.matmul(a, b)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * size**3 / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--engine", default="vllm", help="rollout engine (generation is not part of the figure)")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    args = ap.parse_args()

    from grpo_bench.config import TrainConfig
    from grpo_bench.models import DEFAULT_MODEL, eos_ids, load_policy
    from grpo_bench.plugins.algorithms.grpo import GRPO
    from grpo_bench.plugins.benchmarks.arith import Arith
    from grpo_bench.plugins.rewards.integer_answer import integer_answer
    from grpo_bench.registry import default_registry
    from grpo_bench.scoring import RewardScorer
    from grpo_bench.training import Trainer

    peaks = {"bf16": matmul_peak(torch.bfloat16, args.size), "fp32": matmul_peak(torch.float32, args.size)}
    model, tok = load_policy(DEFAULT_MODEL, "float32")
    params = sum(p.numel() for p in model.parameters())
    engine = default_registry().get("engines", args.engine)(model, tok, eos_ids(model, tok))
    bench = Arith("arith", (1, 2, 3))
    scorer = RewardScorer({"integer_answer": integer_answer})
    cfg = TrainConfig(steps=args.steps, prompts_per_step=8, group_size=8, max_new_tokens=args.max_new_tokens, mu=1,
                      learning_rate=1e-6, checkpoint_every=0, bf16_autocast=False)
    with tempfile.TemporaryDirectory() as tmp:
        rows = Trainer(model, tok, engine, GRPO(), scorer, bench, bench.problems("train"), cfg, 0, tmp).train()
    scorer.close()
    achieved = []
    for r in rows:
        # tokens seen by the training phase: train_tokens_per_s * train_s = mu * trained tokens (fwd+bwd);
        # the no-grad forward over untrained rows is small and left out (a lower bound)
        trained_tokens = r["train_tokens_per_s"] * r["train_s"] / cfg.mu
        flops = 6 * params * trained_tokens * cfg.mu
        achieved.append(flops / r["train_s"])
    med = statistics.median(achieved)
    print(f"\nparameters: {params / 1e6:.1f} M; torch {torch.__version__}; threads {torch.get_num_threads()}\n")
    print("| quantity | GFLOP/s |")
    print("|---|---|")
    print(f"| matmul peak bf16 ({args.size}^3) | {peaks['bf16'] / 1e9:.0f} |")
    print(f"| matmul peak fp32 ({args.size}^3) | {peaks['fp32'] / 1e9:.0f} |")
    print(f"| training phase, fp32 (median of {len(rows)} steps) | {med / 1e9:.1f} |")
    print(f"\nMFU vs fp32 peak: {100 * med / peaks['fp32']:.1f}%; vs bf16 peak: {100 * med / peaks['bf16']:.1f}%")
    print("per step (GFLOP/s): " + ", ".join(f"{a / 1e9:.1f}" for a in achieved))
    lengths = ", ".join(f"{r['response_length_mean']:.0f}/{r['response_length_max']}" for r in rows)
    print(f"completion length mean/max per step: {lengths}; trained rows per step: "
          + ", ".join(f"{r['trained_frac']:.2f}" for r in rows))
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.1f} GiB")


if __name__ == "__main__":  # vLLM starts workers with spawn
    main()
