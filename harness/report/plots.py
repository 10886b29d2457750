"""Leaderboard plots (PNG, matplotlib's Agg canvas, no pyplot state).

- ``train_curves.png``: train reward and train accuracy vs step, per variant: the mean over seeds
  as a line, the band between the lowest and highest seed.
- ``eval_accuracy.png``: per eval benchmark, each variant's final pass@1 (and mean@k) with its 95%
  interval from the table, seeds as faint dots: the final checkpoint on the full targets, one point
  per variant (the curves during training are ``eval_curves.png``).
- ``eval_curves.png``: with ``[eval] every``, per eval target the greedy pass@1 on its
  ``every_limit`` subset vs training steps completed, mean over seeds with the min-max band.
- ``ratios.png``: clip fraction, token importance ratio mean and max, and trajectory log-ratio mean
  (solid) and max (dashed) vs step, mean over seeds with the min-max band.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]


def save_figure(fig: Figure, path: Path) -> Path:
    """Render ``fig`` with the Agg canvas (no pyplot state) to ``path`` (folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=110)
    return path


def seed_band(series: list[list[dict]], key: str) -> tuple[list[int], list[float], list[float], list[float]]:
    """Steps, and the mean, min and max over seeds of ``key`` at each step (seeds lacking it skipped)."""
    by_step: dict[int, list[float]] = {}
    for rows in series:
        for r in rows:
            if r.get(key) is not None:
                by_step.setdefault(r["step"], []).append(float(r[key]))
    steps = sorted(by_step)
    vals = [by_step[s] for s in steps]
    return steps, [sum(v) / len(v) for v in vals], [min(v) for v in vals], [max(v) for v in vals]


def _curves(ax, metrics: dict[str, list[list[dict]]], key: str, colors: dict, style: str = "-",
            label: bool = True, band: bool = True) -> bool:
    drawn = False
    for variant, series in metrics.items():
        steps, mean, lo, hi = seed_band(series, key)
        if not steps:
            continue
        ax.plot(steps, mean, style, color=colors[variant], label=variant if label else None, lw=1.6)
        if band and len(series) > 1:
            ax.fill_between(steps, lo, hi, color=colors[variant], alpha=0.18, lw=0)
        drawn = True
    return drawn


def _finish(ax, title: str, ylabel: str, drawn: bool) -> None:
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("step")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes, color="gray")


def train_curves(metrics: dict[str, list[list[dict]]], colors: dict, path: Path) -> Path:
    fig = Figure(figsize=(11, 4), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    for ax, key, what in ((ax1, "reward_mean", "reward"), (ax2, "accuracy", "accuracy")):
        _finish(ax, f"train {what} (mean over seeds, band: min-max)", key, _curves(ax, metrics, key, colors))
    return save_figure(fig, path)


def ratio_curves(metrics: dict[str, list[list[dict]]], colors: dict, path: Path) -> Path:
    fig = Figure(figsize=(11, 7.5), layout="constrained")
    axes = fig.subplots(2, 2).ravel()
    for ax, key, title in zip(axes[:3], ("clip_frac", "ratio_token_mean", "ratio_token_max"),
                              ("clip fraction", "token ratio mean", "token ratio max")):
        _finish(ax, title, key, _curves(ax, metrics, key, colors))
    ax = axes[3]
    drawn = _curves(ax, metrics, "log_ratio_traj_mean", colors)
    _curves(ax, metrics, "log_ratio_traj_max", colors, style="--", label=False, band=False)
    _finish(ax, "trajectory log-ratio: mean (solid, band), max (dashed)", "log w", drawn)
    return save_figure(fig, path)


def eval_points(board: dict, colors: dict, path: Path) -> Path:
    keys = list(board["metrics"])
    fig = Figure(figsize=(max(5.0, 4.2 * len(keys)), 4), layout="constrained")
    axes = fig.subplots(1, max(1, len(keys)), squeeze=False)[0]
    variants = [row["variant"] for row in board["rows"]]
    for ax, key in zip(axes, keys):
        top = 0.0
        for m_i, metric in enumerate(board["metrics"][key][:2]):
            offset = -0.12 + 0.24 * m_i if len(board["metrics"][key]) > 1 else 0.0
            for x, row in enumerate(board["rows"]):
                cell = row["eval"][key][metric]
                if not cell:
                    continue
                iv = cell["mean"]
                v = 100 * iv["value"]
                err = None if iv["lo"] is None else [[v - 100 * iv["lo"]], [100 * iv["hi"] - v]]
                top = max(top, v, 100 * (iv["hi"] or 0.0), *(100 * s for s in cell["per_seed"].values()))
                ax.errorbar([x + offset], [v], yerr=err, fmt="os"[m_i], color=colors[row["variant"]], capsize=4,
                            mfc="white" if m_i else None)
                seeds = [100 * s for s in cell["per_seed"].values()]
                ax.scatter([x + offset] * len(seeds), seeds, s=10, color=colors[row["variant"]], alpha=0.35)
            ax.plot([], [], "os"[m_i], color="gray", mfc="white" if m_i else None, label=metric)  # legend entry
        ax.set_xticks(range(len(variants)), variants, rotation=20, fontsize=8)
        ax.set_xlim(-0.6, len(variants) - 0.4)
        ax.set_ylim(-2, min(102, max(10.0, top * 1.1)))
        ax.set_title(f"{key} (final checkpoint)", fontsize=10)
        ax.set_ylabel("% correct (95% CI)")
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=8)
    return save_figure(fig, path)


def eval_curves(groups: dict, colors: dict, path: Path) -> Path | None:
    """pass@1 during training per eval target (None when no run has an eval curve)."""
    curves = {v: [c for c in (r.eval_curve() for r in runs) if c] for v, runs in groups.items()}
    curves = {v: s for v, s in curves.items() if s}
    keys = sorted({row["key"] for series in curves.values() for c in series for row in c})
    if not keys:
        return None
    cols = min(2, len(keys))  # two panels a row: the same shape as train_curves.png, which it sits beside
    rows = -(-len(keys) // cols)
    fig = Figure(figsize=(11 if cols == 2 else 5.5, 4 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[len(keys):]:
        ax.set_visible(False)
    for ax, key in zip(axes, keys):
        per_variant = {v: [[dict(r, pct=100 * r["pass@1"]) for r in c if r["key"] == key] for c in series]
                       for v, series in curves.items()}
        drawn = _curves(ax, per_variant, "pct", colors)
        n = sorted({r["n"] for series in curves.values() for c in series for r in c if r["key"] == key})
        _finish(ax, f"{key} pass@1 during training (first {', '.join(map(str, n))} problems)", "% correct", drawn)
        ax.set_xlabel("training steps completed")
    return save_figure(fig, path)


def write_plots(board: dict, groups: dict, out_dir: Path) -> list[Path]:
    """All leaderboard PNGs into ``out_dir``; ``groups`` maps variant -> runs (with ``metrics()``)."""
    out_dir = Path(out_dir)
    colors = {v: COLORS[i % len(COLORS)] for i, v in enumerate(groups)}
    metrics = {v: [m for m in (r.metrics() for r in runs) if m] for v, runs in groups.items()}
    metrics = {v: s for v, s in metrics.items() if s}
    curve = eval_curves(groups, colors, out_dir / "eval_curves.png")
    if curve is None:
        (out_dir / "eval_curves.png").unlink(missing_ok=True)  # left over from an earlier build
    return [p for p in (train_curves(metrics, colors, out_dir / "train_curves.png"), curve,
                        eval_points(board, colors, out_dir / "eval_accuracy.png"),
                        ratio_curves(metrics, colors, out_dir / "ratios.png")) if p is not None]
