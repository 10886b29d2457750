"""The console of ``grpo-bench run`` is for people: progress bars, one line per finished run, the
decision table and where the report is; no configuration dump. Both executors print the same run lines."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from grpo_bench.config import load_suite
from grpo_bench.execute import LocalExecutor, run_suite
from grpo_bench.registry import default_registry

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 40


def people_lines(text: str) -> list[str]:
    """Console lines other than progress bars (tqdm redraws a bar with carriage returns) and blank ones."""
    parts = re.split(r"[\r\n]", text)
    return [p for p in parts if p.strip() and not re.search(r"\d+%\|| \d+/\d+ \[", p)]


def test_a_small_run_prints_a_short_console(tmp_path):
    cmd = [sys.executable, "-m", "grpo_bench.cli", "run", str(ROOT / "tests/suites/tiny.toml"),
           "--results-dir", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = people_lines(done.stdout + done.stderr)
    print("\n".join(lines))
    assert len(lines) <= MAX_LINES, len(lines)
    assert not any(re.match(r'\s*[{}"]|```', line) for line in lines), "a JSON dump on the console"
    assert "Resolved config" not in done.stdout
    finished = sorted(line.split(":")[0] for line in lines if line.startswith("finished "))
    assert finished == ["finished base seed 0", "finished grpo seed 0", "finished grpo_no_is seed 0",
                        "finished tic_grpo seed 0"]
    table = [line for line in lines if re.match(r"(variant|base|grpo|grpo_no_is|tic_grpo)\s", line)]
    assert len(table) == 5 and "arith-test pass@1 %" in table[0] and "verdict ±3" in table[0]
    report = tmp_path / "tiny" / "leaderboard.html"
    assert f"report: {report}" in lines and report.is_file()


FAILING_PLUGIN = """
from grpo_bench import hookimpl

def distinct_chars(prompts, completions, **kwargs):
    return [min(1.0, len(set(c)) / 12) for c in completions]

def broken(prompts, completions, **kwargs):
    raise RuntimeError("always broken")

@hookimpl
def grpo_bench_rewards():
    return {"distinct_chars": distinct_chars, "broken": broken}
"""

SUITE = """
[suite]
name = "lines"
model = "tiny-random"
engine = "hf"
seeds = [0]
resources = { cpus = 1, gpus = 0 }

[train]
benchmark = "arith"
steps = 1
prompts_per_step = 2
group_size = 4
max_new_tokens = 6
rewards = ["distinct_chars", "broken"]
max_reward_error_frac = 1.0

[eval]
benchmarks = [{ name = "arith", split = "test", limit = 2 }]
max_new_tokens = 6

[[variants]]
algorithm = "grpo"
"""


@pytest.fixture
def suite_file(tmp_path, monkeypatch) -> Path:
    from test_plugins import make_dist

    site = tmp_path / "site"
    make_dist(site, "failing-plug", "failing_plug", FAILING_PLUGIN)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    default_registry.cache_clear()
    path = tmp_path / "lines.toml"
    path.write_text(SUITE)
    yield path
    default_registry.cache_clear()


def run_lines(capsys, suite, registry, folder, executor) -> list[str]:
    capsys.readouterr()
    run_suite(suite, registry, folder, executor=executor)
    captured = capsys.readouterr()
    return [line for line in people_lines(captured.out + captured.err) if line.startswith(("finished ", "skip "))]


def test_ray_prints_the_local_executors_run_lines(suite_file, tmp_path, capsys):
    ray = pytest.importorskip("ray")
    from grpo_bench.execute.ray_executor import RayExecutor

    registry = default_registry()
    suite = load_suite(suite_file, registry)
    local = run_lines(capsys, suite, registry, tmp_path / "local", LocalExecutor())
    assert local == ["finished base seed 0: arith-test pass@1 0.000",
                     local[1]] and local[1].startswith("finished grpo seed 0: train reward ")
    assert "REWARD FAILURES: broken failed on 8 of 8 samples" in local[1]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {k: v for k, v in os.environ.items() if k.startswith(("HF_", "PYTHONPATH"))}})
    try:
        remote = run_lines(capsys, suite, registry, tmp_path / "ray", RayExecutor())
        again = run_lines(capsys, suite, registry, tmp_path / "ray", RayExecutor())
    finally:
        ray.shutdown()
    assert sorted(remote) == sorted(local)  # the tasks finish in any order
    assert again == ["skip base seed 0: finished", "skip grpo seed 0: finished"]
