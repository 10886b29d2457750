"""Gradient-bias plots (PNG, matplotlib's Agg canvas, no pyplot state).

- ``cosine_vs_kl.png``: rows = advantage mode (group: the plugin's own advantages; raw: A = r - b(x)),
  columns = cos(E[u], grad J(theta_k)), cos(E[u], grad J(theta_old)), relative bias to grad J(theta_k);
  x = exact KL(pi_old || pi_k) (symlog). Points with 95% bootstrap intervals: Monte Carlo; lines: the
  exact expectation (raw only). Dashed/hollow: the "noclip" ablation. Grey band: the KL range of the
  published SmolLM2 runs' inner steps.
- ``cosine_vs_kl_optsteps.png``: the same two cosines when theta_k comes from k Adam steps of the
  variant itself.
- ``group_size_length.png``: cos(E[u], grad J(theta_k)) and trace of the covariance vs G, and the cosine
  vs maximum completion length, at the sweep's KL.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from ..report.plots import COLORS, save_figure


def _colors(rows: list[dict]) -> dict:
    algos = list(dict.fromkeys(r["algorithm"] for r in rows))
    return {a: COLORS[i % len(COLORS)] for i, a in enumerate(algos)}


def _band(ax, band: dict | None, label: bool) -> None:
    if band:
        ax.axvspan(band["p10"], band["p90"], color="0.6", alpha=0.25, lw=0,
                   label="SmolLM2 runs, 10-90%" if label else None)
        ax.axvline(band["median"], color="0.45", lw=0.8, ls=":")


def _kl_panel(ax, rows, colors, key, exact_key, band, legend: bool, ylabel: str) -> None:
    pos = [r["kl"] for r in rows if r["kl"] > 0]
    for variant in dict.fromkeys(r["variant"] for r in rows):
        vr = sorted((r for r in rows if r["variant"] == variant), key=lambda r: r["kl"])
        c = colors[vr[0]["algorithm"]]
        noclip = "noclip" in variant
        xs = [r["kl"] for r in vr]
        ys = [r[key] for r in vr]
        lo_key, hi_key = f"{key}_lo", f"{key}_hi"
        if lo_key in vr[0]:
            err = [[max(0.0, y - r[lo_key]) for y, r in zip(ys, vr)], [max(0.0, r[hi_key] - y) for y, r in zip(ys, vr)]]
        else:
            err = None
        has_exact = exact_key and vr[0].get(exact_key) is not None
        ax.errorbar(xs, ys, yerr=err, fmt="o" if not noclip else "s", ms=4, capsize=2, color=c,
                    mfc="white" if noclip else c, ls="none" if has_exact else ("--" if noclip else "-"), lw=1.2,
                    label=None if has_exact else variant)
        if has_exact:
            ax.plot(xs, [r[exact_key] for r in vr], "--" if noclip else "-", color=c, lw=1.4, label=f"{variant} (exact)")
    if pos:
        ax.set_xscale("symlog", linthresh=min(pos))
    _band(ax, band, legend)
    ax.set_xlabel("exact KL(π_old || π_θk), sequence level")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if legend:
        ax.legend(fontsize=6.5)


COS_K = ("cos_k", "exact_cos_k", "cos(E[u], ∇J(θ_k))")
COS_OLD = ("cos_old", "exact_cos_old", "cos(E[u], ∇J(θ_old))")
REL_BIAS_K = ("rel_bias_k", "exact_rel_bias_k", "relative bias to ∇J(θ_k)")


def _kl_grid(rows: list[dict], sweep: str, panels: tuple, panel_size: tuple[float, float], title, path: Path,
             band: dict | None) -> Path:
    """One row of ``panels`` (metric, exact metric, label) per advantage mode, for one sweep's rows;
    ``title(label, mode)`` names each panel."""
    rows = [r for r in rows if r["sweep"] == sweep]
    colors = _colors(rows)
    modes = list(dict.fromkeys(r["advantage"] for r in rows))
    fig = Figure(figsize=(panel_size[0] * len(panels), panel_size[1] * len(modes)), layout="constrained")
    axes = fig.subplots(len(modes), len(panels), squeeze=False)
    for i, mode in enumerate(modes):
        mr = [r for r in rows if r["advantage"] == mode]
        for j, (key, ex, label) in enumerate(panels):
            _kl_panel(axes[i][j], mr, colors, key, ex, band, legend=j == 0, ylabel=label)
            axes[i][j].set_title(title(label, mode), fontsize=10)
    return save_figure(fig, path)


def cosine_vs_kl(rows: list[dict], path: Path, band: dict | None) -> Path:
    return _kl_grid(rows, "kl", (COS_K, COS_OLD, REL_BIAS_K), (5, 4.6),
                    lambda label, mode: f"{label}, advantages: {mode}", path, band)


def cosine_vs_kl_optsteps(rows: list[dict], path: Path, band: dict | None) -> Path:
    return _kl_grid(rows, "opt_steps", (COS_K, COS_OLD), (5.5, 4.4),
                    lambda label, mode: f"θ_k = k Adam steps of the variant; advantages: {mode}", path, band)


def group_size_length(rows: list[dict], path: Path) -> Path:
    fig = Figure(figsize=(15, 4.6), layout="constrained")
    axes = fig.subplots(1, 3)
    gs = [r for r in rows if r["sweep"] == "group_size" and r["kl_target"]]
    ls = [r for r in rows if r["sweep"] == "length" and r["kl_target"]]
    colors = _colors(gs or ls)
    for ax, sub, x, key, title in ((axes[0], gs, "G", "cos_k", "cos(E[u], ∇J(θ_k)) vs G"),
                                   (axes[1], gs, "G", "trace_cov", "trace Cov(u) vs G"),
                                   (axes[2], ls, "max_len", "cos_k", "cos(E[u], ∇J(θ_k)) vs max length")):
        for variant in dict.fromkeys(r["variant"] for r in sub):
            vr = sorted((r for r in sub if r["variant"] == variant), key=lambda r: r[x])
            c = colors[vr[0]["algorithm"]]
            noclip = "noclip" in variant
            ys = [r[key] for r in vr]
            err = ([[max(0.0, y - r["cos_k_lo"]) for y, r in zip(ys, vr)], [max(0.0, r["cos_k_hi"] - y) for y, r in zip(ys, vr)]]
                   if key == "cos_k" else None)
            ax.errorbar([r[x] for r in vr], ys, yerr=err, fmt="s" if noclip else "o", ms=4, capsize=2, color=c,
                        mfc="white" if noclip else c, ls=("--" if noclip else "-") if vr[0]["advantage"] == "group" else ":",
                        label=variant)
        if key == "trace_cov":
            ax.set_yscale("log")
        kl = sub[0]["kl_target"] if sub else None
        ax.set_title(f"{title} (KL = {kl:g})" if kl is not None else title, fontsize=10)
        ax.set_xlabel(x)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=6.5)
    return save_figure(fig, path)


def write_plots(rows: list[dict], out_dir: Path, band: dict | None) -> list[Path]:
    out_dir = Path(out_dir)
    return [cosine_vs_kl(rows, out_dir / "cosine_vs_kl.png", band),
            cosine_vs_kl_optsteps(rows, out_dir / "cosine_vs_kl_optsteps.png", band),
            group_size_length(rows, out_dir / "group_size_length.png")]
