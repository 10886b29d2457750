"""``dapo``: DAPO's loss (Yu et al. 2025, arXiv 2503.14476): clip-higher and token-level normalisation.

    A_i        = (r_i - mean_G r) / (std_G r + delta)
    rho_{i,t}  = exp(logp_{i,t} - old_{i,t})
    s_{i,t}    = min(rho_{i,t} A_i, clip(rho_{i,t}, 1 - eps_low, 1 + eps_high) A_i)    # eps 0.2 / 0.28
    loss       = -(1 / sum_i |o_i|) sum_i sum_t m_{i,t} s_{i,t}  +  beta * KL          # aggregation = "token_mean"

sum_i |o_i| counts every completion token of the rollout batch (the trainer passes it as
``PolicyBatch.num_tokens``), so micro-batches add up. DAPO's other two ideas are trainer options
that any variant can use (``[train] dynamic_sampling``, ``overlong_buffer``, ``overlong_filter``);
this file is the loss only. DAPO drops the KL term: beta = 0 by default, as for every variant.

Options: eps_low = 0.2, eps_high = 0.28, aggregation = "token_mean", ratio_level = "token",
clip = "two_sided", dual_clip = 0, advantage = "group", beta = 0, delta = 1e-4, std = "unbiased",
max_log_ratio = 20.
"""

from __future__ import annotations

from dataclasses import dataclass

from grpo_bench import register_algorithm
from grpo_bench.algorithm import AGGREGATIONS, ClippedRatio, RatioOptions, choice


@dataclass
class DAPOOptions(RatioOptions):
    eps_high: float = 0.28
    aggregation: str = choice("token_mean", AGGREGATIONS)


@register_algorithm("dapo")
class DAPO(ClippedRatio):
    Options = DAPOOptions
