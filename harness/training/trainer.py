"""The training loop: sample G completions per prompt, score, advantages, mu optimizer steps.

One step: generate (rollout engine) -> score (rewards) -> advantages (algorithm) -> old log-probs
(no-grad forward; reference log-probs too when beta > 0) -> mu AdamW steps on the algorithm's loss
with gradient clipping -> sync the engine's weights -> log a JSONL row -> checkpoint now and then.

``Trainer.step`` runs these as named stages: ``collect``, ``step_advantages``, ``plan_micro_batches``,
``maybe_measure_noise_floor``, ``nograd_logprobs`` and ``sampler_logprobs``, then ``fresh_gradient_passes``
or ``reused_gradient_passes`` (each pass ``accumulate_gradient`` -> ``micro_batch_backward``), the weight
sync, and the metrics row; their typed inputs (the plan, the pass state, the timer) are in step_parts.py.
"""

from __future__ import annotations

import contextlib
import functools
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from ..algorithm import Algorithm, PolicyBatch, Stats, check_needs
from ..benchmark import Benchmark, Problem, prompt_token_ids, reward_columns
from ..config.schema import TrainConfig
from ..engine import RolloutEngine, SamplingConfig
from ..errors import UserError
from ..io import append_jsonl, read_jsonl, replace_dir, write_jsonl
from ..scoring import RewardScorer
from .allocator import keep_freed_memory
from .noise_floor import measure_noise_floor
from ..config.numerics import AUTO_SWITCHES, algorithm_compares_ratios, resolve_auto
from .policy import MicroBatch, completion_logprobs, make_micro_batches
from .precision import MasterWeights, fp32_lm_head
from .records import SampleLog, logged_metrics, merge_metrics, sample_records, trainer_state
from .sampler_gap import correction_weight, engine_logprobs, log_weight, needs_engine_logprobs
from .step_parts import (LossNormaliser, MicroBatchPlan, PassState, StageTimer, option_metrics,
                         reward_metrics, rollout_metrics, staleness_stats, training_metrics)


def prompt_order(num_problems: int, seed: int) -> list[int]:
    """The order prompts are drawn in: a function of the seed only, identical for every variant."""
    order = list(range(num_problems))
    random.Random(seed).shuffle(order)
    return order


def step_problems(problems: list[Problem], order: list[int], step: int, per_step: int) -> list[Problem]:
    start = step * per_step
    return [problems[order[(start + k) % len(order)]] for k in range(per_step)]


def sampling_seed(seed: int, step: int) -> int:
    return (seed * 1_000_003 + step * 7919) % (2**31 - 1)


def draw_seed(seed: int, step: int, draw: int) -> int:
    """The sampling seed of a step's draw (draw 0: the step's own seed; dynamic sampling's extra draws differ)."""
    return (sampling_seed(seed, step) + draw * 104_729) % (2**31 - 1)


def reserve_order(num_problems: int, seed: int) -> list[int]:
    """The second prompt stream that dynamic sampling's extra draws come from: a function of the seed only."""
    order = list(range(num_problems))
    random.Random(f"reserve:{seed}").shuffle(order)
    return order


def overlong_shaping(lengths: list[int], cfg: TrainConfig) -> list[float]:
    """DAPO's soft overlong punishment: 0 up to L - B tokens, then falling linearly to -penalty at the budget
    L = max_new_tokens (B = overlong_buffer; 0 turns it off)."""
    if cfg.overlong_buffer <= 0:
        return [0.0] * len(lengths)
    start = cfg.max_new_tokens - cfg.overlong_buffer
    return [-cfg.overlong_penalty * max(0, n - start) / cfg.overlong_buffer for n in lengths]


def mini_batch_parts(rows: list[int], k: int, seed: int) -> list[list[int]]:
    """``rows`` in k mini-batches of near-equal size: as given when k = 1, else shuffled (seeded by the
    step) and cut in k; the same partition and order serve all mu passes (as verl and TRL)."""
    if k <= 1 or len(rows) <= 1:
        return [list(rows)]
    rows = list(rows)
    random.Random(seed).shuffle(rows)
    k = min(k, len(rows))
    size, extra = divmod(len(rows), k)
    parts, start = [], 0
    for j in range(k):
        end = start + size + (j < extra)
        parts.append(rows[start:end])
        start = end
    return parts


@dataclass
class Rollout:
    """One step's training batch (the kept groups) and what was drawn to get it."""

    problems: list = field(default_factory=list)  # the groups that train, in order
    flat: list = field(default_factory=list)  # (problem, completion) per row
    rewards: torch.Tensor | None = None  # [P, G] training rewards, overlong shaping included
    shaping: list = field(default_factory=list)  # per row of flat
    first: list = field(default_factory=list)  # draw 0's (problem, completion): the stream every variant sees
    first_scored: object = None
    draws: int = 0
    groups_drawn: int = 0
    groups_dropped: int = 0  # all rewards equal (dynamic sampling)
    groups_surplus: int = 0  # informative but beyond prompts_per_step
    gen_s: float = 0.0
    score_s: float = 0.0
    generated_tokens: int = 0
    records: list = field(default_factory=list)  # per row of flat: each reward's value, log_extra values
    metric_values: dict = field(default_factory=dict)  # log_metric name -> values, over all draws


class Trainer:
    def __init__(self, model, tokenizer, engine: RolloutEngine, algorithm: Algorithm, scorer: RewardScorer,
                 benchmark: Benchmark, problems: list[Problem], cfg: TrainConfig, seed: int, run_dir: Path,
                 ref_model=None, correctness_reward: str | None = None,
                 on_step: Callable[[dict], None] | None = None, eval_every: int = 0,
                 on_eval: Callable[[int], list[dict]] | None = None):
        """``on_step(row)`` sees every new metrics row. With ``eval_every = k > 0``, ``on_eval(step)``
        runs after 0, k, 2k, ... and the last step; its rows go to ``eval_curve.jsonl``. It runs
        under a forked RNG state, so it cannot change the training trajectory."""
        self.model, self.tokenizer, self.engine = model, tokenizer, engine
        self.algorithm, self.scorer, self.benchmark = algorithm, scorer, benchmark
        self.cfg, self.seed, self.run_dir = cfg, seed, Path(run_dir)
        self.ref_model = ref_model
        self.correctness_reward = correctness_reward
        self.on_step, self.eval_every, self.on_eval = on_step, eval_every, on_eval
        self.prompt_ids = {p.id: prompt_token_ids(tokenizer, benchmark, p) for p in problems}
        self.problems = [p for p in problems if len(self.prompt_ids[p.id]) <= cfg.max_prompt_tokens]
        if not self.problems:
            raise ValueError(f"no training prompt fits max_prompt_tokens={cfg.max_prompt_tokens}")
        self.order = prompt_order(len(self.problems), seed)
        self.reserve = reserve_order(len(self.problems), seed)
        algorithm.bind(group_size=cfg.group_size, max_new_tokens=cfg.max_new_tokens)
        needs = check_needs(algorithm)
        if "ref_logp" in needs and ref_model is None:
            who = getattr(algorithm, "name", type(algorithm).__name__)
            raise UserError(f"algorithm {who!r} needs ref_logp: give the Trainer a ref_model")
        # the engine reports its sampling log-probs when a setting or the algorithm reads them
        self.engine_logprobs_needed = needs_engine_logprobs(cfg) or "engine_logp" in needs
        # a TrainConfig built in Python may still say "auto"; suites resolve it at load
        device = next(model.parameters()).device.type
        ratios = algorithm_compares_ratios(type(algorithm), cfg.mu)
        self.settings = {key: resolve_auto(key, getattr(cfg, key), device, _setting_error, ratios)
                         for key in AUTO_SWITCHES}
        # while it trains the model runs in this layout (attention kernel, bf16 working weights over fp32
        # master weights): from train()'s start (or the first step()) until release_model()
        self._attention_before = None
        self.master = MasterWeights(model) if self.settings["bf16_weights"] else None
        if self.settings["keep_freed_memory"]:
            keep_freed_memory()
        self.params = self.master.master if self.master else [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            self.params, lr=cfg.learning_rate, betas=(cfg.adam_beta1, cfg.adam_beta2),
            weight_decay=cfg.weight_decay, fused=bool(self.settings["adamw_fused"]) or None,
        )
        if self.master:  # after every AdamW step, on any path: the model takes the masters' rounding
            self.optimizer.register_step_post_hook(lambda *_: self.master.push())
        self.metrics_path = self.run_dir / "metrics.jsonl"
        self.eval_curve_path = self.run_dir / "eval_curve.jsonl"
        self.ckpt_dir = self.run_dir / "checkpoint"
        self.samples = SampleLog(self.run_dir, cfg.steps, cfg.samples_max_steps)
        self.start_step = 0
        self.elapsed_before = 0.0
        self.eval_s = 0.0
        self.noise_floor: dict = {}  # the last measurement, logged with every step's row until the next
        self._lm_head_before = None

    # ---- checkpoints ------------------------------------------------------------------------
    def save_checkpoint(self, step: int, elapsed: float) -> None:
        tmp = self.run_dir / "checkpoint.tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        model_state = self.master.state_dict(self.model) if self.master else self.model.state_dict()
        torch.save({"model": model_state, "optimizer": self.optimizer.state_dict(),
                    "step": step, "elapsed_s": elapsed}, tmp / "state.pt")
        replace_dir(tmp, self.ckpt_dir)

    def maybe_resume(self) -> int:
        """Load the last checkpoint if there is one; drop metric rows past it. Returns the next step."""
        state_file = self.ckpt_dir / "state.pt"
        errors_path = self.run_dir / "reward_errors.jsonl"
        if not state_file.exists():
            self.metrics_path.unlink(missing_ok=True)
            errors_path.unlink(missing_ok=True)  # rows of steps that will run again (a stopped run)
            self.eval_curve_path.unlink(missing_ok=True)
            self.samples.start(0)
            return 0
        state = torch.load(state_file, map_location="cpu", weights_only=False)
        self.model.load_state_dict(state["model"])
        if self.master:  # the fp32 values, not their bf16 rounding in the model
            self.master.load_state_dict(self.model, state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.engine.sync_weights(self.model)
        self.start_step = int(state["step"])
        self.elapsed_before = float(state.get("elapsed_s", 0.0))
        write_jsonl(self.metrics_path, [r for r in read_jsonl(self.metrics_path) if r["step"] < self.start_step])
        self.samples.start(self.start_step)
        if errors_path.exists():
            write_jsonl(errors_path, [r for r in read_jsonl(errors_path) if r["step"] < self.start_step])
        # evaluations after k steps ran before the checkpoint at k was written: keep those up to it
        write_jsonl(self.eval_curve_path, [r for r in read_jsonl(self.eval_curve_path) if r["step"] <= self.start_step])
        return self.start_step

    def draw_problems(self, step: int, draw: int) -> list[Problem]:
        """Draw 0 is the prompt stream every variant sees; under ``dynamic_sampling = "refill"`` draw r > 0
        comes from a second seeded stream, at a place fixed by (step, r): also the same for every variant."""
        per_step = self.cfg.prompts_per_step
        if draw == 0:
            return step_problems(self.problems, self.order, step, per_step)
        return step_problems(self.problems, self.reserve, step * (self.cfg.max_draws - 1) + draw - 1, per_step)

    def collect(self, step: int) -> Rollout:
        """Generate and score groups; with dynamic sampling, drop the groups whose (shaped) rewards are all
        equal and, under "refill", draw more prompts until ``prompts_per_step`` informative groups or
        ``max_draws`` draws."""
        cfg, G = self.cfg, self.cfg.group_size
        draws = cfg.max_draws if cfg.dynamic_sampling == "refill" else 1
        kept: list[tuple[Problem, list, torch.Tensor]] = []
        rollout = Rollout()
        for draw in range(draws):
            problems = self.draw_problems(step, draw)
            t0 = time.perf_counter()
            groups = self.engine.generate([self.prompt_ids[p.id] for p in problems], SamplingConfig(
                cfg.max_new_tokens, cfg.temperature, G, draw_seed(self.seed, step, draw), cfg.generation_batch_size,
                logprobs=self.engine_logprobs_needed))
            t1 = time.perf_counter()
            flat = [(p, c) for p, group in zip(problems, groups) for c in group]
            row_problems = [p for p, _ in flat]
            state = trainer_state(cfg, step, len(self.problems), self.eval_every)
            scored = self.scorer.score(self.benchmark.reward_prompts(row_problems),
                                       self.benchmark.reward_completions([c.text for _, c in flat]),
                                       reward_columns(row_problems), [list(c.token_ids) for _, c in flat], state)
            rollout.gen_s += t1 - t0
            rollout.score_s += time.perf_counter() - t1
            rollout.generated_tokens += sum(len(c.token_ids) for _, c in flat)
            if scored.problems:
                append_jsonl(self.run_dir / "reward_errors.jsonl", {"step": step, "draw": draw, "problems": scored.problems})
            check_reward_failures(scored, step, cfg.max_reward_error_frac)
            merge_metrics(rollout.metric_values, scored.metrics)
            records = sample_records(scored)
            shaping = overlong_shaping([len(c.token_ids) for _, c in flat], cfg)
            totals = (torch.tensor(scored.totals, dtype=torch.float64) + torch.tensor(shaping, dtype=torch.float64))
            totals = totals.view(len(problems), G)
            if draw == 0:
                rollout.first, rollout.first_scored = flat, scored
            for j, p in enumerate(problems):
                rollout.groups_drawn += 1
                if cfg.dynamic_sampling != "off" and bool((totals[j] == totals[j, 0]).all()):
                    rollout.groups_dropped += 1
                    continue
                kept.append((p, groups[j], totals[j], records[j * G:(j + 1) * G]))
            rollout.draws = draw + 1
            if len(kept) >= cfg.prompts_per_step:
                break
        rollout.groups_surplus = max(0, len(kept) - cfg.prompts_per_step)
        kept = kept[:cfg.prompts_per_step]
        rollout.problems = [p for p, *_ in kept]
        rollout.flat = [(p, c) for p, group, *_ in kept for c in group]
        rollout.records = [r for *_, group_records in kept for r in group_records]
        rollout.rewards = torch.stack([k[2] for k in kept]) if kept else torch.zeros(0, G, dtype=torch.float64)
        rollout.shaping = overlong_shaping([len(c.token_ids) for _, c in rollout.flat], cfg)
        return rollout

    # ---- one step ---------------------------------------------------------------------------
    def step(self, step: int) -> dict:
        """One step: collect, advantages, plan, noise floor, no-grad log-probs, optimiser passes, sync, metrics."""
        self.take_model()
        t_start = time.perf_counter()
        rollout = self.collect(step)
        t_scored = time.perf_counter()
        advantages = self.step_advantages(rollout, step)
        plan = self.plan_micro_batches(rollout, advantages, step)
        timer = StageTimer()
        with timer("noise_floor"):
            if plan.num_trained_micro_batches:
                self.maybe_measure_noise_floor(step, plan.micro_batches[0])
        # the first-pass trick (old log-probs from the first pass) needs theta = theta_old at each micro-batch's
        # first forward; with several mini-batches and fresh gradients, earlier mini-batches have moved theta:
        # compute old up front
        upfront = len(plan.parts) > 1 and not self.algorithm.reuse_gradient
        with timer("nograd_fwd"):
            state = self.nograd_logprobs(plan, advantages, upfront)
        completions = [c for _, c in rollout.flat]
        state.sampler = self.sampler_logprobs(plan, completions)
        if self.algorithm.reuse_gradient:
            losses, grad_norms = self.reused_gradient_passes(step, plan, state, timer)
        else:
            losses, grad_norms = self.fresh_gradient_passes(step, plan, state, timer, upfront)
        self.optimizer.zero_grad(set_to_none=True)
        engine_gap(plan.micro_batches, state.old, completions, state.entropy_stats, self.cfg.sampler_correction_cap)
        with timer("sync"):
            self.engine.sync_weights(self.model)
        t_trained = time.perf_counter()
        row = {**rollout_metrics(step, rollout, self.cfg.group_size),
               **training_metrics(rollout, plan, self.cfg.mu, losses, grad_norms, timer,
                                  train_s=t_trained - t_scored, step_s=t_trained - t_start),
               **self.noise_floor,
               **option_metrics(self.cfg, rollout, plan),
               **reward_metrics(rollout.first_scored, self.correctness_reward)}
        row.update(state.entropy_stats.result())
        row.update(state.stats.result())
        row.update(logged_metrics(row, rollout.metric_values))
        self.samples.write(step, rollout.flat, rollout.records, rollout.rewards.reshape(-1).tolist(),
                           advantages.tolist())
        return row

    def step_advantages(self, rollout: Rollout, step: int) -> torch.Tensor:
        """The algorithm's advantage per row of the batch, float32 (finite, or the run stops)."""
        lengths = torch.tensor([max(1, len(c.token_ids)) for _, c in rollout.flat], dtype=torch.float64)
        advantages = self.algorithm.advantages(rollout.rewards, lengths.view(-1, self.cfg.group_size))
        advantages = advantages.reshape(-1).float()
        require_finite(advantages, step, "advantages")
        return advantages

    def plan_micro_batches(self, rollout: Rollout, advantages: torch.Tensor, step: int) -> MicroBatchPlan:
        """Which rows are in the loss and which train, the mini-batches (seeded by the step), their
        normalisers and micro-batches; the rows that do not train get micro-batches at the end."""
        cfg, num_rows = self.cfg, len(rollout.flat)
        prompt_ids = [self.prompt_ids[p.id] for p, _ in rollout.flat]
        completion_ids = [c.token_ids for _, c in rollout.flat]
        # overlong filtering: truncated completions leave the loss (and its normalisers) altogether
        in_loss = [i for i in range(num_rows) if not (cfg.overlong_filter and not rollout.flat[i][1].finished)]
        # rows that cannot move the policy (A = 0 under an inert algorithm, no KL) skip the backward passes
        skip_inert = self.algorithm.zero_advantage_is_inert and self.ref_model is None
        trained = {i for i in in_loss if not skip_inert or advantages[i] != 0}
        parts = mini_batch_parts(in_loss, cfg.mini_batches, sampling_seed(self.seed, step))
        normalisers = [LossNormaliser(len(part), sum(len(completion_ids[i]) for i in part)) for part in parts]
        cut = functools.partial(make_micro_batches, prompt_ids, completion_ids, cfg.micro_batch_size,
                                self.tokenizer.pad_token_id, share_prompt=cfg.share_prompt,
                                max_tokens=cfg.micro_batch_tokens)
        micro_batches, part_micro_batches = [], []
        for part in parts:
            new = cut([i for i in part if i in trained])
            part_micro_batches.append(range(len(micro_batches), len(micro_batches) + len(new)))
            micro_batches += new
        num_trained_micro_batches = len(micro_batches)
        micro_batches += cut(sorted(set(range(num_rows)) - trained))
        return MicroBatchPlan(parts, normalisers, micro_batches, part_micro_batches, num_trained_micro_batches,
                              num_rows=num_rows, num_in_loss=len(in_loss), num_trained_rows=len(trained))

    def nograd_logprobs(self, plan: MicroBatchPlan, advantages: torch.Tensor, upfront: bool) -> PassState:
        """The no-grad forward passes: old log-probs up front (``upfront``) and of the rows that do not train
        (for the entropy statistic, with ``inert_row_stats``), reference log-probs of the trained rows."""
        num_trained, temperature = plan.num_trained_micro_batches, self.cfg.temperature
        state = PassState(advantages, old=[None] * len(plan.micro_batches), ref=[None] * len(plan.micro_batches))
        with torch.no_grad(), self._autocast():
            for k, mb in enumerate(plan.micro_batches):
                # moved before use: log-probs at theta_old now; not trained: only for the statistics
                if (k < num_trained and upfront) or (k >= num_trained and self.cfg.inert_row_stats):
                    state.old[k], entropy = completion_logprobs(self.model, mb, True, temperature)
                    state.entropy_stats.mean("entropy", entropy, mb.completion_mask.to(entropy.device))
                if k < num_trained and self.ref_model is not None:
                    state.ref[k] = completion_logprobs(self.ref_model, mb, False, temperature)[0]
        return state

    def sampler_logprobs(self, plan: MicroBatchPlan, completions: list) -> list[torch.Tensor | None]:
        """The engine's log-probs per trained micro-batch, where a setting needs them (else None)."""
        needed = self.engine_logprobs_needed
        return [engine_logprobs(mb, completions, logp_device(self.model)) if needed else None
                for mb in plan.trained_micro_batches]

    def sample_weight(self, state: PassState, k: int, mask: torch.Tensor) -> torch.Tensor | None:
        """Micro-batch k's sampler-learner correction weights, computed (and logged) once its old
        log-probs are known."""
        if k not in state.weights:
            cfg = self.cfg
            state.weights[k] = None if state.sampler[k] is None else correction_weight(
                state.old[k], state.sampler[k], mask, cfg.sampler_correction, cfg.sampler_correction_level,
                cfg.sampler_correction_cap)
            if state.weights[k] is not None:
                log_weight(state.weights[k], mask, state.stats)
        return state.weights[k]

    def micro_batch_backward(self, step: int, state: PassState, k: int, mb: MicroBatch,
                             normaliser: LossNormaliser, first: bool) -> float:
        """Forward + backward of the algorithm's loss on trained micro-batch k; returns the loss. In a first
        pass (theta = theta_old) its detached log-probs become the old log-probs."""
        cfg = self.cfg
        with self._autocast():
            logp, entropy = completion_logprobs(self.model, mb, first, cfg.temperature)
        mask, adv = mb.completion_mask.to(logp.device), state.advantages[mb.indices].to(logp.device)
        if first:
            state.old[k] = logp.detach()
            state.entropy_stats.mean("entropy", entropy, mask)
        else:
            staleness_stats(logp, state.old[k], mask, state.stats)
        behaviour = state.sampler[k] if cfg.behaviour_logprobs == "engine" else state.old[k]
        batch = PolicyBatch(logp, behaviour, mask, adv, normaliser.completions, state.ref[k],
                            num_tokens=normaliser.tokens, max_new_tokens=cfg.max_new_tokens,
                            sample_weight=self.sample_weight(state, k, mask), engine_logp=state.sampler[k])
        loss = self.algorithm.loss(batch, state.stats)
        require_finite(loss.detach(), step, "loss")
        loss.backward()
        if self.master:
            self.master.collect_grads()
        return float(loss.detach())

    def accumulate_gradient(self, step: int, plan: MicroBatchPlan, state: PassState, part: int,
                            first: bool) -> float:
        """One pass of forward + backward over mini-batch ``part``'s trained micro-batches; returns the
        summed loss. In the first pass the parameters are still theta_old, so its log-probs, detached, are
        the old log-probs: the no-grad forward that would compute them again is never run."""
        for p in self.params:  # zero gradients everywhere: rows with A = 0 still make an exact AdamW step
            p.grad = torch.zeros_like(p)
        total = 0.0
        for k in plan.part_micro_batches[part]:
            total += self.micro_batch_backward(step, state, k, plan.micro_batches[k], plan.normalisers[part], first)
        return total

    def clip_gradient(self, step: int) -> float:
        """Clip the gradient to ``grad_clip``; returns its norm before clipping (finite, or the run stops)."""
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip))
        require_finite(torch.tensor(grad_norm), step, "gradient norm")
        return grad_norm

    def fresh_gradient_passes(self, step: int, plan: MicroBatchPlan, state: PassState, timer: StageTimer,
                              upfront: bool) -> tuple[list[float], list[float]]:
        """mu passes over the mini-batches, a fresh gradient and an AdamW step per mini-batch; returns the
        losses and gradient norms, in order."""
        losses, grad_norms = [], []
        for inner in range(self.cfg.mu):
            for part in range(len(plan.parts)):
                with timer("fwd_bwd"):
                    losses.append(self.accumulate_gradient(step, plan, state, part, inner == 0 and not upfront))
                with timer("optim"):
                    grad_norms.append(self.clip_gradient(step))
                    self.optimizer.step()
        return losses, grad_norms

    def reused_gradient_passes(self, step: int, plan: MicroBatchPlan, state: PassState,
                               timer: StageTimer) -> tuple[list[float], list[float]]:
        """The algorithm's ``reuse_gradient``: each mini-batch's gradient at theta_old, computed once (before
        any step) and clipped, then applied mu times; returns the losses and gradient norms."""
        losses, grad_norms, fixed_grads = [], [], []
        for part in range(len(plan.parts)):
            with timer("fwd_bwd"):
                losses.append(self.accumulate_gradient(step, plan, state, part, True))
            with timer("optim"):
                grad_norms.append(self.clip_gradient(step))
            fixed_grads.append([p.grad.clone() for p in self.params])
        with timer("optim"):
            for _ in range(self.cfg.mu):
                for part_grads in fixed_grads:
                    for p, grad in zip(self.params, part_grads):
                        p.grad = grad.clone()  # the same g every step (AdamW may not modify it, but be safe)
                    self.optimizer.step()
        return losses, grad_norms

    def maybe_measure_noise_floor(self, step: int, mb) -> None:
        """Measure the ratio noise floor (training/noise_floor.py) on ``mb`` at theta_old, every
        ``noise_floor_every`` steps and at the first step a process runs; changes no number of the run."""
        every = self.cfg.noise_floor_every
        if not every or (step % every and self.noise_floor):
            return
        floor = measure_noise_floor(self.model, mb, self.params, self.master, self._autocast,
                                    self.cfg.noise_floor_eps, sampling_seed(self.seed, step) + 17, self.cfg.temperature)
        self.noise_floor = {**floor, "noise_floor_step": step}

    def _autocast(self):
        if not self.settings["bf16_autocast"]:
            return contextlib.nullcontext()
        return torch.autocast(device_type=next(self.model.parameters()).device.type, dtype=torch.bfloat16)

    def take_model(self) -> None:
        """Put the model in its training layout (idempotent): the attention kernel, bf16 working weights."""
        if self._attention_before is None:
            self._attention_before = self.model.config._attn_implementation
            self.model.set_attn_implementation(self.settings["attention"])
        if self.master:
            self.master.attach()
        if self.cfg.fp32_lm_head and self._lm_head_before is None:
            self._lm_head_before = fp32_lm_head(self.model)

    def release_model(self) -> None:
        """The model back as it came: its own dtype (holding the trained values), its attention kernel.
        ``train()`` calls it at the end, also when the run stops."""
        if self.master:
            self.master.restore()
        if self._lm_head_before is not None:
            self._lm_head_before()
            self._lm_head_before = None
        if self._attention_before is not None:
            self.model.set_attn_implementation(self._attention_before)
            self._attention_before = None

    # ---- the loop ---------------------------------------------------------------------------
    def maybe_eval(self, done: int) -> None:
        """Evaluation during training after ``done`` steps, if due; global RNG states restored after."""
        if not (self.eval_every and self.on_eval) or not (done % self.eval_every == 0 or done == self.cfg.steps):
            return
        t0, py_state = time.perf_counter(), random.getstate()
        with torch.random.fork_rng(devices=[torch.cuda.current_device()] if torch.cuda.is_available() else []):
            rows = self.on_eval(done)
        random.setstate(py_state)
        self.eval_s += time.perf_counter() - t0  # not counted in elapsed_s (training wall time)
        for r in rows:
            append_jsonl(self.eval_curve_path, dict(r, step=done))

    def train(self) -> list[dict]:
        try:
            return self._train()
        finally:
            self.release_model()

    def _train(self) -> list[dict]:
        self.take_model()
        start = self.maybe_resume()
        if start == 0:
            self.maybe_eval(0)
        t_start, self.eval_s = time.perf_counter(), 0.0
        bar = tqdm(range(start, self.cfg.steps), desc=f"train {self.run_dir.parent.name}/{self.run_dir.name}",
                   initial=start, total=self.cfg.steps)
        for step in bar:
            row = self.step(step)
            elapsed = self.elapsed_before + time.perf_counter() - t_start - self.eval_s
            row["elapsed_s"] = elapsed
            append_jsonl(self.metrics_path, row)
            if self.on_step:
                self.on_step(row)
            bar.set_postfix(reward=f"{row['reward_mean']:.3f}", len=f"{row['response_length_mean']:.0f}")
            done = step + 1
            self.maybe_eval(done)  # before the checkpoint: a resumed run has every evaluation up to it
            if done == self.cfg.steps or (self.cfg.checkpoint_every and done % self.cfg.checkpoint_every == 0):
                self.save_checkpoint(done, elapsed)
        return read_jsonl(self.metrics_path)


def _setting_error(key: str, message: str) -> ValueError:
    return ValueError(f"{key}: {message}")


class TrainingStopped(UserError):
    """The run stopped on purpose (too many reward failures, a non-finite loss or gradient): one line,
    exit status 2. Nothing of the failing step is saved; the run is not finished and resumes from its
    last checkpoint."""


def check_reward_failures(scored, step: int, max_frac: float) -> None:
    """Stop when a reward errored or timed out on more than ``max_frac`` of the step's samples."""
    n = len(scored.totals)
    for name, counts in scored.count_summary().items():
        failed = counts["error"] + counts["timeout"]
        if n and failed > max_frac * n:
            first = next((p for p in scored.problems if p["reward"] == name), {})
            raise TrainingStopped(
                f"step {step}: reward {name!r} failed on {failed}/{n} samples ({counts['error']} errors, "
                f"{counts['timeout']} timeouts; more than train.max_reward_error_frac = {max_frac:g}); first "
                f"{first.get('status', 'error')}: {first.get('message', '?')}; run stopped, resumable")


def require_finite(x: torch.Tensor, step: int, what: str) -> None:
    """Stop before a non-finite value reaches the optimiser (nothing of this step is applied or saved)."""
    if not bool(torch.isfinite(x).all()):
        bad = x[~torch.isfinite(x)].reshape(-1)[0].item()
        raise TrainingStopped(f"step {step}: {what} is not finite ({bad}); nothing of this step was saved; "
                              "run stopped, resumable from its last checkpoint")


def logp_device(model) -> torch.device:
    return next(model.parameters()).device


def engine_gap(mbs, old, completions, stats: Stats, cap: float) -> None:
    """|engine log-prob - trainer log-prob| per sampled token (a silent bias when large), if reported:
    mean, max and the share beyond log(cap) (training/sampler_gap.py)."""
    for mb, old_lp in zip(mbs, old):
        if old_lp is None:  # rows that did not train, with inert_row_stats off
            continue
        for r, i in enumerate(mb.indices):
            lps = completions[i].logprobs
            if lps:
                gap = (torch.tensor(lps, dtype=old_lp.dtype, device=old_lp.device) - old_lp[r, :len(lps)]).abs()
                stats.mean("engine_logprob_gap_mean", gap)
                stats.max("engine_logprob_gap_max", gap)
                stats.mean("engine_gap_frac_over_cap", (gap > math.log(cap)).double())
