"""Gradient-bias plots (PNG, matplotlib's Agg canvas, no pyplot state).

- ``cosine_vs_kl.png``: rows = as configured (with the no-ratio control), then the ablations; columns =
  cos(E[u], grad J(theta_k)), cos(E[u], grad J(theta_old)), cos(E[u], grad J_own(theta_k)); x = the exact KL
  target (symlog); points = median over every seed and path, bars = min to max. Grey band: the inner-step
  KL of the published runs above their noise floor (absent while none is).
- ``by_path.png``: the variants as configured, one panel per path kind (random, gradient, adam):
  cos_k - cos_old (median, min to max over seeds and paths): above 0 = nearer grad J(theta_k).
- ``group_size_length.png``: cos(E[u], grad J(theta_k)) and trace of the covariance vs G, and the cosine
  vs maximum completion length, at the sweep's KL (first seed, one random direction).
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from ..report.plots import COLORS, save_figure

PANELS = (("cos_k", "cos(E[u], ∇J(θ_k))"), ("cos_old", "cos(E[u], ∇J(θ_old))"),
          ("cos_own_k", "cos(E[u], ∇J_own(θ_k))"))


def _colors(labels) -> dict:
    return {v: COLORS[i % len(COLORS)] for i, v in enumerate(dict.fromkeys(labels))}


def _band(ax, band: dict | None) -> None:
    if band:
        ax.axvspan(band["p10"], band["p90"], color="0.6", alpha=0.25, lw=0, label="runs above floor, 10-90%")
        ax.axvline(band["median"], color="0.45", lw=0.8, ls=":")


def _series(ax, summary: list[dict], variant: str, key, color, style: str) -> None:
    s = sorted((x for x in summary if x["variant"] == variant and x["kind"] == "all"), key=lambda x: x["kl_target"])
    xs = [x["kl_target"] for x in s]
    mid = [x[key]["median"] for x in s]
    err = [[m - x[key]["min"] for m, x in zip(mid, s)], [x[key]["max"] - m for m, x in zip(mid, s)]]
    ax.errorbar(xs, mid, yerr=err, fmt="o", ms=3.5, capsize=2, color=color, ls=style, lw=1.2, label=variant)


def cosine_vs_kl(summary: list[dict], path: Path, band: dict | None) -> Path:
    groups = [("as configured (and the no-ratio control)", ("configured", "control")), ("ablations", ("ablation",))]
    fig = Figure(figsize=(16, 9), layout="constrained")
    axes = fig.subplots(len(groups), len(PANELS), squeeze=False)
    targets = sorted({x["kl_target"] for x in summary if x["kl_target"] > 0})
    for i, (title, roles) in enumerate(groups):
        variants = list(dict.fromkeys(x["variant"] for x in summary if x["role"] in roles))
        colors = _colors(variants)
        for j, (key, label) in enumerate(PANELS):
            ax = axes[i][j]
            for v in variants:
                role = next(x["role"] for x in summary if x["variant"] == v)
                _series(ax, summary, v, key, colors[v], "--" if role == "control" else "-")
            if targets:
                ax.set_xscale("symlog", linthresh=targets[0])
            _band(ax, band)
            ax.set_xlabel("exact KL(π_old || π_θk), sequence level")
            ax.set_ylabel(label)
            ax.set_title(f"{title}: {label}", fontsize=9)
            ax.grid(alpha=0.3)
        axes[i][0].legend(fontsize=6.5)
    return save_figure(fig, path)


def by_path(summary: list[dict], path: Path) -> Path:
    kinds = ("random", "gradient", "adam")
    fig = Figure(figsize=(15, 4.6), layout="constrained")
    axes = fig.subplots(1, len(kinds))
    rows = [x for x in summary if x["role"] in ("configured", "control")]
    colors = _colors(x["variant"] for x in rows)
    for ax, kind in zip(axes, kinds):
        for i, v in enumerate(colors):
            s = sorted((x for x in rows if x["variant"] == v and x["kind"] == kind), key=lambda x: x["kl_target"])
            if not s:
                continue
            shift = 1.07 ** (i - len(colors) / 2)  # spread the variants around each KL so the bars do not overlap
            gap = [x["cos_k"]["median"] - x["cos_old"]["median"] for x in s]
            lo = [x["cos_k"]["min"] - x["cos_old"]["max"] for x in s]
            hi = [x["cos_k"]["max"] - x["cos_old"]["min"] for x in s]
            ax.errorbar([x["kl_target"] * shift for x in s], gap, yerr=[[g - a for g, a in zip(gap, lo)],
                                                                          [b - g for g, b in zip(gap, hi)]],
                        fmt="s" if s[0]["role"] == "control" else "o", ms=3.5, capsize=2, color=colors[v], lw=1.2,
                        mfc="white" if s[0]["role"] == "control" else colors[v], label=v)
        ax.axhline(0, color="0.3", lw=0.8)
        ax.set_xscale("log")
        ax.set_title(f"{kind} paths: cos_k - cos_old (median; bars: extreme differences)", fontsize=9)
        ax.set_xlabel("exact KL(π_old || π_θk)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=6.5)
    return save_figure(fig, path)


def group_size_length(rows: list[dict], path: Path) -> Path:
    fig = Figure(figsize=(15, 4.6), layout="constrained")
    axes = fig.subplots(1, 3)
    keep = ("configured", "control")
    gs = [r for r in rows if r["sweep"] == "group_size" and r["kl_target"] and r["role"] in keep]
    ls = [r for r in rows if r["sweep"] == "length" and r["kl_target"] and r["role"] in keep]
    colors = _colors(r["variant"] for r in gs + ls)
    for ax, sub, x, key, title in ((axes[0], gs, "G", "cos_k", "cos(E[u], ∇J(θ_k)) vs G"),
                                   (axes[1], gs, "G", "trace_cov", "trace Cov(u) vs G"),
                                   (axes[2], ls, "max_len", "cos_k", "cos(E[u], ∇J(θ_k)) vs max length")):
        for variant in dict.fromkeys(r["variant"] for r in sub):
            vr = sorted((r for r in sub if r["variant"] == variant), key=lambda r: r[x])
            ys = [r[key] for r in vr]
            err = ([[max(0.0, y - r["cos_k_lo"]) for y, r in zip(ys, vr)],
                    [max(0.0, r["cos_k_hi"] - y) for y, r in zip(ys, vr)]] if key == "cos_k" else None)
            ax.errorbar([r[x] for r in vr], ys, yerr=err, fmt="o", ms=4, capsize=2, color=colors[variant],
                        ls="--" if vr[0]["role"] == "control" else "-", label=variant)
        if key == "trace_cov":
            ax.set_yscale("log")
        kl = sub[0]["kl_target"] if sub else None
        ax.set_title(f"{title} (KL = {kl:g})" if kl is not None else title, fontsize=10)
        ax.set_xlabel(x)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=6.5)
    return save_figure(fig, path)


def write_plots(rows: list[dict], summary: list[dict], out_dir: Path, band: dict | None) -> list[Path]:
    out_dir = Path(out_dir)
    return [cosine_vs_kl(summary, out_dir / "cosine_vs_kl.png", band),
            by_path(summary, out_dir / "by_path.png"),
            group_size_length(rows, out_dir / "group_size_length.png")]
