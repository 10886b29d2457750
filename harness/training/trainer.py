"""The training loop: sample G completions per prompt, score, advantages, mu optimizer steps.

One step: generate (rollout engine) -> score (rewards) -> advantages (algorithm) -> old log-probs
(no-grad forward; reference log-probs too when beta > 0) -> mu AdamW steps on the algorithm's loss
with gradient clipping -> sync the engine's weights -> log a JSONL row -> checkpoint now and then.
"""

from __future__ import annotations

import contextlib
import random
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..algorithm import Algorithm, PolicyBatch, Stats
from ..benchmark import Benchmark, Problem, prompt_token_ids, reward_columns
from ..config.schema import TrainConfig
from ..engine import RolloutEngine, SamplingConfig
from ..io import append_jsonl, read_jsonl, replace_dir, write_jsonl
from ..provenance import bf16_support
from ..scoring import RewardScorer
from .policy import completion_logprobs, make_micro_batches


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


class Trainer:
    def __init__(self, model, tokenizer, engine: RolloutEngine, algorithm: Algorithm, scorer: RewardScorer,
                 benchmark: Benchmark, problems: list[Problem], cfg: TrainConfig, seed: int, run_dir: Path,
                 ref_model=None, correctness_reward: str | None = None):
        self.model, self.tokenizer, self.engine = model, tokenizer, engine
        self.algorithm, self.scorer, self.benchmark = algorithm, scorer, benchmark
        self.cfg, self.seed, self.run_dir = cfg, seed, Path(run_dir)
        self.ref_model = ref_model
        self.correctness_reward = correctness_reward
        self.prompt_ids = {p.id: prompt_token_ids(tokenizer, benchmark, p) for p in problems}
        self.problems = [p for p in problems if len(self.prompt_ids[p.id]) <= cfg.max_prompt_tokens]
        if not self.problems:
            raise ValueError(f"no training prompt fits max_prompt_tokens={cfg.max_prompt_tokens}")
        self.order = prompt_order(len(self.problems), seed)
        self.optimizer = torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad], lr=cfg.learning_rate,
            betas=(cfg.adam_beta1, cfg.adam_beta2), weight_decay=cfg.weight_decay,
        )
        self.metrics_path = self.run_dir / "metrics.jsonl"
        self.ckpt_dir = self.run_dir / "checkpoint"
        self.start_step = 0
        self.elapsed_before = 0.0

    # ---- checkpoints ------------------------------------------------------------------------
    def save_checkpoint(self, step: int, elapsed: float) -> None:
        tmp = self.run_dir / "checkpoint.tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        torch.save({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                    "step": step, "elapsed_s": elapsed}, tmp / "state.pt")
        replace_dir(tmp, self.ckpt_dir)

    def maybe_resume(self) -> int:
        """Load the last checkpoint if there is one; drop metric rows past it. Returns the next step."""
        state_file = self.ckpt_dir / "state.pt"
        if not state_file.exists():
            if self.metrics_path.exists():
                self.metrics_path.unlink()
            return 0
        state = torch.load(state_file, map_location="cpu", weights_only=False)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.engine.sync_weights(self.model)
        self.start_step = int(state["step"])
        self.elapsed_before = float(state.get("elapsed_s", 0.0))
        write_jsonl(self.metrics_path, [r for r in read_jsonl(self.metrics_path) if r["step"] < self.start_step])
        return self.start_step

    # ---- one step ---------------------------------------------------------------------------
    def step(self, step: int) -> dict:
        cfg, G = self.cfg, self.cfg.group_size
        t0 = time.perf_counter()
        problems = step_problems(self.problems, self.order, step, cfg.prompts_per_step)
        prompt_ids = [self.prompt_ids[p.id] for p in problems]
        groups = self.engine.generate(prompt_ids, SamplingConfig(
            cfg.max_new_tokens, cfg.temperature, G, sampling_seed(self.seed, step), cfg.generation_batch_size))
        t_gen = time.perf_counter()

        flat = [(p, c) for p, group in zip(problems, groups) for c in group]
        columns = reward_columns([p for p, _ in flat])
        scored = self.scorer.score([p.prompt for p, _ in flat], [c.text for _, c in flat], columns)
        t_score = time.perf_counter()

        rewards = torch.tensor(scored.totals, dtype=torch.float64).view(len(problems), G)
        lengths = torch.tensor([max(1, len(c.token_ids)) for _, c in flat], dtype=torch.float64).view(len(problems), G)
        advantages = self.algorithm.advantages(rewards, lengths).reshape(-1).float()

        seq_prompts = [self.prompt_ids[p.id] for p, _ in flat]
        seq_completions = [c.token_ids for _, c in flat]
        # rows that cannot move the policy (A = 0 under an inert algorithm, no KL) skip the backward passes
        skip = self.algorithm.zero_advantage_is_inert and self.ref_model is None
        trained = [i for i in range(len(flat)) if not skip or advantages[i] != 0]
        inert = sorted(set(range(len(flat))) - set(trained))
        pad = self.tokenizer.pad_token_id
        mbs = make_micro_batches(seq_prompts, seq_completions, cfg.micro_batch_size, pad, trained, cfg.share_prompt)
        num_trained_mbs = len(mbs)
        mbs += make_micro_batches(seq_prompts, seq_completions, cfg.micro_batch_size, pad, inert, cfg.share_prompt)
        n_total, stats, entropy_stats = len(flat), Stats(), Stats()
        params = [p for p in self.model.parameters() if p.requires_grad]
        old: list[torch.Tensor | None] = [None] * len(mbs)
        ref: list[torch.Tensor | None] = [None] * len(mbs)
        with torch.no_grad(), self._autocast():
            for k, mb in enumerate(mbs):
                if k >= num_trained_mbs:  # rows that are not trained: log-probs only for the statistics
                    old[k], ent = completion_logprobs(self.model, mb, True, cfg.temperature)
                    entropy_stats.mean("entropy", ent, mb.completion_mask.to(ent.device))
                elif self.ref_model is not None:
                    ref[k] = completion_logprobs(self.ref_model, mb, False, cfg.temperature)[0]

        def accumulate_gradient(first: bool) -> float:
            """One pass of forward + backward over the trained micro-batches. In the first pass the
            parameters are still theta_old, so its log-probs, detached, are the old log-probs: the
            no-grad forward that would compute them again is never run."""
            for p in params:  # zero gradients everywhere: rows with A = 0 still make an exact AdamW step
                p.grad = torch.zeros_like(p)
            total = 0.0
            for k, mb in enumerate(mbs[:num_trained_mbs]):
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
                batch = PolicyBatch(logp, old[k], mask, adv, n_total, ref[k])
                loss = self.algorithm.loss(batch, stats)
                loss.backward()
                total += float(loss.detach())
            return total

        losses, grad_norms = [], []
        if self.algorithm.reuse_gradient:
            losses.append(accumulate_gradient(first=True))
            grad_norms.append(float(torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)))
            fixed = [p.grad.clone() for p in params]
            for _ in range(cfg.mu):
                for p, g in zip(params, fixed):
                    p.grad = g.clone()  # the same g every step (AdamW may not modify it, but be safe)
                self.optimizer.step()
        else:
            for inner in range(cfg.mu):
                losses.append(accumulate_gradient(first=inner == 0))
                grad_norms.append(float(torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)))
                self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        engine_gap(mbs, old, [c for _, c in flat], entropy_stats)
        t_sync = time.perf_counter()
        self.engine.sync_weights(self.model)
        t_train = time.perf_counter()

        gen_tokens = sum(len(c.token_ids) for _, c in flat)
        row = {
            "step": step,
            "problem_ids": [p.id for p in problems],
            "reward_mean": float(rewards.mean()),
            "reward_std": float(rewards.std()) if rewards.numel() > 1 else 0.0,
            "response_length_mean": gen_tokens / n_total,
            "response_length_max": max(len(c.token_ids) for _, c in flat),
            "truncated_frac": sum(not c.finished for _, c in flat) / n_total,
            "samples": n_total,
            "generated_tokens": gen_tokens,
            "gen_tokens_per_s": gen_tokens / max(t_gen - t0, 1e-9),
            "trained_frac": len(trained) / n_total,
            "train_tokens_per_s": cfg.mu * sum(mb.num_tokens for mb in mbs[:num_trained_mbs]) / max(t_train - t_score, 1e-9),
            "loss": losses[-1],
            "grad_norm": grad_norms[-1],
            "gen_s": t_gen - t0, "score_s": t_score - t_gen, "train_s": t_train - t_score,
            "sync_s": t_train - t_sync,  # engine weight sync (included in train_s)
            "step_s": t_train - t0,
        }
        if self.correctness_reward in scored.values:
            vals = scored.values[self.correctness_reward]
            row["accuracy"] = sum(v == 1.0 for v in vals) / n_total
        for name, vals in scored.values.items():
            present = [v for v in vals if v is not None]
            row[f"reward/{name}"] = sum(present) / len(present) if present else None
        for name, counts in scored.count_summary().items():
            for status in ("none", "error", "timeout"):
                row[f"reward_{status}/{name}"] = counts[status]
        row.update(entropy_stats.result())
        row.update(stats.result())
        if scored.problems:
            append_jsonl(self.run_dir / "reward_errors.jsonl", {"step": step, "problems": scored.problems})
        return row

    def _autocast(self):
        device = next(self.model.parameters()).device.type
        enabled = self.cfg.bf16_autocast
        if enabled == "auto":  # a TrainConfig built in Python; suites resolve "auto" at load
            enabled = bf16_support(device) is not None
        if not enabled:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device, dtype=torch.bfloat16)

    # ---- the loop ---------------------------------------------------------------------------
    def train(self) -> list[dict]:
        start = self.maybe_resume()
        t_start = time.perf_counter()
        bar = tqdm(range(start, self.cfg.steps), desc=f"train {self.run_dir.parent.name}/{self.run_dir.name}",
                   initial=start, total=self.cfg.steps)
        for step in bar:
            row = self.step(step)
            elapsed = self.elapsed_before + time.perf_counter() - t_start
            row["elapsed_s"] = elapsed
            append_jsonl(self.metrics_path, row)
            bar.set_postfix(reward=f"{row['reward_mean']:.3f}", len=f"{row['response_length_mean']:.0f}")
            done = step + 1
            if done == self.cfg.steps or (self.cfg.checkpoint_every and done % self.cfg.checkpoint_every == 0):
                self.save_checkpoint(done, elapsed)
        return read_jsonl(self.metrics_path)


def engine_gap(mbs, old, completions, stats: Stats) -> None:
    """|engine log-prob - trainer log-prob| per sampled token (a silent bias when large), if reported."""
    for mb, old_lp in zip(mbs, old):
        for r, i in enumerate(mb.indices):
            lps = completions[i].logprobs
            if lps:
                gap = (torch.tensor(lps, dtype=old_lp.dtype, device=old_lp.device) - old_lp[r, :len(lps)]).abs()
                stats.mean("engine_logprob_gap_mean", gap)
                stats.max("engine_logprob_gap_max", gap)
