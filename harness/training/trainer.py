"""The training loop: sample G completions per prompt, score, advantages, mu optimizer steps.

One step: generate (rollout engine) -> score (rewards) -> advantages (algorithm) -> old log-probs
(no-grad forward; reference log-probs too when beta > 0) -> mu AdamW steps on the algorithm's loss
with gradient clipping -> sync the engine's weights -> log a JSONL row -> checkpoint now and then.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from ..algorithm import Algorithm, PolicyBatch, Stats
from ..benchmark import Benchmark, Problem, prompt_token_ids, reward_columns
from ..config.schema import TrainConfig
from ..config.suite import AUTO_SWITCHES, algorithm_compares_ratios, resolve_auto
from ..engine import RolloutEngine, SamplingConfig
from ..errors import UserError
from ..io import append_jsonl, read_jsonl, replace_dir, write_jsonl
from ..scoring import RewardScorer
from .allocator import keep_freed_memory
from .noise_floor import measure_noise_floor
from .policy import completion_logprobs, make_micro_batches
from .precision import MasterWeights, fp32_lm_head
from .records import SampleLog, logged_metrics, merge_metrics, sample_records, trainer_state
from .sampler_gap import correction_weight, engine_logprobs, log_weight, needs_engine_logprobs


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
        ro = Rollout()
        for draw in range(draws):
            problems = self.draw_problems(step, draw)
            t0 = time.perf_counter()
            groups = self.engine.generate([self.prompt_ids[p.id] for p in problems], SamplingConfig(
                cfg.max_new_tokens, cfg.temperature, G, draw_seed(self.seed, step, draw), cfg.generation_batch_size,
                logprobs=needs_engine_logprobs(cfg)))
            t1 = time.perf_counter()
            flat = [(p, c) for p, group in zip(problems, groups) for c in group]
            fp = [p for p, _ in flat]
            state = trainer_state(cfg, step, len(self.problems), self.eval_every)
            scored = self.scorer.score(self.benchmark.reward_prompts(fp),
                                       self.benchmark.reward_completions([c.text for _, c in flat]),
                                       reward_columns(fp), [list(c.token_ids) for _, c in flat], state)
            ro.gen_s += t1 - t0
            ro.score_s += time.perf_counter() - t1
            ro.generated_tokens += sum(len(c.token_ids) for _, c in flat)
            if scored.problems:
                append_jsonl(self.run_dir / "reward_errors.jsonl", {"step": step, "draw": draw, "problems": scored.problems})
            check_reward_failures(scored, step, cfg.max_reward_error_frac)
            merge_metrics(ro.metric_values, scored.metrics)
            records = sample_records(scored)
            shaping = overlong_shaping([len(c.token_ids) for _, c in flat], cfg)
            totals = (torch.tensor(scored.totals, dtype=torch.float64) + torch.tensor(shaping, dtype=torch.float64))
            totals = totals.view(len(problems), G)
            if draw == 0:
                ro.first, ro.first_scored = flat, scored
            for j, p in enumerate(problems):
                ro.groups_drawn += 1
                if cfg.dynamic_sampling != "off" and bool((totals[j] == totals[j, 0]).all()):
                    ro.groups_dropped += 1
                    continue
                kept.append((p, groups[j], totals[j], records[j * G:(j + 1) * G]))
            ro.draws = draw + 1
            if len(kept) >= cfg.prompts_per_step:
                break
        ro.groups_surplus = max(0, len(kept) - cfg.prompts_per_step)
        kept = kept[:cfg.prompts_per_step]
        ro.problems = [p for p, *_ in kept]
        ro.flat = [(p, c) for p, group, *_ in kept for c in group]
        ro.records = [r for *_, group_records in kept for r in group_records]
        ro.rewards = torch.stack([k[2] for k in kept]) if kept else torch.zeros(0, G, dtype=torch.float64)
        ro.shaping = overlong_shaping([len(c.token_ids) for _, c in ro.flat], cfg)
        return ro

    # ---- one step ---------------------------------------------------------------------------
    def step(self, step: int) -> dict:
        self.take_model()
        cfg, G = self.cfg, self.cfg.group_size
        t0 = time.perf_counter()
        ro = self.collect(step)
        flat, n_total = ro.flat, len(ro.flat)
        t_score = time.perf_counter()

        lengths = torch.tensor([max(1, len(c.token_ids)) for _, c in flat], dtype=torch.float64).view(-1, G)
        advantages = self.algorithm.advantages(ro.rewards, lengths).reshape(-1).float()
        require_finite(advantages, step, "advantages")

        seq_prompts = [self.prompt_ids[p.id] for p, _ in flat]
        seq_completions = [c.token_ids for _, c in flat]
        # overlong filtering: truncated completions leave the loss (and its normalisers) altogether
        in_loss = [i for i in range(n_total) if not (cfg.overlong_filter and not flat[i][1].finished)]
        # rows that cannot move the policy (A = 0 under an inert algorithm, no KL) skip the backward passes
        skip = self.algorithm.zero_advantage_is_inert and self.ref_model is None
        trained = [i for i in in_loss if not skip or advantages[i] != 0]
        trained_set = set(trained)
        inert = sorted(set(range(n_total)) - trained_set)
        parts = mini_batch_parts(in_loss, cfg.mini_batches, sampling_seed(self.seed, step))
        # per mini-batch: its completions N_j and their tokens (the loss normalisers), its micro-batches
        norms = [(len(part), sum(len(seq_completions[i]) for i in part)) for part in parts]
        pad = self.tokenizer.pad_token_id
        mbs, part_mbs = [], []
        for part in parts:
            new = make_micro_batches(seq_prompts, seq_completions, cfg.micro_batch_size, pad,
                                     [i for i in part if i in trained_set], cfg.share_prompt, cfg.micro_batch_tokens)
            part_mbs.append(range(len(mbs), len(mbs) + len(new)))
            mbs += new
        num_trained_mbs = len(mbs)
        mbs += make_micro_batches(seq_prompts, seq_completions, cfg.micro_batch_size, pad, inert, cfg.share_prompt,
                                  cfg.micro_batch_tokens)
        stats, entropy_stats = Stats(), Stats()
        params = self.params  # what AdamW updates: the model's parameters or their fp32 master weights
        t_floor = time.perf_counter()
        if num_trained_mbs:
            self.maybe_measure_noise_floor(step, mbs[0])
        t_floor = time.perf_counter() - t_floor
        reuse = self.algorithm.reuse_gradient
        # the first-pass trick below needs theta = theta_old at each micro-batch's first forward; with
        # several mini-batches and fresh gradients, earlier mini-batches have moved theta: compute old up front
        upfront = len(parts) > 1 and not reuse
        old: list[torch.Tensor | None] = [None] * len(mbs)
        ref: list[torch.Tensor | None] = [None] * len(mbs)
        t_fwd = time.perf_counter()
        with torch.no_grad(), self._autocast():
            for k, mb in enumerate(mbs):
                # moved before use: log-probs at theta_old now; not trained: only for the statistics
                if (k < num_trained_mbs and upfront) or (k >= num_trained_mbs and cfg.inert_row_stats):
                    old[k], ent = completion_logprobs(self.model, mb, True, cfg.temperature)
                    entropy_stats.mean("entropy", ent, mb.completion_mask.to(ent.device))
                if k < num_trained_mbs and self.ref_model is not None:
                    ref[k] = completion_logprobs(self.ref_model, mb, False, cfg.temperature)[0]
        t_nograd = time.perf_counter() - t_fwd
        completions = [c for _, c in flat]
        sampler = [engine_logprobs(mb, completions, logp_device(self.model)) if needs_engine_logprobs(cfg) else None
                   for mb in mbs[:num_trained_mbs]]
        weights: dict[int, torch.Tensor | None] = {}

        def sample_weight(k: int, mask: torch.Tensor) -> torch.Tensor | None:
            """Micro-batch k's sampler-learner correction weights, once its old log-probs are known."""
            if k not in weights:
                weights[k] = None if sampler[k] is None else correction_weight(
                    old[k], sampler[k], mask, cfg.sampler_correction, cfg.sampler_correction_level,
                    cfg.sampler_correction_cap)
                if weights[k] is not None:
                    log_weight(weights[k], mask, stats)
            return weights[k]

        def accumulate_gradient(j: int, first: bool) -> float:
            """One pass of forward + backward over mini-batch j's trained micro-batches. In the first pass
            the parameters are still theta_old, so its log-probs, detached, are the old log-probs: the
            no-grad forward that would compute them again is never run."""
            for p in params:  # zero gradients everywhere: rows with A = 0 still make an exact AdamW step
                p.grad = torch.zeros_like(p)
            total = 0.0
            n_j, tokens_j = norms[j]
            for k in part_mbs[j]:
                mb = mbs[k]
                with self._autocast():
                    logp, ent = completion_logprobs(self.model, mb, first, cfg.temperature)
                mask, adv = mb.completion_mask.to(logp.device), advantages[mb.indices].to(logp.device)
                if first:
                    old[k] = logp.detach()
                    entropy_stats.mean("entropy", ent, mask)
                else:  # staleness the loss sees: k3 = exp(d) - 1 - d, d = logp - old, unbiased for KL(pi_old || pi_theta)
                    d = (logp.detach() - old[k]).double()
                    k3 = (torch.exp(d) - 1 - d) * mask
                    stats.mean("kl_old_k3_seq", k3.sum(dim=1))
                    stats.mean("kl_old_k3_token", k3, mask)
                behaviour = sampler[k] if cfg.behaviour_logprobs == "engine" else old[k]
                batch = PolicyBatch(logp, behaviour, mask, adv, n_j, ref[k], num_tokens=tokens_j,
                                    max_new_tokens=cfg.max_new_tokens, sample_weight=sample_weight(k, mask))
                loss = self.algorithm.loss(batch, stats)
                require_finite(loss.detach(), step, "loss")
                loss.backward()
                if self.master:
                    self.master.collect_grads()
                total += float(loss.detach())
            return total

        timer = {"fwd_bwd": 0.0, "optim": 0.0}

        def timed(key: str, fn, *args):
            t = time.perf_counter()
            out = fn(*args)
            timer[key] += time.perf_counter() - t
            return out

        def clip_gradient() -> None:
            grad_norms.append(float(torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)))
            require_finite(torch.tensor(grad_norms[-1]), step, "gradient norm")

        def optimizer_step() -> None:
            clip_gradient()
            self.optimizer.step()

        losses, grad_norms = [], []
        if reuse:  # each mini-batch's gradient at theta_old, computed once (before any step), applied mu times
            fixed = []
            for j in range(len(parts)):
                losses.append(timed("fwd_bwd", accumulate_gradient, j, True))
                timed("optim", clip_gradient)
                fixed.append([p.grad.clone() for p in params])
            t = time.perf_counter()
            for _ in range(cfg.mu):
                for g_j in fixed:
                    for p, g in zip(params, g_j):
                        p.grad = g.clone()  # the same g every step (AdamW may not modify it, but be safe)
                    self.optimizer.step()
            timer["optim"] += time.perf_counter() - t
        else:
            for inner in range(cfg.mu):
                for j in range(len(parts)):
                    losses.append(timed("fwd_bwd", accumulate_gradient, j, inner == 0 and not upfront))
                    timed("optim", optimizer_step)
        self.optimizer.zero_grad(set_to_none=True)
        engine_gap(mbs, old, completions, entropy_stats, cfg.sampler_correction_cap)
        t_sync = time.perf_counter()
        self.engine.sync_weights(self.model)
        t_train = time.perf_counter()

        # generation and reward statistics describe draw 0: the prompt stream every variant sees
        first, scored, n_first = ro.first, ro.first_scored, len(ro.first)
        first_rewards = torch.tensor(scored.totals, dtype=torch.float64)
        row = {
            "step": step,
            "problem_ids": [p.id for p, _ in first[::G]],
            "reward_mean": float(first_rewards.mean()),
            "reward_std": float(first_rewards.std()) if first_rewards.numel() > 1 else 0.0,
            "response_length_mean": sum(len(c.token_ids) for _, c in first) / n_first,
            "response_length_max": max(len(c.token_ids) for _, c in first),
            "truncated_frac": sum(not c.finished for _, c in first) / n_first,
            "samples": n_total,
            "generated_tokens": ro.generated_tokens,
            "gen_tokens_per_s": ro.generated_tokens / max(ro.gen_s, 1e-9),
            "trained_frac": len(trained) / max(n_total, 1),
            "train_tokens_per_s": cfg.mu * sum(mb.num_tokens for mb in mbs[:num_trained_mbs]) / max(t_train - t_score, 1e-9),
            "loss": sum(losses[-len(parts):]) / len(parts),  # mean over the last pass's mini-batches
            "grad_norm": grad_norms[-1],
            "gen_s": ro.gen_s, "score_s": ro.score_s, "train_s": t_train - t_score,
            # the training phase's parts (all included in train_s): no-grad forward passes (rows that do not
            # train, reference log-probs, old log-probs computed up front), forward+backward, gradient
            # clipping + optimizer steps, engine weight sync
            "nograd_fwd_s": t_nograd, "fwd_bwd_s": timer["fwd_bwd"], "optim_s": timer["optim"],
            "sync_s": t_train - t_sync,
            "noise_floor_s": t_floor,
            "step_s": t_train - t0,
            **self.noise_floor,
        }
        if cfg.dynamic_sampling != "off":
            row.update(ds_draws=ro.draws, ds_groups_drawn=ro.groups_drawn, ds_groups_dropped=ro.groups_dropped,
                       ds_groups_surplus=ro.groups_surplus, groups_trained=len(ro.problems),
                       trained_problem_ids=[p.id for p in ro.problems])
        if cfg.overlong_buffer:
            row["overlong_shaping_mean"] = sum(ro.shaping) / max(n_total, 1)
        if cfg.overlong_filter:
            row["overlong_filtered_frac"] = (n_total - len(in_loss)) / max(n_total, 1)
        if cfg.mini_batches > 1:
            row["mini_batches"] = len(parts)
        if self.correctness_reward in scored.values:
            vals = scored.values[self.correctness_reward]
            row["accuracy"] = sum(v == 1.0 for v in vals) / n_first
        for name, vals in scored.values.items():
            present = [v for v in vals if v is not None]
            row[f"reward/{name}"] = sum(present) / len(present) if present else None
        for name, counts in scored.count_summary().items():
            for status in ("none", "error", "timeout"):
                row[f"reward_{status}/{name}"] = counts[status]
        row.update(entropy_stats.result())
        row.update(stats.result())
        row.update(logged_metrics(row, ro.metric_values))
        self.samples.write(step, flat, ro.records, ro.rewards.reshape(-1).tolist(), advantages.tolist())
        return row

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
