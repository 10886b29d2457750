"""The leaderboard's numbers: one row per variant (and the base model), as plain JSON-able data.

Per eval benchmark: greedy pass@1 (and sampled mean@k) as the mean over seeds with a 95% interval
(Student-t over per-seed means; a bootstrap over problems when there is one seed), and the
difference to the reference variant (``grpo`` unless told otherwise) with a paired bootstrap
interval over (seed, problem id). Then training: reward AUC, steps to a target train accuracy,
compute (samples, generated tokens, wall time per run) and response length. See
docs/leaderboard.md for every definition.
"""

from __future__ import annotations

import json
from pathlib import Path
from statistics import fmean

from ..errors import UserError
from .claims import claim_rows
from .movement import movement_table
from .runs import DEFAULT_MARGIN, DEFAULT_TARGET, WINDOW, Run, eval_metrics, group_runs
from .stats import Interval, bootstrap_interval, paired_difference, t_interval, verdict


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


def reward_failures(run: Run) -> list[dict]:
    """Per reward: how many scored samples errored or timed out, in training (summed over the
    ``reward_error/NAME`` and ``reward_timeout/NAME`` columns of metrics.jsonl over ``samples``) and in
    each eval (the greedy pass's ``reward_counts``). Rates are failures / samples."""
    out = []
    metrics = run.metrics()
    names = sorted({k.split("/", 1)[1] for r in metrics for k in r if k.startswith(("reward_error/", "reward_timeout/"))})
    n = sum(r.get("samples", 0) for r in metrics)
    for name in names:
        err = sum(r.get(f"reward_error/{name}") or 0 for r in metrics)
        tout = sum(r.get(f"reward_timeout/{name}") or 0 for r in metrics)
        out.append({"where": "train", "reward": name, "n": n, "error": err, "timeout": tout})
    for key, ev in sorted(run.summary.get("eval", {}).items()):
        counts = ev.get("reward_counts")
        if isinstance(counts, dict) and "error" in counts:
            total = sum(v for v in counts.values() if isinstance(v, int))
            out.append({"where": f"eval {key}", "reward": (ev.get("benchmark_spec") or {}).get("eval_reward", key),
                        "n": total, "error": counts.get("error", 0), "timeout": counts.get("timeout", 0)})
    for row in out:
        row["error_rate"] = row["error"] / row["n"] if row["n"] else 0.0
        row["timeout_rate"] = row["timeout"] / row["n"] if row["n"] else 0.0
    return out


def curve_auc(points: list[tuple[int, float]]) -> float:
    """Normalised area under an eval curve: trapezoids over (step, pass@1), divided by the step span."""
    points = sorted(points)
    if len(points) == 1:
        return points[0][1]
    area = sum((s1 - s0) * (v0 + v1) / 2 for (s0, v0), (s1, v1) in zip(points, points[1:]))
    return area / (points[-1][0] - points[0][0])


def eval_auc_cells(runs: list[Run]) -> dict[str, dict]:
    """Per eval key: the eval AUC, mean over the runs that have a curve, with a t interval."""
    per_key: dict[str, list[float]] = {}
    for r in runs:
        by_key: dict[str, list[tuple[int, float]]] = {}
        for row in r.eval_curve():
            by_key.setdefault(row["key"], []).append((row["step"], row["pass@1"]))
        for key, points in by_key.items():
            per_key.setdefault(key, []).append(curve_auc(points))
    return {key: t_interval(vals).as_dict() for key, vals in per_key.items()}


def _scores_by_seed(runs: list[Run], key: str, metric: str) -> dict[int, dict[str, float]] | None:
    by_seed = {r.seed: r.scores(key, metric) for r in runs}
    return None if any(v is None for v in by_seed.values()) else by_seed


def eval_cell(runs: list[Run], ref: list[Run] | None, key: str, metric: str,
              margin: float = DEFAULT_MARGIN) -> dict | None:
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
        ref_per_seed = {r.seed: r.summary["eval"][key][metric] for r in ref}
        cell["verdict"] = verdict(cell["per_seed"], ref_per_seed, margin)
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


def variant_row(variant: str, runs: list[Run], ref: list[Run] | None, metrics: dict, target: float,
                margin: float = DEFAULT_MARGIN) -> dict:
    algo = runs[0].summary.get("algorithm") or {}
    evals = [r.summary.get("eval", {}) for r in runs]
    return {
        "variant": variant, "algorithm": algo.get("algorithm", "-"), "options": algo.get("options", {}),
        "seeds": [r.seed for r in runs],
        "eval": {key: {m: eval_cell(runs, ref, key, m, margin) for m in ms} for key, ms in metrics.items()},
        "eval_response_length": {key: fmean(e[key]["response_length_mean"] for e in evals if key in e)
                                 for key in metrics if any(key in e for e in evals)},
        "train": train_cell(runs, target),
        "eval_auc": eval_auc_cells(runs),
        "run_wall_s": fmean(r.summary.get("run_wall_s", 0.0) for r in runs),
        "reward_failures": {r.seed: reward_failures(r) for r in runs},
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
    prov = provenance_summary(runs, results_dir)
    meta = (prov.get("config") or {}).get("suite", {})
    margin = meta.get("equivalence_margin", DEFAULT_MARGIN)
    rows = [variant_row(variant, vruns, None if variant == reference else groups.get(reference), metrics, target,
                        margin) for variant, vruns in groups.items()]
    control = meta.get("positive_control") or None
    return {"reference": reference, "target": target, "window": WINDOW, "metrics": metrics, "rows": rows,
            "curve_keys": sorted({k for row in rows for k in row["eval_auc"]}),
            "margin": margin, "positive_control": control if control in groups else None,
            "claims": claim_rows((prov.get("config") or {}).get("claims") or [], groups, results_dir),
            "provenance": prov, "movement": movement_table(runs),
            "runs": [{"variant": r.variant, "seed": r.seed, "path": str(r.path.relative_to(results_dir))
                      if r.path.is_relative_to(results_dir) else str(r.path)} for r in runs]}
