"""``grpo-bench probe gradient-bias``: how far each algorithm's expected update is from the exact policy
gradient at the current and at the old policy, as the policy goes stale (docs/gradient-bias.md).

Every probed variant (``estimators.py``: the algorithms as configured first, then the no-ratio control,
then the ablations) is measured on the enumerable probe policy (``policy.py``) at several theta_old (one
per ``seeds`` entry: its own init and warm start) and, for each, along several paths away from theta_old:
- ``random1``, ``random2``...: theta_old + alpha d, d a seeded random unit direction;
- ``gradient``: d = grad J(theta_old) / ||grad J(theta_old)||;
- ``adam``: the variant's own Adam steps on one batch sampled at theta_old (as the trainer's mu inner steps);
each cut where the exact KL(pi_old || pi_k) equals each target (bisection; between two Adam iterates on
the adam path). Two more sweeps, at the first seed and random direction, for the variants as configured
and the control: ``group_size`` (each G at ``sweep_kl``) and ``length`` (each maximum length, a new probe
each). In the ``kl`` sweep a variant whose expectation can be enumerated is measured exactly only.

Per cell, with U the ``[B, D]`` update directions of B batches sampled at theta_old (the same batches for
every variant) and m = mean(U): cos_k = cos(m, grad J(theta_k)), cos_old = cos(m, grad J(theta_old)),
cos_own_k / cos_own_old = the same against the gradient of the variant's own objective (``own_weights``),
each with the Monte Carlo noise tr Cov / B taken out of ||m||^2 and a 95% percentile bootstrap interval over
batches; the exact expectation's cosines where it can be enumerated; rel_bias_k = ||m / s0 - g_k|| / ||g_k||
with s0 the variant's scale at theta_k = theta_old; trace_cov = the trace of one batch's covariance.
``summarise`` pools the cells of a variant and KL target over seeds and paths (median, min, max, and how
many are nearer grad J(theta_k) than grad J(theta_old)).
"""

from __future__ import annotations

import csv
import io
import math
import statistics
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch

from ..errors import UserError
from ..io import atomic_write_json, atomic_write_text
from .estimators import ADVANTAGES, PAPER_VARIANTS, Estimator, Point, default_specs
from ..report.movement import FLOOR_FACTOR
from .policy import DTYPE, ProbeConfig, ProbePolicy

@dataclass
class BiasConfig:
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    algorithms: list[str] | None = None  # None: every registered algorithm
    advantages: tuple[str, ...] = ADVANTAGES  # advantage modes of the ablations ("group" adds [noclip])
    ablations: bool = True
    ablate: tuple[str, ...] | None = PAPER_VARIANTS  # algorithms whose ablations are probed (None: all)
    kls: tuple[float, ...] = (0.0, 0.01, 0.05, 0.3, 1.0)  # exact sequence KL targets (0 always added)
    band_kl: float | None = None  # the published runs' median inner-step KL, added to the targets when known
    seeds: tuple[int, ...] = (0, 1, 2)  # theta_old seeds (the probe's init and warm start)
    random_directions: int = 2
    group_size: int = 8
    group_sizes: tuple[int, ...] = (2, 4, 8, 16)
    max_lens: tuple[int, ...] = (3, 4, 5, 6)
    sweep_kl: float = 0.3  # the staleness of the group-size and length sweeps
    lr: float = 0.01  # Adam learning rate of the adam path
    max_steps: int = 40  # Adam steps before a KL target counts as not reached on the adam path
    batches: int = 200  # Monte Carlo batches per cell
    bootstrap: int = 200  # bootstrap resamples of the batches
    seed: int = 0  # sampling seed

    def targets(self) -> list[float]:
        extra = [self.band_kl] if self.band_kl else []
        return sorted(set(self.kls) | {0.0} | set(extra))

    def check(self) -> None:
        if self.batches < 2 or self.bootstrap < 10:
            raise UserError("probe: --batches must be >= 2 and --bootstrap >= 10")
        if any(k < 0 or not math.isfinite(k) for k in (*self.kls, self.sweep_kl)):
            raise UserError("probe: KL targets must be finite and >= 0")
        if any(g < 2 for g in (self.group_size, *self.group_sizes)):
            raise UserError("probe: group sizes must be >= 2 (group normalisation needs two completions)")
        if any(n < 1 for n in self.max_lens) or self.probe.max_len < 1 or self.max_steps < 1:
            raise UserError("probe: lengths and --max-steps must be >= 1")
        if not self.seeds or self.random_directions < 0:
            raise UserError("probe: give at least one --seeds value and --random-directions >= 0")
        if self.probe.digits < 1 or self.probe.digits ** max(self.probe.max_len, *self.max_lens) > 20000:
            raise UserError("probe: digits ** max_len must stay <= 20000 (every completion is enumerated)")
        if self.lr <= 0:
            raise UserError("probe: --lr must be > 0")
        for a in self.advantages:
            if a not in ADVANTAGES:
                raise UserError(f"probe: advantage must be one of {ADVANTAGES}, got {a!r}")

    def as_dict(self) -> dict:
        d = asdict(self)
        d["probe"] = self.probe.as_dict()
        return d


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    na, nb = float(a.norm()), float(b.norm())
    return max(-1.0, min(1.0, float(a @ b) / (na * nb))) if na > 0 and nb > 0 else float("nan")


def rel_bias(m: torch.Tensor, scale: float, g: torch.Tensor, noise: float = 0.0) -> float:
    """||m / scale - g|| / ||g||; with ``noise`` = tr Cov / B of a Monte Carlo mean m, its expected share
    noise / scale^2 is taken out of the squared norm first (floored at 0)."""
    if not scale or not math.isfinite(scale) or float(g.norm()) == 0:
        return float("nan")
    sq = float(((m / scale - g) ** 2).sum()) - noise / scale**2
    return math.sqrt(max(sq, 0.0)) / float(g.norm())


def scale_of(m0: torch.Tensor, g_old: torch.Tensor) -> float:
    """The least-squares s with m0 ~ s * grad J(theta_old)."""
    return float(m0 @ g_old) / float(g_old @ g_old)


def bisect_kl(kl: Callable[[float], float], target: float, lo: float, hi: float) -> float:
    """The a in [lo, hi] with kl(a) = target, given kl(lo) < target <= kl(hi) (rel. tol 1e-9 on a)."""
    for _ in range(200):
        mid = (lo + hi) / 2
        if kl(mid) < target:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-9 * hi:
            break
    return hi


class Context:
    """One probe at one theta_old: tables, exact gradient, baseline, the fixed perturbation directions."""

    def __init__(self, probe_cfg: ProbeConfig, random_directions: int = 1):
        self.probe = ProbePolicy.build(probe_cfg)
        self.seed = probe_cfg.seed
        self.theta_old = self.probe.old_theta()
        self.old = Point.at(self.probe, self.theta_old)
        self.g_old = self.probe.exact_gradient(self.theta_old, self.old.jac)
        self.baseline = self.probe.value(self.theta_old)
        self.mean_length = self.probe.mean_length(self.theta_old)
        gen = torch.Generator().manual_seed(probe_cfg.seed + 17)
        self.directions: dict[str, torch.Tensor] = {}
        for i in range(random_directions):
            d = torch.randn(self.probe.dim, generator=gen, dtype=DTYPE)
            self.directions[f"random{i + 1}"] = d / d.norm()
        self.directions["gradient"] = self.g_old / self.g_old.norm()
        self._own: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def own(self, est: Estimator) -> tuple[torch.Tensor, torch.Tensor]:
        """(kappa, grad J_own(theta_old)) of a variant (cached)."""
        if est.spec.label not in self._own:
            kappa = est.own_weights(self.old)
            self._own[est.spec.label] = (kappa, self.probe.exact_gradient(self.theta_old, self.old.jac, kappa))
        return self._own[est.spec.label]

    def perturbed(self, target: float, direction: str = "random1") -> torch.Tensor:
        """theta_old + alpha d with exact KL(pi_old || pi) = target."""
        if target == 0:
            return self.theta_old.clone()
        d = self.directions[direction]
        kl = lambda a: self.probe.kl(self.theta_old, self.theta_old + a * d)
        hi = 0.01
        while kl(hi) < target:
            hi *= 2
            if hi > 1e5:
                raise UserError(f"probe: KL {target} not reachable along the {direction} direction")
        return self.theta_old + bisect_kl(kl, target, 0.0, hi) * d


def adam_path(ctx: Context, est: Estimator, pilot: torch.Tensor, targets: list[float], lr: float,
              max_steps: int) -> dict[float, tuple[torch.Tensor, float]]:
    """{target: (theta, steps)} on the variant's own Adam path: steps on one batch ``pilot`` ``[P, G]`` sampled at
    theta_old, cut where the exact KL equals each target (bisection on the segment between the two iterates
    around it; ``steps`` counts the fraction of the last one). Targets not reached in ``max_steps`` are absent."""
    theta = ctx.theta_old.clone().requires_grad_(True)
    opt = torch.optim.Adam([theta], lr=lr)
    prev, out = ctx.theta_old.clone(), {}
    pending = sorted(t for t in targets if t > 0)
    for k in range(1, max_steps + 1):
        if not pending:
            break
        theta.grad = -est.update(pilot, ctx.baseline, ctx.old, Point.at(ctx.probe, theta.detach()))
        opt.step()
        cur = theta.detach().clone()
        if not torch.isfinite(cur).all():
            break
        reached = ctx.probe.kl(ctx.theta_old, cur)
        while pending and pending[0] <= reached:
            t = pending.pop(0)
            seg = cur - prev
            frac = bisect_kl(lambda a: ctx.probe.kl(ctx.theta_old, prev + a * seg), t, 0.0, 1.0)
            out[t] = (prev + frac * seg, k - 1 + frac)
        prev = cur
    return out


def _mc_cosine(m: torch.Tensor, boot: torch.Tensor, noise: float, g: torch.Tensor) -> tuple[float, float, float]:
    """cos(m, g) with the noise tr Cov / B removed from ||m||^2 (it estimates ||E u||^2), and its 95% percentile
    bootstrap interval (the same correction in every resample)."""
    q = torch.tensor([0.025, 0.975], dtype=DTYPE)
    den = ((boot * boot).sum(1) - noise).clamp(min=1e-300).sqrt() * g.norm()
    lo, hi = torch.quantile(((boot @ g) / den).clamp(-1, 1), q).tolist()
    point = float(m @ g) / (max(float(m @ m) - noise, 1e-300) ** 0.5 * float(g.norm()))
    return max(-1.0, min(1.0, point)), lo, hi


def measure(ctx: Context, est: Estimator, at: Point, batches: torch.Tensor, nboot: int, gen: torch.Generator,
            scale: dict | None, mc_where_exact: bool = True) -> dict:
    """One cell: Monte Carlo over ``batches`` ``[B, P, G]`` and, where possible, the exact expectation (only the
    exact one where it exists and not ``mc_where_exact``: its Monte Carlo columns then repeat it, no interval)."""
    kappa, g_own_old = ctx.own(est)
    targets = {"k": ctx.probe.exact_gradient(at.theta, at.jac), "old": ctx.g_old,
               "own_k": ctx.probe.exact_gradient(at.theta, at.jac, kappa), "own_old": g_own_old}
    if not mc_where_exact and est.exact_available(ctx.old):
        return exact_only(ctx, est, at, targets, scale)
    U = est.updates(batches, ctx.baseline, ctx.old, at)
    B = U.shape[0]
    m = U.mean(0)
    idx = torch.randint(B, (nboot, B), generator=gen)
    counts = torch.zeros(nboot, B, dtype=DTYPE).scatter_add_(1, idx, torch.ones(nboot, B, dtype=DTYPE))
    boot = counts @ U / B
    trace = float(U.var(dim=0, unbiased=True).sum())
    noise = trace / B  # E||m - E u||^2: the noise in ||m||^2
    exact = est.exact_expectation(ctx.baseline, ctx.old, at)
    row = {"trace_cov": trace, "norm_mean": float(m.norm()), "batches": B,
           "grad_norm_k": float(targets["k"].norm()), "grad_norm_old": float(ctx.g_old.norm()),
           "cos_grad_k_grad_old": cosine(targets["k"], ctx.g_old)}
    for name, g in targets.items():
        row[f"cos_{name}"], row[f"cos_{name}_lo"], row[f"cos_{name}_hi"] = _mc_cosine(m, boot, noise, g)
        row[f"exact_cos_{name}"] = None if exact is None else cosine(exact, g)
    s_mc = scale["mc"] if scale else scale_of(m, ctx.g_old)
    row["rel_bias_k"] = rel_bias(m, s_mc, targets["k"], noise)
    row["exact_rel_bias_k"] = None
    if exact is not None:
        s_ex = scale["exact"] if scale and scale.get("exact") is not None else scale_of(exact, ctx.g_old)
        row["exact_rel_bias_k"] = rel_bias(exact, s_ex, targets["k"])
        row["_exact_scale"] = s_ex
    row["_mc_scale"] = s_mc
    return row


def exact_only(ctx: Context, est: Estimator, at: Point, targets: dict, scale: dict | None) -> dict:
    """A cell from the exact expectation alone (no Monte Carlo: no interval, no trace of the covariance)."""
    exact = est.exact_expectation(ctx.baseline, ctx.old, at)
    row = {"trace_cov": None, "norm_mean": float(exact.norm()), "batches": 0,
           "grad_norm_k": float(targets["k"].norm()), "grad_norm_old": float(ctx.g_old.norm()),
           "cos_grad_k_grad_old": cosine(targets["k"], ctx.g_old)}
    for name, g in targets.items():
        c = cosine(exact, g)
        row[f"cos_{name}"] = row[f"cos_{name}_lo"] = row[f"cos_{name}_hi"] = row[f"exact_cos_{name}"] = c
    s_ex = scale["exact"] if scale and scale.get("exact") is not None else scale_of(exact, ctx.g_old)
    row["rel_bias_k"] = row["exact_rel_bias_k"] = rel_bias(exact, s_ex, targets["k"])
    row["_exact_scale"] = row["_mc_scale"] = s_ex
    return row


def _median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def real_run_band(results_root: Path, factor: float = FLOOR_FACTOR) -> dict:
    """The inner-step KL of published runs whose movement is above their noise floor.

    Each run folder under ``results_root/*/`` (``harness.report.runs.load_runs``), classified by
    ``harness.report.movement.run_movement``: median(kl_old_k3_seq) (the sequence k3 KL between inner
    passes: the real movement) against ``factor`` x median(noise_floor_k3_seq) (the same statistic for a
    perturbation far below any real step). Runs without either column are "floor unknown", runs below it
    "below floor": both left out and counted. ``band``: median and 10-90% range of kl_old_k3_seq over every
    step of the runs above the floor, or None. Folders without training rows (the base model) are not counted."""
    from ..report.movement import column_values, run_movement
    from ..report.runs import load_runs

    counts = {"above": 0, "below": 0, "unknown": 0}
    values, suites, left_out = [], set(), set()
    root = Path(results_root)
    folders = [root] if (root / "runs").is_dir() else sorted(p for p in root.glob("*") if p.is_dir())
    for suite in folders:
        for run in load_runs(suite):
            if not run.metrics():
                continue  # no training steps (the base model's folder): not a run that moved
            clears = run_movement(run, factor)["clears"]
            key = {True: "above", False: "below", None: "unknown"}[clears]
            counts[key] += 1
            if clears:
                values += column_values(run.metrics(), "kl_old_k3_seq")
                suites.add(suite.name)
            else:
                left_out.add(suite.name)
    band = None
    if values:
        t = torch.tensor(values, dtype=DTYPE)
        lo, med, hi = torch.quantile(t, torch.tensor([0.1, 0.5, 0.9], dtype=DTYPE)).tolist()
        band = {"median": med, "p10": lo, "p90": hi, "steps": len(values)}
    return {"band": band, "runs": counts, "factor": factor, "suites": sorted(suites),
            "suites_left_out": sorted(left_out)}


def band_sentence(real: dict) -> str:
    """One line on where real runs sit (or that none measured above its floor yet)."""
    n = real["runs"]
    left = f"{n['unknown']} run(s) left out with the floor unknown, {n['below']} below it"
    if real["band"] is None:
        return (f"No published run measured above its noise floor yet (median kl_old_k3_seq >= {real['factor']:g} x "
                f"median noise_floor_k3_seq); {left}. The tables use fixed KLs instead.")
    b = real["band"]
    return (f"Published runs above their noise floor ({n['above']} run(s) of {', '.join(real['suites'])}): inner-step "
            f"sequence KL median {b['median']:.3g}, 10-90% {b['p10']:.3g}-{b['p90']:.3g} over {b['steps']} steps "
            f"(the `band` column); {left}.")


def run(cfg: BiasConfig, registry, log: Callable[[str], None] = lambda s: None) -> dict:
    """All sweeps. Runs torch on one thread (these are small ops; on a shared CPU, two threads were
    measured 16x slower per op), restoring the thread count after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run(cfg, registry, log)
    finally:
        torch.set_num_threads(threads)


class _Sweep:
    """Shared state of one probe run: the specs, the sampling generator, the scales s0 and the rows."""

    def __init__(self, cfg: BiasConfig, registry):
        self.cfg, self.registry = cfg, registry
        self.specs = default_specs(registry, cfg.algorithms, cfg.advantages, cfg.ablations, cfg.ablate)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.scales: dict = {}
        self.rows: list[dict] = []
        self.t0 = time.perf_counter()

    def estimators(self, ctx: Context) -> list[Estimator]:
        return [Estimator(ctx.probe, s, self.registry) for s in self.specs]

    def cell(self, sweep: str, ctx: Context, est: Estimator, at: Point, batches: torch.Tensor, path: str,
             target: float, steps: float | None = None) -> None:
        G, L = batches.shape[-1], ctx.probe.cfg.max_len
        key = (est.spec.label, G, L, ctx.seed)
        r = measure(ctx, est, at, batches, self.cfg.bootstrap, self.gen, self.scales.get(key), sweep != "kl")
        if target == 0 and key not in self.scales:
            self.scales[key] = {"mc": r["_mc_scale"], "exact": r.get("_exact_scale")}
        r.pop("_mc_scale"), r.pop("_exact_scale", None)
        kl = ctx.probe.kl(ctx.theta_old, at.theta)
        self.rows.append({
            "sweep": sweep, "variant": est.spec.label, "role": est.spec.role, "algorithm": est.spec.algorithm,
            "advantage": est.spec.advantage, "G": G, "max_len": L, "seed": ctx.seed, "path": path,
            "kind": path.rstrip("0123456789"), "kl_target": target, "kl": kl, "kl_per_token": kl / ctx.mean_length,
            "adam_steps": steps, "J_old": float(ctx.baseline.mean()), "J_k": float(ctx.probe.value(at.theta).mean()),
            **r})

    def fixed_paths(self, sweep: str, ctx: Context, ests: list[Estimator], batches: torch.Tensor,
                    targets: list[float], paths: list[str]) -> None:
        """Every variant at theta_old (target 0) and along each fixed direction at each target."""
        points = [("none", 0.0, ctx.theta_old)] if 0.0 in targets else []
        points += [(p, t, ctx.perturbed(t, p)) for p in paths for t in targets if t > 0]
        for path, target, theta in points:
            at = Point.at(ctx.probe, theta)
            for est in ests:
                self.cell(sweep, ctx, est, at, batches, path, target)

    def adam_paths(self, ctx: Context, ests: list[Estimator], batches: torch.Tensor, targets: list[float]) -> None:
        pilot = ctx.probe.sample(ctx.theta_old, self.cfg.group_size, 1,
                                 torch.Generator().manual_seed(self.cfg.seed + 1000 + ctx.seed))[0]
        for est in ests:
            cut = adam_path(ctx, est, pilot, targets, self.cfg.lr, self.cfg.max_steps)
            for target, (theta, steps) in sorted(cut.items()):
                self.cell("kl", ctx, est, Point.at(ctx.probe, theta), batches, "adam", target, steps)

    def log(self, log: Callable[[str], None], what: str) -> None:
        log(f"  {what} done ({time.perf_counter() - self.t0:.0f}s)")


def _run(cfg: BiasConfig, registry, log: Callable[[str], None]) -> dict:
    cfg.check()
    sw = _Sweep(cfg, registry)
    targets = cfg.targets()
    contexts = [Context(replace(cfg.probe, seed=s), cfg.random_directions) for s in cfg.seeds]
    first = contexts[0]
    log(f"probe: {first.probe.idx.shape[0]} completions, {first.probe.dim} parameters, J(theta_old) = "
        + ", ".join(f"{float(c.baseline.mean()):.3f}" for c in contexts) + f" (seeds {list(cfg.seeds)}); "
        f"{len(sw.specs)} variants: {', '.join(s.label for s in sw.specs)}")
    for ctx in contexts:
        ests = sw.estimators(ctx)
        batches = ctx.probe.sample(ctx.theta_old, cfg.group_size, cfg.batches, sw.gen)
        sw.fixed_paths("kl", ctx, ests, batches, targets, list(ctx.directions))
        sw.adam_paths(ctx, ests, batches, targets)
        sw.log(log, f"kl sweep, seed {ctx.seed}")
    main = lambda es: [e for e in es if e.spec.role != "ablation"]  # the G and length sweeps: no ablations
    ests = main(sw.estimators(first))
    for G in cfg.group_sizes:
        batches = first.probe.sample(first.theta_old, G, cfg.batches, sw.gen)
        sw.fixed_paths("group_size", first, ests, batches, [0.0, cfg.sweep_kl], ["random1"])
    sw.log(log, "group-size sweep")
    for L in cfg.max_lens:
        c = first if L == cfg.probe.max_len else Context(replace(cfg.probe, seed=cfg.seeds[0], max_len=L), 1)
        e = ests if c is first else main(sw.estimators(c))
        batches = c.probe.sample(c.theta_old, cfg.group_size, cfg.batches, sw.gen)
        sw.fixed_paths("length", c, e, batches, [0.0, cfg.sweep_kl], ["random1"])
    sw.log(log, "length sweep")
    return {"rows": sw.rows, "summary": summarise(sw.rows),
            "variants": [e.config() | {"role": e.spec.role} for e in sw.estimators(first)],
            "seconds": time.perf_counter() - sw.t0,
            "probe": {"completions": int(first.probe.idx.shape[0]), "parameters": first.probe.dim,
                      "J_old": [float(c.baseline.mean()) for c in contexts],
                      "mean_length_old": [c.mean_length for c in contexts]}}


# ---- summary ------------------------------------------------------------------------------------
KINDS = ("all", "random", "gradient", "adam")


def best(row: dict, key: str) -> float:
    """The exact expectation's value where it exists, else the Monte Carlo one."""
    exact = row.get(f"exact_{key}")
    return exact if exact is not None else row[key]


def verdict(cos_k: list[float], cos_old: list[float], tol: float = 1e-9) -> str:
    """``nearer θk`` / ``nearer θold`` when every case agrees, ``equal`` when all tie, else ``mixed``."""
    diffs = [a - b for a, b in zip(cos_k, cos_old)]
    if all(abs(d) <= tol for d in diffs):
        return "equal"
    if all(d > tol for d in diffs):
        return "nearer θk"
    if all(d < -tol for d in diffs):
        return "nearer θold"
    return "mixed"


def _stats(xs: list[float]) -> dict:
    return {"median": _median(xs), "min": min(xs), "max": max(xs)}


def summarise(rows: list[dict], sweep: str = "kl") -> list[dict]:
    """Per variant, KL target and path kind (``all`` pools them): the cells' cosines (exact where enumerable)
    as median, min and max over seeds and paths, how many cells are nearer grad J(theta_k) than grad J(theta_old),
    and the verdict."""
    rows = [r for r in rows if r["sweep"] == sweep]
    out = []
    for variant in dict.fromkeys(r["variant"] for r in rows):
        vr = [r for r in rows if r["variant"] == variant]
        for target in sorted(dict.fromkeys(r["kl_target"] for r in vr)):
            for kind in KINDS:
                cells = [r for r in vr if r["kl_target"] == target and (kind == "all" or r["kind"] == kind)]
                if not cells or (target == 0 and kind != "all"):
                    continue
                ck, co = [best(r, "cos_k") for r in cells], [best(r, "cos_old") for r in cells]
                out.append({
                    "variant": variant, "role": cells[0]["role"], "kl_target": target, "kind": kind, "n": len(cells),
                    "exact": all(r.get("exact_cos_k") is not None for r in cells),
                    "cos_k": _stats(ck), "cos_old": _stats(co),
                    "cos_own_k": _stats([best(r, "cos_own_k") for r in cells]),
                    "cos_own_old": _stats([best(r, "cos_own_old") for r in cells]),
                    "nearer_k": sum(a > b for a, b in zip(ck, co)), "verdict": verdict(ck, co)})
    return out

# ---- output -------------------------------------------------------------------------------------
COLUMNS = ["sweep", "variant", "role", "algorithm", "advantage", "G", "max_len", "seed", "path", "kind", "kl_target",
           "kl", "kl_per_token", "adam_steps", "J_old", "J_k",
           "cos_k", "cos_k_lo", "cos_k_hi", "cos_old", "cos_old_lo", "cos_old_hi",
           "cos_own_k", "cos_own_k_lo", "cos_own_k_hi", "cos_own_old", "cos_own_old_lo", "cos_own_old_hi",
           "exact_cos_k", "exact_cos_old", "exact_cos_own_k", "exact_cos_own_old", "rel_bias_k", "exact_rel_bias_k",
           "trace_cov", "norm_mean", "grad_norm_k", "grad_norm_old", "cos_grad_k_grad_old", "batches"]
ROLE_TITLES = {"configured": "as configured", "control": "control (no ratio)", "ablation": "ablation"}


def _f(x, nd=3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.{nd}f}" if abs(x) >= 10 ** -nd or x == 0 else f"{x:.1e}"


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def _level(target: float, band_kl: float | None) -> str:
    return f"band {target:.3g}" if band_kl is not None and target == band_kl else f"KL {target:g}"


def _range(st: dict) -> str:
    return f"{st['median']:.3f} [{st['min']:.3f}, {st['max']:.3f}]"


def pooled_markdown(summary: list[dict], band_kl: float | None) -> str:
    """Variants (as configured, control, ablations) x KL targets, all seeds and paths pooled: median
    cos_k / cos_old and how many cells are nearer grad J(theta_k)."""
    rows = [s for s in summary if s["kind"] == "all"]
    levels = sorted(dict.fromkeys(s["kl_target"] for s in rows))
    out = ["| variant | role | " + " | ".join(_level(t, band_kl) for t in levels) + " |",
           "|---|---|" + "---|" * len(levels)]
    for variant in dict.fromkeys(s["variant"] for s in rows):
        cells = []
        for t in levels:
            s = next((x for x in rows if x["variant"] == variant and x["kl_target"] == t), None)
            cells.append("-" if s is None else f"{s['cos_k']['median']:.3f} / {s['cos_old']['median']:.3f}"
                         f"{'*' if s['exact'] else ''} ({s['nearer_k']}/{s['n']})")
        role = next(x["role"] for x in rows if x["variant"] == variant)
        out.append(f"| {variant} | {ROLE_TITLES[role]} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def detail_markdown(summary: list[dict], target: float, band_kl: float | None) -> str:
    """At one KL target: per variant and path kind, median [min, max] of every cosine and the verdict."""
    rows = [s for s in summary if s["kl_target"] == target]
    out = [f"#### {_level(target, band_kl)}", "",
           "| variant | role | paths | n | cos(E u, ∇J(θk)) | cos(E u, ∇J(θold)) | nearer θk | verdict "
           "| cos(E u, ∇J_own(θk)) | cos(E u, ∇J_own(θold)) |", "|" + "---|" * 10]
    for s in rows:
        out.append(f"| {s['variant']} | {ROLE_TITLES[s['role']]} | {s['kind']} | {s['n']} | {_range(s['cos_k'])} "
                   f"| {_range(s['cos_old'])} | {s['nearer_k']}/{s['n']} | {s['verdict']} | {_range(s['cos_own_k'])} "
                   f"| {_range(s['cos_own_old'])} |")
    return "\n".join(out) + "\n"


def sweep_markdown(rows: list[dict], sweep: str, title: str) -> list[str]:
    rows = [r for r in rows if r["sweep"] == sweep]
    if not rows:
        return []
    out = [f"### {title}", "", "| variant | G | L | KL | cos(E u, ∇J(θk)) [95% CI] | cos(E u, ∇J(θold)) [95% CI] "
           "| exact cos_k | exact cos_old | rel. bias_k | tr Cov |", "|" + "---|" * 10]
    for r in rows:
        out.append(f"| {r['variant']} | {r['G']} | {r['max_len']} | {_f(r['kl'], 4)} "
                   f"| {_f(r['cos_k'])} [{_f(r['cos_k_lo'])}, {_f(r['cos_k_hi'])}] "
                   f"| {_f(r['cos_old'])} [{_f(r['cos_old_lo'])}, {_f(r['cos_old_hi'])}] "
                   f"| {_f(r['exact_cos_k'], 4)} | {_f(r['exact_cos_old'], 4)} | {_f(r['rel_bias_k'])} "
                   f"| {_f(r['trace_cov'], 4)} |")
    return out + [""]


def to_markdown(result: dict, band_kl: float | None, detail_kls: tuple[float, ...]) -> str:
    summary = result["summary"]
    out = ["## Summary: cos(E u, ∇J(θ_k)) / cos(E u, ∇J(θ_old)), median over every seed and path "
           "(* exact expectation, else Monte Carlo; in brackets: cells nearer ∇J(θ_k) / cells)", "",
           pooled_markdown(summary, band_kl),
           "## At the divergences that matter: by path kind, median [min, max] over seeds and paths", "",
           "J_own: the variant's own objective (docs/gradient-bias.md); `verdict`: every cell nearer one "
           "gradient, or mixed.", ""]
    targets = sorted(dict.fromkeys(s["kl_target"] for s in summary))
    for t in targets:
        if t in detail_kls or (band_kl is not None and t == band_kl):
            out.append(detail_markdown(summary, t, band_kl))
    out += sweep_markdown(result["rows"], "group_size", "Group size G (first seed, random1 direction)")
    out += sweep_markdown(result["rows"], "length", "Maximum completion length (a new probe each; random1)")
    return "\n".join(out)


def write(result: dict, cfg: BiasConfig, out_dir: Path, provenance: dict, real: dict) -> list[Path]:
    from .plots import write_plots

    out_dir = Path(out_dir)
    p = result["probe"]
    band_kl = real["band"]["median"] if real.get("band") else None
    header = [
        "# Gradient-bias probe", "",
        f"`{provenance.get('command', 'grpo-bench probe gradient-bias')}`, commit `{str(provenance.get('git_commit'))[:7]}`"
        f"{' (dirty tree)' if provenance.get('git_dirty') else ''}; {provenance.get('hardware', {}).get('cpu')}, "
        f"{provenance.get('hardware', {}).get('cores')} cores; {result['seconds']:.0f} s.", "",
        f"Probe: {p['completions']} completions ({len(cfg.probe.targets)} prompts, digits 1..{cfg.probe.digits} + EOS, "
        f"up to {cfg.probe.max_len} tokens), an MLP with {p['parameters']} parameters; theta_old seeds "
        f"{list(cfg.seeds)} with J(θ_old) = {', '.join(f'{j:.3f}' for j in p['J_old'])}. Paths from each θ_old: "
        f"{cfg.random_directions} random directions, the exact gradient direction, and each variant's own Adam steps "
        f"(lr {cfg.lr:g}, one batch, at most {cfg.max_steps} steps), cut at each exact sequence KL(π_old || π_θk). "
        f"{cfg.batches} Monte Carlo batches of G = {cfg.group_size} per cell (the same for every variant). "
        "Definitions: docs/gradient-bias.md.", "",
        band_sentence(real), "", "",
    ]
    detail = tuple(t for t in (0.05, 0.3) if t in cfg.targets())
    files = [out_dir / "table.md", out_dir / "table.csv", out_dir / "table.json", out_dir / "config.json"]
    atomic_write_text(files[0], "\n".join(header) + to_markdown(result, band_kl, detail))
    atomic_write_text(files[1], to_csv(result["rows"]))
    atomic_write_json(files[2], {"rows": result["rows"], "summary": result["summary"], "probe": p,
                                 "seconds": result["seconds"], "real_runs": real})
    atomic_write_json(files[3], {"config": cfg.as_dict(), "variants": result["variants"], "provenance": provenance})
    return files + write_plots(result["rows"], result["summary"], out_dir / "plots", real.get("band"))
