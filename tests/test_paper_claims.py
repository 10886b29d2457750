"""results/paper-claims: what its README and the project README say, recomputed from the published runs."""

import json
import re
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "results" / "paper-claims"


def finished() -> dict[tuple[str, int], dict]:
    """(variant, seed) -> summary of every finished run."""
    runs = {}
    for path in OUT.glob("runs/*/seed*/summary.json"):
        summary = json.loads(path.read_text())
        if summary.get("status") == "finished":
            runs[(path.parent.parent.name, int(path.parent.name.removeprefix("seed")))] = summary
    return runs


def pass_at_1(summary: dict) -> float:
    return summary["eval"]["arith-test"]["pass@1"]


def column_median(variant: str, seed: int, key: str) -> float:
    rows = [json.loads(line) for line in (OUT / "runs" / variant / f"seed{seed}" / "metrics.jsonl").open()]
    return statistics.median(r[key] for r in rows if r.get(key))


def test_the_stated_stage_is_the_published_runs():
    runs = finished()
    plan = json.loads((OUT / "sequential.json").read_text())
    first_look = plan["looks"][0] * 6 + 1  # six variants per seed, and the base model once
    for text in ((OUT / "README.md").read_text(), (ROOT / "README.md").read_text()):
        stated = re.search(r"(\d+) of (?:the first look's )?(\d+) runs", text)
        assert stated and (int(stated[1]), int(stated[2])) == (len(runs), first_look), stated


def test_seed0_low_arm_grpo_and_no_is_scored_as_the_base_model_and_the_high_arm_moved():
    runs = finished()
    base = pass_at_1(runs[("base", 0)])
    assert base == 0.18
    for variant in ("grpo_low", "grpo_no_is_low"):
        assert pass_at_1(runs[(variant, 0)]) == base, variant
    assert pass_at_1(runs[("tic_grpo_low", 0)]) == 0.212
    for variant in ("grpo", "grpo_no_is", "tic_grpo"):
        assert pass_at_1(runs[(variant, 0)]) >= base + 0.06, variant
    for variant in ("grpo", "tic_grpo"):  # the high arm's divergence, as designed (median >= 0.3)
        assert column_median(variant, 0, "kl_old_k3_seq") >= 0.3, variant
    for variant in ("grpo", "tic_grpo", "grpo_low", "tic_grpo_low"):  # fp32: floor far under the movement
        movement, floor = column_median(variant, 0, "kl_old_k3_seq"), column_median(variant, 0, "noise_floor_k3_seq")
        assert movement > 1e6 * floor, variant
