"""The algorithm interface shared by every variant, and the formula pieces they have in common.

Notation (as in docs/algorithms.md): a prompt's group holds G completions o_1..o_G with rewards
r_i; ``mask`` m_{i,t} marks completion tokens; |o_i| = sum_t m_{i,t}; ``logp``, ``old_logp`` and
``ref_logp`` are per-token log-probs under the current, sampling and reference policies;
N = completions in the whole rollout batch (the loss normaliser, so micro-batches add up exactly).

The ideas the variants differ in are shared options, so any combination can be run and recorded:
``advantage`` (how rewards become A), ``aggregation`` (how per-token terms become one loss), and for
the ratio-based variants (:class:`ClippedRatio`) ``ratio_level``, ``clip``, ``eps_low``/``eps_high``,
``dual_clip`` and ``max_log_ratio``. docs/algorithms.md has the formulas.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from .config.options import check_fields, option
from .declare import DECLARED, declared_by, register_advantage
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
    #: completion tokens in the whole (mini-)batch that N counts; the ``token_mean`` normaliser.
    #: 0: not given, this batch's own mask sum is used (right when the batch is the whole batch).
    num_tokens: int = 0
    #: the run's generation budget (the ``constant`` normaliser); 0: the one given to :meth:`Algorithm.bind`
    max_new_tokens: int = 0
    #: a weight ``[B, T]`` on every policy-loss term (the trainer's sampler-learner correction, TIS or MIS:
    #: training/sampler_gap.py), applied by :meth:`Algorithm.aggregate`; None: every term weighs 1
    sample_weight: torch.Tensor | None = None
    #: ``[B, T]`` float32: the rollout engine's own log-prob of each sampled token (0 past a completion's end);
    #: given when the algorithm declares ``"engine_logp"`` in :attr:`Algorithm.needs` or a trainer setting
    #: asks the engine for them (behaviour_logprobs = "engine", sampler_correction); else None
    engine_logp: torch.Tensor | None = None


#: The per-sample inputs an algorithm may declare in :attr:`Algorithm.needs`, beyond those every
#: :class:`PolicyBatch` carries (``logp``, ``mask``, ``advantages``, the normalisers, ``sample_weight``;
#: sequence lengths are ``mask.sum(1)``). Name -> what the trainer then provides:
INPUTS = {
    # always given (the trainer's staleness statistics and sampler corrections use it too); declaring it
    # documents that the loss reads it
    "old_logp": "PolicyBatch.old_logp [B, T] float32: log-probs at theta_old (or the engine's, under "
                "behaviour_logprobs = \"engine\")",
    # given whenever options.beta > 0; declared, the run loads the reference model whatever beta is
    "ref_logp": "PolicyBatch.ref_logp [B, T] float32: log-probs under the frozen reference model",
    # declared, the trainer asks the rollout engine for its sampling log-probs (an engine that does not
    # report them stops the run with a UserError)
    "engine_logp": "PolicyBatch.engine_logp [B, T] float32: the rollout engine's log-probs of the sampled tokens",
}


def check_needs(algorithm: "Algorithm | type[Algorithm]") -> frozenset[str]:
    """The algorithm's declared ``needs``, checked against :data:`INPUTS`: an unknown name (or a value
    that is not a set of names) is one :class:`UserError` naming the algorithm."""
    name = getattr(algorithm, "name", None) or getattr(algorithm, "__name__", type(algorithm).__name__)
    needs = algorithm.needs
    if isinstance(needs, str) or not all(isinstance(n, str) for n in needs):
        raise UserError(f"algorithm {name!r}: needs must be a set of input names ({', '.join(INPUTS)}), "
                        f"got {needs!r}")
    unknown = sorted(set(needs) - set(INPUTS))
    if unknown:
        raise UserError(f"algorithm {name!r} declares unknown needs {', '.join(map(repr, unknown))}; the "
                        f"trainer provides: {', '.join(INPUTS)}")
    return frozenset(needs)


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


#: the built-in advantage estimators (registered below with ``@register_advantage``; plugins may add more)
ADVANTAGES = ("group", "group_mean", "length_corrected", "batch_std")
AGGREGATIONS = ("seq_mean", "token_mean", "constant")
RATIO_LEVELS = ("token", "trajectory", "sequence")
CLIPS = ("two_sided", "upper_only", "none")


def choice(default: str, choices: tuple[str, ...], help: str = "") -> Any:
    """A string option restricted to ``choices`` (checked by :func:`parse_options`); the suite's
    :func:`grpo_bench.config.options.option` metadata, so one checker reads every limit."""
    return option(default, help=help, choices=choices)


def advantage_option(default: str) -> Any:
    """The ``advantage`` option: the name of a registered advantage estimator (checked by :func:`parse_options`)."""
    return field(default=default, metadata={"registered": "advantages"})


@dataclass
class Options:
    """Options every variant has. Subclasses add theirs; all are recorded in the run's config."""

    beta: float = 0.0  # weight of the per-token KL penalty to the reference model (loaded only if > 0)
    delta: float = option(1e-4, help="added to the std in the advantage denominator", min=0, min_open=True,
                          why="it keeps the advantage finite when a group's rewards are all equal")
    std: str = choice("unbiased", ("unbiased", "population"))  # std divides by G-1 (torch.std, TRL) or G
    #: group: (r - mean_G r)/(std_G r + delta); group_mean: r - mean_G r; length_corrected: group-normalised
    #: r/|o| (TIC-GRPO); batch_std: (r - mean_G r)/(std over the whole batch of r + delta) (TRL scale_rewards="batch")
    advantage: str = advantage_option("group")
    #: seq_mean: (1/N) sum_i (1/|o_i|) sum_t (GRPO); token_mean: (1/sum_i |o_i|) sum_i sum_t over the whole
    #: batch (DAPO, BNPO); constant: (1/(N L)) sum_i sum_t, L = the run's max_new_tokens (Dr.GRPO)
    aggregation: str = choice("seq_mean", AGGREGATIONS)


@dataclass
class RatioOptions(Options):
    """The options of a clipped importance-ratio surrogate (:class:`ClippedRatio`)."""

    #: token: rho_{i,t} = exp(logp - old); trajectory: w_i = exp(sum_t (logp - old)) (TIC-GRPO);
    #: sequence: s_i = exp((1/|o_i|) sum_t (logp - old)) (GSPO's geometric mean)
    ratio_level: str = choice("token", RATIO_LEVELS)
    #: two_sided: clip(r, 1 - eps_low, 1 + eps_high); upper_only: min(r, 1 + eps_high); none: r
    clip: str = choice("two_sided", CLIPS)
    eps_low: float = 0.2
    eps_high: float = 0.2
    #: 0: a negative advantage with a large ratio is unbounded (PPO's min); c > 1: dual clip, S >= c A for A < 0
    dual_clip: float = 0.0
    #: overflow guard: log-ratios above this are clamped before exp (no gradient through them)
    max_log_ratio: float = 20.0


class Algorithm:
    """Subclass, name it with ``@register_algorithm("name")`` (which sets ``name``), set ``Options``,
    implement :meth:`loss` (and :meth:`advantages` if needed)."""

    name: ClassVar[str]
    Options: ClassVar[type] = Options
    #: True: the trainer evaluates the gradient once at the old policy and applies it for all mu steps.
    reuse_gradient: ClassVar[bool] = False
    #: True: a completion with advantage 0 adds nothing to the policy gradient, so without a KL term the
    #: trainer leaves it out of the backward passes (the loss is still divided by the full N).
    zero_advantage_is_inert: ClassVar[bool] = False
    #: True: the loss takes importance ratios between the policy being trained and the one that sampled
    #: (so with mu > 1 it compares inner passes, and "auto" numerics resolve to ones whose ratios see the
    #: movement: config.numerics.RATIO_NUMERICS)
    ratio_based: ClassVar[bool] = False
    #: The optional per-sample inputs :meth:`loss` reads (names from :data:`INPUTS`: ``"old_logp"``,
    #: ``"ref_logp"``, ``"engine_logp"``). Rules: declare what the loss reads beyond the inputs every
    #: batch has; the trainer then provides it (loading the reference model, asking the engine for its
    #: log-probs) and rejects an unknown name with a :class:`UserError` naming the algorithm
    #: (:func:`check_needs`). A new input is added to :data:`INPUTS` and provided by the trainer in one place
    #: (training/trainer.py ``micro_batch_backward``), not by each algorithm.
    needs: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, **options: Any) -> None:
        self.options = parse_options(self.Options, options, where=self.name)
        self.group_size = 0
        self.max_new_tokens = 0

    def bind(self, *, group_size: int, max_new_tokens: int) -> "Algorithm":
        """The run's settings an algorithm may need (the trainer calls this; no option repeats them)."""
        self.group_size, self.max_new_tokens = int(group_size), int(max_new_tokens)
        return self

    def advantages(self, rewards: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``[P, G]`` rewards (and completion lengths) -> ``[P, G]`` advantages, per ``options.advantage``."""
        o = self.options
        return compute_advantages(rewards, lengths, getattr(o, "advantage", "group"), o.delta, o.std)

    def aggregate(self, per_token: torch.Tensor, batch: PolicyBatch, weighted: bool = True) -> torch.Tensor:
        """Sum of the per-token terms ``[B, T]`` (or per-sequence ``[B]``, spread over each sequence's
        tokens) divided per ``options.aggregation``; each term times ``batch.sample_weight`` when the
        trainer gives one and ``weighted`` (policy terms; the KL penalty passes False). The normalisers
        do not change with the weights."""
        if weighted and batch.sample_weight is not None:
            if per_token.dim() == 1:
                per_token = per_token.unsqueeze(1).expand_as(batch.mask)
            per_token = per_token * batch.sample_weight
        budget = batch.max_new_tokens or self.max_new_tokens
        return aggregate(per_token, batch, getattr(self.options, "aggregation", "seq_mean"), budget)

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
        if isinstance(given[key], float) and not math.isfinite(given[key]):
            raise UserError(f"{where}: option {key!r} must be a finite number, got {given[key]!r}")
    opts = cls(**given)
    for f in dataclasses.fields(cls):
        allowed = f.metadata.get("choices")
        if allowed and getattr(opts, f.name) not in allowed:
            raise UserError(f"{where}: option {f.name!r} must be one of {', '.join(allowed)}; got "
                            f"{getattr(opts, f.name)!r}{_did_you_mean(getattr(opts, f.name), allowed)}")
        if f.metadata.get("registered") == "advantages":
            try:
                advantage_estimator(getattr(opts, f.name))
            except UserError as exc:
                raise UserError(f"{where}: option {f.name!r}: {exc}") from None
    # the limits in the fields' metadata (delta > 0: a group of equal rewards has std 0, (r - mean) / 0 is NaN)
    check_fields(opts, lambda key, msg: UserError(f"{where}: option {key!r} {msg}"), "")
    return opts


def compute_advantages(rewards: torch.Tensor, lengths: torch.Tensor, how: str, delta: float,
                       std: str = "unbiased") -> torch.Tensor:
    """``[P, G]`` rewards -> advantages by the estimator registered as ``how`` (see :class:`Options` ``advantage``)."""
    if rewards.numel() == 0:  # dynamic sampling may leave no group
        return rewards.clone()
    return advantage_estimator(how)(rewards, lengths, delta=delta, std=std)


def advantage_estimator(name: str):
    """The advantage estimator registered as ``name``: a built-in of this module, else one a plugin
    registered (``@register_advantage`` or the ``grpo_bench_advantages`` hook); an unknown name is a
    :class:`UserError` with "did you mean"."""
    builtin = declared_by(__name__).get("advantages", {})
    if name in builtin:
        return builtin[name]
    for declared in DECLARED.values():  # decorated in any module imported so far (a suite's plugins too)
        if name in declared.get("advantages", {}):
            return declared["advantages"][name]
    from .registry import default_registry

    return default_registry().get("advantages", name)


def _did_you_mean(name: Any, known: tuple[str, ...]) -> str:
    from .registry import did_you_mean

    return did_you_mean(name, list(known))


@register_advantage("group")
def group_advantage(rewards: torch.Tensor, lengths: torch.Tensor, *, delta: float, std: str) -> torch.Tensor:
    """A_i = (r_i - mean_G r) / (std_G r + delta) (GRPO)."""
    return group_normalize(rewards, delta, std)


@register_advantage("group_mean")
def group_mean_advantage(rewards: torch.Tensor, lengths: torch.Tensor, *, delta: float, std: str) -> torch.Tensor:
    """A_i = r_i - mean_G r (Dr.GRPO)."""
    return rewards - rewards.mean(dim=1, keepdim=True)


@register_advantage("length_corrected")
def length_corrected_advantage(rewards: torch.Tensor, lengths: torch.Tensor, *, delta: float,
                               std: str) -> torch.Tensor:
    """The group normalisation of r_i / |o_i| (TIC-GRPO)."""
    return group_normalize(rewards / lengths.clamp(min=1), delta, std)


@register_advantage("batch_std")
def batch_std_advantage(rewards: torch.Tensor, lengths: torch.Tensor, *, delta: float, std: str) -> torch.Tensor:
    """A_i = (r_i - mean_G r) / (std of every reward in the batch + delta) (TRL ``scale_rewards="batch"``)."""
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    if rewards.numel() < 2:
        return centred * 0
    return centred / (rewards.std(correction=1 if std == "unbiased" else 0) + delta)


def aggregate(x: torch.Tensor, batch: PolicyBatch, how: str, max_new_tokens: int = 0) -> torch.Tensor:
    """sum_i sum_t m_{i,t} x_{i,t} over a micro-batch with the normaliser of ``how``:
    seq_mean (1/N) sum_i (1/|o_i|); token_mean 1/(tokens in the batch); constant 1/(N max_new_tokens).
    A per-sequence ``x`` ``[B]`` counts as that value on each of the sequence's tokens."""
    mask = batch.mask
    if x.dim() == 1:
        x = x.unsqueeze(1).expand_as(mask)
    if how == "seq_mean":
        return seq_mean(x, mask).sum() / batch.num_completions
    total = (x * mask).sum()
    if how == "token_mean":
        return total / max(batch.num_tokens or float(mask.sum()), 1.0)
    if how == "constant":
        if max_new_tokens < 1:
            raise UserError("aggregation 'constant' needs the generation budget: set PolicyBatch.max_new_tokens "
                            "or call Algorithm.bind(group_size=..., max_new_tokens=...)")
        return total / (batch.num_completions * max_new_tokens)
    raise UserError(f"unknown aggregation {how!r} (known: {', '.join(AGGREGATIONS)})")


def level_log_ratio(log_ratio: torch.Tensor, mask: torch.Tensor, level: str) -> torch.Tensor:
    """Token log-ratios ``[B, T]`` -> ``[B, T]`` (token), or ``[B]``: the sum (trajectory) or the mean (sequence)."""
    if level == "token":
        return log_ratio
    if level == "trajectory":
        return (log_ratio * mask).sum(dim=1)
    if level == "sequence":
        return seq_mean(log_ratio, mask)
    raise UserError(f"unknown ratio level {level!r} (known: {', '.join(RATIO_LEVELS)})")


def capped_ratio(log_r: torch.Tensor, max_log_ratio: float) -> tuple[torch.Tensor, torch.Tensor]:
    """exp(min(log r, max_log_ratio)) and where the cap bit (no gradient flows there)."""
    return torch.exp(torch.clamp(log_r, max=max_log_ratio)), log_r > max_log_ratio


def clip_ratio(ratio: torch.Tensor, clip: str, eps_low: float, eps_high: float) -> torch.Tensor:
    """two_sided clip(r, 1-eps_low, 1+eps_high); upper_only min(r, 1+eps_high); none r."""
    if clip == "two_sided":
        return torch.clamp(ratio, 1 - eps_low, 1 + eps_high)
    if clip == "upper_only":
        return torch.clamp(ratio, max=1 + eps_high)
    return ratio


def check_ratio_options(where: str, o: RatioOptions) -> None:
    check_nonnegative(where, eps_low=o.eps_low, eps_high=o.eps_high, beta=o.beta, max_log_ratio=o.max_log_ratio)
    if o.dual_clip != 0 and o.dual_clip <= 1:
        raise UserError(f"{where}: option 'dual_clip' must be 0 (off) or > 1, got {o.dual_clip}")


class ClippedRatio(Algorithm):
    """The PPO-style clipped surrogate at any ratio level, clip form and aggregation::

        r      = exp(level(logp - old))                       token / trajectory (sum) / sequence (mean)
        S      = min(r A, clip(r) A)                          clip = two_sided | upper_only | none (S = r A)
        S      = max(S, c A)   where A < 0                    only when dual_clip = c > 1
        loss   = -aggregate(S) + beta * aggregate(KL)

    Subclasses are the named variants: they set ``name``, defaults in ``Options``, and the formula."""

    Options: ClassVar[type] = RatioOptions
    zero_advantage_is_inert = True  # every term is multiplied by A_i
    ratio_based = True
    needs = frozenset({"old_logp"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        check_ratio_options(self.name, self.options)

    def loss(self, batch: PolicyBatch, stats: Stats) -> torch.Tensor:
        o = self.options
        log_ratio = batch.logp - batch.old_logp
        token_ratio_stats(log_ratio, batch.mask, stats)
        ratio, capped = capped_ratio(level_log_ratio(log_ratio, batch.mask, o.ratio_level), o.max_log_ratio)
        adv = batch.advantages if ratio.dim() == 1 else batch.advantages.unsqueeze(1)
        weights = batch.mask if ratio.dim() == 2 else None
        unclipped = ratio * adv
        surrogate = torch.minimum(unclipped, clip_ratio(ratio, o.clip, o.eps_low, o.eps_high) * adv)
        stats.mean("clip_frac", (surrogate < unclipped).double(), weights)
        if o.dual_clip > 0:
            floor = o.dual_clip * adv
            cut = (adv < 0) & (floor > surrogate)
            stats.mean("dual_clip_frac", cut.double(), weights)
            surrogate = torch.where(cut, floor.expand_as(surrogate), surrogate)
        stats.mean("ratio_capped_frac", capped.double(), weights)
        if o.ratio_level == "sequence":
            stats.mean("ratio_seq_mean", ratio.detach())
        return -self.aggregate(surrogate, batch) + o.beta * kl_penalty(batch, stats, self)


def group_normalize(scores: torch.Tensor, delta: float, std: str = "unbiased") -> torch.Tensor:
    """A_i = (s_i - mean_G s) / (std_G s + delta), per row of a ``[P, G]`` tensor."""
    mean = scores.mean(dim=1, keepdim=True)
    sd = scores.std(dim=1, keepdim=True, correction=1 if std == "unbiased" else 0)
    return (scores - mean) / (sd + delta)


def seq_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(1/|o_i|) sum_t m_{i,t} x_{i,t}, per row."""
    return (x * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)


def kl_penalty(batch: PolicyBatch, stats: Stats, algorithm: "Algorithm | None" = None) -> torch.Tensor:
    """k3 = exp(ref - logp) - (ref - logp) - 1 per token, aggregated as the algorithm's policy term
    (default (1/N) sum_i (1/|o_i|) sum_t m k3); 0 without a reference."""
    if batch.ref_logp is None:
        return batch.logp.new_zeros(())
    d = batch.ref_logp - batch.logp
    per_token = torch.exp(d) - d - 1
    stats.mean("kl", per_token, batch.mask)
    if algorithm is None:
        return seq_mean(per_token, batch.mask).sum() / batch.num_completions
    return algorithm.aggregate(per_token, batch, weighted=False)


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
