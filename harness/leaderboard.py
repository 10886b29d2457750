"""The leaderboard: one row per variant (and the base model), built from a suite's finished runs.

Per eval benchmark: greedy pass@1 (and sampled mean@k) as the mean over seeds with a 95% interval
(Student-t over per-seed means; a bootstrap over problems when there is one seed), and the
difference to the reference variant (``grpo`` unless told otherwise) with a paired bootstrap
interval over (seed, problem id). Then training: reward AUC, steps to a target train accuracy,
compute (samples, generated tokens, wall time per run) and response length. Written as Markdown,
CSV, JSON, PNG plots and a static HTML page; see docs/leaderboard.md for every definition.

Runs whose configs differ in anything but the variant and the seed are refused (:func:`check_comparable`).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean

from .errors import UserError
from .io import atomic_write_json, atomic_write_text, read_jsonl
from .stats import Interval, bootstrap_interval, paired_difference, t_interval

DEFAULT_TARGET = 0.5  # train accuracy for "steps to target"
WINDOW = 3  # trailing moving average of train accuracy, in steps
IGNORED_KEYS = ("variants", "suite.seeds")  # what may differ between runs of one leaderboard


@dataclass
class Run:
    """One finished run folder: its summary.json, metrics.jsonl and eval records."""

    path: Path
    summary: dict
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def variant(self) -> str:
        return self.summary["variant"]

    @property
    def seed(self) -> int:
        return self.summary["seed"]

    @property
    def label(self) -> str:
        return f"{self.variant}/seed{self.seed}"

    def _read(self, rel: str) -> list[dict]:
        if rel not in self._cache:
            self._cache[rel] = read_jsonl(self.path / rel)
        return self._cache[rel]

    def metrics(self) -> list[dict]:
        """Training rows (empty for the base model)."""
        return self._read("metrics.jsonl")

    def records(self, key: str) -> list[dict]:
        """Per-problem eval records of ``key`` (``arith-test``); empty when the file is missing."""
        return self._read(f"eval/{key}.records.jsonl")

    def scores(self, key: str, metric: str) -> dict[str, float] | None:
        """Per-problem score for an eval metric: ``correct`` for pass@1, the sample mean for mean@k."""
        out = {}
        for r in self.records(key):
            if metric == "pass@1":
                out[r["id"]] = float(r["correct"])
            elif r.get("sample_correct"):
                out[r["id"]] = fmean(float(c) for c in r["sample_correct"])
        return out or None


def load_runs(path: Path) -> list[Run]:
    """Finished runs of a suite folder (``runs/*/seed*/``), or the single run folder ``path`` itself."""
    path = Path(path)
    files = [path / "summary.json"]
    if not files[0].exists():
        files = sorted(path.glob("runs/*/seed*/summary.json"))
    return [Run(f.parent, json.loads(f.read_text())) for f in files]


def flatten(obj, prefix: str = "") -> dict:
    """Nested dicts and lists as dotted keys: ``{"eval.benchmarks[0].limit": 6, ...}``."""
    if isinstance(obj, dict):
        items = [(f"{prefix}.{k}" if prefix else str(k), v) for k, v in obj.items()]
    elif isinstance(obj, list) and obj and all(isinstance(v, (dict, list)) for v in obj):
        items = [(f"{prefix}[{i}]", v) for i, v in enumerate(obj)]
    else:
        return {prefix: obj}
    out = {}
    for key, value in items:
        out.update(flatten(value, key))
    return out


def comparable(config: dict) -> dict:
    """The config as dotted keys, without the keys that may differ (variants, seeds)."""
    flat = flatten(config)
    return {k: v for k, v in flat.items() if not any(k == i or k.startswith(i + ".") or k.startswith(i + "[")
                                                    for i in IGNORED_KEYS)}


def check_comparable(runs: list[Run], where: Path) -> None:
    """Refuse runs whose configs differ in anything but variant and seed.

    Compared: the resolved config (less variants and seeds), the prompt templates (``benchmarks``,
    ``chat_template``) and, between runs of one variant, the algorithm and its options.
    """
    flats = []
    for r in runs:
        s = r.summary
        algo = {f"algorithm({r.variant}).{k}": v for k, v in flatten(s.get("algorithm") or {}).items()}
        prompts = flatten({"benchmarks": s.get("benchmarks"), "chat_template": s.get("chat_template")})
        flats.append((r, {**comparable(s.get("config", {})), **prompts, **algo}))
    keys = sorted(set().union(*(f for _, f in flats)))
    problems = []
    for key in keys:
        values = {}
        for r, f in flats:
            if key.startswith("algorithm(") and not key.startswith(f"algorithm({r.variant})"):
                continue
            values.setdefault(json.dumps(f.get(key, "<missing>"), sort_keys=True, default=str), r.label)
        if len(values) > 1:
            problems.append(f"{key} (" + ", ".join(f"{lbl}: {v}" for v, lbl in list(values.items())[:3]) + ")")
    if problems:
        raise UserError(f"{where}: refusing to mix runs whose configs differ in more than variant and seed; "
                        f"differing keys: {'; '.join(problems)}")


# ---- per-run training numbers ---------------------------------------------------------------------
def steps_to_target(metrics: list[dict], target: float, window: int = WINDOW) -> int | None:
    """Steps taken until the trailing mean of ``accuracy`` over ``window`` steps first reaches ``target``."""
    acc = [r.get("accuracy") for r in metrics]
    for t in range(len(acc)):
        recent = [a for a in acc[max(0, t - window + 1):t + 1] if a is not None]
        if len(recent) == min(window, t + 1) and fmean(recent) >= target:
            return t + 1
    return None


def train_numbers(metrics: list[dict], target: float) -> dict:
    return {
        "steps": len(metrics),
        "reward_auc": fmean(r["reward_mean"] for r in metrics),
        "steps_to_target": steps_to_target(metrics, target),
        "samples": sum(r["samples"] for r in metrics),
        "generated_tokens": sum(r["generated_tokens"] for r in metrics),
        "train_wall_s": metrics[-1]["elapsed_s"],
        "response_length_mean": fmean(r["response_length_mean"] for r in metrics),
    }


# ---- the board --------------------------------------------------------------------------------------
def group_runs(runs: list[Run]) -> dict[str, list[Run]]:
    """Runs by variant: base first, then the suite's variant order, then any others by name."""
    groups: dict[str, list[Run]] = {}
    for r in sorted(runs, key=lambda r: r.seed):
        groups.setdefault(r.variant, []).append(r)
    order = [v.get("name") for v in runs[0].summary.get("config", {}).get("variants", [])]
    rank = {name: i for i, name in enumerate(["base", *order])}
    return dict(sorted(groups.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0])))


def eval_metrics(runs: list[Run]) -> dict[str, list[str]]:
    """Eval keys (``arith-test``) with their metrics: pass@1, then mean@k when sampled."""
    out: dict[str, list[str]] = {}
    for r in runs:
        for key, ev in r.summary.get("eval", {}).items():
            names = out.setdefault(key, ["pass@1"])
            names += [m for m in ev if m.startswith("mean@") and m not in names]
    return out


def _scores_by_seed(runs: list[Run], key: str, metric: str) -> dict[int, dict[str, float]] | None:
    by_seed = {r.seed: r.scores(key, metric) for r in runs}
    return None if any(v is None for v in by_seed.values()) else by_seed


def eval_cell(runs: list[Run], ref: list[Run] | None, key: str, metric: str) -> dict | None:
    """Mean with interval, and the difference to the reference runs (None: no delta), for one metric."""
    runs = [r for r in runs if metric in r.summary.get("eval", {}).get(key, {})]
    if not runs:
        return None
    per_seed = [r.summary["eval"][key][metric] for r in runs]
    scores = _scores_by_seed(runs, key, metric)
    if len(runs) == 1 and scores:
        mean = bootstrap_interval(list(scores[runs[0].seed].values()))
    else:
        mean = t_interval(per_seed)
        if mean.lo is not None:  # a proportion: the t interval is clipped to [0, 1]
            mean.lo, mean.hi = max(0.0, mean.lo), min(1.0, mean.hi)
    cell = {"mean": mean.as_dict(), "per_seed": dict(zip((r.seed for r in runs), per_seed)), "delta": None}
    ref = [r for r in ref or [] if metric in r.summary.get("eval", {}).get(key, {})]
    if ref:
        ref_scores = _scores_by_seed(ref, key, metric)
        delta = paired_difference(scores, ref_scores) if scores and ref_scores else None
        if delta is None:
            ref_mean = fmean(r.summary["eval"][key][metric] for r in ref)
            delta = Interval(mean.value - ref_mean, None, None, "difference", 0)
        cell["delta"] = delta.as_dict()
    return cell


def train_cell(runs: list[Run], target: float) -> dict | None:
    per_run = [train_numbers(m, target) for m in (r.metrics() for r in runs) if m]
    if not per_run:
        return None
    reached = [p["steps_to_target"] for p in per_run if p["steps_to_target"] is not None]
    return {
        "reward_auc": t_interval([p["reward_auc"] for p in per_run]).as_dict(),
        "steps_to_target": {"mean": fmean(reached) if reached else None, "reached": len(reached), "runs": len(per_run)},
        **{k: fmean(p[k] for p in per_run) for k in ("steps", "samples", "generated_tokens", "train_wall_s",
                                                      "response_length_mean")},
        "total_samples": sum(p["samples"] for p in per_run),
        "total_generated_tokens": sum(p["generated_tokens"] for p in per_run),
    }


def provenance_summary(runs: list[Run], results_dir: Path) -> dict:
    stamp = results_dir / "suite.json"
    suite = json.loads(stamp.read_text()) if stamp.exists() else {}
    provs = [r.summary.get("provenance", {}) for r in runs]

    def unique(values):
        out = []
        for v in values:
            if v not in out:
                out.append(v)
        return out

    return {
        "suite": runs[0].summary.get("suite"),
        "config_hash": suite.get("config_hash", runs[0].summary.get("config_hash")),
        "config": suite.get("config", runs[0].summary.get("config")),
        "seeds": sorted({r.seed for r in runs}),
        "commits": unique({"commit": p.get("git_commit"), "dirty": p.get("git_dirty")} for p in provs),
        "versions": unique(p.get("versions") for p in provs),
        "hardware": unique(p.get("hardware") for p in provs),
        "commands": unique(p.get("command") for p in provs),
    }


def variant_row(variant: str, runs: list[Run], ref: list[Run] | None, metrics: dict, target: float) -> dict:
    algo = runs[0].summary.get("algorithm") or {}
    evals = [r.summary.get("eval", {}) for r in runs]
    return {
        "variant": variant, "algorithm": algo.get("algorithm", "-"), "options": algo.get("options", {}),
        "seeds": [r.seed for r in runs],
        "eval": {key: {m: eval_cell(runs, ref, key, m) for m in ms} for key, ms in metrics.items()},
        "eval_response_length": {key: fmean(e[key]["response_length_mean"] for e in evals if key in e)
                                 for key in metrics if any(key in e for e in evals)},
        "train": train_cell(runs, target),
        "run_wall_s": fmean(r.summary.get("run_wall_s", 0.0) for r in runs),
    }


def build_board(runs: list[Run], results_dir: Path, reference: str | None = None,
                target: float = DEFAULT_TARGET) -> dict:
    """Everything the renderers need, as plain JSON-able data."""
    groups = group_runs(runs)
    if reference is not None and reference not in groups:
        raise UserError(f"--reference {reference!r}: no such variant in {results_dir} "
                        f"(variants: {', '.join(groups)})")
    reference = reference or ("grpo" if "grpo" in groups else None)
    metrics = eval_metrics(runs)
    rows = [variant_row(variant, vruns, None if variant == reference else groups.get(reference), metrics, target)
            for variant, vruns in groups.items()]
    return {"reference": reference, "target": target, "window": WINDOW, "metrics": metrics, "rows": rows,
            "provenance": provenance_summary(runs, results_dir),
            "runs": [{"variant": r.variant, "seed": r.seed, "path": str(r.path.relative_to(results_dir))
                      if r.path.is_relative_to(results_dir) else str(r.path)} for r in runs]}


# ---- rendering ------------------------------------------------------------------------------------
def fmt_interval(iv: dict | None, scale: float = 100.0, digits: int = 1, sign: bool = False) -> str:
    if not iv:
        return "-"
    f = f"{{:{'+' if sign else ''}.{digits}f}}"
    text = f.format(iv["value"] * scale)
    if iv["lo"] is not None:
        text += f" [{f.format(iv['lo'] * scale)}, {f.format(iv['hi'] * scale)}]"
    return text + ("†" if iv["method"] == "bootstrap" else "")


def fmt_steps(s: dict) -> str:
    if not s["reached"]:
        return "not reached"
    text = f"{s['mean']:.1f}"
    return text if s["reached"] == s["runs"] else f"{text} ({s['reached']}/{s['runs']})"


def table(board: dict) -> tuple[list[str], list[list[str]]]:
    """Header and formatted cells (shared by Markdown and HTML)."""
    ref = board["reference"]
    header = ["variant", "algorithm", "seeds"]
    for key, ms in board["metrics"].items():
        for m in ms:
            header.append(f"{key} {m} (%)")
            if ref and m == "pass@1":
                header.append(f"{key} Δ{m} vs {ref} (pts)")
    header += ["train reward AUC", f"steps to train acc ≥ {board['target']:g}", "samples/run",
               "gen. tokens/run", "train wall s/run", "train resp. length"]
    rows = []
    for row in board["rows"]:
        cells = [row["variant"], row["algorithm"], ",".join(map(str, row["seeds"]))]
        for key, ms in board["metrics"].items():
            for m in ms:
                cell = row["eval"][key][m]
                cells.append(fmt_interval(cell["mean"]) if cell else "-")
                if ref and m == "pass@1":
                    cells.append("ref" if row["variant"] == ref else fmt_interval(cell and cell["delta"], sign=True))
        t = row["train"]
        if t:
            cells += [fmt_interval(t["reward_auc"], 1.0, 3), fmt_steps(t["steps_to_target"]), f"{t['samples']:.0f}",
                      f"{t['generated_tokens']:.0f}", f"{t['train_wall_s']:.0f}", f"{t['response_length_mean']:.1f}"]
        else:
            cells += ["-"] * 6
        rows.append(cells)
    return header, rows


def notes(board: dict) -> list[str]:
    """The legend: interval methods and definitions (Markdown and HTML footers)."""
    ref = board["reference"]
    out = ["Eval: greedy pass@1 (and sampled mean@k) in %, mean over seeds with a 95% Student-t interval over "
           "per-seed means (clipped to [0, 100]); † marks one seed, where the interval is a percentile "
           "bootstrap over problems (2000 resamples, RNG seed 0)."]
    if ref:
        out.append(f"Δ: difference to `{ref}` in percentage points, paired bootstrap 95% interval over problems "
                   "(pairs by (seed, problem id); the base model is paired with every seed).")
    out.append(f"Train reward AUC: mean of the per-step mean reward (area under the reward curve / steps), "
               f"95% t interval over seeds. Steps to target: first step count where the {board['window']}-step "
               "trailing mean of train accuracy reaches the target (mean over seeds that reached it; "
               "(r/n) when only r of n did). Compute columns are per run (mean over seeds).")
    return out


def provenance_lines(board: dict) -> list[str]:
    p = board["provenance"]
    commits = ", ".join(f"`{(c['commit'] or 'unknown')[:12]}`{' (dirty)' if c['dirty'] else ''}" for c in p["commits"])
    hw = "; ".join(f"{h.get('cpu', '?')} x{h.get('cores', '?')}" + (f", {h['gpu']}" if h.get("gpu") else "")
                   for h in p["hardware"] if h)
    versions = "; ".join(", ".join(f"{k} {v}" for k, v in vs.items()) for vs in p["versions"] if vs)
    return [f"Suite `{p['suite']}`, config hash `{p['config_hash']}`, seeds {', '.join(map(str, p['seeds']))}.",
            f"Commit {commits}. Hardware: {hw or '?'}.", f"Versions: {versions or '?'}.",
            "Command: " + "; ".join(f"`{c}`" for c in p["commands"])]


def to_markdown(board: dict) -> str:
    header, rows = table(board)
    lines = [f"# Leaderboard: {board['provenance']['suite']}", "",
             "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    config = json.dumps(board["provenance"]["config"], indent=2, sort_keys=True)
    lines += ["", *[n + "\n" for n in notes(board)], *[n + "\n" for n in provenance_lines(board)],
              "<details><summary>Resolved config</summary>", "", "```json", config, "```", "", "</details>"]
    return "\n".join(lines) + "\n"


def to_csv(board: dict) -> str:
    """Numbers, unformatted: one row per variant; intervals as value/lo/hi columns."""
    header, rows = ["variant", "algorithm", "seeds"], []
    for key, ms in board["metrics"].items():
        for m in ms:
            header += [f"{key} {m}{s}" for s in ("", " lo", " hi", " method")]
            header += [f"{key} {m} delta{s}" for s in ("", " lo", " hi", " method")]
    train_keys = ["steps", "samples", "generated_tokens", "train_wall_s", "response_length_mean"]
    header += ["reward_auc", "reward_auc lo", "reward_auc hi", "steps_to_target", "target_reached_runs", *train_keys]

    def iv(d):
        return [d["value"], d["lo"], d["hi"], d["method"]] if d else ["", "", "", ""]

    for row in board["rows"]:
        cells = [row["variant"], row["algorithm"], ";".join(map(str, row["seeds"]))]
        for key, ms in board["metrics"].items():
            for m in ms:
                cell = row["eval"][key][m]
                cells += iv(cell and cell["mean"]) + iv(cell and cell["delta"])
        t = row["train"]
        if t:
            cells += iv(t["reward_auc"])[:3] + [t["steps_to_target"]["mean"], t["steps_to_target"]["reached"]]
            cells += [t[k] for k in train_keys]
        else:
            cells += [""] * (5 + len(train_keys))
        rows.append(["" if c is None else c for c in cells])
    buf = io.StringIO()
    csv.writer(buf).writerows([header, *rows])
    return buf.getvalue()


def write_leaderboard(results_dir: Path, reference: str | None = None, target: float = DEFAULT_TARGET) -> str:
    """Write leaderboard.md/.csv/.json/.html and plots/*.png in ``results_dir``; return the Markdown."""
    from .plots import write_plots
    from .report_html import to_html

    results_dir = Path(results_dir)
    runs = load_runs(results_dir)
    if not runs:
        raise UserError(f"{results_dir}: no finished runs (runs/*/seed*/summary.json)")
    check_comparable(runs, results_dir)
    board = build_board(runs, results_dir, reference, target)
    md = to_markdown(board)
    atomic_write_text(results_dir / "leaderboard.md", md)
    atomic_write_text(results_dir / "leaderboard.csv", to_csv(board))
    atomic_write_json(results_dir / "leaderboard.json", board)
    plots = write_plots(board, group_runs(runs), results_dir / "plots")
    atomic_write_text(results_dir / "leaderboard.html", to_html(board, [p.relative_to(results_dir) for p in plots]))
    return md
