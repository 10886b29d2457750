"""``grpo_no_is``: the paper's ablation with importance sampling removed.

    A_i  = (r_i - mean_G r) / (std_G r + delta)
    g    = grad_theta [ -(1/N) sum_i (1/|o_i|) sum_t m_{i,t} A_i logp_{i,t}  +  beta * KL ]   at theta = theta_old
    then mu optimizer steps, each applying that same g (no recomputation, no ratio, no clipping).

``reuse_gradient = True`` tells the trainer to evaluate g once per rollout batch. With mu = 1
this is exactly GRPO's first step (the ratio is 1 and no clip is active there).

Options: beta = 0.0, delta = 1e-4, std = "unbiased".
"""

from __future__ import annotations

import torch
from grpo_bench import hookimpl
from grpo_bench.algorithm import (
    Algorithm,
    PolicyBatch,
    Stats,
    check_nonnegative,
    kl_penalty,
    seq_mean,
)


class GRPONoIS(Algorithm):
    name = "grpo_no_is"
    zero_advantage_is_inert = True  # every term is multiplied by A_i
    reuse_gradient = True

    def __init__(self, **options):
        super().__init__(**options)
        check_nonnegative(self.name, beta=self.options.beta)

    def loss(self, batch: PolicyBatch, stats: Stats) -> torch.Tensor:
        adv = batch.advantages.unsqueeze(1)
        policy_loss = -seq_mean(adv * batch.logp, batch.mask).sum() / batch.num_completions
        return policy_loss + self.options.beta * kl_penalty(batch, stats)


@hookimpl
def grpo_bench_algorithms():
    return {"grpo_no_is": GRPONoIS}
