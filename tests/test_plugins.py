"""Third-party plugins: a throwaway package registers a reward and an algorithm through the
``grpo_bench`` entry-point group (no change to this repo) and both are used in a tiny run."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from grpo_bench.registry import Registry, load_entry_points

PLUGIN = '''
"""A third-party plugin: a reward and an algorithm."""
from grpo_bench import hookimpl
from grpo_bench.algorithm import Algorithm, seq_mean


def shortness(prompts, completions, **columns):
    return [1.0 / (1 + len(c)) for c in completions]


class PlainPG(Algorithm):
    """REINFORCE with group-normalised advantages: -(1/N) sum_i A_i mean_t logp."""
    name = "plain_pg"

    def loss(self, batch, stats):
        stats.mean("plain_pg_adv_abs", batch.advantages.abs())
        return -(seq_mean(batch.logp, batch.mask) * batch.advantages).sum() / batch.num_completions


@hookimpl
def grpo_bench_rewards():
    return {"shortness": shortness}


@hookimpl
def grpo_bench_algorithms():
    return {"plain_pg": PlainPG}
'''


def make_dist(site: Path, dist: str, module: str, source: str) -> None:
    (site / module).mkdir(parents=True)
    (site / module / "__init__.py").write_text(source)
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[grpo_bench]\n{module} = {module}\n")


@pytest.fixture
def site(tmp_path):
    site = tmp_path / "site"
    make_dist(site, "thirdparty-plug", "thirdparty_plug", PLUGIN)
    make_dist(site, "broken-plug", "broken_plug", "raise ImportError('this plugin is broken')\n")
    make_dist(site, "raising-plug", "raising_plug", textwrap.dedent('''
        from grpo_bench import hookimpl

        @hookimpl
        def grpo_bench_rewards():
            raise RuntimeError("hook exploded")
    '''))
    return site


def env_with(site: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
    return env


def test_registry_loads_third_party_and_reports_broken(site, monkeypatch):
    monkeypatch.syspath_prepend(str(site))
    reg = Registry()
    load_entry_points(reg)
    assert reg.get("rewards", "shortness")([""], ["ab"]) == [1 / 3]
    assert reg.get("algorithms", "plain_pg").name == "plain_pg"
    assert "thirdparty-plug 0.1" in reg.tables["rewards"]["shortness"].source
    assert "grpo-bench" in reg.tables["algorithms"]["grpo"].source  # built-ins: the same path
    assert any("broken_plug" in e and "this plugin is broken" in e for e in reg.errors)
    assert any("raising_plug" in e and "hook exploded" in e for e in reg.errors)


def test_cli_plugins_lists_origin(site):
    out = subprocess.run([sys.executable, "-m", "grpo_bench.cli", "plugins"], env=env_with(site),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "shortness" in out.stdout and "thirdparty-plug 0.1" in out.stdout
    assert "math_verify" in out.stdout and "plugin errors:" in out.stdout


def test_third_party_reward_and_algorithm_in_a_tiny_run(site, tmp_path):
    suite = tmp_path / "plug.toml"
    suite.write_text(textwrap.dedent('''
        [suite]
        model = "tiny-random"
        engine = "hf"
        [train]
        benchmark = "arith"
        steps = 2
        prompts_per_step = 2
        group_size = 3
        max_new_tokens = 8
        learning_rate = 1e-3
        mu = 1
        rewards = ["shortness"]
        [eval]
        benchmarks = [{ name = "arith", limit = 3 }]
        max_new_tokens = 8
        [[variants]]
        algorithm = "plain_pg"
    '''))
    out = subprocess.run([sys.executable, "-m", "grpo_bench.cli", "run", str(suite), "--results-dir", str(tmp_path / "r")],
                         env=env_with(site), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    run = tmp_path / "r" / "plug" / "runs" / "plain_pg" / "seed0"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and "plain_pg_adv_abs" in rows[0] and "reward/shortness" in rows[0]
    assert rows[0]["reward/shortness"] > 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["algorithm"]["algorithm"] == "plain_pg"
    assert "plain_pg" in (tmp_path / "r" / "plug" / "leaderboard.md").read_text()
