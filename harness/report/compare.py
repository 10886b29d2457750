"""``grpo-bench compare A B``: per-benchmark differences B - A between two result folders.

A and B are suite folders (``runs/*/seed*/``) or single run folders (``summary.json`` inside).
Two single-variant folders are compared with each other whatever their variant names; otherwise
variants present in both are compared by name. Where the two sides share problem ids, the
difference has a paired bootstrap 95% interval (:func:`grpo_bench.report.stats.paired_difference`);
otherwise it is the plain difference of the means over seeds, without an interval.
"""

from __future__ import annotations

from pathlib import Path
from statistics import fmean

from ..errors import UserError
from .render import fmt_interval
from .runs import Run, comparable, eval_metrics, group_runs, load_runs
from .stats import Interval, paired_difference


def _side(path: Path) -> dict[str, list[Run]]:
    runs = load_runs(path)
    if not runs:
        raise UserError(f"{path}: no finished run (summary.json) here or under runs/*/seed*/")
    return group_runs(runs)


def pairs(a: dict[str, list[Run]], b: dict[str, list[Run]]) -> list[tuple[str, str]]:
    if len(a) == 1 and len(b) == 1:
        return [(next(iter(a)), next(iter(b)))]
    common = [(v, v) for v in a if v in b]
    if not common:
        raise UserError(f"no variant in common (A: {', '.join(a)}; B: {', '.join(b)})")
    return common


def difference(a: list[Run], b: list[Run], key: str, metric: str) -> dict:
    """B - A for one benchmark metric: paired over shared problems when records allow, else plain."""
    mean_a = fmean(r.summary["eval"][key][metric] for r in a)
    mean_b = fmean(r.summary["eval"][key][metric] for r in b)
    sa = {r.seed: r.scores(key, metric) for r in a}
    sb = {r.seed: r.scores(key, metric) for r in b}
    delta = None
    if all(sa.values()) and all(sb.values()):
        delta = paired_difference(sb, sa)
    if delta is None:
        delta = Interval(mean_b - mean_a, None, None, "difference", 0)
    return {"benchmark": key, "metric": metric, "a": mean_a, "b": mean_b, "seeds_a": [r.seed for r in a],
            "seeds_b": [r.seed for r in b], "delta": delta.as_dict()}


def config_differences(a: list[Run], b: list[Run]) -> list[str]:
    ca, cb = comparable(a[0].summary.get("config", {})), comparable(b[0].summary.get("config", {}))
    return sorted(k for k in set(ca) | set(cb) if ca.get(k) != cb.get(k))


def compare(path_a: Path, path_b: Path) -> list[dict]:
    """One entry per compared variant pair: its config differences and per-benchmark differences."""
    a, b = _side(Path(path_a)), _side(Path(path_b))
    out = []
    for va, vb in pairs(a, b):
        ma, mb = eval_metrics(a[va]), eval_metrics(b[vb])
        rows = []
        for key in (k for k in ma if k in mb):
            for metric in (m for m in ma[key] if m in mb[key]):
                ra = [r for r in a[va] if metric in r.summary.get("eval", {}).get(key, {})]
                rb = [r for r in b[vb] if metric in r.summary.get("eval", {}).get(key, {})]
                if ra and rb:
                    rows.append(difference(ra, rb, key, metric))
        out.append({"a": va, "b": vb, "config_differences": config_differences(a[va], b[vb]), "rows": rows})
    return out


def to_markdown(result: list[dict], path_a: Path, path_b: Path) -> str:
    lines = [f"A = {path_a}", f"B = {path_b}", ""]
    for entry in result:
        lines.append(f"## {entry['a']} (A) vs {entry['b']} (B)")
        diffs = entry["config_differences"]
        lines.append("config differences: " + (", ".join(diffs) if diffs else "none (besides variants and seeds)"))
        lines += ["", "| benchmark | metric | A (%) | B (%) | B - A (pts) [95% CI] | method | problems |",
                  "|---|---|---|---|---|---|---|"]
        for r in entry["rows"]:
            d = r["delta"]
            lines.append(f"| {r['benchmark']} | {r['metric']} | {100 * r['a']:.1f} | {100 * r['b']:.1f} | "
                         f"{fmt_interval(d, sign=True)} | {d['method']} | {d['n'] or '-'} |")
        lines.append("")
    return "\n".join(lines)
