"""Fairness of the comparison, checked from a real suite's results: per seed, every variant trains on
the same prompts in the same order, with the same rollouts per step and the same number of steps
and optimizer steps, and every run (the base model too) is evaluated on the same problems."""

import json

from grpo_bench.cli import main
from grpo_bench.registry import default_registry
from grpo_bench.report.runs import check_comparable, load_runs
from grpo_bench.training.trainer import prompt_order, step_problems

SUITE = """
[suite]
name = "fair"
model = "tiny-random"
seeds = [0, 1]

[train]
benchmark = "arith"
steps = 2
prompts_per_step = 2
group_size = 2
max_new_tokens = 6
mu = 2
rewards = ["math_verify"]

[eval]
benchmarks = [{ name = "arith", split = "test", limit = 3 }]
max_new_tokens = 6

[[variants]]
algorithm = "grpo"

[[variants]]
algorithm = "grpo_no_is"

[[variants]]
algorithm = "tic_grpo"
"""
STEPS, PROMPTS, GROUP, MU = 2, 2, 2, 2


def test_every_variant_gets_the_same_prompts_budget_and_eval_problems(tmp_path):
    (tmp_path / "fair.toml").write_text(SUITE)
    assert main(["run", str(tmp_path / "fair.toml"), "--results-dir", str(tmp_path / "results")]) == 0
    res = tmp_path / "results" / "fair"
    runs = load_runs(res)
    assert sorted(r.label for r in runs) == ["base/seed0", "grpo/seed0", "grpo/seed1", "grpo_no_is/seed0",
                                             "grpo_no_is/seed1", "tic_grpo/seed0", "tic_grpo/seed1"]
    check_comparable(runs, res)  # configs equal but for variant and seed (so mu, G, steps, lengths are shared)
    assert all(r.summary["config"]["train"]["mu"] == MU for r in runs)

    problems = default_registry().get("benchmarks", "arith").problems("train")
    trained = [r for r in runs if r.variant != "base"]
    order_by_seed = {}
    for seed in (0, 1):
        expected = [[p.id for p in step_problems(problems, prompt_order(len(problems), seed), t, PROMPTS)]
                    for t in range(STEPS)]
        order_by_seed[seed] = expected
        for run in (r for r in trained if r.seed == seed):
            rows = run.metrics()
            assert [row["step"] for row in rows] == list(range(STEPS)), run.label
            assert [row["samples"] for row in rows] == [PROMPTS * GROUP] * STEPS, run.label
            logged = [row.get("problem_ids") for row in rows]
            if all(ids is not None for ids in logged):  # the trainer logs each step's problem ids
                assert logged == expected, run.label
    assert order_by_seed[0] != order_by_seed[1]  # the order depends on the seed, not on the variant

    for bench in ("arith-test",):
        ids = {r.label: [rec["id"] for rec in r.records(bench)] for r in runs}
        assert len(set(map(tuple, ids.values()))) == 1 and len(next(iter(ids.values()))) == 3, ids
        summaries = {r.label: json.loads((r.path / "eval" / f"{bench}.json").read_text())["n"] for r in runs}
        assert set(summaries.values()) == {3}


def test_runs_recorded_before_a_key_existed_compare_at_its_legacy_value(tmp_path):
    """A published run has no train.adamw_fused (it predates the key; it used the foreach kernel). A new
    run of the same suite, which pins adamw_fused = false, shares its table; one with true does not."""
    import pytest
    from grpo_bench.errors import UserError
    from grpo_bench.report.runs import Run

    def run(variant, seed, **train):
        cfg = {"suite": {"name": "s", "seeds": [seed]}, "train": {"mu": 2, **train}, "variants": []}
        return Run(tmp_path / variant / f"seed{seed}", {"variant": variant, "seed": seed, "config": cfg})

    old = run("grpo", 0)
    check_comparable([old, run("grpo", 1, adamw_fused=False, micro_batch_tokens=0, inert_row_stats=True)], tmp_path)
    with pytest.raises(UserError, match="train.adamw_fused"):
        check_comparable([old, run("grpo", 1, adamw_fused=True)], tmp_path)
    with pytest.raises(UserError, match="train.mu"):  # any other key still has to match
        check_comparable([old, run("grpo", 1, mu=3)], tmp_path)
