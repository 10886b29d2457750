"""``tic_grpo``: one trajectory-level probability ratio, upper-only clipping, length-corrected advantages.

    w_i   = exp( sum_t m_{i,t} (logp_{i,t} - old_{i,t}) )          # the plain product of token ratios
    A'_i  = (r_i/|o_i| - mean_G(r/|o|)) / (std_G(r/|o|) + delta)   # advantage = "length_corrected"
    S_i   = min( w_i A'_i, min(w_i, 1 + eps_high) A'_i )            # clip = "upper_only"
    loss  = -(1/N) sum_i S_i  +  beta * KL                          # aggregation = "seq_mean"; KL as in grpo

These are the three changes from GRPO; each is a shared option, so every one can be switched off
alone (``benchmarks/tic-ablation.toml``): ratio_level = "token" | "sequence", clip = "two_sided",
advantage = "group". With A' < 0 and a large w the surrogate is unbounded (PPO's min), as the
formula above reads; ``dual_clip = c`` bounds it at c A' instead (which form the paper trains with
is not known here: see docs/algorithms.md).

Overflow guard: log w_i is clamped to at most ``max_log_ratio`` (default 20, w <= 4.85e8) before
exp; a clamped sample contributes no gradient (counted as ``ratio_capped_frac``). With A' > 0 the
upper clip already stops the gradient beyond 1 + eps_high; the cap matters only for A' < 0.

Options: ratio_level = "trajectory", clip = "upper_only", eps_high = 0.2 (eps_low unused under
upper_only), dual_clip = 0, advantage = "length_corrected", aggregation = "seq_mean",
max_log_ratio = 20.0, beta = 0.0, delta = 1e-4, std = "unbiased".
"""

from __future__ import annotations

from dataclasses import dataclass

from grpo_bench import register_algorithm
from grpo_bench.algorithm import CLIPS, RATIO_LEVELS, ClippedRatio, RatioOptions, advantage_option, choice


@dataclass
class TICOptions(RatioOptions):
    ratio_level: str = choice("trajectory", RATIO_LEVELS)
    clip: str = choice("upper_only", CLIPS)
    advantage: str = advantage_option("length_corrected")


@register_algorithm("tic_grpo")
class TICGRPO(ClippedRatio):
    Options = TICOptions
