"""``grpo-bench probe gradient-bias``: how far each algorithm's expected update is from the exact policy
gradient at the current and at the old policy, as the policy goes stale (docs/gradient-bias.md).

Four sweeps, all on the enumerable probe policy (``policy.py``), each cell measured for every probed
variant (``estimators.py``) on the same sampled batches (common random numbers):
- ``kl``: theta_k = theta_old + alpha * d, d a seeded random unit direction, alpha found by bisection so
  that the exact KL(pi_old || pi_k) equals each target (group size ``group_size``);
- ``group_size``: the same perturbation at ``sweep_kl`` (and at 0, for the scale), for each G;
- ``length``: the same for each maximum completion length (a new probe and theta_old for each);
- ``opt_steps``: theta_k after k Adam steps of the variant itself on one batch sampled at theta_old (as
  the trainer's mu inner steps), for each k.

Per cell, with U the ``[B, D]`` update directions of B batches sampled at theta_old and m = mean(U):
cos_k = cos(m, grad J(theta_k)), cos_old = cos(m, grad J(theta_old)) (with the Monte Carlo noise tr Cov / B
taken out of ||m||^2), 95% percentile-bootstrap intervals over batches; rel_bias_k = ||m / s0 - grad J(theta_k)|| / ||grad J(theta_k)|| with s0 =
<m0, grad J(theta_old)> / ||grad J(theta_old)||^2 and m0 the same variant's expected update at
theta_k = theta_old (same G and length): the fixed normalisation of the estimator is divided out
(Monte Carlo: noise taken out of the squared norm as for the cosine);
trace_cov = trace of the covariance of one batch's update; and the same cosines and biases from the
exact expectation where it can be enumerated.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch

from ..errors import UserError
from ..io import atomic_write_json, atomic_write_text
from .estimators import ADVANTAGES, Estimator, Point, default_specs
from .policy import DTYPE, ProbeConfig, ProbePolicy


@dataclass
class BiasConfig:
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    algorithms: list[str] | None = None  # None: every registered algorithm
    advantages: tuple[str, ...] = ADVANTAGES
    ablations: bool = True  # add each clipping algorithm's "noclip" spec
    kls: tuple[float, ...] = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)  # exact sequence KL targets
    group_size: int = 8
    group_sizes: tuple[int, ...] = (2, 4, 8, 16)
    max_lens: tuple[int, ...] = (3, 4, 5, 6)
    sweep_kl: float = 0.3  # the staleness of the group-size and length sweeps
    opt_steps: tuple[int, ...] = (1, 2, 4, 8)
    lr: float = 0.01  # Adam learning rate of the opt_steps sweep
    batches: int = 400  # Monte Carlo batches per cell
    bootstrap: int = 400  # bootstrap resamples of the batches
    seed: int = 0

    def check(self) -> None:
        if self.batches < 2 or self.bootstrap < 10:
            raise UserError("probe: --batches must be >= 2 and --bootstrap >= 10")
        if any(k < 0 or not math.isfinite(k) for k in (*self.kls, self.sweep_kl)):
            raise UserError("probe: KL targets must be finite and >= 0")
        if any(g < 2 for g in (self.group_size, *self.group_sizes)):
            raise UserError("probe: group sizes must be >= 2 (group normalisation needs two completions)")
        if any(n < 1 for n in (*self.max_lens, *self.opt_steps)) or self.probe.max_len < 1:
            raise UserError("probe: lengths and optimizer step counts must be >= 1")
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
    return float(a @ b) / (na * nb) if na > 0 and nb > 0 else float("nan")


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


class Context:
    """One probe at theta_old: tables, exact gradient, baseline, the perturbation direction."""

    def __init__(self, probe_cfg: ProbeConfig, seed: int):
        self.probe = ProbePolicy.build(probe_cfg)
        self.theta_old = self.probe.old_theta()
        self.old = Point.at(self.probe, self.theta_old)
        self.g_old = self.probe.exact_gradient(self.theta_old, self.old.jac)
        self.baseline = self.probe.value(self.theta_old)
        gen = torch.Generator().manual_seed(seed + 17)
        d = torch.randn(self.probe.dim, generator=gen, dtype=DTYPE)
        self.direction = d / d.norm()
        self.mean_length = self.probe.mean_length(self.theta_old)

    def perturbed(self, target: float) -> torch.Tensor:
        """theta_old + alpha d with exact KL(pi_old || pi) = target (bisection on alpha, rel. tol 1e-6)."""
        if target == 0:
            return self.theta_old.clone()
        kl = lambda a: self.probe.kl(self.theta_old, self.theta_old + a * self.direction)
        hi = 0.01
        while kl(hi) < target:
            hi *= 2
            if hi > 1e5:
                raise UserError(f"probe: KL {target} not reachable along the perturbation direction")
        lo = 0.0
        for _ in range(100):
            mid = (lo + hi) / 2
            if kl(mid) < target:
                lo = mid
            else:
                hi = mid
            if hi - lo <= 1e-9 * hi:
                break
        return self.theta_old + hi * self.direction


def measure(ctx: Context, est: Estimator, at: Point, batches: torch.Tensor, nboot: int, gen: torch.Generator,
            scale: dict | None) -> dict:
    """One cell: Monte Carlo over ``batches`` ``[B, P, G]`` and, where possible, the exact expectation."""
    g_k = ctx.probe.exact_gradient(at.theta, at.jac)
    U = est.updates(batches, ctx.baseline, ctx.old, at)
    B = U.shape[0]
    m = U.mean(0)
    idx = torch.randint(B, (nboot, B), generator=gen)
    counts = torch.zeros(nboot, B, dtype=DTYPE).scatter_add_(1, idx, torch.ones(nboot, B, dtype=DTYPE))
    boot = counts @ U / B
    q = torch.tensor([0.025, 0.975], dtype=DTYPE)

    noise = float(U.var(dim=0, unbiased=True).sum()) / B  # E||m - E u||^2: the noise in ||m||^2

    def cos_ci(g):
        """Cosine with the noise removed from ||m||^2 (||m||^2 - tr Cov / B estimates ||E u||^2), and its 95%
        percentile-bootstrap interval (the same correction in every resample)."""
        num = boot @ g
        den = ((boot * boot).sum(1) - noise).clamp(min=1e-300).sqrt() * g.norm()
        lo, hi = torch.quantile((num / den).clamp(-1, 1), q).tolist()
        point = float(m @ g) / (max(float(m @ m) - noise, 1e-300) ** 0.5 * float(g.norm()))
        return max(-1.0, min(1.0, point)), lo, hi

    ck, ck_lo, ck_hi = cos_ci(g_k)
    co, co_lo, co_hi = cos_ci(ctx.g_old)
    trace = float(U.var(dim=0, unbiased=True).sum())
    exact = est.exact_expectation(ctx.baseline, ctx.old, at)
    row = {
        "cos_k": ck, "cos_k_lo": ck_lo, "cos_k_hi": ck_hi,
        "cos_old": co, "cos_old_lo": co_lo, "cos_old_hi": co_hi,
        "trace_cov": trace, "norm_mean": float(m.norm()),
        "exact_cos_k": None if exact is None else cosine(exact, g_k),
        "exact_cos_old": None if exact is None else cosine(exact, ctx.g_old),
        "grad_norm_k": float(g_k.norm()), "grad_norm_old": float(ctx.g_old.norm()),
        "cos_grad_k_grad_old": cosine(g_k, ctx.g_old),
        "batches": B,
    }
    s_mc = scale["mc"] if scale else scale_of(m, ctx.g_old)
    row["rel_bias_k"] = rel_bias(m, s_mc, g_k, noise)
    row["rel_bias_old"] = rel_bias(m, s_mc, ctx.g_old, noise)
    row["noise_floor_k"] = (math.sqrt(trace / B) / abs(s_mc) / float(g_k.norm())
                            if s_mc and float(g_k.norm()) > 0 else float("nan"))
    if exact is not None:
        s_ex = scale["exact"] if scale and scale.get("exact") is not None else scale_of(exact, ctx.g_old)
        row["exact_rel_bias_k"] = rel_bias(exact, s_ex, g_k)
        row["exact_rel_bias_old"] = rel_bias(exact, s_ex, ctx.g_old)
        row["_exact_scale"] = s_ex
    else:
        row["exact_rel_bias_k"] = row["exact_rel_bias_old"] = None
    row["_mc_scale"] = s_mc
    return row


def real_run_kl(results_root: Path) -> dict | None:
    """The sequence-level KL(pi_old || pi_theta) that published runs under ``results_root`` reached in their
    inner steps: the trainer's ``kl_old_k3_seq`` column where logged; else, from ``log_ratio_traj_mean``
    (the mean of log w = sum_t (logp - old) over trained completions, pooled over the mu inner steps, of
    which the first has log w = 0): KL ~ -log_ratio_traj_mean * mu / (mu - 1) (the k1 estimator, mean
    over inner steps 1..mu-1). Returns the median and 10-90% range over logged steps, or None."""
    values, sources = [], set()
    for metrics in sorted(Path(results_root).glob("*/runs/*/seed*/metrics.jsonl")):
        try:
            cfg = json.loads((metrics.parent / "config.json").read_text())
            mu = int(cfg["config"]["train"]["mu"])
        except (OSError, KeyError, ValueError, TypeError):
            continue
        for line in metrics.read_text().splitlines():
            row = json.loads(line)
            if row.get("kl_old_k3_seq") is not None:
                values.append(float(row["kl_old_k3_seq"]))
                sources.add(f"{metrics.parts[-5]} (kl_old_k3_seq)")
            elif row.get("log_ratio_traj_mean") is not None and mu > 1:
                values.append(-float(row["log_ratio_traj_mean"]) * mu / (mu - 1))
                sources.add(f"{metrics.parts[-5]} (-log_ratio_traj_mean * mu/(mu-1))")
    if not values:
        return None
    t = torch.tensor(values, dtype=DTYPE)
    lo, med, hi = torch.quantile(t, torch.tensor([0.1, 0.5, 0.9], dtype=DTYPE)).tolist()
    return {"median": med, "p10": lo, "p90": hi, "steps": len(values), "sources": sorted(sources)}


def run(cfg: BiasConfig, registry, log: Callable[[str], None] = lambda s: None) -> dict:
    """All four sweeps. Runs torch on one thread (these are small ops; on a shared CPU, two threads were
    measured 16x slower per op), restoring the thread count after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run(cfg, registry, log)
    finally:
        torch.set_num_threads(threads)


def _run(cfg: BiasConfig, registry, log: Callable[[str], None]) -> dict:
    cfg.check()
    specs = default_specs(registry, cfg.algorithms, cfg.advantages, cfg.ablations)
    gen = torch.Generator().manual_seed(cfg.seed)
    rows: list[dict] = []
    t0 = time.perf_counter()

    def cells(sweep: str, ctx: Context, G: int, points: list[tuple[str, float | None, torch.Tensor]],
              ests: list[Estimator], scales: dict):
        batches = ctx.probe.sample(ctx.theta_old, G, cfg.batches, gen)
        for staleness, target, theta in points:
            at = Point.at(ctx.probe, theta)
            kl = ctx.probe.kl(ctx.theta_old, theta)
            for est in ests:
                key = (est.spec.label, G, ctx.probe.cfg.max_len)
                r = measure(ctx, est, at, batches, cfg.bootstrap, gen, scales.get(key))
                if target == 0 and key not in scales:
                    scales[key] = {"mc": r["_mc_scale"], "exact": r.get("_exact_scale")}
                r.pop("_mc_scale"), r.pop("_exact_scale", None)
                rows.append({"sweep": sweep, "variant": est.spec.label, "algorithm": est.spec.algorithm,
                             "advantage": est.spec.advantage, "G": G, "max_len": ctx.probe.cfg.max_len,
                             "staleness": staleness, "kl_target": target, "kl": kl,
                             "kl_per_token": kl / ctx.mean_length,
                             "J_old": float(ctx.baseline.mean()), "J_k": float(ctx.probe.value(theta).mean()), **r})
        log(f"  {sweep}: G={G} L={ctx.probe.cfg.max_len} done ({time.perf_counter() - t0:.0f}s)")

    scales: dict = {}
    ctx = Context(cfg.probe, cfg.seed)
    ests = [Estimator(ctx.probe, s, registry) for s in specs]
    log(f"probe: {ctx.probe.idx.shape[0]} completions, {ctx.probe.dim} parameters, J(theta_old) = "
        f"{float(ctx.baseline.mean()):.3f}; {len(specs)} variants: {', '.join(s.label for s in specs)}")
    kls = sorted(set(cfg.kls) | {0.0})
    cells("kl", ctx, cfg.group_size, [(f"kl={k:g}", k, ctx.perturbed(k)) for k in kls], ests, scales)
    for G in cfg.group_sizes:
        cells("group_size", ctx, G, [(f"kl={k:g}", k, ctx.perturbed(k)) for k in (0.0, cfg.sweep_kl)], ests, scales)
    for L in cfg.max_lens:
        c = ctx if L == cfg.probe.max_len else Context(replace(cfg.probe, max_len=L), cfg.seed)
        e = ests if c is ctx else [Estimator(c.probe, s, registry) for s in specs]
        cells("length", c, cfg.group_size, [(f"kl={k:g}", k, c.perturbed(k)) for k in (0.0, cfg.sweep_kl)], e, scales)
    # opt_steps: each variant moves theta by its own Adam steps on one batch sampled at theta_old
    pilot = ctx.probe.sample(ctx.theta_old, cfg.group_size, 1, torch.Generator().manual_seed(cfg.seed + 1))[0]
    batches = ctx.probe.sample(ctx.theta_old, cfg.group_size, cfg.batches, gen)
    for est in ests:
        theta = ctx.theta_old.clone().requires_grad_(True)
        opt = torch.optim.Adam([theta], lr=cfg.lr)
        for k in range(1, max(cfg.opt_steps) + 1):
            u = est.update(pilot, ctx.baseline, ctx.old, Point.at(ctx.probe, theta.detach()))
            theta.grad = -u
            opt.step()
            if k in cfg.opt_steps:
                th = theta.detach().clone()
                at = Point.at(ctx.probe, th)
                kl = ctx.probe.kl(ctx.theta_old, th)
                key = (est.spec.label, cfg.group_size, cfg.probe.max_len)
                r = measure(ctx, est, at, batches, cfg.bootstrap, gen, scales.get(key))
                r.pop("_mc_scale"), r.pop("_exact_scale", None)
                rows.append({"sweep": "opt_steps", "variant": est.spec.label, "algorithm": est.spec.algorithm,
                             "advantage": est.spec.advantage, "G": cfg.group_size, "max_len": cfg.probe.max_len,
                             "staleness": f"k={k}", "kl_target": None, "kl": kl, "kl_per_token": kl / ctx.mean_length,
                             "J_old": float(ctx.baseline.mean()), "J_k": float(ctx.probe.value(th).mean()), **r})
    log(f"  opt_steps done ({time.perf_counter() - t0:.0f}s)")
    return {"rows": rows, "variants": [e.config() for e in ests], "seconds": time.perf_counter() - t0,
            "probe": {"completions": int(ctx.probe.idx.shape[0]), "parameters": ctx.probe.dim,
                      "J_old": float(ctx.baseline.mean()), "mean_length_old": ctx.mean_length}}


# ---- output -------------------------------------------------------------------------------------
COLUMNS = ["sweep", "variant", "algorithm", "advantage", "G", "max_len", "staleness", "kl_target", "kl",
           "kl_per_token", "J_old", "J_k", "cos_k", "cos_k_lo", "cos_k_hi", "cos_old", "cos_old_lo", "cos_old_hi",
           "exact_cos_k", "exact_cos_old", "rel_bias_k", "rel_bias_old", "exact_rel_bias_k", "exact_rel_bias_old",
           "noise_floor_k", "trace_cov", "norm_mean", "grad_norm_k", "grad_norm_old", "cos_grad_k_grad_old", "batches"]


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


def summary_markdown(rows: list[dict], sweep: str = "kl") -> str:
    """Variants x staleness of one sweep: "cos_k / cos_old", exact where enumerable (marked *), else Monte
    Carlo; in the opt_steps sweep each cell also gives the exact KL the variant's own steps reached."""
    rows = [r for r in rows if r["sweep"] == sweep]
    levels = list(dict.fromkeys(r["staleness"] for r in rows))
    out = ["| variant | " + " | ".join(levels) + " |", "|---|" + "---|" * len(levels)]
    for variant in dict.fromkeys(r["variant"] for r in rows):
        cells = []
        for level in levels:
            r = next((x for x in rows if x["variant"] == variant and x["staleness"] == level), None)
            if r is None:
                cells.append("-")
                continue
            if r["exact_cos_k"] is not None:
                cell = f"{r['exact_cos_k']:.3f} / {r['exact_cos_old']:.3f}*"
            else:
                cell = f"{r['cos_k']:.3f} / {r['cos_old']:.3f}"
            cells.append(cell + (f" (KL {r['kl']:.2f})" if sweep == "opt_steps" else ""))
        out.append(f"| {variant} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def to_markdown(result: dict) -> str:
    out = ["### Summary: cos(E u, ∇J(θ_k)) / cos(E u, ∇J(θ_old)) by exact KL (* exact expectation, "
           "else Monte Carlo)", "", summary_markdown(result["rows"]),
           "### Summary: the same after k Adam steps of the variant itself (exact KL reached in brackets)", "",
           summary_markdown(result["rows"], "opt_steps")]
    titles = {"kl": "Staleness by exact KL (random-direction perturbation)",
              "group_size": "Group size G", "length": "Maximum completion length",
              "opt_steps": "Staleness by k Adam steps of the variant itself"}
    head = ("| variant | G | L | staleness | KL | cos(E u, ∇J(θ_k)) [95% CI] | cos(E u, ∇J(θ_old)) [95% CI] "
            "| exact cos_k | exact cos_old | rel. bias_k | exact rel. bias_k | tr Cov |")
    for sweep, title in titles.items():
        rows = [r for r in result["rows"] if r["sweep"] == sweep]
        if not rows:
            continue
        out += [f"### {title}", "", head, "|" + "---|" * 12]
        for r in rows:
            out.append(
                f"| {r['variant']} | {r['G']} | {r['max_len']} | {r['staleness']} | {_f(r['kl'], 4)} "
                f"| {_f(r['cos_k'])} [{_f(r['cos_k_lo'])}, {_f(r['cos_k_hi'])}] "
                f"| {_f(r['cos_old'])} [{_f(r['cos_old_lo'])}, {_f(r['cos_old_hi'])}] "
                f"| {_f(r['exact_cos_k'], 4)} | {_f(r['exact_cos_old'], 4)} | {_f(r['rel_bias_k'])} "
                f"| {_f(r['exact_rel_bias_k'])} | {_f(r['trace_cov'], 4)} |")
        out.append("")
    return "\n".join(out)


def write(result: dict, cfg: BiasConfig, out_dir: Path, provenance: dict, band: dict | None) -> list[Path]:
    from .plots import write_plots

    out_dir = Path(out_dir)
    p = result["probe"]
    band_txt = ("not yet measured" if band is None else
                f"median {band['median']:.2f}, 10-90% {band['p10']:.2f}-{band['p90']:.2f} over {band['steps']} steps "
                f"({'; '.join(band['sources'])})")
    header = [
        "# Gradient-bias probe", "",
        f"`{provenance.get('command', 'grpo-bench probe gradient-bias')}`, commit `{str(provenance.get('git_commit'))[:7]}`"
        f"{' (dirty tree)' if provenance.get('git_dirty') else ''}; {provenance.get('hardware', {}).get('cpu')}, "
        f"{provenance.get('hardware', {}).get('cores')} cores; {result['seconds']:.0f} s.", "",
        f"Probe: {p['completions']} completions ({len(cfg.probe.targets)} prompts, digits 1..{cfg.probe.digits} + EOS, "
        f"up to {cfg.probe.max_len} tokens), an MLP with {p['parameters']} parameters, J(θ_old) = {p['J_old']:.3f}, "
        f"mean length at θ_old {p['mean_length_old']:.2f} tokens. {cfg.batches} Monte Carlo batches per cell "
        f"(the same batches for every variant), 95% percentile-bootstrap intervals over batches ({cfg.bootstrap} "
        "resamples). KL = exact sequence-level KL(π_old || π_θk), mean over prompts. `exact` columns: the "
        "expectation by enumeration ([raw]: A = r - E_old[r|x]; [sum]: the same divided by the loss's own per-token "
        "weight, i.e. no length normalisation; not for group-normalised advantages). Definitions: "
        "docs/gradient-bias.md.", "",
        f"SmolLM2 runs' inner-step KL (sequence level): {band_txt}.", "",
    ]
    files = [out_dir / "table.md", out_dir / "table.csv", out_dir / "table.json", out_dir / "config.json"]
    atomic_write_text(files[0], "\n".join(header) + to_markdown(result))
    atomic_write_text(files[1], to_csv(result["rows"]))
    atomic_write_json(files[2], {"rows": result["rows"], "probe": p, "seconds": result["seconds"], "real_runs": band})
    atomic_write_json(files[3], {"config": cfg.as_dict(), "variants": result["variants"], "provenance": provenance})
    return files + write_plots(result["rows"], out_dir / "plots", band)
