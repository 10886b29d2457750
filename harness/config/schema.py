"""The configuration schema: every key a suite file may hold, with its type and default.

Sections map to dataclasses (``[suite]`` -> :class:`SuiteMeta`, ``[train]`` -> :class:`TrainSection`,
``[eval]`` -> :class:`EvalSection`, ``[[variants]]`` -> :class:`Variant`). :class:`TrainConfig` and
:class:`EvalConfig` are what the trainer and the evaluator receive. Nothing here imports the
pipeline stages, so every stage may import it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: experiment trackers a suite may name in ``[suite] report_to``, with the package each needs
TRACKERS = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}


@dataclass
class TrainConfig:
    steps: int = 10
    prompts_per_step: int = 4
    group_size: int = 4
    max_new_tokens: int = 64
    max_prompt_tokens: int = 256
    learning_rate: float = 1e-6
    mu: int = 4
    temperature: float = 1.0
    grad_clip: float = 1.0
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.99
    micro_batch_size: int = 8  # rows per forward/backward at most
    # padded tokens per forward/backward at most (rows x width; shared prompts count once): micro-batches
    # fill up to both limits, so short completions train in few large matmuls and long ones stay within
    # memory. 0 = rows only (micro_batch_size). The loss and its normalisers do not depend on the split.
    micro_batch_tokens: int = 0
    generation_batch_size: int = 64
    checkpoint_every: int = 10
    # forward/backward under torch.autocast(bfloat16); weights and AdamW stay fp32. "auto" (the default)
    # resolves at suite load to true where the device has fast bf16 (CUDA with bf16, or a CPU with
    # amx_bf16 / avx512_bf16), else false; the resolved value is what every run records.
    bf16_autocast: bool | str = "auto"
    # AdamW's fused kernel (one pass over each parameter's state) instead of the multi-tensor ("foreach")
    # one: the same update up to rounding. "auto" resolves at suite load to true where torch has the
    # fused kernel for the device (CPU and CUDA in torch >= 2.4); the resolved value is recorded.
    adamw_fused: bool | str = "auto"
    # the policy's parameters held in bf16 while it trains, AdamW updating fp32 master weights
    # (training/precision.py): no per-op weight casts and half the memory traffic of autocast, while the
    # gradient sums, clipping and AdamW stay fp32. "auto" resolves at suite load like bf16_autocast.
    bf16_weights: bool | str = "auto"
    # the training policy's attention kernel: "sdpa" (torch's scaled_dot_product_attention), "eager"
    # (matmul + softmax) or "auto", resolved at suite load: "eager" on CPU, where torch's flash-attention
    # backward is slow on short rows, else "sdpa". The same function up to rounding; recorded resolved.
    attention: str = "auto"
    # the C allocator keeps freed memory for the next tensor instead of unmapping it (glibc mallopt:
    # training/allocator.py), so a step's tensors stop page-faulting fresh zeroed pages; changes no number.
    # Process-wide once on. "auto" resolves at suite load to true where the C library is glibc.
    keep_freed_memory: bool | str = "auto"
    # the ratio noise floor (training/noise_floor.py): every noise_floor_every steps (and at a process's first
    # step) the first trained micro-batch is read twice at theta_old, once with every trainable weight nudged by
    # +-noise_floor_eps (random signs), and the sequence k3 between the two reads is logged as
    # noise_floor_k3_seq beside the real inner-step movement kl_old_k3_seq. Measurement only: the weights are
    # restored exactly and no training random state is drawn. 0 = never.
    noise_floor_every: int = 5
    noise_floor_eps: float = 1e-7
    # the output layer (LM head) in float32 under bf16 autocast or bf16 weights: logits without bf16 rounding
    # (MiniMax-M1's fix for the training-inference mismatch); the log-softmax is float32 in any case
    fp32_lm_head: bool = False
    # the behaviour policy in the importance ratio: "trainer" = the trainer's own forward at theta_old (the
    # sampler-learner gap stays uncorrected); "engine" = the rollout engine's sampling log-probs
    behaviour_logprobs: str = "trainer"
    # a correction for the sampler-learner gap, rho = pi_learner(theta_old) / pi_sampler per token (or its
    # product over the sequence): "none"; "tis" = every policy-loss term weighted by min(rho, cap) (truncated
    # importance sampling, Yao et al. 2025); "mis" = terms whose rho leaves [1/cap, cap] are dropped (weight 0)
    sampler_correction: str = "none"
    sampler_correction_level: str = "token"  # "token": rho per token; "sequence": the product over the completion
    sampler_correction_cap: float = 2.0  # C > 1; also the bound of the logged engine_gap_frac_over_cap
    # run each group's shared prompt once per pass (its keys/values gathered to the G completions):
    # the same computation as G full rows up to floating-point rounding, with P + G*C tokens instead of G*(P + C)
    share_prompt: bool = True
    # rows that do not train (A = 0 under an algorithm where that is inert, no KL term) skip the backward
    # passes; with inert_row_stats they still get one no-grad forward so that the step's entropy and
    # engine-gap statistics cover every sample. false skips it: those statistics then cover trained rows only.
    inert_row_stats: bool = True
    # the mu passes over the batch: 1 = the whole batch per optimizer step; k > 1 = k shuffled mini-batches,
    # one optimizer step each (mu * k steps per rollout batch), each loss normalised over its mini-batch
    mini_batches: int = 1
    # DAPO's dynamic sampling: "off"; "drop" = groups whose rewards are all equal leave the batch (and its
    # normalisers); "refill" = drop, then draw further prompts until prompts_per_step informative groups
    # or max_draws draws (the first included)
    dynamic_sampling: str = "off"
    max_draws: int = 3
    # DAPO's overlong reward shaping: the last overlong_buffer tokens of max_new_tokens ramp the reward
    # down to -overlong_penalty (0 = off); overlong_filter: truncated completions are left out of the loss
    overlong_buffer: int = 0
    overlong_penalty: float = 1.0
    overlong_filter: bool = False
    # the run stops (one line, exit 2, resumable) when any reward errors or times out on more than this
    # share of a step's samples; 1.0 never stops, 0.0 stops at the first error
    max_reward_error_frac: float = 0.5
    # samples.jsonl (every training sample's prompt id, completion, reward values, total, advantage and
    # log_extra columns) records at most this many steps: every k-th step, k = ceil(steps / samples_max_steps)
    # (0: no file). Changes no number.
    samples_max_steps: int = 200


@dataclass
class EvalGeneration:
    """How evaluation generates: shared by the suite's ``[eval]`` and what the evaluator receives."""

    max_new_tokens: int = 256
    samples: int = 0  # k for mean@k (0: greedy only)
    temperature: float = 1.0  # for the k samples
    batch_size: int = 64


@dataclass
class EvalConfig(EvalGeneration):
    seed: int = 0


@dataclass
class SuiteMeta:
    name: str = ""
    model: str = "smollm2-135m-instruct"
    dtype: str = "float32"
    engine: str = "auto"  # "auto": vllm where it imports, else hf (resolved and recorded)
    engine_options: dict = field(default_factory=dict)
    device: str = "auto"  # "auto": cuda when available, else cpu
    seeds: list[int] = field(default_factory=lambda: [0])
    keep_checkpoints: bool = False
    # the leaderboard's verdicts: equivalence margin (a fraction: 0.03 = 3 points of pass@1) and the variant
    # that must come out "different" from the reference for the design to be able to decide (none: "")
    equivalence_margin: float = 0.03
    positive_control: str = ""
    # What one run asks of a Ray cluster (``--executor ray``): CPUs, and GPUs ("auto": 1 when the cluster has
    # GPUs and device is not "cpu", else 0). Execution only: not in the config hash, never changes a number.
    resources: dict = field(default_factory=lambda: {"cpus": 1, "gpus": "auto"})
    data: str = "bundled"  # "bundled": the copies in grpo_bench/data; "hub": the hub datasets (needs the hub)
    report_to: list[str] = field(default_factory=list)  # experiment trackers: "tensorboard", "wandb", "mlflow"
    # plain Python modules to import before the suite's names are checked (no packaging): each registers its
    # rewards, algorithms, ... with the decorators of grpo_bench.declare or the hooks; looked up first in the
    # suite file's folder, then on sys.path. Where code comes from, not a setting: recorded when given, never
    # in the config hash (the names the suite uses are)
    plugins: list[str] = field(default_factory=list)


@dataclass
class TrainSection(TrainConfig):
    benchmark: str = "arith"
    # the benchmark's version (0: its default, resolved at load and recorded; benchmark.py, Benchmark.version)
    benchmark_version: int = 0
    split: str = "train"
    rewards: list[str] = field(default_factory=lambda: ["math_verify"])
    reward_weights: dict = field(default_factory=dict)
    reward_timeout_s: float = 10.0
    reward_workers: int = 1
    # LoRA through peft ({} = off: full fine-tuning): {r, alpha, dropout, target_modules}; see training/lora.py
    lora: dict = field(default_factory=dict)


@dataclass
class EvalTarget:
    name: str = ""
    split: str = "test"
    limit: int = 0  # 0: the whole split
    # the benchmark's version (0: train.benchmark_version when it is the train benchmark, else its default);
    # resolved at load and recorded
    version: int = 0


@dataclass
class EvalSection(EvalGeneration):
    """The suite's ``[eval]``: generation settings and targets; the seed is each run's own seed."""

    benchmarks: list[EvalTarget] = field(default_factory=list)
    every: int = 0  # evaluate during training every k steps (0: only the final evaluation)
    every_limit: int = 20  # problems of each target in those intermediate evaluations (the first n of its limit)


@dataclass
class Variant:
    algorithm: str = ""
    name: str = ""
    options: dict = field(default_factory=dict)
    #: ``[train]`` keys this variant changes (e.g. a positive control at a tenth of the learning rate)
    train: dict = field(default_factory=dict)


#: the kinds of a pre-registered claim (docs/leaderboard.md, "Claims"), and whether each needs a margin
CLAIM_KINDS = {"equivalence": True, "non_inferiority": True, "difference": False}


@dataclass
class Claim:
    """A pre-registered claim (``[[claims]]``): ``variant`` compared with ``reference`` on the per-seed paired
    differences of ``metric`` on eval target ``target``, tested at level ``alpha``."""

    variant: str = ""
    reference: str = ""
    kind: str = ""  # one of CLAIM_KINDS
    margin: float = 0.0  # in points of the metric (3 = 3 percentage points); the kinds that use one need > 0
    metric: str = "pass@1"  # or "mean@k" with k = [eval] samples
    target: str = ""  # eval key "NAME-SPLIT" (e.g. "arith-test"); "" = the first [eval] target
    alpha: float = 0.05
    name: str = ""  # a label; "" = "VARIANT KIND REFERENCE"


@dataclass
class Suite:
    path: Path
    suite: SuiteMeta
    train: TrainSection
    eval: EvalSection
    variants: list[Variant]
    #: the ``--set`` items applied (recorded in the provenance; their values are in the resolved config)
    overrides: list[str] = field(default_factory=list)
    #: pre-registered claims (``[[claims]]``): analysis only, never in the config hash
    claims: list[Claim] = field(default_factory=list)

    def resolved(self) -> dict[str, Any]:
        """The suite as plain data (what gets hashed and recorded with every result)."""
        d = dataclasses.asdict(self)
        d.pop("path")
        d.pop("overrides")
        if not d["suite"]["plugins"]:  # at its default the key is not recorded (results written before it existed)
            d["suite"].pop("plugins")
        return d

    def variant(self, name: str) -> Variant:
        return next(v for v in self.variants if v.name == name)
