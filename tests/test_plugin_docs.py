"""docs/plugins.md's worked examples run as written: the files marked ``<!-- file: NAME -->`` are
extracted from the page, the check script asserts the numbers worked by hand there, and the suite
(shrunk to the tiny test model with --set) trains its plugin variant with its plugin reward."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "plugins.md"
TINY = ['suite.model="tiny-random"', 'suite.engine="hf"', "train.steps=1", "train.prompts_per_step=2",
        "train.group_size=2", "train.max_new_tokens=6", "train.mu=1", "eval.max_new_tokens=6",
        'eval.benchmarks=[{name = "arith", split = "test", limit = 2}]']


def doc_files() -> dict[str, str]:
    """``<!-- file: NAME -->`` followed by a fenced block -> {NAME: the block's text}."""
    found = re.findall(r"<!-- file: (\S+) -->\n```\w*\n(.*?)\n```", DOC.read_text(), flags=re.S)
    return {name: body + "\n" for name, body in found}


@pytest.fixture
def example(tmp_path):
    files = doc_files()
    assert set(files) == {"my_rewards.py", "my_algorithm.py", "my_suite.toml", "check_my_plugins.py"}
    for name, body in files.items():
        (tmp_path / name).write_text(body)
    return tmp_path


def test_the_worked_numbers_hold(example):
    out = subprocess.run([sys.executable, "check_my_plugins.py"], cwd=example, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_the_suite_runs_the_plugin_algorithm_and_reward(example):
    sets = [a for item in TINY for a in ("--set", item)]
    out = subprocess.run([sys.executable, "-m", "grpo_bench.cli", "run", str(example / "my_suite.toml"),
                          "--results-dir", str(example / "r"), "--variant", "plain_pg", *sets],
                         capture_output=True, text=True, timeout=300, cwd=Path(__file__).parent)
    assert out.returncode == 0, out.stderr[-3000:]
    run = example / "r" / "my_suite" / "runs" / "plain_pg" / "seed0"
    row = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert "plain_pg_adv_abs" in row and "reward/short_answer" in row
    assert row.get("reward_error/short_answer", 0) == 0
