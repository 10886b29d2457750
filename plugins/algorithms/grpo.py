"""``grpo``: group-normalised advantages with PPO-style token-level importance ratios and clipping.

    A_i        = (r_i - mean_G r) / (std_G r + delta)
    rho_{i,t}  = exp(logp_{i,t} - old_{i,t})
    s_{i,t}    = min(rho_{i,t} A_i, clip(rho_{i,t}, 1 - eps_low, 1 + eps_high) A_i)
    loss       = -(1/N) sum_i (1/|o_i|) sum_t m_{i,t} s_{i,t}  +  beta * KL

KL is the per-token estimator exp(ref - logp) - (ref - logp) - 1, averaged the same way.
The trainer takes ``mu`` optimizer steps per rollout batch with ``old`` fixed.

Options (the shared ones of ``ClippedRatio``, see docs/algorithms.md): ratio_level = "token",
clip = "two_sided", eps_low = 0.2, eps_high = 0.2, dual_clip = 0 (off), advantage = "group",
aggregation = "seq_mean", beta = 0.0, delta = 1e-4, std = "unbiased", max_log_ratio = 20.
Logged: clip_frac (tokens whose clipped branch is the active minimum), token and trajectory
ratio mean/max, kl.
"""

from __future__ import annotations

from grpo_bench import register_algorithm
from grpo_bench.algorithm import ClippedRatio, RatioOptions


@register_algorithm("grpo")
class GRPO(ClippedRatio):
    Options = RatioOptions
