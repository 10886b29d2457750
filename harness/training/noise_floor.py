"""The ratio noise floor: how far a run's log-probs move when the weights hardly move at all.

Importance ratios compare two forward passes of the same batch, before and after an optimizer step.
What such a comparison can see is bounded below by the numerics: under bf16 arithmetic a change of
the weights far smaller than any real step still flips roundings (weights near 0, activations
downstream) and moves the log-probs (``../shared`` measurement: a +-1e-7 nudge of every weight gave a
sequence k3 of 0.068 under bf16 autocast, 2e-7 in float32). The floor is that movement::

    logp_a = log pi(o | theta_old)                      the run's own forward, no gradient
    logp_b = log pi(o | theta_old + eps * s)            s_j = +-1 at random (a seeded generator), eps tiny
    d      = logp_b - logp_a,   k3 = exp(d) - 1 - d     per completion token
    noise_floor_k3_seq   = mean over sequences of sum_t k3        (the scale of ``kl_old_k3_seq``)
    noise_floor_k3_token = mean over tokens of k3                 (the scale of ``kl_old_k3_token``)

A run whose inner-step movement ``kl_old_k3_seq`` is not well above ``noise_floor_k3_seq`` (the
leaderboard asks for 10x) measured ratios of rounding, not of the policy's movement.

With bf16 working weights the nudge goes to the fp32 master weights and is rounded into the working
copy, as a real optimizer step would be. The weights are restored exactly (from a copy) and no random
state the training uses is drawn from, so measuring the floor changes no number of the run.
"""

from __future__ import annotations

import torch

from .policy import MicroBatch, completion_logprobs
from .precision import MasterWeights


def masked_k3(d: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """k3 = exp(d) - 1 - d per token in float64, 0 on padding: the floor's statistic and the trainer's
    staleness (``kl_old_k3_*``, step_parts.staleness_stats) are this one computation."""
    d = d.double()
    return (torch.exp(d) - 1 - d) * mask


def k3_stats(d: torch.Tensor, mask: torch.Tensor) -> tuple[float, float]:
    """(mean over sequences of sum_t k3, token mean of k3) for log-prob differences ``d`` [B, T]."""
    mask = mask.double()
    k3 = masked_k3(d, mask)
    return float(k3.sum(dim=1).mean()), float(k3.sum() / mask.sum().clamp(min=1))


@torch.no_grad()
def nudge(params: list[torch.Tensor], eps: float, seed: int) -> list[torch.Tensor]:
    """Add +-eps (random signs from a generator seeded by ``seed``) to every tensor in place; return
    copies of the values before, for :func:`restore`."""
    gen = torch.Generator().manual_seed(seed)
    saved = []
    for p in params:
        saved.append(p.detach().clone())
        signs = torch.randint(0, 2, p.shape, generator=gen, dtype=torch.int8).to(p.dtype).mul_(2).sub_(1)
        p.add_(signs.to(p.device), alpha=eps)
    return saved


@torch.no_grad()
def restore(params: list[torch.Tensor], saved: list[torch.Tensor]) -> None:
    for p, before in zip(params, saved):
        p.copy_(before)


@torch.no_grad()
def measure_noise_floor(model, mb: MicroBatch, params: list[torch.Tensor], master: MasterWeights | None,
                        autocast, eps: float, seed: int, temperature: float) -> dict[str, float]:
    """The floor on micro-batch ``mb`` (see the module docstring). ``params`` are what the optimizer
    updates (the master weights when ``master`` is given); ``autocast()`` gives the run's autocast context."""
    with autocast():
        logp_a, _ = completion_logprobs(model, mb, False, temperature)
    saved = nudge(params, eps, seed)
    try:
        if master is not None:
            master.push()
        with autocast():
            logp_b, _ = completion_logprobs(model, mb, False, temperature)
    finally:
        restore(params, saved)
        if master is not None:
            master.push()
    seq, token = k3_stats(logp_b - logp_a, mb.completion_mask.to(logp_a.device))
    return {"noise_floor_k3_seq": seq, "noise_floor_k3_token": token}
