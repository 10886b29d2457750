"""The board rendered as text: formatted cells, Markdown, CSV, legend and provenance lines."""

from __future__ import annotations

import csv
import io
import json
import re

from .claims import claims_markdown
from .movement import movement_lines


def fmt_interval(iv: dict | None, scale: float = 100.0, digits: int = 1, sign: bool = False) -> str:
    if not iv:
        return "-"
    f = f"{{:{'+' if sign else ''}.{digits}f}}"
    text = f.format(iv["value"] * scale)
    if iv["lo"] is not None:
        text += f" [{f.format(iv['lo'] * scale)}, {f.format(iv['hi'] * scale)}]"
    return text + ("†" if iv["method"] == "bootstrap" else "")


def fmt_verdict(v: dict | None) -> str:
    """``equivalent [-1.2, +2.0] (4.1)``: the TOST/difference verdict, the 90% t-interval of the mean
    per-seed difference and the minimum detectable difference, in points."""
    if not v:
        return "-"
    text = v["verdict"]
    if v.get("tost_interval"):
        lo, hi = v["tost_interval"]
        text += f" [{lo * 100:+.1f}, {hi * 100:+.1f}]"
    return text + (f" ({v['mde'] * 100:.1f})" if v.get("mde") is not None else "")


def fmt_steps(s: dict) -> str:
    if not s["reached"]:
        return "not reached"
    text = f"{s['mean']:.1f}"
    return text if s["reached"] == s["runs"] else f"{text} ({s['reached']}/{s['runs']})"


def fmt_failures(per_seed: dict) -> str:
    """Worst error and timeout rate over the variant's runs and rewards; ⚠ marks any not 0."""
    rows = [f for fs in per_seed.values() for f in fs]
    if not rows:
        return "-"
    err, tout = max(f["error_rate"] for f in rows), max(f["timeout_rate"] for f in rows)
    text = f"{100 * err:.1f} / {100 * tout:.1f}"
    return f"⚠ {text}" if err or tout else text


def failure_lines(board: dict) -> list[str]:
    """One line per (run, reward) whose error or timeout count is not 0."""
    out = []
    for row in board["rows"]:
        for seed, fs in row.get("reward_failures", {}).items():
            for f in fs:
                if f["error"] or f["timeout"]:
                    out.append(f"⚠ {row['variant']} seed {seed}, {f['where']}, reward `{f['reward']}`: "
                               f"{f['error']} errors ({100 * f['error_rate']:.1f}%), {f['timeout']} timeouts "
                               f"({100 * f['timeout_rate']:.1f}%) of {f['n']} samples.")
    return out


def table(board: dict) -> tuple[list[str], list[list[str]]]:
    """Header and formatted cells (shared by Markdown and HTML)."""
    ref = board["reference"]
    header = ["variant", "algorithm", "seeds"]
    for key, ms in board["metrics"].items():
        for m in ms:
            header.append(f"{key} {m} (%)")
            if ref and m == "pass@1":
                header.append(f"{key} Δ{m} vs {ref} (pts)")
                header.append(f"{key} vs {ref}: verdict at ±{board.get('margin', 0.03) * 100:g} pts (MDE₈₀)")
    header += [f"{key} eval AUC (%)" for key in board.get("curve_keys", [])]
    header += ["train reward AUC", f"steps to train acc ≥ {board['target']:g}", "samples/run",
               "gen. tokens/run", "train wall s/run", "train resp. length", "reward error / timeout (%)"]
    rows = []
    for row in board["rows"]:
        cells = [row["variant"], row["algorithm"], ",".join(map(str, row["seeds"]))]
        for key, ms in board["metrics"].items():
            for m in ms:
                cell = row["eval"][key][m]
                cells.append(fmt_interval(cell["mean"]) if cell else "-")
                if ref and m == "pass@1":
                    cells.append("ref" if row["variant"] == ref else fmt_interval(cell and cell["delta"], sign=True))
                    cells.append("ref" if row["variant"] == ref else fmt_verdict(cell and cell.get("verdict")))
        cells += [fmt_interval(row.get("eval_auc", {}).get(key)) for key in board.get("curve_keys", [])]
        t = row["train"]
        if t:
            cells += [fmt_interval(t["reward_auc"], 1.0, 3), fmt_steps(t["steps_to_target"]), f"{t['samples']:.0f}",
                      f"{t['generated_tokens']:.0f}", f"{t['train_wall_s']:.0f}", f"{t['response_length_mean']:.1f}"]
        else:
            cells += ["-"] * 6
        cells.append(fmt_failures(row.get("reward_failures", {})))
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
        m = board.get("margin", 0.03) * 100
        out.append(f"Verdict vs `{ref}` (pass@1, from the per-seed paired differences, >= 2 seeds): `equivalent` "
                   f"when the 90% t-interval of the mean difference lies inside ±{m:g} points (two one-sided tests "
                   "at 5%); else `different` when the 95% t-interval excludes 0; else `undecided`. In square brackets: "
                   "that 90% t-interval (points); each end is one of the two one-sided tests at 5%, so a lower end "
                   f"above -{m:g} reads as 'not worse than `{ref}` by more than {m:g} points' (non-inferiority) and "
                   f"an upper end below +{m:g} as 'not better by more than {m:g}'. In parentheses: "
                   "the minimum detectable difference (points) of a two-sided paired t-test at 5% with 80% power, "
                   "from the observed seed-to-seed spread of the differences.")
        control = board.get("positive_control")
        if control:
            found = [r for r in board["rows"] if r["variant"] == control]
            words = {v["verdict"] for c in (found[0]["eval"].values() if found else [])
                     for cell in c.values() if cell and (v := cell.get("verdict"))}
            if "different" in words:
                out.append(f"Positive control `{control}` is separated from `{ref}`: the design can detect a "
                           "difference of that size.")
            else:
                out.append(f"**Positive control `{control}` is NOT separated from `{ref}`: this design cannot tell "
                           "that difference apart, so it cannot tell the other variants apart either.**")
    out.append(f"Train reward AUC: mean of the per-step mean reward (area under the reward curve / steps), "
               f"95% t interval over seeds. Steps to target: first step count where the {board['window']}-step "
               "trailing mean of train accuracy reaches the target (mean over seeds that reached it; "
               "(r/n) when only r of n did). Compute columns are per run (mean over seeds).")
    out.append("Reward error / timeout: the highest share of scored samples on which a reward raised, returned a "
               "non-number or timed out, over the variant's runs and rewards (training steps and greedy evals); "
               "⚠ marks any that is not 0 and each such run and reward is listed below the table.")
    if board.get("curve_keys"):
        out.append("Eval AUC: area under the pass@1 curve of the evaluations during training (`[eval] every`, "
                   "on the first `every_limit` problems of each target), trapezoids over steps divided by the "
                   "step span, in %; mean over seeds with a 95% t interval.")
    return out + failure_lines(board)


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
    lines = [f"# Leaderboard: {board['provenance']['suite']}", "", *claims_markdown(board),
             "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += ["", *movement_lines(board.get("movement") or [])]
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
            header += [f"{key} {m} verdict", f"{key} {m} verdict lo90", f"{key} {m} verdict hi90", f"{key} {m} mde"]
    header += [f"{key} eval_auc{s}" for key in board.get("curve_keys", []) for s in ("", " lo", " hi")]
    train_keys = ["steps", "samples", "generated_tokens", "train_wall_s", "response_length_mean"]
    header += ["reward_auc", "reward_auc lo", "reward_auc hi", "steps_to_target", "target_reached_runs", *train_keys,
               "reward_error_rate_max", "reward_timeout_rate_max"]

    def iv(d):
        return [d["value"], d["lo"], d["hi"], d["method"]] if d else ["", "", "", ""]

    for row in board["rows"]:
        cells = [row["variant"], row["algorithm"], ";".join(map(str, row["seeds"]))]
        for key, ms in board["metrics"].items():
            for m in ms:
                cell = row["eval"][key][m]
                cells += iv(cell and cell["mean"]) + iv(cell and cell["delta"])
                v = cell and cell.get("verdict")
                cells += [v["verdict"], *v["tost_interval"], v["mde"]] if v else ["", "", "", ""]
        cells += [c for key in board.get("curve_keys", []) for c in iv(row.get("eval_auc", {}).get(key))[:3]]
        t = row["train"]
        if t:
            cells += iv(t["reward_auc"])[:3] + [t["steps_to_target"]["mean"], t["steps_to_target"]["reached"]]
            cells += [t[k] for k in train_keys]
        else:
            cells += [""] * (5 + len(train_keys))
        fails = [f for fs in row.get("reward_failures", {}).values() for f in fs]
        cells += [max((f["error_rate"] for f in fails), default=""), max((f["timeout_rate"] for f in fails), default="")]
        rows.append(["" if c is None else c for c in cells])
    buf = io.StringIO()
    csv.writer(buf).writerows([header, *rows])
    return buf.getvalue()


#: Columns of :func:`table` a reader decides from: the variant, each benchmark's pass@1 (with its
#: interval), its difference to the reference and the verdict, the train reward AUC and the reward
#: failures. The console's table and the HTML page's first table show these; the rest is in the files.
def decision_columns(header: list[str]) -> list[int]:
    keep = [0]
    for i, name in enumerate(header):
        if (name.endswith(" pass@1 (%)") or " Δpass@1 vs " in name or ": verdict at " in name
                or name in ("train reward AUC", "reward error / timeout (%)")):
            keep.append(i)
    return keep


def decision_table(board: dict) -> tuple[list[str], list[list[str]]]:
    """:func:`table` cut to :func:`decision_columns`."""
    header, rows = table(board)
    keep = decision_columns(header)
    return [header[i] for i in keep], [[r[i] for i in keep] for r in rows]


def console_lines(board: dict) -> list[str]:
    """The decision table as aligned plain text (one line per variant), then one line per reward failure."""
    header, rows = decision_table(board)
    short = [re.sub(r"^\S+ Δpass@1 (vs \S+) \(pts\)$", r"Δ \1", re.sub(r"^\S+ vs \S+: verdict at (±\S+) pts.*", r"verdict \1", h))
             .replace(" (%)", " %") for h in header]
    widths = [max(len(c) for c in col) for col in zip(short, *rows)]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
             for r in [short, *rows]]
    legend = "pass@1 in % and Δ in points, with 95% intervals"
    if board.get("reference"):
        legend += (f"; verdict against {board['reference']} from the per-seed paired differences [90% interval] "
                   "(minimum detectable difference)")
    legend += "; definitions: docs/leaderboard.md"
    return [*lines, legend, *failure_lines(board)]
