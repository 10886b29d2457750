"""Benchmarks: the arith generator is seeded and exact; bundled data loads with gold answers."""

import re

from grpo_bench.plugins.benchmarks.arith import Arith
from grpo_bench.registry import default_registry


def test_arith_answers_are_exact_and_seeded():
    a, b = Arith("arith", (1, 2, 3)), Arith("arith", (1, 2, 3))
    train = a.problems("train")
    assert len(train) == 5000 and [p.prompt for p in train[:50]] == [p.prompt for p in b.problems("train")[:50]]
    for p in train[:300] + a.problems("test")[:300]:
        expr = re.match(r"What is (.+)\? Put", p.prompt).group(1)
        assert re.fullmatch(r"[\d +\-*()]+", expr)
        assert int(p.answer) == eval(expr)  # an independent evaluation of the expression
    assert {p.columns["level"] for p in train} == {1, 2, 3}


def test_arith_test_split_is_disjoint_from_train_beyond_level_one():
    bench = Arith("arith-hard", (4, 5))
    train = {p.prompt for p in bench.problems("train")}
    assert not any(p.prompt in train for p in bench.problems("test"))


def test_arith_version_2_test_is_unique_and_never_in_train():
    """Version 2: every test problem once, none in train, level 1 in train only; version 1 unchanged."""
    reg = default_registry()
    for name, levels in (("arith", {2, 3}), ("arith-hard", {4, 5})):
        v1, v2 = reg.get("benchmarks", name), reg.get("benchmarks", name).at_version(2)
        assert (v1.version, v2.version, v2.describe()["version"]) == (1, 2, 2)
        test, train = v2.problems("test"), v2.problems("train")
        prompts = [p.prompt for p in test]
        assert len(prompts) == len(set(prompts)) == 500 and len(train) == 5000
        assert not set(prompts) & {p.prompt for p in train}
        assert {p.columns["level"] for p in test} == levels
        assert [p.prompt for p in v1.problems("test")[:3]] == [p.prompt for p in Arith(name, v1.levels).problems("test")[:3]]
    assert {p.columns["level"] for p in reg.get("benchmarks", "arith").at_version(2).problems("train")} == {1, 2, 3}


def test_bundled_math_benchmarks_load():
    reg = default_registry()
    gsm = reg.get("benchmarks", "gsm8k")
    assert len(gsm.problems("test")) == 1319 and len(gsm.problems("train")) == 7473
    assert gsm.problems("test")[0].answer == "18"
    assert all("," not in p.answer for p in gsm.problems("test"))
    m500 = reg.get("benchmarks", "math500").problems("test")
    assert len(m500) == 500 and all(p.answer for p in m500)
    math_test = reg.get("benchmarks", "math").problems("test")
    assert len(math_test) == 5000 and sum(bool(p.answer) for p in math_test) > 4950


def test_gold_answers_grade_themselves():
    """Each benchmark's gold answer, boxed, scores 1.0 under its eval reward (first 40 problems)."""
    reg = default_registry()
    for name in ("gsm8k", "math500", "arith"):
        bench = reg.get("benchmarks", name)
        fn = reg.get("rewards", bench.eval_reward)
        probs = bench.problems("test", 40)
        scores = fn([p.prompt for p in probs], [f"\\boxed{{{p.answer}}}" for p in probs], answer=[p.answer for p in probs])
        assert scores.count(1.0) >= 38, (name, scores)


def test_normalise_whitespace_and_numbers():
    from grpo_bench.contamination import normalise

    assert normalise("  What is\t1,000 +  2.50?\n") == "What is 1000 + 2.5?"
    assert normalise("007 apples, 3.0 pears, 1,2,3") == "7 apples, 3 pears, 1,2,3"
    assert normalise("3 + 4") == normalise("3  +  4") != normalise("3 + 5")


def test_benchmarks_check_pins_held_out_splits_and_documents_known_overlap():
    """Every benchmark version that claims a held-out test split: 0 duplicates in test, 0 test items in any
    other split. The rest as measured (docs/leaderboard.md, "Benchmark versions"): arith v1 repeats test
    problems and shares all of level 1 with train; MATH has one problem twice in train and one test problem
    (precalculus/24307) that is also in train; GSM8K, MBPP, HumanEval and MATH-500 have no such overlap."""
    from grpo_bench.contamination import check_all

    rows = check_all(default_registry())
    held = [r for r in rows if r["held_out"]]
    assert {(r["benchmark"], r["version"]) for r in held} >= {("arith", 2), ("arith-hard", 2)}
    for r in held:
        assert (r["duplicates"] if r["split"] == "test" else r["test_items_here"]) == 0, r
    got = {(r["benchmark"], r["version"], r["split"]): (r["duplicates"], r["test_items_here"]) for r in rows}
    known = {("arith", 1, "test"): (193, None), ("arith", 1, "train"): (2672, 167),
             ("arith-hard", 1, "test"): (15, None), ("arith-hard", 1, "train"): (764, 0),
             ("math", 1, "train"): (1, 1), ("math", 1, "test"): (0, None),
             ("gsm8k", 1, "train"): (0, 0), ("gsm8k", 1, "test"): (0, None),
             ("mbpp", 1, "train"): (0, 0), ("mbpp", 1, "validation"): (0, 0), ("mbpp", 1, "prompt"): (0, 0),
             ("mbpp", 1, "test"): (0, None), ("humaneval", 1, "test"): (0, None), ("math500", 1, "test"): (0, None)}
    assert {k: got[k] for k in known} == known


def test_benchmarks_check_command_prints_the_table(capsys):
    from grpo_bench.cli import main

    assert main(["benchmarks", "check", "arith"]) == 0
    out = capsys.readouterr().out
    assert "| arith | 2 | yes | test | 500 | 500 | 0 | - |" in out and "| arith | 1 | no | train | 5000 |" in out
    assert "| arith v2 | arith v1 | 500 | 251 |" in out  # why a suite may not train on v1 and evaluate on v2
    assert main(["benchmarks", "check", "nope"]) == 2
