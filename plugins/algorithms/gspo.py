"""``gspo``: Group Sequence Policy Optimization, a sequence-level ratio (the geometric mean of the token ratios).

    A_i   = (r_i - mean_G r) / (std_G r + delta)
    s_i   = exp( (1/|o_i|) sum_t m_{i,t} (logp_{i,t} - old_{i,t}) )     # ratio_level = "sequence"
    S_i   = min( s_i A_i, clip(s_i, 1 - eps_low, 1 + eps_high) A_i )
    loss  = -(1/N) sum_i S_i  +  beta * KL                               # aggregation = "seq_mean"

The GSPO paper (Zheng et al. 2025, arXiv 2507.18071) clips the sequence ratio far tighter than
token-level PPO because s_i is a per-token geometric mean: its defaults, used here, are
eps_low = 3e-4 and eps_high = 4e-4. With one token per completion s_i is the token ratio, and GSPO
is GRPO with the same eps (tested).

Options: ratio_level = "sequence", clip = "two_sided", eps_low = 3e-4, eps_high = 4e-4,
dual_clip = 0, advantage = "group", aggregation = "seq_mean", beta = 0, delta = 1e-4,
std = "unbiased", max_log_ratio = 20.
"""

from __future__ import annotations

from dataclasses import dataclass

from grpo_bench import register_algorithm
from grpo_bench.algorithm import RATIO_LEVELS, ClippedRatio, RatioOptions, choice


@dataclass
class GSPOOptions(RatioOptions):
    ratio_level: str = choice("sequence", RATIO_LEVELS)
    eps_low: float = 3e-4
    eps_high: float = 4e-4


@register_algorithm("gspo")
class GSPO(ClippedRatio):
    Options = GSPOOptions
