"""The leaderboard on synthetic results with known answers: numbers, formats, plots, refusal, compare."""

import copy
import json
import math
import random
import re
from pathlib import Path

import pytest
from grpo_bench.cli import main
from grpo_bench.errors import UserError
from grpo_bench.report import write_leaderboard
from grpo_bench.report.claims import what_would_change
from grpo_bench.report.sequential import evaluate_claim
from grpo_bench.report.board import steps_to_target
from grpo_bench.report.compare import compare
from grpo_bench.report.runs import flatten, load_runs
from grpo_bench.report.stats import t_quantile

CONFIG = {
    "suite": {"name": "fake", "model": "tiny-random", "seeds": [0, 1, 2], "dtype": "float32"},
    "train": {"benchmark": "arith", "steps": 12, "mu": 2, "learning_rate": 1e-3, "prompts_per_step": 2,
              "group_size": 4},
    "eval": {"benchmarks": [{"name": "arith", "split": "test", "limit": 40}], "samples": 4},
    "variants": [{"name": "grpo", "algorithm": "grpo", "options": {"eps_low": 0.2}},
                 {"name": "tic_grpo", "algorithm": "tic_grpo", "options": {"eps_high": 0.2}}],
}
PROV = {"git_commit": "0123456789abcdef", "git_dirty": False, "versions": {"torch": "2.x"},
        "hardware": {"cpu": "test cpu", "cores": 2}, "command": "grpo-bench run fake.toml"}
KEY = "arith-test"


def write_run(root: Path, variant: str, seed: int, correct: list[bool], metrics: list[dict] | None,
              config: dict = CONFIG, samples: list[list[bool]] | None = None) -> Path:
    run = root / "runs" / variant / f"seed{seed}"
    (run / "eval").mkdir(parents=True)
    records = [{"id": f"arith/test/{i}", "correct": c, "tokens": 5, "finished": True} for i, c in enumerate(correct)]
    summary_eval = {"n": len(correct), "pass@1": sum(correct) / len(correct), "response_length_mean": 5.0}
    if samples is not None:
        for rec, s in zip(records, samples):
            rec["sample_correct"] = s
        summary_eval["mean@4"] = sum(map(sum, samples)) / (4 * len(samples))
    (run / "eval" / f"{KEY}.records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (run / "eval" / f"{KEY}.json").write_text(json.dumps(summary_eval))
    algo = None if variant == "base" else {"algorithm": variant, "options": {}}
    record = {"suite": "fake", "config": config, "config_hash": "h", "provenance": PROV, "variant": variant,
              "seed": seed, "algorithm": algo}
    (run / "config.json").write_text(json.dumps(record))
    if metrics:
        (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in metrics))
    (run / "summary.json").write_text(json.dumps(dict(record, eval={KEY: summary_eval}, run_wall_s=10.0,
                                                      train={} if not metrics else {"steps": len(metrics)})))
    return run


def fake_metrics(rewards: list[float], rng: random.Random) -> list[dict]:
    return [{"step": t, "reward_mean": r, "accuracy": r, "samples": 8, "generated_tokens": 80 + t,
             "response_length_mean": 10.0 + t / 4, "elapsed_s": 2.0 * (t + 1), "clip_frac": 0.05 * rng.random(),
             "ratio_token_mean": 1 + 0.01 * rng.random(), "ratio_token_max": 1.2 + rng.random(),
             "log_ratio_traj_mean": 0.02 * rng.random(), "log_ratio_traj_max": 0.3 * rng.random()}
            for t, r in enumerate(rewards)]


def fake_suite(root: Path, n: int = 40) -> Path:
    """base (one seed), grpo and tic_grpo (3 seeds) on 40 problems; tic_grpo solves 4 more per seed."""
    rng = random.Random(1)
    root.mkdir(parents=True, exist_ok=True)
    (root / "suite.json").write_text(json.dumps({"config": CONFIG, "config_hash": "h", "provenance": PROV}))
    write_run(root, "base", 0, [i < 8 for i in range(n)], None, samples=[[i < 6] * 4 for i in range(n)])
    for seed in (0, 1, 2):
        grpo = [i < 10 + 2 * seed for i in range(n)]
        tic = [i < 14 + 2 * seed for i in range(n)]
        samples = [[i < 10 + seed, i < 12, False, False] for i in range(n)]
        write_run(root, "grpo", seed, grpo, fake_metrics([min(1, 0.05 * t + 0.02 * seed) for t in range(12)], rng),
                  samples=samples)
        write_run(root, "tic_grpo", seed, tic, fake_metrics([min(1, 0.08 * t) for t in range(12)], rng),
                  samples=samples)
    return root


def test_numbers_and_formats(tmp_path):
    root = fake_suite(tmp_path)
    md = write_leaderboard(root)
    for name in ("leaderboard.md", "leaderboard.csv", "leaderboard.json", "leaderboard.html",
                 "plots/train_curves.png", "plots/eval_accuracy.png", "plots/ratios.png"):
        assert (root / name).stat().st_size > 0, name
    board = json.loads((root / "leaderboard.json").read_text())
    rows = {r["variant"]: r for r in board["rows"]}
    assert list(rows) == ["base", "grpo", "tic_grpo"] and board["reference"] == "grpo"
    # grpo pass@1 per seed: 10/40, 12/40, 14/40 -> mean 0.3, t interval with s = 0.05
    cell = rows["grpo"]["eval"][KEY]["pass@1"]["mean"]
    half = t_quantile(0.975, 2) * 0.05 / math.sqrt(3)
    assert cell["method"] == "t" and cell["value"] == pytest.approx(0.3)
    assert (cell["lo"], cell["hi"]) == pytest.approx((0.3 - half, 0.3 + half))
    # tic_grpo - grpo: the same 4 more problems on every seed -> +0.1; resampled problems move it, never below 0
    delta = rows["tic_grpo"]["eval"][KEY]["pass@1"]["delta"]
    assert delta["method"] == "paired-bootstrap" and delta["n"] == 40
    assert delta["value"] == pytest.approx(0.1) and 0 < delta["lo"] < 0.1 < delta["hi"]
    # base (one seed): bootstrap over problems; paired against each grpo seed: 8/40 - mean(0.25, 0.3, 0.35)
    base = rows["base"]["eval"][KEY]["pass@1"]
    assert base["mean"]["method"] == "bootstrap" and base["mean"]["lo"] < 0.2 < base["mean"]["hi"]
    assert base["delta"]["value"] == pytest.approx(0.2 - 0.3) and base["delta"]["hi"] < 0
    assert rows["grpo"]["eval"][KEY]["pass@1"]["delta"] is None
    # mean@4 (sample means per problem) and its delta
    assert rows["grpo"]["eval"][KEY]["mean@4"]["mean"]["value"] == pytest.approx((11 + 12) / 160)
    assert rows["tic_grpo"]["eval"][KEY]["mean@4"]["delta"]["value"] == pytest.approx(0.0)
    # training: AUC = mean reward over steps; target 0.5 reached by the 3-step trailing mean
    train = rows["tic_grpo"]["train"]
    assert train["reward_auc"]["value"] == pytest.approx(sum(min(1, 0.08 * t) for t in range(12)) / 12)
    # mean(0.48, 0.56, 0.64) >= 0.5 at the 9th step on every seed
    assert train["steps_to_target"] == {"mean": 9, "reached": 3, "runs": 3}
    assert train["samples"] == 96 and train["train_wall_s"] == 24.0
    assert rows["base"]["train"] is None
    # Markdown: rows, the reference marker, intervals, provenance footer
    assert "| grpo | grpo | 0,1,2 | 30.0 [" in md and "| ref |" in md and "| +10.0 [+" in md
    assert "| base | - | 0 | 20.0 [" in md and "]† |" in md
    assert "`0123456789ab`" in md and "`grpo-bench run fake.toml`" in md and "config hash `h`" in md
    assert "Resolved config" in md
    csv_lines = (root / "leaderboard.csv").read_text().splitlines()
    assert len(csv_lines) == 4 and csv_lines[0].startswith("variant,algorithm,seeds,arith-test pass@1,")


def test_html_is_self_contained(tmp_path):
    root = fake_suite(tmp_path)
    write_leaderboard(root)
    page = (root / "leaderboard.html").read_text()
    srcs = re.findall(r'src="([^"]+)"', page)
    assert sorted(srcs) == ["plots/eval_accuracy.png", "plots/ratios.png", "plots/train_curves.png"]
    assert all((root / s).exists() for s in srcs)
    assert "<style>" in page and "http://" not in page and "https://" not in page
    assert "<script src" not in page and "<link" not in page  # nothing loaded: inline CSS and JS only
    assert "<td>tic_grpo</td>" in page and "0123456789ab" in page


def test_reference_and_target_options(tmp_path):
    root = fake_suite(tmp_path)
    md = write_leaderboard(root, reference="tic_grpo", target=0.99)
    assert "vs tic_grpo" in md and "| -10.0 [-" in md and "not reached" in md
    with pytest.raises(UserError, match="--reference 'nope'"):
        write_leaderboard(root, reference="nope")
    assert main(["leaderboard", str(root), "--reference", "base", "--target", "0.3"]) == 0
    board = json.loads((root / "leaderboard.json").read_text())
    assert board["reference"] == "base" and board["target"] == 0.3


def test_steps_to_target():
    rows = [{"accuracy": a} for a in (0.0, 0.9, 0.9, 0.1, 0.6, 0.6, 0.6)]
    assert steps_to_target(rows, 0.5) == 3  # mean(0, .9, .9) = 0.6 at the 3rd step
    assert steps_to_target(rows, 0.61) == 4  # mean(.9, .9, .1) = 0.633
    assert steps_to_target(rows, 0.95) is None
    assert steps_to_target([{"accuracy": 1.0}], 0.5) == 1  # a run shorter than the window uses what there is
    assert steps_to_target([{"reward_mean": 1.0}] * 5, 0.5) is None  # no accuracy logged


def test_refuses_runs_with_different_configs(tmp_path, capsys):
    root = fake_suite(tmp_path)
    other = copy.deepcopy(CONFIG)
    other["train"]["learning_rate"] = 1e-4
    other["eval"]["benchmarks"][0]["limit"] = 20
    other["suite"]["seeds"] = [7]  # seeds and variants may differ: not reported
    other["variants"] = [{"name": "x", "algorithm": "grpo"}]
    write_run(root, "x", 7, [True] * 40, None, config=other)
    with pytest.raises(UserError) as err:
        write_leaderboard(root)
    msg = str(err.value)
    assert "train.learning_rate" in msg and "eval.benchmarks[0].limit" in msg
    assert "suite.seeds" not in msg and "variants" not in msg
    assert main(["leaderboard", str(root)]) == 2
    assert "train.learning_rate" in capsys.readouterr().err


def test_accepts_extra_variants_and_seeds(tmp_path):
    root = fake_suite(tmp_path)
    more = copy.deepcopy(CONFIG)
    more["suite"]["seeds"] = [0, 1, 2, 3]
    more["variants"].append({"name": "grpo_no_is", "algorithm": "grpo_no_is"})
    write_run(root, "grpo_no_is", 3, [False] * 40, None, config=more)
    assert "| grpo_no_is |" in write_leaderboard(root)


def test_refuses_one_variant_with_two_option_sets(tmp_path):
    root = fake_suite(tmp_path)
    summary = json.loads((root / "runs/grpo/seed1/summary.json").read_text())
    summary["algorithm"]["options"] = {"eps_low": 0.3}
    (root / "runs/grpo/seed1/summary.json").write_text(json.dumps(summary))
    with pytest.raises(UserError, match=r"algorithm\(grpo\)\.options\.eps_low"):
        write_leaderboard(root)


def test_refuses_runs_with_different_prompt_templates(tmp_path):
    root = fake_suite(tmp_path)
    path = root / "runs/tic_grpo/seed2/summary.json"
    path.write_text(json.dumps(dict(json.loads(path.read_text()), benchmarks={"arith": {"prompt_template": "Q: {q}"}})))
    with pytest.raises(UserError, match=r"benchmarks\.arith\.prompt_template"):
        write_leaderboard(root)


def test_flatten():
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": [{"e": 1}]}) == {"a.b": 1, "a.c": [1, 2], "d[0].e": 1}


def test_compare_runs_and_suites(tmp_path, capsys):
    a = fake_suite(tmp_path / "a")
    b = fake_suite(tmp_path / "b")
    runs = {r.label: r.path for r in load_runs(a)}
    (single,) = compare(runs["grpo/seed0"], runs["tic_grpo/seed0"])
    assert (single["a"], single["b"]) == ("grpo", "tic_grpo")
    row = next(r for r in single["rows"] if r["metric"] == "pass@1")
    assert row["delta"]["method"] == "paired-bootstrap" and row["delta"]["value"] == pytest.approx(0.1)
    suites = compare(a, b)
    assert [e["a"] for e in suites] == ["base", "grpo", "tic_grpo"]
    assert all(r["delta"]["value"] == 0 for e in suites for r in e["rows"])
    # problems that do not match: a plain difference of means, no interval
    for rec_file in (b / "runs/grpo").glob("seed*/eval/*.records.jsonl"):
        rec_file.write_text(rec_file.read_text().replace("arith/test/", "other/"))
    grpo = next(e for e in compare(a, b) if e["a"] == "grpo")
    plain = next(r for r in grpo["rows"] if r["metric"] == "pass@1")
    assert plain["delta"] == {"value": 0.0, "lo": None, "hi": None, "method": "difference", "n": 0}
    assert main(["compare", str(runs["grpo/seed0"]), str(runs["tic_grpo/seed0"])]) == 0
    assert re.search(r"\| arith-test \| pass@1 \| 25.0 \| 35.0 \| \+10.0 \[\+\S+, \+\S+\] \| paired-bootstrap \| 40 \|",
                     capsys.readouterr().out)
    assert main(["compare", str(a), str(tmp_path / "missing")]) == 2


def test_reward_error_and_timeout_rates_are_shown_and_marked(tmp_path):
    root = fake_suite(tmp_path)
    rng = random.Random(2)
    # tic_grpo seed 1: 3 errors and 1 timeout of math_verify over 12 steps x 8 samples; eval: 2 errors of 40
    run = root / "runs" / "tic_grpo" / "seed1"
    rows = fake_metrics([0.5] * 12, rng)
    for r in rows:
        r.update({"reward_error/math_verify": 0, "reward_timeout/math_verify": 0, "reward_none/math_verify": 0})
    rows[2]["reward_error/math_verify"], rows[5]["reward_error/math_verify"] = 1, 2
    rows[7]["reward_timeout/math_verify"] = 1
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = json.loads((run / "summary.json").read_text())
    summary["eval"][KEY]["reward_counts"] = {"ok": 30, "none": 8, "error": 2, "timeout": 0}
    (run / "summary.json").write_text(json.dumps(summary))
    md = write_leaderboard(root)
    board = json.loads((root / "leaderboard.json").read_text())
    fails = {r["variant"]: r["reward_failures"] for r in board["rows"]}
    train, ev = fails["tic_grpo"]["1"]
    assert train == {"where": "train", "reward": "math_verify", "n": 96, "error": 3, "timeout": 1,
                     "error_rate": 3 / 96, "timeout_rate": 1 / 96}
    assert ev["where"] == f"eval {KEY}" and (ev["n"], ev["error"], ev["error_rate"]) == (40, 2, 0.05)
    # the table column: worst error / timeout rate in %, marked; clean variants unmarked
    line = next(l for l in md.splitlines() if l.startswith("| tic_grpo |"))
    assert line.endswith("| ⚠ 5.0 / 1.0 |"), line
    assert "reward error / timeout (%)" in md and "⚠" not in next(l for l in md.splitlines() if l.startswith("| grpo |"))
    assert "⚠ tic_grpo seed 1, train, reward `math_verify`: 3 errors (3.1%), 1 timeouts (1.0%) of 96 samples." in md
    assert "⚠ tic_grpo seed 1, eval arith-test, reward `arith-test`: 2 errors (5.0%), 0 timeouts (0.0%) of 40" in md
    csv_lines = (root / "leaderboard.csv").read_text().splitlines()
    assert csv_lines[0].endswith("reward_error_rate_max,reward_timeout_rate_max")
    assert csv_lines[3].endswith(",0.05,0.010416666666666666")


def test_refuses_runs_on_different_benchmark_versions_in_one_line(tmp_path):
    """A run on arith version 2 beside runs recorded before versions existed (version 1): one line naming the
    benchmark and which runs used which version; a run recording version 1 explicitly mixes fine."""
    root = fake_suite(tmp_path)
    v1 = copy.deepcopy(CONFIG)
    v1["train"]["benchmark_version"] = 1
    v1["eval"]["benchmarks"][0]["version"] = 1
    write_run(root, "grpo", 3, [True] * 40, None, config=v1)
    assert "| grpo |" in write_leaderboard(root)
    v2 = copy.deepcopy(CONFIG)
    v2["train"]["benchmark_version"] = 2
    v2["eval"]["benchmarks"][0]["version"] = 2
    write_run(root, "grpo", 4, [True] * 40, None, config=v2)
    with pytest.raises(UserError) as err:
        write_leaderboard(root)
    msg = str(err.value)
    assert len(msg.splitlines()) == 1
    assert "different versions of benchmark 'arith': version 1 (base/seed0" in msg and "version 2 (grpo/seed4)" in msg


def test_claims_table_opens_the_leaderboard(tmp_path):
    """Claims from the suite's config, tested on the per-seed paired differences: tic_grpo - grpo is +10 points
    on every seed (4 problems of 40), so sd = 0: non-inferior at 3 points, and different (better)."""
    root = fake_suite(tmp_path)
    config = copy.deepcopy(CONFIG)
    base = {"variant": "tic_grpo", "reference": "grpo", "metric": "pass@1", "target": KEY, "alpha": 0.05}
    config["claims"] = [dict(base, kind="non_inferiority", margin=3.0, name="tic ni"),
                        dict(base, kind="equivalence", margin=3.0, name="tic eq"),
                        dict(base, kind="difference", margin=0.0, name="tic diff")]
    (root / "suite.json").write_text(json.dumps({"config": config, "config_hash": "h", "provenance": PROV}))
    md = write_leaderboard(root)
    assert md.index("## Claims") < md.index("| variant |")
    board = json.loads((root / "leaderboard.json").read_text())
    got = {c["claim"]["name"]: c["result"] for c in board["claims"]}
    assert got["tic ni"]["verdict"] == "non-inferior" and got["tic ni"]["estimate"] == pytest.approx(10.0)
    assert got["tic eq"]["verdict"] == "not equivalent" and got["tic diff"]["verdict"] == "better"
    assert got["tic ni"]["seeds"] == 3 and got["tic ni"]["lo"] == pytest.approx(10.0)
    assert "tic ni" in (root / "leaderboard.html").read_text()


def test_an_undecided_claim_under_a_plan_gives_its_next_look_and_a_projection():
    """Five seeds around +1 (mean 1.0, sd 0.1), looks every 5 seeds to 40: look 1's bound (t about 100) leaves it
    undecided (half-width 4.5), the look at 10 seeds (t 6.1, half-width about 0.2) settles "equivalent" always."""
    diffs, looks = [0.9, 1.1, 0.9, 1.1, 1.0], tuple(range(5, 41, 5))
    claim = {"kind": "equivalence", "margin": 3.0, "alpha": 0.05}
    result = evaluate_claim("equivalence", 3.0, 0.05, diffs, looks)
    assert result.verdict == "undecided" and result.look == 1
    text = what_would_change(claim, result, looks, diffs)
    assert text.startswith('next planned look at 10 seeds; if the mean +1.0 and sd 0.1 pts of these seeds were the '
                           'truth, decided by 10 seeds 100% (most often "equivalent"; simulated on from the 5 paired')
    # mean 0, sd 4.74: at 10 seeds of (5, 10, 15) the half-width is 2.53 * 4.74 / sqrt(10) = 3.8 > 3, so it takes a
    # sample sd below 3.75 to decide there (rare); at 15 it is 1.82 * 4.74 / sqrt(15) = 2.2 < 3 (likely)
    spread = [0.0, 6.0, -6.0, 3.0, -3.0]
    result = evaluate_claim("equivalence", 3.0, 0.05, spread, (5, 10, 15))
    assert result.verdict == "undecided"
    wide = what_would_change(claim, result, (5, 10, 15), spread)
    by_10, by_15 = map(int, re.search(r"decided by 10 seeds (\d+)%, by 15 seeds (\d+)%", wide).groups())
    assert by_10 < 10 < 50 < by_15 < 100
    assert what_would_change(claim, evaluate_claim("equivalence", 3.0, 0.05, spread, (5,)), (5,), spread) \
        == "the plan's last look is reached"


def test_a_claim_on_a_variant_without_runs_says_what_it_needs(tmp_path):
    root = fake_suite(tmp_path)
    config = copy.deepcopy(CONFIG)
    config["variants"].append({"name": "grpo_no_is", "algorithm": "grpo_no_is", "options": {}})
    config["claims"] = [{"variant": "grpo_no_is", "reference": "grpo", "kind": "difference", "margin": 0.0,
                         "metric": "pass@1", "target": KEY, "alpha": 0.05, "name": "no runs yet"}]
    (root / "suite.json").write_text(json.dumps({"config": config, "config_hash": "h", "provenance": PROV}))
    md = write_leaderboard(root)
    assert "| no runs yet: `grpo_no_is` different from `grpo` (arith-test pass@1, alpha 0.05) | - | - | undecided | 0 " \
           "| needs at least 2 paired seeds |" in md
    (root / "sequential.json").write_text(json.dumps({"looks": [5, 10], "seeds": list(range(10)), "claims": []}))
    md = write_leaderboard(root)  # under a plan of looks: tested first at the look of 5 seeds
    assert "| undecided | 0 | first tested at the planned look of 5 seeds (0 paired so far) |" in md
    json.loads((root / "leaderboard.json").read_text(), parse_constant=lambda c: pytest.fail(f"non-finite {c}"))
