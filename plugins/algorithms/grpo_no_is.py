"""``grpo_no_is``: the paper's ablation with importance sampling removed.

    A_i  = (r_i - mean_G r) / (std_G r + delta)
    g    = grad_theta [ -(1/N) sum_i (1/|o_i|) sum_t m_{i,t} A_i logp_{i,t}  +  beta * KL ]   at theta = theta_old
    then mu optimizer steps, each applying that same g (no recomputation, no ratio, no clipping).

``reuse_gradient = true`` (default) tells the trainer to evaluate g once per rollout batch (per
mini-batch when ``[train] mini_batches = k > 1``: the k gradients are all taken at theta_old,
before any step, and each is applied mu times). ``reuse_gradient = false`` recomputes
-A logp's gradient at the current parameters before every step instead: the same estimator
without the importance ratio that would correct for the policy having moved. The paper's ablation
does not say which it ran; both are offered. With mu = 1 and one mini-batch the two agree and this
is exactly GRPO's first step (the ratio is 1 and no clip is active there).

Options: reuse_gradient = true, advantage = "group", aggregation = "seq_mean", beta = 0.0,
delta = 1e-4, std = "unbiased".
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from grpo_bench import register_algorithm
from grpo_bench.algorithm import (
    Algorithm,
    Options,
    PolicyBatch,
    Stats,
    check_nonnegative,
    kl_penalty,
)


@dataclass
class NoISOptions(Options):
    reuse_gradient: bool = True


@register_algorithm("grpo_no_is")
class GRPONoIS(Algorithm):
    Options = NoISOptions
    zero_advantage_is_inert = True  # every term is multiplied by A_i

    def __init__(self, **options):
        super().__init__(**options)
        check_nonnegative(self.name, beta=self.options.beta)
        self.reuse_gradient = self.options.reuse_gradient

    def loss(self, batch: PolicyBatch, stats: Stats) -> torch.Tensor:
        adv = batch.advantages.unsqueeze(1)
        policy_loss = -self.aggregate(adv * batch.logp, batch)
        return policy_loss + self.options.beta * kl_penalty(batch, stats, self)
