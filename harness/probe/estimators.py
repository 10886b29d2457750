"""Each algorithm's update direction on the probe, from the real plugin's loss.

For a batch of completions sampled at theta_old (rows ``[P, G]``), the update direction at theta_k is
u = -grad_theta loss(PolicyBatch(logp at theta_k, old_logp at theta_old, mask, advantages, N)), with
the loss the plugin's own ``loss()``. Only the per-token log-probs carry the dependence on theta, so
u = -sum_{i,t} (d loss / d logp_{i,t}) * grad logp_{i,t}(theta_k): autograd gives the first factor
(on a leaf tensor of log-probs), the probe's exact token Jacobian the second. An algorithm whose
class sets ``reuse_gradient`` (the trainer evaluates its gradient once at theta_old and reuses it)
gets u evaluated at theta_old whatever theta_k is.

Advantages: ``group`` calls the plugin's ``advantages(rewards[P, G], lengths[P, G])``; ``raw`` uses
A = r - b(x) with b(x) = E_{pi_old}[r | x] computed exactly (a fixed baseline: every completion's
term then depends on that completion only, so the expectation over batches can be enumerated);
``sum`` uses A = (r - b(x)) / c(o), where c(o) is the weight the plugin's loss puts on each token of
completion o at theta_old (1/|o| for a per-completion token mean, 1 for a per-sequence ratio):
it replaces the plugin's length aggregation by a plain sum over tokens, isolating the ratio level
(token vs trajectory) from the length normalisation. Available where c(o) is the same for every
token of o and the loss is separable (see ``exact_available``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch

from ..algorithm import PolicyBatch, Stats
from ..errors import UserError
from .policy import DTYPE, ProbePolicy

ADVANTAGES = ("group", "raw", "sum")
NO_CLIP = 1e6  # the value every eps* option gets in the "noclip" ablation
CONTROL = "score@θk"  # the no-ratio control: grpo_no_is with reuse_gradient = false (the score at theta_k)
PAPER_VARIANTS = ("grpo", "grpo_no_is", "tic_grpo")  # whose ablations are probed by default


@dataclass(frozen=True)
class VariantSpec:
    """One probed estimator: an algorithm, its options, and how advantages are formed."""

    algorithm: str
    options: tuple = ()  # sorted (key, value) pairs
    advantage: str = "group"
    tag: str = ""  # a short name for the options ("noclip", ...)

    @property
    def label(self) -> str:
        adv = [] if self.advantage == "group" else [self.advantage]
        if self.tag == CONTROL:
            return CONTROL + "".join(f"[{x}]" for x in adv)
        return self.algorithm + "".join(f"[{x}]" for x in ([self.tag] if self.tag else []) + adv)

    @property
    def role(self) -> str:
        """``configured`` (the plugin's defaults, its own advantages), ``control`` or ``ablation``."""
        if self.tag == CONTROL:
            return "control"
        return "configured" if not self.tag and self.advantage == "group" else "ablation"


@dataclass
class Point:
    """The probe's tables at one theta (detached)."""

    theta: torch.Tensor
    logp: torch.Tensor  # [T] token log-probs
    jac: torch.Tensor = field(repr=False)  # [T, D]

    @classmethod
    def at(cls, probe: ProbePolicy, theta: torch.Tensor) -> "Point":
        theta = theta.detach()
        with torch.no_grad():
            logp = probe.token_logp(theta)
        return cls(theta, logp, probe.token_jacobian(theta))


def policy_batch(**fields) -> PolicyBatch:
    """A PolicyBatch from whichever of the given fields the dataclass has (it may grow new ones)."""
    names = {f.name for f in dataclasses.fields(PolicyBatch)}
    return PolicyBatch(**{k: v for k, v in fields.items() if k in names})


class Estimator:
    def __init__(self, probe: ProbePolicy, spec: VariantSpec, registry):
        if spec.advantage not in ADVANTAGES:
            raise UserError(f"probe: advantage must be one of {ADVANTAGES}, got {spec.advantage!r}")
        self.probe, self.spec = probe, spec
        self.cls = registry.get("algorithms", spec.algorithm)
        self.algo = self.cls(**dict(spec.options))
        self.reuse = bool(getattr(self.algo, "reuse_gradient", False))
        self._exact_ok: bool | None = None
        self._weights: torch.Tensor | None = None

    def config(self) -> dict:
        return {"label": self.spec.label, "advantage": self.spec.advantage, **self.algo.config(),
                "reuse_gradient": self.reuse}

    # ---- advantages ---------------------------------------------------------------------------
    def advantages(self, rows: torch.Tensor, baseline: torch.Tensor) -> torch.Tensor:
        """``[P, G]`` advantages for completion rows ``[P, G]``; ``baseline`` is b(x) ``[P]`` (raw mode)."""
        r = self.probe.rewards[rows]
        if self.spec.advantage == "raw":
            return r - baseline.unsqueeze(1)
        if self.spec.advantage == "sum":
            return (r - baseline.unsqueeze(1)) / self._weights[rows]
        return self.algo.advantages(r, self.probe.lengths[rows]).to(DTYPE)

    # ---- one update ---------------------------------------------------------------------------
    def _cotangent_rows(self, rows: torch.Tensor, adv: torch.Tensor, n: float, old: Point, at: Point) -> torch.Tensor:
        """d loss / d logp ``[len(rows), L]`` for completion ``rows`` (flat) with advantages ``adv`` (flat): the
        plugin's loss at ``at`` (at ``old`` for a reuse-gradient algorithm)."""
        pt = old if self.reuse else at
        idx, mask = self.probe.idx[rows], self.probe.mask[rows]
        logp = (pt.logp[idx] * mask).requires_grad_(True)
        batch = policy_batch(logp=logp, old_logp=old.logp[idx] * mask, mask=mask, advantages=adv,
                             num_completions=n, num_tokens=float(mask.sum()), max_new_tokens=self.probe.cfg.max_len,
                             ref_logp=None)
        loss = self.algo.loss(batch, Stats())
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{self.spec.label}: non-finite loss on the probe")
        (cot,) = torch.autograd.grad(loss, logp, allow_unused=True)
        return torch.zeros_like(logp) if cot is None else cot

    def _cotangent(self, rows: torch.Tensor, adv: torch.Tensor, n: float, old: Point, at: Point) -> torch.Tensor:
        """d loss / d (token table) ``[T]``."""
        return self.probe.scatter(rows, self._cotangent_rows(rows, adv, n, old, at))

    def _jac(self, old: Point, at: Point) -> torch.Tensor:
        return old.jac if self.reuse else at.jac

    def _direction(self, rows: torch.Tensor, adv: torch.Tensor, n: float, old: Point, at: Point) -> torch.Tensor:
        return -(self._cotangent(rows, adv, n, old, at) @ self._jac(old, at))

    def update(self, rows: torch.Tensor, baseline: torch.Tensor, old: Point, at: Point) -> torch.Tensor:
        """The update direction for one batch: rows ``[P, G]`` sampled at theta_old."""
        return self.updates(rows.unsqueeze(0), baseline, old, at)[0]

    def updates(self, batches: torch.Tensor, baseline: torch.Tensor, old: Point, at: Point) -> torch.Tensor:
        """Update directions ``[B, D]`` for batches ``[B, P, G]`` (one loss per batch, one matrix product)."""
        self.prepare(old)
        cots = []
        for rows in batches:
            adv = self.advantages(rows, baseline)
            cots.append(self._cotangent(rows.reshape(-1), adv.reshape(-1), rows.numel(), old, at))
        return -(torch.stack(cots) @ self._jac(old, at))

    # ---- exact expectation --------------------------------------------------------------------
    def prepare(self, old: Point) -> None:
        """For ``sum`` advantages: c(o), each completion's per-token loss weight at theta_old (A = 1, N = 1)."""
        if self.spec.advantage != "sum" or self._weights is not None:
            return
        c = self.token_weights(old)
        if c is None:
            raise UserError(f"probe: {self.spec.label}: 'sum' advantages need a loss that is a sum of per-completion "
                            "terms weighting a completion's tokens equally at theta_old")
        self._weights = c

    def token_weights(self, old: Point) -> torch.Tensor | None:
        """c(o) ``[S]``: the weight the loss puts on each token of completion o at theta_old (A = 1, N = 1), or
        None where the loss is not a sum of per-completion terms or weights a completion's tokens unequally."""
        if not self.exact_available(old, mode_ok=True):
            return None
        rows = torch.arange(self.probe.idx.shape[0])
        cot = self._cotangent_rows(rows, torch.ones(len(rows), dtype=DTYPE), 1.0, old, old)
        mask = self.probe.mask
        c = -(cot * mask).sum(1) / mask.sum(1)
        if not torch.allclose(cot * mask, -c.unsqueeze(1) * mask, rtol=1e-9, atol=1e-15) or bool((c <= 0).any()):
            return None
        return c

    def own_weights(self, old: Point) -> torch.Tensor:
        """kappa(o) ``[S]``, the variant's own objective J_own = (1/P) sum_x E[kappa(o) r(x, o)] (max kappa = 1):
        its per-token loss weight c(o) (1/|o| for a per-completion token mean, 1 for a trajectory ratio or a
        constant normaliser; 1 where the loss is not separable, e.g. a batch token mean), divided by |o| again
        for length-corrected advantages (r/|o| in group mode). 1 for ``sum`` advantages."""
        ones = torch.ones(self.probe.idx.shape[0], dtype=DTYPE)
        if self.spec.advantage == "sum":
            return ones
        c = self.token_weights(old)
        kappa = ones if c is None else c / c.max()
        if self.spec.advantage == "group" and getattr(self.algo.options, "advantage", "") == "length_corrected":
            kappa = kappa / self.probe.lengths
        return kappa / kappa.max()

    def exact_available(self, old: Point, mode_ok: bool = False) -> bool:
        """The expectation can be enumerated when advantages are fixed per completion (raw) and the loss is a
        sum of per-completion terms, each positively homogeneous in its advantage (then weighting A by
        pi_old(o|x)/P with N = 1 gives the expectation). Checked numerically on a few completions at a
        moved theta, so a plugin that normalises over the batch (by total tokens, say) is not mistaken."""
        if self.spec.advantage == "group" and not mode_ok:
            return False
        if self._exact_ok is None:
            gen = torch.Generator().manual_seed(1234)
            d = torch.randn(self.probe.dim, generator=gen, dtype=DTYPE)
            moved = Point.at(self.probe, old.theta + 0.5 * d / d.norm() * old.theta.norm().clamp(min=1.0))
            rows = torch.randperm(self.probe.idx.shape[0], generator=gen)[:6]
            adv = torch.randn(6, generator=gen, dtype=DTYPE)
            c = 0.1 + torch.rand(6, generator=gen, dtype=DTYPE)
            whole = self._direction(rows, adv * c, 1.0, old, moved)
            parts = sum(c[i] * self._direction(rows[i:i + 1], adv[i:i + 1], 1.0, old, moved) for i in range(6))
            self._exact_ok = bool(torch.allclose(whole, parts, rtol=1e-8, atol=1e-12 * float(parts.norm()) + 1e-300))
        return self._exact_ok

    def exact_expectation(self, baseline: torch.Tensor, old: Point, at: Point,
                          advantages: torch.Tensor | None = None) -> torch.Tensor | None:
        """E_{batch ~ pi_old}[u] by enumeration, or None where it cannot be (see ``exact_available``).
        ``advantages`` ``[S]``: a fixed advantage per completion instead of r - b(x)."""
        if not self.exact_available(old):
            return None
        self.prepare(old)
        probe = self.probe
        rows = torch.arange(probe.idx.shape[0])
        with torch.no_grad():
            weight = torch.exp(probe.seq_logp(old.logp)) / probe.num_prompts
        fixed = probe.rewards - baseline[probe.prompt] if advantages is None else advantages
        if advantages is None and self.spec.advantage == "sum":
            fixed = fixed / self._weights
        adv = fixed * weight
        return self._direction(rows, adv, 1.0, old, at)


    def exact_group_expectation(self, G: int, old: Point, at: Point, limit: int = 20000) -> torch.Tensor:
        """E_{batch ~ pi_old}[u] for the plugin's own (group) advantages, by enumerating every batch of G
        completions per prompt: (completions per prompt) ** (P G) batches, refused above ``limit`` (small
        probes only; the tests' reference for the Monte Carlo of group-mode rows)."""
        batches, prob = enumerate_batches(self.probe, old.logp, G, limit)
        return prob @ self.updates(batches, self.probe.value(old.theta), old, at)


def enumerate_batches(probe: ProbePolicy, old_logp: torch.Tensor, G: int, limit: int = 20000
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Every batch ``[N, P, G]`` of G completions per prompt and its probability under pi_old ``[N]``."""
    n = probe.per_prompt ** (probe.num_prompts * G)
    if n > limit:
        raise UserError(f"probe: {n} batches to enumerate (more than {limit}); use a smaller probe")
    with torch.no_grad():
        probs = torch.exp(probe.seq_logp(old_logp)).view(probe.num_prompts, -1)
    slots = torch.cartesian_prod(*[torch.arange(probe.per_prompt)] * (probe.num_prompts * G)).reshape(
        n, probe.num_prompts, G)
    offset = (torch.arange(probe.num_prompts) * probe.per_prompt).view(1, -1, 1)
    prob = probs.gather(1, slots.permute(1, 0, 2).reshape(probe.num_prompts, -1)).reshape(
        probe.num_prompts, n, G).prod(-1).prod(0)
    return slots + offset, prob


def default_specs(registry, algorithms: list[str] | None = None, advantages=ADVANTAGES,
                  ablations: bool = True, ablate: tuple[str, ...] | None = PAPER_VARIANTS) -> list[VariantSpec]:
    """Every registered algorithm (or the named ones) as configured (its own advantages, aggregation and
    clipping) first; then the no-ratio control (score at theta_k, where ``grpo_no_is`` is probed); then, with
    ``ablations``, for each algorithm in ``ablate`` (None: all) the other advantage modes and a "noclip" spec
    (every ``eps*`` option set to NO_CLIP) for algorithms that clip."""
    names = registry.names("algorithms") if algorithms is None else algorithms
    known = set(registry.names("algorithms"))
    for n in names:
        if n not in known:
            raise UserError(f"probe: unknown algorithm {n!r} (registered: {', '.join(sorted(known))})")
    configured = [VariantSpec(name) for name in names]
    control = []
    if "grpo_no_is" in names:
        control = [VariantSpec("grpo_no_is", (("reuse_gradient", False),), adv, CONTROL)
                   for adv in ("group", "sum") if adv == "group" or adv in advantages]
    ablated = []
    for name in names if ablations else []:
        if ablate is not None and name not in ablate:
            continue
        cls = registry.get("algorithms", name)
        eps = [f.name for f in dataclasses.fields(cls.Options) if f.name.startswith("eps")]
        per_completion = getattr(cls.Options(), "aggregation", "seq_mean") == "seq_mean"
        for adv in advantages:
            if adv == "sum" and not per_completion:
                continue  # 'sum' advantages need a loss that is a sum of per-completion terms
            if adv != "group":
                ablated.append(VariantSpec(name, (), adv))
            if eps:
                ablated.append(VariantSpec(name, tuple((e, NO_CLIP) for e in sorted(eps)), adv, "noclip"))
    return configured + control + ablated
