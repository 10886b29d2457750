"""results/paper-claims: what its README and the project README say, recomputed from the published runs."""

import json
import re
import statistics
import tomllib
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


ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth")


def test_the_stated_stage_is_the_published_runs():
    """Both READMEs say "N of the K-th look's M runs": N finished runs (the base model's included), K the first
    planned look not yet complete, M the runs it needs (six variants a seed while every claim is open, the base
    model once; a decided claim would stop its variants and change M: then this test changes with the plan)."""
    runs = finished()
    plan = json.loads((OUT / "sequential.json").read_text())
    needed = [n * 6 + 1 for n in plan["looks"]]
    k = next(i for i, m in enumerate(needed) if m > len(runs))
    for text in ((OUT / "README.md").read_text(), (ROOT / "README.md").read_text()):
        stated = re.search(r"(\d+) of the (\w+) look's (\d+) runs", text)
        assert stated and (int(stated[1]), stated[2], int(stated[3])) == (len(runs), ORDINALS[k], needed[k]), stated


def learning_rate(record: dict) -> float:
    """A run's learning rate, from its config.json or summary.json: its variant's override, else the suite's."""
    variant = next(v for v in record["config"]["variants"] if v["name"] == record["variant"])
    return variant["train"].get("learning_rate", record["config"]["train"]["learning_rate"])


def median_kl(run_dir: Path) -> float:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").open()]
    return statistics.median(r["kl_old_k3_seq"] for r in rows if r.get("kl_old_k3_seq"))


def test_the_arms_are_what_the_rule_picks_from_the_published_calibration():
    """Each arm: the calibrated learning rate that moves the policy most within its bound (low: median inner-step
    KL <= 0.05; high: >= 0.3), recomputed from results/paper-claims-calibration's runs."""
    runs = ROOT / "results" / "paper-claims-calibration" / "runs"
    movement = {learning_rate(json.loads((d / "config.json").read_text())): median_kl(d)
                for d in runs.glob("grpo_lr*/seed1000")}
    assert sorted(movement) == [1e-6, 2e-6, 3e-6, 1e-5]
    low = max(lr for lr, kl in movement.items() if kl <= 0.05)
    high = min(lr for lr, kl in movement.items() if kl >= 0.3)
    suite = tomllib.loads((ROOT / "benchmarks" / "paper-claims.toml").read_text())
    rates = {v["name"]: v.get("train", {}).get("learning_rate", suite["train"]["learning_rate"]) for v in suite["variants"]}
    assert (low, high) == (3e-6, 1e-5)
    assert {rates[v] for v in ("grpo_low", "grpo_no_is_low", "tic_grpo_low")} == {low}
    assert {rates[v] for v in ("grpo", "grpo_no_is", "tic_grpo")} == {high}


def test_the_superseded_low_arm_is_what_its_readme_says_and_outside_the_analysis():
    old = OUT / "superseded" / "low-arm-lr1e-6" / "runs"
    summaries = {d.name: json.loads((d / "seed0" / "summary.json").read_text()) for d in old.iterdir()}
    assert {v: learning_rate(s) for v, s in summaries.items()} == dict.fromkeys(
        ("grpo_low", "grpo_no_is_low", "tic_grpo_low"), 1e-6)
    base = pass_at_1(finished()[("base", 0)])
    assert base == 0.18 and pass_at_1(summaries["grpo_low"]) == pass_at_1(summaries["grpo_no_is_low"]) == base
    assert pass_at_1(summaries["tic_grpo_low"]) == 0.212
    assert round(median_kl(old / "grpo_low" / "seed0"), 4) == 0.0056
    board = (OUT / "leaderboard.json").read_text()
    assert "superseded" not in board and '"learning_rate": 1e-06' not in board


def test_seed0_high_arm_moved_as_designed():
    runs = finished()
    base = pass_at_1(runs[("base", 0)])
    for variant in ("grpo", "grpo_no_is", "tic_grpo"):
        assert pass_at_1(runs[(variant, 0)]) >= base + 0.06, variant
    for variant in ("grpo", "tic_grpo"):  # the high arm's divergence, as designed (median >= 0.3)
        assert column_median(variant, 0, "kl_old_k3_seq") >= 0.3, variant
    for variant in ("grpo", "tic_grpo"):  # fp32: floor far under the movement
        movement, floor = column_median(variant, 0, "kl_old_k3_seq"), column_median(variant, 0, "noise_floor_k3_seq")
        assert movement > 1e6 * floor, variant


def test_the_readme_claims_table_shows_the_paired_differences_of_the_published_runs():
    """Each claim's row lists variant - reference in points for every seed both finished, in seed order."""
    runs = finished()
    pairs = {("equivalence", "low"): ("grpo_no_is_low", "grpo_low"), ("non-inferiority", "low"): ("tic_grpo_low", "grpo_low"),
             ("non-inferiority", "high"): ("tic_grpo", "grpo"), ("difference", "high"): ("grpo_no_is", "grpo"),
             ("difference", "both"): ("grpo_low", "grpo")}
    text = (OUT / "README.md").read_text()
    rows = re.findall(r"^\| [^|]+ \| (low|high|both) \| ([a-z-]+) \| ([^|]+) \| undecided", text, re.M)
    assert len(rows) == len(pairs)
    for arm, kind, shown in rows:
        variant, reference = pairs[(kind, arm)]
        seeds = sorted(s for v, s in runs if v == variant and (reference, s) in runs)
        expected = ", ".join(f"{100 * (pass_at_1(runs[(variant, s)]) - pass_at_1(runs[(reference, s)])):+.1f}"
                             for s in seeds)
        assert shown.strip() == (expected or "-"), (kind, arm)


def test_the_readme_movement_paragraph_is_the_published_runs():
    """The ranges of median inner-step KL per run (2 significant digits), TIC-GRPO moving farther than GRPO in
    every seed of both arms, and the low arm's accuracy range, recomputed from every finished run."""
    runs = finished()
    text = " ".join((OUT / "README.md").read_text().split())
    seeds = sorted({s for v, s in runs if v == "grpo"})
    kl = {(v, s): column_median(v, s, "kl_old_k3_seq") for v, s in runs if v in ("grpo", "tic_grpo", "grpo_low",
                                                                                "tic_grpo_low")}

    def span(variant: str) -> str:
        values = [x for (v, _), x in kl.items() if v == variant]
        return f"{min(values):.2g}-{max(values):.2g}"

    assert (f"Per run, over seeds 0-{seeds[-1]}: the low arm's GRPO moved by a median {span('grpo_low')} (within "
            f"the arm's bound of about 0.05) and its TIC-GRPO by {span('tic_grpo_low')}, over it; the high arm's GRPO "
            f"by {span('grpo')} and its TIC-GRPO by {span('tic_grpo')}.") in text
    assert max(x for (v, _), x in kl.items() if v == "grpo_low") <= 0.05
    assert min(x for (v, _), x in kl.items() if v == "tic_grpo_low") > 0.05
    for tic, ref in (("tic_grpo", "grpo"), ("tic_grpo_low", "grpo_low")):
        assert all(kl[(tic, s)] > kl[(ref, s)] for v, s in kl if v == tic and (ref, s) in kl)
    low = [100 * pass_at_1(x) for (v, _), x in runs.items() if v.endswith("_low")]
    base = 100 * pass_at_1(runs[("base", 0)])
    assert f"Every low-arm run learns ({min(low):.1f}-{max(low):.1f}% against the base model's {base:.1f}%)" in text
    assert min(low) > base
