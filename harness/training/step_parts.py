"""The typed pieces of one training step (``Trainer.step``) and its metrics row.

A step runs in stages: collect (generate, score) -> advantages -> plan the micro-batches
(:class:`MicroBatchPlan`) -> noise floor -> no-grad log-probs (:class:`PassState`) -> optimiser passes
-> engine weight sync -> metrics row (the functions below). :class:`StageTimer` times the stages.
"""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, NamedTuple

import torch

from ..algorithm import Stats
from ..config.schema import TrainConfig
from .noise_floor import masked_k3
from .policy import MicroBatch


class LossNormaliser(NamedTuple):
    """A mini-batch's loss normalisers: its completions N_j and their completion tokens."""

    completions: int
    tokens: int


@dataclass
class MicroBatchPlan:
    """How a step's rows are cut: mini-batches (one optimiser step each per pass) of micro-batches
    (one forward + backward each). Rows that do not train come last, in micro-batches of their own."""

    parts: list[list[int]]  # rows in the loss, per mini-batch (the same partition for all mu passes)
    normalisers: list[LossNormaliser]  # per mini-batch
    micro_batches: list[MicroBatch]  # the trained micro-batches first, then those of the rows that do not train
    part_micro_batches: list[range]  # per mini-batch: its trained micro-batches (indices into micro_batches)
    num_trained_micro_batches: int  # micro_batches[:num_trained_micro_batches] train
    num_rows: int  # rows of the training batch
    num_in_loss: int  # rows in the loss (overlong filtering leaves truncated ones out)
    num_trained_rows: int  # rows in the loss that can move the policy (the rest skip the backward passes)

    @property
    def trained_micro_batches(self) -> list[MicroBatch]:
        return self.micro_batches[:self.num_trained_micro_batches]


@dataclass
class PassState:
    """What the optimiser passes read and fill, per micro-batch (index into ``plan.micro_batches``):
    log-probs at theta_old (filled up front or by the first pass), of the reference model and of the
    sampling engine, and the sampler-learner correction weights (computed once old is known)."""

    advantages: torch.Tensor  # [rows] float32
    old: list[torch.Tensor | None]
    ref: list[torch.Tensor | None]
    sampler: list[torch.Tensor | None] = field(default_factory=list)  # trained micro-batches only
    weights: dict[int, torch.Tensor | None] = field(default_factory=dict)
    stats: Stats = field(default_factory=Stats)  # the algorithm's statistics, staleness, correction weights
    entropy_stats: Stats = field(default_factory=Stats)  # entropy at theta_old, the engine gap


class StageTimer:
    """Seconds spent per stage of a step, summed over the stage's calls: ``with timer("optim"): ...``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start


def staleness_stats(logp: torch.Tensor, old: torch.Tensor, mask: torch.Tensor, stats: Stats) -> None:
    """How far theta moved from theta_old, as the loss sees it: k3 = exp(d) - 1 - d, d = logp - old, an
    unbiased estimate of KL(pi_old || pi_theta), per sequence (summed) and per token."""
    k3 = masked_k3(logp.detach() - old, mask)
    stats.mean("kl_old_k3_seq", k3.sum(dim=1))
    stats.mean("kl_old_k3_token", k3, mask)


def rollout_metrics(step: int, rollout, group_size: int) -> dict:
    """Generation and reward statistics of draw 0 (the prompt stream every variant sees), and the batch's size."""
    first, n_first = rollout.first, len(rollout.first)
    first_rewards = torch.tensor(rollout.first_scored.totals, dtype=torch.float64)
    return {
        "step": step,
        "problem_ids": [p.id for p, _ in first[::group_size]],
        "reward_mean": float(first_rewards.mean()),
        "reward_std": float(first_rewards.std()) if first_rewards.numel() > 1 else 0.0,
        "response_length_mean": sum(len(c.token_ids) for _, c in first) / n_first,
        "response_length_max": max(len(c.token_ids) for _, c in first),
        "truncated_frac": sum(not c.finished for _, c in first) / n_first,
        "samples": len(rollout.flat),
        "generated_tokens": rollout.generated_tokens,
        "gen_tokens_per_s": rollout.generated_tokens / max(rollout.gen_s, 1e-9),
    }


def training_metrics(rollout, plan: MicroBatchPlan, mu: int, losses: list[float], grad_norms: list[float],
                     timer: StageTimer, train_s: float, step_s: float) -> dict:
    """The optimisation's numbers and the step's timings (``train_s``: after scoring to after the sync)."""
    trained_tokens = sum(mb.num_tokens for mb in plan.trained_micro_batches)
    num_parts = len(plan.parts)
    return {
        "trained_frac": plan.num_trained_rows / max(plan.num_rows, 1),
        "train_tokens_per_s": mu * trained_tokens / max(train_s, 1e-9),
        "loss": sum(losses[-num_parts:]) / num_parts,  # mean over the last pass's mini-batches
        "grad_norm": grad_norms[-1],
        "gen_s": rollout.gen_s, "score_s": rollout.score_s, "train_s": train_s,
        # the training phase's parts (all included in train_s): no-grad forward passes (rows that do not
        # train, reference log-probs, old log-probs computed up front), forward+backward, gradient
        # clipping + optimizer steps, engine weight sync
        "nograd_fwd_s": timer.seconds["nograd_fwd"], "fwd_bwd_s": timer.seconds["fwd_bwd"],
        "optim_s": timer.seconds["optim"], "sync_s": timer.seconds["sync"],
        "noise_floor_s": timer.seconds["noise_floor"],
        "step_s": step_s,
    }


def option_metrics(cfg: TrainConfig, rollout, plan: MicroBatchPlan) -> dict:
    """Columns of the options that are on: dynamic sampling, overlong shaping and filtering, mini-batches."""
    row: dict = {}
    n_rows = plan.num_rows
    if cfg.dynamic_sampling != "off":
        row.update(ds_draws=rollout.draws, ds_groups_drawn=rollout.groups_drawn,
                   ds_groups_dropped=rollout.groups_dropped, ds_groups_surplus=rollout.groups_surplus,
                   groups_trained=len(rollout.problems), trained_problem_ids=[p.id for p in rollout.problems])
    if cfg.overlong_buffer:
        row["overlong_shaping_mean"] = sum(rollout.shaping) / max(n_rows, 1)
    if cfg.overlong_filter:
        row["overlong_filtered_frac"] = (n_rows - plan.num_in_loss) / max(n_rows, 1)
    if cfg.mini_batches > 1:
        row["mini_batches"] = len(plan.parts)
    return row


def reward_metrics(scored, correctness_reward: str | None) -> dict:
    """Per reward of draw 0: its mean over the samples it scored and its none/error/timeout counts; the
    accuracy when the correctness reward is among them."""
    row: dict = {}
    if correctness_reward in scored.values:
        values = scored.values[correctness_reward]
        row["accuracy"] = sum(v == 1.0 for v in values) / len(scored.totals)
    for name, values in scored.values.items():
        present = [v for v in values if v is not None]
        row[f"reward/{name}"] = sum(present) / len(present) if present else None
    for name, counts in scored.count_summary().items():
        for status in ("none", "error", "timeout"):
            row[f"reward_{status}/{name}"] = counts[status]
    return row
