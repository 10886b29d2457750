"""The leaderboard's claims table: each pre-registered ``[[claims]]`` of the suite tested on the per-seed
paired differences of its metric (points), at the planned looks of ``sequential.json`` when the folder was
run with ``--until-decided``, else at one look with every paired seed (the fixed-sample test). See
:mod:`.sequential` for the procedure and docs/leaderboard.md, "Claims", for the definitions.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from .runs import Run
from .sequential import evaluate_claim, project, seeds_to_decide

#: the folder's sequential plan, written by ``grpo-bench run --until-decided`` at its first stage
PLAN_FILE = "sequential.json"


def read_plan(results_dir: Path) -> tuple[tuple[int, ...] | None, list[int] | None]:
    """The planned looks (seed counts) and seeds of the folder's sequential plan, or (None, None) without one."""
    path = Path(results_dir) / PLAN_FILE
    if not path.exists():
        return None, None
    plan = json.loads(path.read_text())
    return tuple(plan["looks"]), list(plan["seeds"])


def paired_points(variant: list[Run], reference: list[Run], key: str, metric: str,
                  order: list[int] | None = None) -> tuple[list[int], list[float]]:
    """Seeds both sides finished and d_s = variant - reference in points: in the plan's seed order (seeds
    outside it left out) when ``order`` is given, else ascending."""
    def per_seed(runs: list[Run]) -> dict[int, float]:
        return {r.seed: r.summary["eval"][key][metric] for r in runs
                if metric in r.summary.get("eval", {}).get(key, {})}

    x, y = per_seed(variant), per_seed(reference)
    seeds = [s for s in order if s in x and s in y] if order is not None else sorted(set(x) & set(y))
    if order is not None:  # a look counts only the plan's first n seeds, all finished
        seeds = [s for s, planned in zip(seeds, order) if s == planned]
    return seeds, [100.0 * (x[s] - y[s]) for s in seeds]


def what_would_change(claim: dict, result, looks: tuple[int, ...] | None, diffs: list[float] = ()) -> str:
    """One sentence: how the claim got decided, or what it still needs (``diffs``: the paired differences, in
    the plan's seed order)."""
    if result.look == 0 and looks:
        return f"first tested at the planned look of {looks[0]} seeds ({len(diffs)} paired so far)"
    if result.look == 0:
        return "needs at least 2 paired seeds"
    if result.verdict != "undecided" and looks:
        return f"decided at look {result.look} of {len(looks)} ({result.seeds} seeds); final under the plan"
    if result.verdict != "undecided":
        return (f"decided by the fixed-sample test at {result.seeds} seeds; retesting as seeds are added needs a "
                "plan of looks (--until-decided), else the error rate grows with each look")
    if looks:
        return _planned_outlook(claim, looks, diffs)
    need = seeds_to_decide(claim["kind"], claim["margin"], claim["alpha"], result.estimate, result.sd)
    return (f"about {need} seeds for 80% power if the true difference is {result.estimate:+.1f} and the sd "
            f"{result.sd:.1f} pts (fixed-sample, normal approximation)"
            if need else "the mean sits on a bound: more seeds narrow the interval but may not settle it")


def _planned_outlook(claim: dict, looks: tuple[int, ...], diffs: list[float]) -> str:
    """An undecided claim under a plan: the next look, and the projection of :func:`.sequential.project`
    (the chance of a decision by each later look, until it passes 95%, if the estimate and sd were true)."""
    later = [n for n in looks if n > len(diffs)]
    if not later:
        return "the plan's last look is reached"
    outlook = project(claim["kind"], claim["margin"], claim["alpha"], diffs, looks)
    chances, shown = [], 0
    for n, p in outlook["by_look"]:
        chances.append(f"{n} seeds {100 * p:.0f}%")
        shown += 1
        if p >= 0.95 or shown == 3:
            break
    likely = max(outlook["shares"], key=outlook["shares"].get)
    return (f"next planned look at {later[0]} seeds; if the mean {outlook['mean']:+.1f} and sd {outlook['sd']:.1f} pts "
            f"of these seeds were the truth, decided by {', by '.join(chances)} (most often \"{likely}\"; simulated on from "
            f"the {len(diffs)} paired seeds; an optimistic guide, not a promise)")


def claim_rows(claims: list[dict], groups: dict[str, list[Run]], results_dir: Path) -> list[dict]:
    """One dict per claim: the claim, its estimate, interval, verdict, seeds used and what would change it."""
    looks, order = read_plan(results_dir)
    out = []
    for claim in claims:
        seeds, diffs = paired_points(groups.get(claim["variant"], []), groups.get(claim["reference"], []),
                                     claim["target"], claim["metric"], order)
        plan = looks or ((len(diffs),) if len(diffs) >= 2 else (2,))
        result = evaluate_claim(claim["kind"], claim["margin"], claim["alpha"], diffs, plan)
        out.append({"claim": claim, "result": result.as_dict(), "seeds": seeds[:result.seeds],
                    "looks": list(looks) if looks else None,
                    "what_would_change": what_would_change(claim, result, looks, diffs)})
    return out


def describe_claim(c: dict) -> str:
    bound = {"equivalence": f"within ±{c['margin']:g} pts of", "non_inferiority": f"not worse by {c['margin']:g} pts than",
             "difference": "different from"}[c["kind"]]
    return f"{c['name']}: `{c['variant']}` {bound} `{c['reference']}` ({c['target']} {c['metric']}, alpha {c['alpha']:g})"


def claims_table(board: dict) -> tuple[list[str], list[list[str]]]:
    header = ["claim", "estimate (pts)", "interval (pts)", "verdict", "seeds used", "what would change it"]
    rows = []
    for row in board.get("claims", []):
        r = row["result"]
        interval = "-" if r["lo"] is None else f"[{r['lo']:+.1f}, {r['hi']:+.1f}] ({100 * r['level']:g}%)"
        estimate = "-" if r["estimate"] is None else f"{r['estimate']:+.1f}"
        rows.append([describe_claim(row["claim"]), estimate, interval, r["verdict"],
                     str(r["seeds"]), row["what_would_change"]])
    return header, rows


CLAIMS_NOTE = ("Claims: pre-registered in the suite; d = variant - reference per seed, in points. Interval: the "
               "repeated confidence interval at the deciding (else the last) planned look, group-sequential "
               "O'Brien-Fleming-type boundaries (docs/leaderboard.md, \"Claims\"); without a sequential plan, the "
               "fixed-sample t-interval (90% for equivalence and non-inferiority, 95% for a difference).")


def claims_markdown(board: dict) -> list[str]:
    """The claims table and its note as Markdown lines (nothing without claims)."""
    if not board.get("claims"):
        return []
    header, rows = claims_table(board)
    return ["## Claims", "", "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|",
            *("| " + " | ".join(r) + " |" for r in rows), "", CLAIMS_NOTE, ""]


def claims_html(board: dict) -> str:
    """The claims table as an HTML fragment (empty without claims)."""
    if not board.get("claims"):
        return ""
    header, rows = claims_table(board)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>\n" for r in rows)
    return (f'<h2>Claims</h2>\n<div class="scroll"><table class="claims"><thead><tr>{head}</tr></thead><tbody>\n'
            f"{body}</tbody></table></div>\n<p>{html.escape(CLAIMS_NOTE)}</p>\n")
