"""``tic_grpo``: one trajectory-level probability ratio, upper-only clipping, length-corrected advantages.

    w_i   = exp( sum_t m_{i,t} (logp_{i,t} - old_{i,t}) )          # the plain product of token ratios
    A'_i  = (r_i/|o_i| - mean_G(r/|o|)) / (std_G(r/|o|) + delta)   # length_corrected = true
          = (r_i - mean_G r) / (std_G r + delta)                   # length_corrected = false
    S_i   = min( w_i A'_i, min(w_i, 1 + eps_high) A'_i )
    loss  = -(1/N) sum_i S_i  +  beta * KL                          # KL as in grpo

Overflow guard: log w_i is clamped to at most ``max_log_ratio`` (default 20, w <= 4.85e8) before
exp; a clamped sample contributes no gradient (counted as ``ratio_capped_frac``). With A' > 0 the
upper clip already stops the gradient beyond 1 + eps_high; the cap matters only for A' < 0.

Options: eps_high = 0.2, length_corrected = true, max_log_ratio = 20.0, beta = 0.0,
delta = 1e-4, std = "unbiased".
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
    group_normalize,
    kl_penalty,
    token_ratio_stats,
)


@dataclass
class TICOptions(Options):
    eps_high: float = 0.2
    length_corrected: bool = True
    max_log_ratio: float = 20.0


class TICGRPO(Algorithm):
    name = "tic_grpo"
    zero_advantage_is_inert = True  # every term is multiplied by A_i
    Options = TICOptions

    def __init__(self, **options):
        super().__init__(**options)
        o = self.options
        check_nonnegative(self.name, eps_high=o.eps_high, beta=o.beta, max_log_ratio=o.max_log_ratio)

    def advantages(self, rewards: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        o = self.options
        scores = rewards / lengths.clamp(min=1) if o.length_corrected else rewards
        return group_normalize(scores, o.delta, o.std)

    def loss(self, batch: PolicyBatch, stats: Stats) -> torch.Tensor:
        o = self.options
        log_ratio = batch.logp - batch.old_logp
        log_w = (log_ratio * batch.mask).sum(dim=1)
        capped = log_w > o.max_log_ratio
        w = torch.exp(torch.clamp(log_w, max=o.max_log_ratio))
        adv = batch.advantages
        unclipped = w * adv
        clipped = torch.clamp(w, max=1 + o.eps_high) * adv
        surrogate = torch.minimum(unclipped, clipped)
        stats.mean("clip_frac", (clipped < unclipped).double())
        stats.mean("ratio_capped_frac", capped.double())
        token_ratio_stats(log_ratio, batch.mask, stats)
        policy_loss = -surrogate.sum() / batch.num_completions
        return policy_loss + o.beta * kl_penalty(batch, stats)


@hookimpl
def grpo_bench_algorithms():
    return {"tic_grpo": TICGRPO}
