"""``cispo``: Clipped IS-weight Policy Optimization (MiniMax-M1, arXiv 2506.13585).

    A_i        = (r_i - mean_G r) / (std_G r + delta)
    rho_{i,t}  = exp(logp_{i,t} - old_{i,t})
    w_{i,t}    = sg( min(rho_{i,t}, 1 + eps_high) )                     # clip = "upper_only"; sg = detach
    loss       = -(1 / sum_i |o_i|) sum_i sum_t m_{i,t} w_{i,t} A_i logp_{i,t}  +  beta * KL

Unlike the PPO min, the clip bounds the weight, never the gradient: every token keeps a gradient
w A d logp. At theta = theta_old, w = 1 and the gradient is the no-IS gradient (token-mean
aggregated). MiniMax-M1 sets no lower bound on the weight and tunes only eps_high; the paper's
value is not known here, so eps_high = 0.28 (the default of third-party implementations such as
Trinity-RFT). ``clip = "two_sided"`` adds the lower bound 1 - eps_low; ``ratio_level`` may be
"sequence" or "trajectory" (one weight per completion); ``dual_clip`` has no meaning here and is
rejected.

Options: clip = "upper_only", eps_high = 0.28, eps_low = 0.2 (unused under upper_only),
aggregation = "token_mean", ratio_level = "token", advantage = "group", beta = 0, delta = 1e-4,
std = "unbiased", max_log_ratio = 20. Logged: clip_frac (tokens whose weight was clipped).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from grpo_bench import register_algorithm
from grpo_bench.algorithm import (
    AGGREGATIONS,
    CLIPS,
    Algorithm,
    PolicyBatch,
    RatioOptions,
    Stats,
    capped_ratio,
    check_ratio_options,
    choice,
    clip_ratio,
    kl_penalty,
    level_log_ratio,
    token_ratio_stats,
)
from grpo_bench.errors import UserError


@dataclass
class CISPOOptions(RatioOptions):
    clip: str = choice("upper_only", CLIPS)
    eps_high: float = 0.28
    aggregation: str = choice("token_mean", AGGREGATIONS)


@register_algorithm("cispo")
class CISPO(Algorithm):
    Options = CISPOOptions
    zero_advantage_is_inert = True  # every term is multiplied by A_i
    ratio_based = True  # the clipped ratio weights each token's score

    def __init__(self, **options):
        super().__init__(**options)
        check_ratio_options(self.name, self.options)
        if self.options.dual_clip:
            raise UserError(f"{self.name}: option 'dual_clip' does not apply (the weight is clipped, not the surrogate)")

    def loss(self, batch: PolicyBatch, stats: Stats) -> torch.Tensor:
        o = self.options
        log_ratio = batch.logp - batch.old_logp
        token_ratio_stats(log_ratio, batch.mask, stats)
        with torch.no_grad():
            ratio, capped = capped_ratio(level_log_ratio(log_ratio, batch.mask, o.ratio_level), o.max_log_ratio)
            weight = clip_ratio(ratio, o.clip, o.eps_low, o.eps_high)
        per_seq = weight.dim() == 1
        stats.mean("clip_frac", (weight != ratio).double(), None if per_seq else batch.mask)
        stats.mean("ratio_capped_frac", capped.double(), None if per_seq else batch.mask)
        if per_seq:
            weight = weight.unsqueeze(1)
        per_token = weight * batch.advantages.unsqueeze(1) * batch.logp
        return -self.aggregate(per_token, batch) + o.beta * kl_penalty(batch, stats, self)
