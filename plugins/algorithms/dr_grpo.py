"""``dr_grpo``: GRPO "done right" (Liu et al. 2025, arXiv 2503.20783): no std division, no length bias.

    A_i        = r_i - mean_G r                                       # advantage = "group_mean"
    rho_{i,t}  = exp(logp_{i,t} - old_{i,t})
    s_{i,t}    = min(rho_{i,t} A_i, clip(rho_{i,t}, 1 - eps_low, 1 + eps_high) A_i)
    loss       = -(1/(N L)) sum_i sum_t m_{i,t} s_{i,t}  +  beta * KL  # aggregation = "constant"

L is the run's generation budget (``[train] max_new_tokens``, given by the trainer through
``bind``), a constant, so a long wrong answer is not penalised less per token than a short one.

Options: advantage = "group_mean", aggregation = "constant", ratio_level = "token",
clip = "two_sided", eps_low = 0.2, eps_high = 0.2, dual_clip = 0, beta = 0, delta = 1e-4 (unused
without std division), std = "unbiased" (unused), max_log_ratio = 20.
"""

from __future__ import annotations

from dataclasses import dataclass

from grpo_bench import register_algorithm
from grpo_bench.algorithm import AGGREGATIONS, ClippedRatio, RatioOptions, advantage_option, choice


@dataclass
class DrGRPOOptions(RatioOptions):
    advantage: str = advantage_option("group_mean")
    aggregation: str = choice("constant", AGGREGATIONS)


@register_algorithm("dr_grpo")
class DrGRPO(ClippedRatio):
    Options = DrGRPOOptions
