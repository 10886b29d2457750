"""Malformed suites: a one-line error naming the file and the key, exit status 2, nothing written."""

import pytest
from grpo_bench.cli import main

GOOD = '''
[suite]
model = "tiny-random"
engine = "hf"
[train]
benchmark = "arith"
steps = 1
[eval]
benchmarks = [{ name = "arith", limit = 2 }]
[[variants]]
algorithm = "grpo"
'''

CASES = [
    ("unknown top-level key", GOOD + "\n[extra]\nx = 1\n", "extra: unknown key"),
    ("unknown key", GOOD.replace("steps = 1", "stepz = 1"), "train.stepz: unknown key"),
    ("wrong type", GOOD.replace("steps = 1", 'steps = "eight"'), "train.steps: expected int, got str"),
    ("bool is not int", GOOD.replace("steps = 1", "steps = true"), "train.steps: expected int"),
    ("unknown algorithm", GOOD.replace('algorithm = "grpo"', 'algorithm = "ppo9000"'),
     "variants[0].algorithm: unknown algorithm 'ppo9000'"),
    ("unknown reward", GOOD.replace("steps = 1", 'steps = 1\nrewards = ["nope"]'), "train.rewards[0]: unknown reward 'nope'"),
    ("unknown benchmark", GOOD.replace('benchmark = "arith"', 'benchmark = "gsm9k"'), "train.benchmark: unknown benchmark"),
    ("unknown eval split", GOOD.replace('limit = 2', 'limit = 2, split = "dev"'), "eval.benchmarks[0].split"),
    ("bad option", GOOD.replace('algorithm = "grpo"', 'algorithm = "grpo"\noptions = { eps_low = "wide" }'),
     "variants[0].options: grpo: option 'eps_low' must be float"),
    ("unknown option", GOOD.replace('algorithm = "grpo"', 'algorithm = "tic_grpo"\noptions = { eps_low = 0.2 }'),
     "variants[0].options: tic_grpo: unknown option 'eps_low'"),
    ("group of one", GOOD.replace("steps = 1", "steps = 1\ngroup_size = 1"), "train.group_size"),
    ("no variants", GOOD.split("[[variants]]")[0], "variants: at least one"),
    ("duplicate variant", GOOD + '\n[[variants]]\nalgorithm = "grpo"\n', "variants[1].name: duplicate"),
    ("not toml", "[suite\nmodel=", "not valid TOML"),
    ("unknown engine", GOOD.replace('engine = "hf"', 'engine = "warp"'), "suite.engine"),
]


@pytest.mark.parametrize("label,text,needle", CASES, ids=[c[0] for c in CASES])
def test_malformed_suite(tmp_path, capsys, label, text, needle):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    results = tmp_path / "results"
    assert main(["run", str(path), "--results-dir", str(results)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert str(path) in err and needle in err, err
    assert not results.exists()


def test_missing_file(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.toml"), "--results-dir", str(tmp_path / "r")]) == 2
    assert "nope.toml: file not found" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_good_suite_parses_and_resolves_every_option(tmp_path):
    from grpo_bench.config import load_suite
    from grpo_bench.registry import default_registry

    path = tmp_path / "good.toml"
    path.write_text(GOOD)
    suite = load_suite(path, default_registry())
    assert suite.suite.name == "good"
    assert suite.variants[0].options == {"beta": 0.0, "delta": 1e-4, "std": "unbiased", "eps_low": 0.2, "eps_high": 0.2}
