"""The sampler-learner gap: the rollout engine samples from pi_sampler, the trainer computes pi_learner.

Both should be the same policy at theta_old, but kernels and precision differ (vLLM in bf16 against
the trainer's forward), so the completions come from a slightly different distribution than the one
the loss assumes. Per completion token t, with the trainer's log-prob at theta_old and the engine's::

    log rho_t = log pi_learner(o_t | theta_old) - log pi_sampler(o_t)         (token level)
    log rho   = sum_t log rho_t                                              (sequence level: the product)

``[train] sampler_correction`` turns rho into a weight w on every policy-loss term (never on the KL
penalty), with C = ``sampler_correction_cap`` > 1:

    "tis"  w = min(rho, C)                       truncated importance sampling (Yao et al. 2025)
    "mis"  w = 1 if 1/C <= rho <= C else 0       masked importance sampling: the term is dropped
    "none" no weight

``[train] behaviour_logprobs = "engine"`` instead makes the engine's log-probs the "old" policy of the
importance ratio itself (GRPO's pi_theta / pi_old becomes pi_theta / pi_sampler).

Every step whose engine reports log-probs logs the gap |log rho_t| over completion tokens (in the
trainer, ``engine_gap``): ``engine_logprob_gap_mean``, ``_max`` and ``engine_gap_frac_over_cap`` (the
share of tokens with |log rho_t| > log C); with a correction on, also ``sampler_weight_mean`` and
``sampler_weight_zero_frac`` (terms MIS dropped or TIS weighted to 0).
"""

from __future__ import annotations

import math

import torch

from ..algorithm import Stats
from ..errors import UserError


def needs_engine_logprobs(cfg) -> bool:
    return cfg.behaviour_logprobs == "engine" or cfg.sampler_correction != "none"


def engine_logprobs(mb, completions, device) -> torch.Tensor:
    """The engine's log-prob of each completion token of micro-batch ``mb``, ``[B, Tc]`` (0 on padding).
    A completion without them is a :class:`UserError` naming the setting that asked for them."""
    out = torch.zeros(mb.completion_mask.shape, dtype=torch.float32)
    for r, i in enumerate(mb.indices):
        lps = completions[i].logprobs
        if lps is None or len(lps) != len(completions[i].token_ids):
            raise UserError("[train] behaviour_logprobs = \"engine\", sampler_correction and an algorithm that "
                            "needs engine_logp need the rollout engine's sampling log-probs, and a completion "
                            "came back without them")
        out[r, :len(lps)] = torch.tensor(lps, dtype=torch.float32)
    return out.to(device)


def correction_weight(old_logp: torch.Tensor, sampler_logp: torch.Tensor, mask: torch.Tensor, how: str,
                      level: str, cap: float) -> torch.Tensor | None:
    """The weight ``[B, T]`` of each policy-loss term (see the module docstring), or None for "none".
    Computed without gradient, in float64 for the sequence sums, returned in float32."""
    if how == "none":
        return None
    with torch.no_grad():
        log_rho = (old_logp.double() - sampler_logp.double()) * mask
        if level == "sequence":
            log_rho = log_rho.sum(dim=1, keepdim=True).expand_as(mask)
        if how == "tis":
            weight = torch.exp(torch.clamp(log_rho, max=math.log(cap)))
        elif how == "mis":
            weight = (log_rho.abs() <= math.log(cap)).double()
        else:
            raise UserError(f"unknown sampler_correction {how!r} (known: none, tis, mis)")
        return (weight * mask).float()


def log_weight(weight: torch.Tensor, mask: torch.Tensor, stats: Stats) -> None:
    """The correction's weight statistics for one micro-batch (the gap itself: trainer.engine_gap)."""
    stats.mean("sampler_weight_mean", weight, mask)
    stats.mean("sampler_weight_zero_frac", (weight == 0).double(), mask)
