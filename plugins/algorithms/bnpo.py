"""``bnpo``: GRPO with the token mean over the batch (TRL's ``loss_type="bnpo"``).

    A_i, rho_{i,t}, s_{i,t} as in grpo (symmetric clip 0.2)
    loss = -(1 / sum_i |o_i|) sum_i sum_t m_{i,t} s_{i,t}  +  beta * KL      # aggregation = "token_mean"

TRL normalises by the tokens of its local batch; here every loss is normalised over the whole
rollout batch, so ``bnpo`` is ``grpo`` with ``aggregation = "token_mean"`` (and ``dapo`` without
clip-higher). The name follows TRL; it is not the Beta-normalisation method of the paper titled BNPO.

Options: aggregation = "token_mean"; the rest as grpo.
"""

from __future__ import annotations

from dataclasses import dataclass

from grpo_bench import register_algorithm
from grpo_bench.algorithm import AGGREGATIONS, ClippedRatio, RatioOptions, choice


@dataclass
class BNPOOptions(RatioOptions):
    aggregation: str = choice("token_mean", AGGREGATIONS)


@register_algorithm("bnpo")
class BNPO(ClippedRatio):
    Options = BNPOOptions
