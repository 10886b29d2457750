"""Decision statistics of the leaderboard (issue: a comparison designed to decide), against hand-worked values.

t quantiles used below (tables): t_{0.975,2} = 4.302653, t_{0.95,2} = 2.919986, t_{0.8,2} = 1.060660.
"""

import math

import pytest
from grpo_bench.report.stats import min_detectable_difference, seed_difference, verdict

X = {0: 0.5, 1: 0.6, 2: 0.7}
Y = {0: 0.4, 1: 0.5, 2: 0.5}  # d = [0.1, 0.1, 0.2]: mean 0.13333, sd = sqrt(1/300) = 0.0577350


def test_seed_difference_is_a_t_interval_over_per_seed_differences():
    iv = seed_difference(X, Y)
    half = 4.302653 * math.sqrt(1 / 300) / math.sqrt(3)
    assert iv.value == pytest.approx(0.4 / 3)
    assert (iv.lo, iv.hi) == (pytest.approx(0.4 / 3 - half, abs=1e-5), pytest.approx(0.4 / 3 + half, abs=1e-5))
    assert iv.method == "seed-t" and iv.n == 3


def test_min_detectable_difference_by_hand():
    # (4.302653 + 1.060660) * 0.0577350 / sqrt(3) = 0.178777
    assert min_detectable_difference(math.sqrt(1 / 300), 3) == pytest.approx(0.178777, abs=1e-5)
    assert min_detectable_difference(0.1, 1) is None


def test_verdicts():
    # 90% interval [0.0360, 0.2307] is not inside +-0.03; 95% interval [-0.0101, 0.2768] contains 0
    v = verdict(X, Y, margin=0.03)
    assert v["verdict"] == "undecided"
    assert v["tost_interval"] == [pytest.approx(0.036000, abs=1e-5), pytest.approx(0.230667, abs=1e-5)]
    assert v["mde"] == pytest.approx(0.178777, abs=1e-5)
    from grpo_bench.report.render import fmt_verdict

    assert fmt_verdict(v) == "undecided [+3.6, +23.1] (17.9)"
    # the same data with a margin of 0.3 points to equivalence (0.2307 < 0.3)
    assert verdict(X, Y, margin=0.3)["verdict"] == "equivalent"
    # d = [0.10, 0.11, 0.12]: 95% interval 0.11 +- 0.024842 excludes 0, the 90% one is not inside +-0.03
    assert verdict({0: 0.6, 1: 0.61, 2: 0.62}, {0: 0.5, 1: 0.5, 2: 0.5}, margin=0.03)["verdict"] == "different"
    # one seed: no verdict
    assert verdict({0: 0.5}, {0: 0.4}, margin=0.03) is None


def test_a_one_seed_reference_is_paired_with_every_seed():
    iv = seed_difference(X, {0: 0.5})  # the base model: one evaluation, paired with each seed
    assert iv.value == pytest.approx(0.1) and iv.n == 3


def test_leaderboard_shows_verdicts_and_judges_the_positive_control(tmp_path):
    import copy
    import json

    from grpo_bench.report import write_leaderboard
    from test_leaderboard import CONFIG, fake_suite

    # tic_grpo solves exactly 4 more of 40 problems in every seed: d_s = 0.1, no spread -> "different"
    root = fake_suite(tmp_path / "a")
    config = copy.deepcopy(CONFIG)
    config["suite"].update(positive_control="tic_grpo", equivalence_margin=0.05)
    (root / "suite.json").write_text(json.dumps({"config": config, "config_hash": "h"}))
    md = write_leaderboard(root)
    assert "verdict at ±5 pts" in md
    row = next(line for line in md.splitlines() if line.startswith("| tic_grpo "))
    assert "different [+10.0, +10.0] (0.0)" in row
    assert "Positive control `tic_grpo` is separated from `grpo`" in md
    board = json.loads((root / "leaderboard.json").read_text())
    cell = next(r for r in board["rows"] if r["variant"] == "tic_grpo")["eval"]["arith-test"]["pass@1"]
    assert cell["verdict"]["verdict"] == "different" and cell["verdict"]["mean"] == pytest.approx(0.1)

    # a control that the design cannot separate is called out
    config["suite"]["positive_control"] = "base"
    (root / "suite.json").write_text(json.dumps({"config": config, "config_hash": "h"}))
    md = write_leaderboard(root)
    # (base has one seed, so it has no verdict, and a control without a verdict is not separated)
    assert "**Positive control `base` is NOT separated from `grpo`" in md
