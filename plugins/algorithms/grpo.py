"""``grpo``: group-normalised advantages with PPO-style token-level importance ratios and clipping.

    A_i        = (r_i - mean_G r) / (std_G r + delta)
    rho_{i,t}  = exp(logp_{i,t} - old_{i,t})
    s_{i,t}    = min(rho_{i,t} A_i, clip(rho_{i,t}, 1 - eps_low, 1 + eps_high) A_i)
    loss       = -(1/N) sum_i (1/|o_i|) sum_t m_{i,t} s_{i,t}  +  beta * KL

KL is the per-token estimator exp(ref - logp) - (ref - logp) - 1, averaged the same way.
The trainer takes ``mu`` optimizer steps per rollout batch with ``old`` fixed.

Options: eps_low = 0.2, eps_high = 0.2, beta = 0.0, delta = 1e-4, std = "unbiased".
Logged: clip_frac (tokens whose clipped branch is the active minimum), token and trajectory
ratio mean/max, kl.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from grpo_bench import hookimpl
from grpo_bench.algorithm import (
    Algorithm,
    Options,
    PolicyBatch,
    Stats,
    check_nonnegative,
    kl_penalty,
    seq_mean,
    token_ratio_stats,
)


@dataclass
class GRPOOptions(Options):
    eps_low: float = 0.2
    eps_high: float = 0.2


class GRPO(Algorithm):
    name = "grpo"
    zero_advantage_is_inert = True  # every term is multiplied by A_i
    Options = GRPOOptions

    def __init__(self, **options):
        super().__init__(**options)
        o = self.options
        check_nonnegative(self.name, eps_low=o.eps_low, eps_high=o.eps_high, beta=o.beta)

    def loss(self, batch: PolicyBatch, stats: Stats) -> torch.Tensor:
        o = self.options
        log_ratio = batch.logp - batch.old_logp
        ratio = torch.exp(log_ratio)
        adv = batch.advantages.unsqueeze(1)
        unclipped = ratio * adv
        clipped = torch.clamp(ratio, 1 - o.eps_low, 1 + o.eps_high) * adv
        surrogate = torch.minimum(unclipped, clipped)
        is_clipped = (clipped < unclipped).to(batch.mask.dtype)
        stats.mean("clip_frac", is_clipped, batch.mask)
        token_ratio_stats(log_ratio, batch.mask, stats)
        policy_loss = -seq_mean(surrogate, batch.mask).sum() / batch.num_completions
        return policy_loss + o.beta * kl_penalty(batch, stats)


@hookimpl
def grpo_bench_algorithms():
    return {"grpo": GRPO}
