"""The algorithm interface shared by every variant, and the formula pieces they have in common.

Notation (as in docs/algorithms.md): a prompt's group holds G completions o_1..o_G with rewards
r_i; ``mask`` m_{i,t} marks completion tokens; |o_i| = sum_t m_{i,t}; ``logp``, ``old_logp`` and
``ref_logp`` are per-token log-probs under the current, sampling and reference policies;
N = completions in the whole rollout batch (the loss normaliser, so micro-batches add up exactly).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from .errors import UserError


@dataclass
class PolicyBatch:
    """One micro-batch of completions, all tensors ``[B, T]`` except ``advantages`` ``[B]``."""

    logp: torch.Tensor
    old_logp: torch.Tensor
    mask: torch.Tensor
    advantages: torch.Tensor
    num_completions: int
    ref_logp: torch.Tensor | None = None


class Stats:
    """Accumulates per-step statistics across micro-batches: means (sum/count) and maxima."""

    def __init__(self) -> None:
        self._sum: dict[str, float] = {}
        self._count: dict[str, float] = {}
        self._max: dict[str, float] = {}

    def mean(self, name: str, values: torch.Tensor, weights: torch.Tensor | None = None) -> None:
        values = values.detach().double()
        w = torch.ones_like(values) if weights is None else weights.detach().double()
        self._sum[name] = self._sum.get(name, 0.0) + float((values * w).sum())
        self._count[name] = self._count.get(name, 0.0) + float(w.sum())

    def max(self, name: str, values: torch.Tensor, weights: torch.Tensor | None = None) -> None:
        values = values.detach().double()
        if weights is not None:
            values = values[weights.detach() > 0]
        if values.numel():
            self._max[name] = max(self._max.get(name, float("-inf")), float(values.max()))

    def result(self) -> dict[str, float]:
        out = {k: self._sum[k] / self._count[k] for k in self._sum if self._count[k] > 0}
        return out | self._max


@dataclass
class Options:
    """Options every variant has. Subclasses add theirs; all are recorded in the run's config."""

    beta: float = 0.0  # weight of the per-token KL penalty to the reference model (loaded only if > 0)
    delta: float = 1e-4  # added to the group std in the advantage denominator
    std: str = "unbiased"  # group std: "unbiased" (divides by G-1, as torch.std and TRL) or "population" (G)


class Algorithm:
    """Subclass, set ``name`` and ``Options``, implement :meth:`loss` (and :meth:`advantages` if needed)."""

    name: ClassVar[str]
    Options: ClassVar[type] = Options
    #: True: the trainer evaluates the gradient once at the old policy and applies it for all mu steps.
    reuse_gradient: ClassVar[bool] = False
    #: True: a completion with advantage 0 adds nothing to the policy gradient, so without a KL term the
    #: trainer leaves it out of the backward passes (the loss is still divided by the full N).
    zero_advantage_is_inert: ClassVar[bool] = False

    def __init__(self, **options: Any) -> None:
        self.options = parse_options(self.Options, options, where=self.name)

    def advantages(self, rewards: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``[P, G]`` rewards (and completion lengths) -> ``[P, G]`` advantages."""
        return group_normalize(rewards, self.options.delta, self.options.std)

    def loss(self, batch: PolicyBatch, stats: Stats) -> torch.Tensor:
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        return {"algorithm": self.name, "options": dataclasses.asdict(self.options)}


def parse_options(cls: type, given: dict[str, Any], where: str) -> Any:
    """Build an options dataclass, rejecting unknown keys and wrong types with a clear message."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key, value in given.items():
        if key not in fields:
            raise UserError(f"{where}: unknown option {key!r} (options: {', '.join(fields)})")
        expected = type(fields[key].default)
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            given[key] = float(value)
        elif not isinstance(value, expected) or (expected is not bool and isinstance(value, bool)):
            raise UserError(f"{where}: option {key!r} must be {expected.__name__}, got {type(value).__name__} {value!r}")
    opts = cls(**given)
    if opts.std not in ("unbiased", "population"):
        raise UserError(f"{where}: option 'std' must be 'unbiased' or 'population', got {opts.std!r}")
    return opts


def group_normalize(scores: torch.Tensor, delta: float, std: str = "unbiased") -> torch.Tensor:
    """A_i = (s_i - mean_G s) / (std_G s + delta), per row of a ``[P, G]`` tensor."""
    mean = scores.mean(dim=1, keepdim=True)
    sd = scores.std(dim=1, keepdim=True, correction=1 if std == "unbiased" else 0)
    return (scores - mean) / (sd + delta)


def seq_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(1/|o_i|) sum_t m_{i,t} x_{i,t}, per row."""
    return (x * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)


def kl_penalty(batch: PolicyBatch, stats: Stats) -> torch.Tensor:
    """(1/N) sum_i (1/|o_i|) sum_t m (exp(ref - logp) - (ref - logp) - 1); 0 without a reference."""
    if batch.ref_logp is None:
        return batch.logp.new_zeros(())
    d = batch.ref_logp - batch.logp
    per_token = torch.exp(d) - d - 1
    stats.mean("kl", per_token, batch.mask)
    return seq_mean(per_token, batch.mask).sum() / batch.num_completions


def token_ratio_stats(log_ratio: torch.Tensor, mask: torch.Tensor, stats: Stats) -> None:
    """Token-level and trajectory-level importance-ratio statistics (for logging)."""
    ratio = torch.exp(log_ratio)
    stats.mean("ratio_token_mean", ratio, mask)
    stats.max("ratio_token_max", ratio, mask)
    log_w = (log_ratio * mask).sum(dim=1)
    stats.mean("ratio_traj_mean", torch.exp(log_w.double().clamp(max=700.0)))
    stats.mean("log_ratio_traj_mean", log_w)
    stats.max("log_ratio_traj_max", log_w)


def check_nonnegative(where: str, **values: float) -> None:
    for key, value in values.items():
        if value < 0:
            raise UserError(f"{where}: option {key!r} must be >= 0, got {value}")
