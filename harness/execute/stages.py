"""``grpo-bench run S.toml --until-decided``: seeds added in planned stages until every claim is decided.

The plan is fixed before the first stage and written to ``RESULTS/SUITE/sequential.json``: the looks
(seed counts n_1 < ... < n_K: the suite's seeds, then ``stage`` more at a time up to ``max_seeds``) and the
seeds in order (the suite's, ascending, then the next integers above the largest). Each stage runs the
suite with the first n_k seeds like any run (finished runs are reused, so an interrupted call resumes);
after the first look only the variants of a still undecided claim (as variant or reference) get more seeds.
After each stage the leaderboard is rebuilt, its claims table applying the group-sequential boundaries of
:mod:`grpo_bench.report.sequential` at these looks, and the loop stops when every claim is decided, when the plan's
last look is done, or when the next stage would not fit the time budget. A later call with the same plan
goes on from the last finished stage; a different plan in the same folder is refused (the error rates hold
only for the looks planned at the start).
"""

from __future__ import annotations

import dataclasses
import json
import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from ..config.schema import Suite
from ..errors import UserError
from ..io import atomic_write_json
from ..registry import Registry
from ..report.claims import PLAN_FILE

SPENDING = "Lan-DeMets O'Brien-Fleming-type alpha spending, repeated confidence intervals on per-seed paired t"


def parse_budget(text: str) -> float:
    """``"6h"``, ``"90m"``, ``"2h30m"``, ``"3600s"`` or plain seconds -> seconds (> 0)."""
    parts = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*", text or "")
    if not parts or not any(parts.groups()):
        raise UserError(f"--budget {text!r}: expected a duration such as 6h, 90m, 2h30m or 3600s")
    h, m, s = (float(g) if g else 0.0 for g in parts.groups())
    seconds = 3600 * h + 60 * m + s
    if seconds <= 0:
        raise UserError(f"--budget {text!r}: must be more than 0")
    return seconds


def plan_looks(suite: Suite, max_seeds: int | None, stage: int | None) -> dict:
    """The looks and the seeds in order (see the module docstring)."""
    if not suite.claims:
        raise UserError(f"{suite.path}: --until-decided needs at least one [[claims]] entry (what to decide)")
    first = sorted(suite.suite.seeds)
    stage = stage or len(first)
    max_seeds = max_seeds or 4 * len(first)
    if len(first) < 2:
        raise UserError(f"--until-decided: the first look needs at least 2 seeds (suite.seeds has {len(first)})")
    if stage < 1 or max_seeds < len(first):
        raise UserError(f"--until-decided: --stage must be >= 1 and --max-seeds >= the suite's {len(first)} seeds "
                        f"(got --stage {stage}, --max-seeds {max_seeds})")
    looks = list(range(len(first), max_seeds + 1, stage))
    if looks[-1] != max_seeds:
        looks.append(max_seeds)
    seeds = first + list(range(first[-1] + 1, first[-1] + 1 + max_seeds - len(first)))
    return {"looks": looks, "seeds": seeds, "stage": stage, "max_seeds": max_seeds, "procedure": SPENDING,
            "claims": [dataclasses.asdict(c) for c in suite.claims]}


def check_plan(out: Path, plan: dict) -> None:
    """Write the plan, or check that the folder's plan is this one."""
    path = out / PLAN_FILE
    if path.exists():
        old = json.loads(path.read_text())
        keys = ("looks", "seeds", "claims")
        if any(json.loads(json.dumps(old.get(k))) != json.loads(json.dumps(plan[k])) for k in keys):
            raise UserError(f"{path} plans looks {old.get('looks')} on seeds {old.get('seeds')} with its claims; this "
                            f"call plans looks {plan['looks']}: rerun with the same --max-seeds/--stage and claims, "
                            "or use another --results-dir (error rates hold only for the looks planned at the start)")
        return
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, plan)


@dataclass
class StageReport:
    look: int
    seeds: int
    verdicts: dict[str, str]  # claim name -> verdict

    def line(self) -> str:
        return f"look {self.look} ({self.seeds} seeds): " + "; ".join(f"{k}: {v}" for k, v in self.verdicts.items())


def _report(out: Path) -> StageReport:
    """The claims as the leaderboard decided them: each at its deciding (else its last reached) look; a
    resumed call sees every look already finished in the folder."""
    claims = json.loads((out / "leaderboard.json").read_text()).get("claims", [])
    return StageReport(max(c["result"]["look"] for c in claims), max(c["result"]["seeds"] for c in claims),
                       {c["claim"]["name"]: c["result"]["verdict"] for c in claims})


def _stage_estimate(out: Path, runs_per_seed: int, new_seeds: int) -> float | None:
    """Seconds the next stage's runs take one after another: median run_wall_s of the finished trained runs."""
    walls = [json.loads(p.read_text()).get("run_wall_s") for p in out.glob("runs/*/seed*/summary.json")
             if p.parent.parent.name != "base"]
    walls = [w for w in walls if isinstance(w, (int, float))]
    return statistics.median(walls) * runs_per_seed * new_seeds if walls else None


def open_variants(suite: Suite, report: StageReport | None) -> list[str]:
    """The variants the next stage trains: every one at the first look, then those of an undecided claim
    (as variant or reference), in suite order. A decided claim needs no more seeds of its variants."""
    if report is None:
        return [v.name for v in suite.variants]
    open_claims = [c for c in suite.claims if report.verdicts.get(c.name, "undecided") == "undecided"]
    names = {c.variant for c in open_claims} | {c.reference for c in open_claims}
    return [v.name for v in suite.variants if v.name in names]


def run_until_decided(suite: Suite, registry: Registry, results_root: Path, run_stage, max_seeds: int | None = None,
                      stage: int | None = None, budget_s: float | None = None, on_stage=None) -> tuple[list[StageReport], str]:
    """Run the stages; ``run_stage(suite, variants)`` runs those variants of one suite like ``grpo-bench run
    --variant ...`` (and writes its leaderboard). Returns the stage reports and why it stopped."""
    plan = plan_looks(suite, max_seeds, stage)
    out = Path(results_root) / suite.suite.name
    check_plan(out, plan)
    start, reports = time.monotonic(), []
    for k, n in enumerate(plan["looks"]):
        variants = open_variants(suite, reports[-1] if reports else None)
        if k and budget_s is not None:
            spent = time.monotonic() - start
            need = _stage_estimate(out, len(variants), n - plan["looks"][k - 1]) or 0.0
            if spent + need > budget_s:
                return reports, (f"budget: {spent / 3600:.2f} h spent of {budget_s / 3600:.2f} h and the next stage "
                                 f"needs about {need / 3600:.2f} h; rerun to go on")
        staged = dataclasses.replace(suite, suite=dataclasses.replace(suite.suite, seeds=plan["seeds"][:n]))
        run_stage(staged, variants)
        reports.append(_report(out))
        if on_stage:
            on_stage(reports[-1])
        if all(v != "undecided" for v in reports[-1].verdicts.values()):
            return reports, f"every claim decided by look {reports[-1].look} ({reports[-1].seeds} seeds)"
    return reports, f"the plan's last look ({plan['looks'][-1]} seeds) is done; undecided claims stay undecided"
