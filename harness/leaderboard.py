"""Leaderboard tables (Markdown and CSV) built from finished runs' ``summary.json`` files.

Rows: the base model, then each variant. Per eval benchmark: greedy pass@1 as the mean over
seeds (± sample std when there are several), and mean@k when sampled. Then the training reward
(first step and mean of the last quarter of steps), compute spent and response length.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from pathlib import Path

from .errors import UserError
from .io import atomic_write_text


def collect(results_dir: Path) -> list[dict]:
    summaries = []
    for path in sorted(Path(results_dir).glob("runs/*/seed*/summary.json")):
        summaries.append(json.loads(path.read_text()))
    return summaries


def _fmt(values: list[float], scale: float = 100.0, digits: int = 1) -> str:
    """Mean (± sample std over seeds when there are several) of ``values * scale``."""
    if not values:
        return ""
    mean = statistics.fmean(values) * scale
    if len(values) > 1:
        return f"{mean:.{digits}f} ± {statistics.stdev(values) * scale:.{digits}f}"
    return f"{mean:.{digits}f}"


def build_rows(summaries: list[dict]) -> tuple[list[str], list[list[str]]]:
    by_variant: dict[str, list[dict]] = {}
    for s in summaries:
        by_variant.setdefault(s["variant"], []).append(s)
    order = (["base"] if "base" in by_variant else []) + [v for v in by_variant if v != "base"]
    eval_keys: list[str] = []
    metric_names: dict[str, list[str]] = {}
    for s in summaries:
        for key, ev in s.get("eval", {}).items():
            if key not in eval_keys:
                eval_keys.append(key)
            names = metric_names.setdefault(key, ["pass@1"])
            names += [m for m in ev if m.startswith("mean@") and m not in names]
    header = ["variant", "algorithm", "seeds"]
    for key in eval_keys:
        header += [f"{key} {m} (%)" for m in metric_names[key]]
    header += ["train reward first", "train reward last 25%", "train samples", "generated tokens",
               "response length", "wall time (s)"]
    rows = []
    for variant in order:
        runs = sorted(by_variant[variant], key=lambda s: s["seed"])
        algo = runs[0].get("algorithm", {}).get("algorithm", "-")
        row = [variant, algo, ",".join(str(s["seed"]) for s in runs)]
        for key in eval_keys:
            for m in metric_names[key]:
                row.append(_fmt([s["eval"][key][m] for s in runs if key in s.get("eval", {}) and m in s["eval"][key]]))
        trains = [s["train"] for s in runs if s.get("train")]
        if trains:
            row += [
                _fmt([t["reward_first"] for t in trains], 1.0, 3),
                _fmt([t["reward_last_quarter"] for t in trains], 1.0, 3),
                str(sum(t["samples"] for t in trains)),
                str(sum(t["generated_tokens"] for t in trains)),
                f"{statistics.fmean(t['response_length_mean'] for t in trains):.1f}",
                f"{sum(s['run_wall_s'] for s in runs):.0f}",
            ]
        else:
            row += ["-", "-", "0", "0", "-", f"{sum(s['run_wall_s'] for s in runs):.0f}"]
        rows.append(row)
    return header, rows


def to_markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def to_csv(header: list[str], rows: list[list[str]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def write_leaderboard(results_dir: Path) -> str:
    """Write ``leaderboard.md`` and ``leaderboard.csv`` in ``results_dir``; return the Markdown."""
    results_dir = Path(results_dir)
    summaries = collect(results_dir)
    if not summaries:
        raise UserError(f"{results_dir}: no finished runs (runs/*/seed*/summary.json)")
    header, rows = build_rows(summaries)
    first = summaries[0]
    prov = first.get("provenance", {})
    notes = [
        f"Suite `{first.get('suite')}` (config hash `{first.get('config_hash')}`), "
        f"commit `{(prov.get('git_commit') or 'unknown')[:12]}`{' (dirty)' if prov.get('git_dirty') else ''}, "
        f"{prov.get('hardware', {}).get('cpu', '?')} x{prov.get('hardware', {}).get('cores', '?')}.",
        "Eval columns: greedy pass@1 (and sampled mean@k) in %, mean ± sample std over seeds.",
        f"Command: `{prov.get('command', '?')}`",
    ]
    md = f"# Leaderboard: {first.get('suite')}\n\n" + to_markdown(header, rows) + "\n" + "\n\n".join(notes) + "\n"
    atomic_write_text(results_dir / "leaderboard.md", md)
    atomic_write_text(results_dir / "leaderboard.csv", to_csv(header, rows))
    return md
