"""``--until-decided``: planned stages of seeds, stopping when every claim is decided; plan kept and checked."""

import json

import pytest
from grpo_bench.cli import main
from grpo_bench.config import load_suite
from grpo_bench.errors import UserError
from grpo_bench.execute.stages import parse_budget, plan_looks, run_until_decided
from grpo_bench.registry import default_registry
from grpo_bench.report import write_leaderboard

SUITE = '''
[suite]
model = "tiny-random"
engine = "hf"
seeds = [0, 1, 2, 3, 4]
[train]
benchmark = "arith"
benchmark_version = 2
steps = 1
[eval]
benchmarks = [{ name = "arith", limit = 20 }]
[[variants]]
algorithm = "grpo"
[[variants]]
algorithm = "grpo_no_is"
[[variants]]
name = "grpo_lr_tenth"
algorithm = "grpo"
train = { learning_rate = 1e-7 }
[[claims]]
variant = "grpo_lr_tenth"
reference = "grpo"
kind = "difference"
[[claims]]
variant = "grpo_no_is"
reference = "grpo"
kind = "equivalence"
margin = 3
'''


ACCURACY = {"grpo": 0.5, "grpo_no_is": 0.5, "grpo_lr_tenth": 0.2}


def fake_stage(out, counter):
    """Stands in for the runs of a stage: grpo solves 10 of 20 problems on every seed, grpo_no_is 10 +- 0.2
    problems' worth (d = +-1 point, alternating), so sd(d) is about 1 point; the control is 30 points worse."""
    def run_stage(staged, variants):
        counter.append((list(staged.suite.seeds), variants))
        config = staged.resolved()
        (out).mkdir(parents=True, exist_ok=True)
        (out / "suite.json").write_text(json.dumps({"config": config, "config_hash": "h", "provenance": {}}))
        for variant in variants:
            for seed in staged.suite.seeds:
                run = out / "runs" / variant / f"seed{seed}"
                if (run / "summary.json").exists():
                    continue
                acc = ACCURACY[variant] + (0.0 if variant == "grpo" else 0.01 * (-1) ** seed)
                run.mkdir(parents=True)
                summary = {"suite": "s", "config": config, "variant": variant, "seed": seed, "run_wall_s": 60.0,
                           "algorithm": {"algorithm": variant, "options": {}}, "provenance": {},
                           "eval": {"arith-test": {"n": 20, "pass@1": acc, "response_length_mean": 5.0}}}
                (run / "summary.json").write_text(json.dumps(summary))
        write_leaderboard(out)
    return run_stage


def load(tmp_path, text=SUITE):
    path = tmp_path / "s.toml"
    path.write_text(text)
    return load_suite(path, default_registry())


def test_stages_stop_when_every_claim_is_decided_and_resume_with_the_same_plan(tmp_path):
    suite = load(tmp_path)
    out, stages = tmp_path / "r" / "s", []
    reports, why = run_until_decided(suite, default_registry(), tmp_path / "r", fake_stage(out, stages), max_seeds=20)
    # look 1 (5 seeds): boundary t = 13.4, the interval is about +-6.6 points; look 2 (10 seeds): about +-1.1
    # the control's difference (-30 +- 1 points) is decided at look 1: it gets no more seeds
    assert [r.verdicts for r in reports] == [
        {"grpo_lr_tenth difference grpo": "worse", "grpo_no_is equivalence grpo": "undecided"},
        {"grpo_lr_tenth difference grpo": "worse", "grpo_no_is equivalence grpo": "equivalent"}]
    assert stages == [([0, 1, 2, 3, 4], ["grpo", "grpo_no_is", "grpo_lr_tenth"]),
                      (list(range(10)), ["grpo", "grpo_no_is"])]
    assert why.startswith("every claim decided by look 2")
    plan = json.loads((out / "sequential.json").read_text())
    assert plan["looks"] == [5, 10, 15, 20] and plan["seeds"] == list(range(20))
    board = json.loads((out / "leaderboard.json").read_text())
    assert [c["result"]["seeds"] for c in board["claims"]] == [5, 10] and board["claims"][1]["looks"] == [5, 10, 15, 20]
    again = []  # a second call with the same plan resumes: the decided claim stops it after the reused stages
    reports, _ = run_until_decided(suite, default_registry(), tmp_path / "r", fake_stage(out, again), max_seeds=20)
    assert reports[-1].seeds == 10
    with pytest.raises(UserError, match="sequential.json plans looks"):
        run_until_decided(suite, default_registry(), tmp_path / "r", fake_stage(out, []), max_seeds=40)


def test_budget_stops_before_a_stage_that_would_not_fit(tmp_path):
    suite = load(tmp_path)
    out = tmp_path / "r" / "s"
    # each finished trained run took 60 s: the second stage (5 seeds x 2 open variants) needs 600 s > 300 s
    reports, why = run_until_decided(suite, default_registry(), tmp_path / "r", fake_stage(out, []), max_seeds=20,
                                     budget_s=300)
    assert len(reports) == 1 and why.startswith("budget:")


def test_plan_and_options_are_checked(tmp_path):
    suite = load(tmp_path)
    assert plan_looks(suite, None, None)["looks"] == [5, 10, 15, 20]
    assert plan_looks(suite, 12, 4)["looks"] == [5, 9, 12]
    assert parse_budget("6h") == 21600 and parse_budget("2h30m") == 9000 and parse_budget("90") == 90
    with pytest.raises(UserError, match="--budget"):
        parse_budget("soon")
    with pytest.raises(UserError, match="needs at least one"):
        plan_looks(load(tmp_path, SUITE.split("[[claims]]")[0]), None, None)


def test_dry_run_prints_the_planned_looks(tmp_path, capsys):
    path = tmp_path / "s.toml"
    path.write_text(SUITE)
    assert main(["run", str(path), "--results-dir", str(tmp_path / "r"), "--dry-run", "--until-decided",
                 "--max-seeds", "15"]) == 0
    assert "until decided: looks at [5, 10, 15] seeds" in capsys.readouterr().out
    assert not (tmp_path / "r").exists()


def test_claims_count_only_the_plans_seeds_in_its_order():
    """A look is the plan's first n seeds, all finished: a seed outside the plan is left out, and a missing seed
    ends the usable prefix (seed 2 missing: only 0 and 1 count)."""
    from grpo_bench.report.claims import paired_points
    from grpo_bench.report.runs import Run

    def runs(accs):
        return [Run(None, {"seed": s, "eval": {"k": {"pass@1": a}}}) for s, a in accs.items()]

    x = runs({0: 0.5, 1: 0.6, 3: 0.7, 100: 0.9})
    y = runs({0: 0.4, 1: 0.4, 2: 0.4, 3: 0.4, 100: 0.4})
    assert paired_points(x, y, "k", "pass@1", order=[0, 1, 2, 3]) == ([0, 1], [pytest.approx(10.0), pytest.approx(20.0)])
    assert paired_points(x, y, "k", "pass@1")[0] == [0, 1, 3, 100]
