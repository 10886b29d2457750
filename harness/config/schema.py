"""The configuration schema: every key a suite file may hold, with its type and default.

Sections map to dataclasses (``[suite]`` -> :class:`SuiteMeta`, ``[train]`` -> :class:`TrainSection`,
``[eval]`` -> :class:`EvalSection`, ``[[variants]]`` -> :class:`Variant`). :class:`TrainConfig` and
:class:`EvalConfig` are what the trainer and the evaluator receive. Nothing here imports the
pipeline stages, so every stage may import it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .options import option

#: experiment trackers a suite may name in ``[suite] report_to``, with the package each needs
TRACKERS = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}
#: the kinds of a pre-registered claim (docs/leaderboard.md, "Claims"), and whether each needs a margin
CLAIM_KINDS = {"equivalence": True, "non_inferiority": True, "difference": False}

#: Bounds on settings, each with its reason (every one is checked at load, before anything is written).
MAX_TOKENS = 1_048_576  # any single length setting (max_new_tokens, max_prompt_tokens): beyond every model's context
MAX_SEED = 2**31 - 1  # seeds feed torch.manual_seed, random.Random and the engine's int32 sampling seeds
MAX_EVAL_SAMPLES = 1024  # eval.samples (k): k completions per problem are held in memory
MAX_ROLLOUT_SAMPLES = 65_536  # prompts_per_step * group_size: every sample's tokens, log-probs and reward
#                               results of a step are held in memory at once (group_size = 10**9 once OOM-killed a machine)
#: the values of a setting that "auto" resolves per device at load (see config.numerics.resolve_auto)
AUTO_BOOL = (True, False, "auto")

_COUNT = {"min": 1, "why": "a count"}
_LENGTH = {**_COUNT, "max": MAX_TOKENS, "max_why": "longer than any model's context"}
_POSITIVE = {"min": 0, "min_open": True}
_SEED = {"min": 0, "max": MAX_SEED, "why": "seeds the RNGs"}


@dataclass
class TrainConfig:
    steps: int = option(10, help="optimizer rollout steps of each run", **_COUNT)
    prompts_per_step: int = option(4, help="prompts drawn per step (each gets group_size completions)", **_COUNT)
    group_size: int = option(4, help=f"completions per prompt (G); prompts_per_step * group_size is at most "
                                     f"{MAX_ROLLOUT_SAMPLES}", min=2, why="advantages are normalised within a group")
    max_new_tokens: int = option(64, help="longest completion generated in training, in tokens", **_LENGTH)
    max_prompt_tokens: int = option(256, help="longest prompt, in tokens (longer ones are refused)", **_LENGTH)
    learning_rate: float = option(1e-6, help="AdamW learning rate", **_POSITIVE)
    mu: int = option(4, help="passes over each rollout batch (inner steps)", **_COUNT)
    temperature: float = option(1.0, help="sampling temperature of the rollouts", **_POSITIVE)
    grad_clip: float = option(1.0, help="gradient norm clip", **_POSITIVE)
    weight_decay: float = option(0.0, help="AdamW weight decay", min=0)
    adam_beta1: float = option(0.9, help="AdamW beta1", min=0, max=1, max_open=True,
                               why="an exponential moving-average factor")
    adam_beta2: float = option(0.99, help="AdamW beta2", min=0, max=1, max_open=True,
                               why="an exponential moving-average factor")
    micro_batch_size: int = option(8, help="rows per forward/backward at most", **_COUNT)
    # padded tokens per forward/backward at most (rows x width; shared prompts count once): micro-batches
    # fill up to both limits, so short completions train in few large matmuls and long ones stay within
    # memory. 0 = rows only (micro_batch_size). The loss and its normalisers do not depend on the split.
    micro_batch_tokens: int = option(0, help="padded tokens per forward/backward at most (0: rows only)", min=0,
                                     why="0: rows only")
    generation_batch_size: int = option(64, help="prompts per generation call of the rollout engine", **_COUNT)
    checkpoint_every: int = option(10, help="save a resumable checkpoint every k steps (0: only at the end)", min=0,
                                   why="0: only at the end")
    # forward/backward under torch.autocast(bfloat16); weights and AdamW stay fp32. "auto" (the default)
    # resolves at suite load to true where the device has fast bf16 (CUDA with bf16, or a CPU with
    # amx_bf16 / avx512_bf16), else false; the resolved value is what every run records.
    bf16_autocast: bool | str = option("auto",
                                       help="forward/backward under bf16 autocast (\"auto\": where the device has fast bf16)",
                                       choices=AUTO_BOOL)
    # AdamW's fused kernel (one pass over each parameter's state) instead of the multi-tensor ("foreach")
    # one: the same update up to rounding. "auto" resolves at suite load to true where torch has the
    # fused kernel for the device (CPU and CUDA in torch >= 2.4); the resolved value is recorded.
    adamw_fused: bool | str = option("auto",
                                     help="AdamW's fused kernel (\"auto\": where torch has it for the device)",
                                     choices=AUTO_BOOL)
    # the policy's parameters held in bf16 while it trains, AdamW updating fp32 master weights
    # (training/precision.py): no per-op weight casts and half the memory traffic of autocast, while the
    # gradient sums, clipping and AdamW stay fp32. "auto" resolves at suite load like bf16_autocast.
    bf16_weights: bool | str = option("auto",
                                      help="policy weights held in bf16 with fp32 master weights (\"auto\": like bf16_autocast)",
                                      choices=AUTO_BOOL)
    # the training policy's attention kernel: "sdpa" (torch's scaled_dot_product_attention), "eager"
    # (matmul + softmax) or "auto", resolved at suite load: "eager" on CPU, where torch's flash-attention
    # backward is slow on short rows, else "sdpa". The same function up to rounding; recorded resolved.
    attention: str = option("auto",
                            help="attention kernel of the training policy (\"auto\": eager on CPU, else sdpa)",
                            choices=("auto", "sdpa", "eager"))
    # the C allocator keeps freed memory for the next tensor instead of unmapping it (glibc mallopt:
    # training/allocator.py), so a step's tensors stop page-faulting fresh zeroed pages; changes no number.
    # Process-wide once on. "auto" resolves at suite load to true where the C library is glibc.
    keep_freed_memory: bool | str = option("auto",
                                           help="the C allocator keeps freed memory (\"auto\": where the C library is glibc)",
                                           choices=AUTO_BOOL)
    # the ratio noise floor (training/noise_floor.py): every noise_floor_every steps (and at a process's first
    # step) the first trained micro-batch is read twice at theta_old, once with every trainable weight nudged by
    # +-noise_floor_eps (random signs), and the sequence k3 between the two reads is logged as
    # noise_floor_k3_seq beside the real inner-step movement kl_old_k3_seq. Measurement only: the weights are
    # restored exactly and no training random state is drawn. 0 = never.
    noise_floor_every: int = option(5, help="measure the ratio noise floor every k steps (0: never)", min=0,
                                    why="0: never")
    noise_floor_eps: float = option(1e-7, help="the weight nudge of the noise-floor measurement", min=0,
                                    min_open=True, max=1e-4, why="a nudge far below any real step")
    # the output layer (LM head) in float32 under bf16 autocast or bf16 weights: logits without bf16 rounding
    # (MiniMax-M1's fix for the training-inference mismatch); the log-softmax is float32 in any case
    fp32_lm_head: bool = option(False, help="the LM head in float32 under bf16 autocast or bf16 weights")
    # the behaviour policy in the importance ratio: "trainer" = the trainer's own forward at theta_old (the
    # sampler-learner gap stays uncorrected); "engine" = the rollout engine's sampling log-probs
    behaviour_logprobs: str = option("trainer",
                                     help="the behaviour policy in the importance ratio: the trainer's forward or the engine's log-probs",
                                     choices=("trainer", "engine"))
    # a correction for the sampler-learner gap, rho = pi_learner(theta_old) / pi_sampler per token (or its
    # product over the sequence): "none"; "tis" = every policy-loss term weighted by min(rho, cap) (truncated
    # importance sampling, Yao et al. 2025); "mis" = terms whose rho leaves [1/cap, cap] are dropped (weight 0)
    sampler_correction: str = option("none",
                                     help="sampler-learner gap correction: none, tis (truncated weights) or mis (masked)",
                                     choices=("none", "tis", "mis"))
    sampler_correction_level: str = option("token", help="rho per token, or its product over the completion",
                                           choices=("token", "sequence"))
    sampler_correction_cap: float = option(2.0,
                                           help="the cap C of the correction; also the bound of the logged engine_gap_frac_over_cap",
                                           min=1, min_open=True, why="rho is kept within [1/C, C]")
    # run each group's shared prompt once per pass (its keys/values gathered to the G completions):
    # the same computation as G full rows up to floating-point rounding, with P + G*C tokens instead of G*(P + C)
    share_prompt: bool = option(True,
                                help="run each group's shared prompt once per pass (same numbers up to rounding)")
    # rows that do not train (A = 0 under an algorithm where that is inert, no KL term) skip the backward
    # passes; with inert_row_stats they still get one no-grad forward so that the step's entropy and
    # engine-gap statistics cover every sample. false skips it: those statistics then cover trained rows only.
    inert_row_stats: bool = option(True,
                                   help="rows that do not train still get a no-grad forward for the step's statistics")
    # the mu passes over the batch: 1 = the whole batch per optimizer step; k > 1 = k shuffled mini-batches,
    # one optimizer step each (mu * k steps per rollout batch), each loss normalised over its mini-batch
    mini_batches: int = option(1,
                               help="optimizer steps per pass over the batch (at most prompts_per_step * group_size)",
                               min=1)
    # DAPO's dynamic sampling: "off"; "drop" = groups whose rewards are all equal leave the batch (and its
    # normalisers); "refill" = drop, then draw further prompts until prompts_per_step informative groups
    # or max_draws draws (the first included)
    dynamic_sampling: str = option("off",
                                   help="DAPO dynamic sampling: drop groups of equal rewards, or drop and refill",
                                   choices=("off", "drop", "refill"))
    max_draws: int = option(3, help="prompt draws per step at most under dynamic_sampling = \"refill\"", min=1)
    # DAPO's overlong reward shaping: the last overlong_buffer tokens of max_new_tokens ramp the reward
    # down to -overlong_penalty (0 = off); overlong_filter: truncated completions are left out of the loss
    overlong_buffer: int = option(0,
                                  help="last tokens of max_new_tokens over which the reward ramps down (0: off; at most max_new_tokens)",
                                  min=0)
    overlong_penalty: float = option(1.0, help="the reward penalty at max_new_tokens under overlong_buffer", min=0)
    overlong_filter: bool = option(False, help="truncated completions are left out of the loss")
    # the run stops (one line, exit 2, resumable) when any reward errors or times out on more than this
    # share of a step's samples; 1.0 never stops, 0.0 stops at the first error
    max_reward_error_frac: float = option(0.5,
                                          help="the run stops when more of a step's samples than this share have reward errors",
                                          min=0, max=1, why="a share of a step's samples")
    # samples.jsonl (every training sample's prompt id, completion, reward values, total, advantage and
    # log_extra columns) records at most this many steps: every k-th step, k = ceil(steps / samples_max_steps)
    # (0: no file). Changes no number.
    samples_max_steps: int = option(200, help="steps recorded in samples.jsonl at most (0: no file)", min=0,
                                    why="0: no samples.jsonl")


@dataclass
class EvalGeneration:
    """How evaluation generates: shared by the suite's ``[eval]`` and what the evaluator receives."""

    max_new_tokens: int = option(256, help="longest completion generated in evaluation, in tokens", **_LENGTH)
    samples: int = option(0, help="k sampled completions per problem for mean@k (0: greedy only)", min=0,
                          max=MAX_EVAL_SAMPLES, why="0: greedy only; k samples per problem are held in memory")
    temperature: float = option(1.0, help="sampling temperature of the k samples", finite=True, **_POSITIVE)
    batch_size: int = option(64, help="prompts per generation call", **_COUNT)


@dataclass
class EvalConfig(EvalGeneration):
    seed: int = option(0, help="the evaluation's seed (a suite's runs use their own seed)", **_SEED)


@dataclass
class SuiteMeta:
    name: str = option("", help="the suite's name: its results folder (\"\": the file's name)")
    model: str = option("smollm2-135m-instruct", help="the policy: a built-in name, a model folder or a Hub id")
    dtype: str = option("float32", help="the policy's weights dtype", choices=("float32", "bfloat16", "float16"))
    engine: str = option("auto",
                         help="the rollout engine (\"auto\": vllm where it imports, else hf; recorded resolved)")
    engine_options: dict = option(help="options of the rollout engine (grpo-bench plugins lists them)", factory=dict)
    device: str = option("auto", help="auto (cuda when available, else cpu), cpu, cuda, cuda:N or mps")
    seeds: list[int] = option(help="one run per variant and seed", factory=lambda: [0], **_SEED)
    keep_checkpoints: bool = option(False, help="keep each run's checkpoints after it finishes")
    # the leaderboard's verdicts: equivalence margin (a fraction: 0.03 = 3 points of pass@1) and the variant
    # that must come out "different" from the reference for the design to be able to decide (none: "")
    equivalence_margin: float = option(0.03, help="the leaderboard's equivalence margin, a fraction of pass@1", min=0,
                                       max=1, min_open=True, max_open=True, why="a fraction of pass@1")
    positive_control: str = option("", help="the variant that must come out different from the reference (\"\": none)")
    # What one run asks of a Ray cluster (``--executor ray``): CPUs, and GPUs ("auto": 1 when the cluster has
    # GPUs and device is not "cpu", else 0). Execution only: not in the config hash, never changes a number.
    resources: dict = option(help="what one run asks of a Ray cluster: {cpus, gpus} (not in the config hash)",
                             factory=lambda: {"cpus": 1, "gpus": "auto"})
    data: str = option("bundled", help="the copies in grpo_bench/data, or the hub datasets",
                       choices=("bundled", "hub"))
    report_to: list[str] = option(help="experiment trackers to report to", factory=list, choices=tuple(TRACKERS))
    # plain Python modules to import before the suite's names are checked (no packaging): each registers its
    # rewards, algorithms, ... with the decorators of grpo_bench.declare or the hooks; looked up first in the
    # suite file's folder, then on sys.path. Where code comes from, not a setting: recorded when given, never
    # in the config hash (the names the suite uses are)
    plugins: list[str] = option(help="Python modules to import before the names are checked (not in the config hash)",
                                factory=list)


@dataclass
class LoraOptions:
    """``[train] lora``: LoRA through peft (training/lora.py); ``{}`` is off (full fine-tuning)."""

    r: int = option(8, help="the adapters' rank", min=1)
    alpha: float = option(16, help="the adapters' scale numerator (updates are scaled by alpha / r)", min=0,
                          min_open=True)
    dropout: float = option(0.0, help="dropout on the adapters' input", min=0, max=1, max_open=True)
    target_modules: list[str] = option(help="names of the modules adapted (non-empty)",
                                       factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])


@dataclass
class TrainSection(TrainConfig):
    benchmark: str = option("arith", help="the training benchmark (grpo-bench benchmarks lists them)")
    # the benchmark's version (0: its default, resolved at load and recorded; benchmark.py, Benchmark.version)
    benchmark_version: int = option(0, help="the benchmark's version (0: its default, recorded resolved)")
    split: str = option("train", help="the benchmark split trained on")
    rewards: list[str] = option(help="reward functions (or reward models) summed into the reward",
                                factory=lambda: ["math_verify"])
    reward_weights: dict = option(help="weight of each reward in the sum (default 1 each)", factory=dict)
    reward_timeout_s: float = option(10.0, help="seconds a reward may take on one sample", **_POSITIVE)
    reward_workers: int = option(1, help="processes computing rewards", **_COUNT)
    # LoRA through peft ({} = off: full fine-tuning): {r, alpha, dropout, target_modules}; see training/lora.py
    lora: dict = option(help="LoRA options {r, alpha, dropout, target_modules} ({}: full fine-tuning)", factory=dict)


@dataclass
class EvalTarget:
    name: str = option("", help="the benchmark evaluated (required)")
    split: str = option("test", help="its split")
    limit: int = option(0, help="problems evaluated, the first n of the split (0: the whole split)", min=0,
                        why="0: the whole split")
    # the benchmark's version (0: train.benchmark_version when it is the train benchmark, else its default);
    # resolved at load and recorded
    version: int = option(0, help="the benchmark's version (0: train's for the train benchmark, else its default)")


@dataclass
class EvalSection(EvalGeneration):
    """The suite's ``[eval]``: generation settings and targets; the seed is each run's own seed."""

    benchmarks: list[EvalTarget] = option(help="the eval targets: tables {name, split, limit, version}", factory=list)
    every: int = option(0, help="evaluate during training every k steps (0: only the final evaluation)", min=0)
    every_limit: int = option(20, help="problems of each target in those intermediate evaluations (the first n of its "
                                       "limit)", min=1)


@dataclass
class Variant:
    algorithm: str = option("", help="the algorithm (grpo-bench plugins lists them; required)")
    name: str = option("", help="the variant's name (\"\": the algorithm's name)")
    options: dict = option(help="the algorithm's options (recorded with every default filled in)", factory=dict)
    #: ``[train]`` keys this variant changes (e.g. a positive control at a tenth of the learning rate)
    train: dict = option(help="[train] keys this variant changes", factory=dict)


@dataclass
class Claim:
    """A pre-registered claim (``[[claims]]``): ``variant`` compared with ``reference`` on the per-seed paired
    differences of ``metric`` on eval target ``target``, tested at level ``alpha``."""

    variant: str = option("", help="the variant the claim is about (required)")
    reference: str = option("", help="the variant it is compared with (required)")
    kind: str = option("", help="the kind of claim (required)", choices=tuple(CLAIM_KINDS))
    margin: float = option(0.0, help="in points of the metric (3 = 3 percentage points); equivalence and "
                                     "non_inferiority need one in (0, 100), difference none")
    metric: str = option("pass@1", help="pass@1, or mean@k with k = [eval] samples")
    target: str = option("", help="eval key NAME-SPLIT, e.g. arith-test (\"\": the first [eval] target)")
    alpha: float = option(0.05, help="the test's level", min=0, max=0.5, min_open=True, max_open=True)
    name: str = option("", help="a label (\"\": VARIANT KIND REFERENCE)")


@dataclass
class Suite:
    path: Path = option(help="the suite file")
    suite: SuiteMeta = option(help="[suite]: the model, engine, seeds and leaderboard settings")
    train: TrainSection = option(help="[train]: the shared training settings")
    eval: EvalSection = option(help="[eval]: generation settings and targets")
    variants: list[Variant] = option(help="[[variants]]: the algorithms compared")
    #: the ``--set`` items applied (recorded in the provenance; their values are in the resolved config)
    overrides: list[str] = option(help="the --set items applied", factory=list)
    #: pre-registered claims (``[[claims]]``): analysis only, never in the config hash
    claims: list[Claim] = option(help="[[claims]]: pre-registered claims (analysis only)", factory=list)

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
