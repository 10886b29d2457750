"""The Python API from a script with no ``__main__`` guard, overrides, dry-run, and the offline hub."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SUITE = ROOT / "tests" / "suites" / "tiny.toml"
CLI = [sys.executable, "-m", "grpo_bench.cli"]


def test_guardless_script_runs_and_scores(tmp_path):
    """A script without a __main__ guard: the reward (defined in the script) runs in the workers, the
    script is not re-executed there (the marker file gets one line), and the rewards are counted."""
    marker = tmp_path / "imports.txt"
    script = tmp_path / "user_script.py"
    script.write_text(f"""
import grpo_bench
open({str(marker)!r}, "a").write("imported\\n")

def reward_len(completions, **kwargs):
    return [-abs(20 - len(c)) for c in completions]

from grpo_bench.scoring import RewardScorer
s = RewardScorer({{"len": reward_len}}, workers=2)
print("SCORES", s.score(["p", "q"], ["a" * 20, "abc"], {{}}).totals)
s.close()
print("PASS1", grpo_bench.evaluate("tiny-random", "arith", limit=4, max_new_tokens=4, engine="hf")["reward_counts"])
""")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    scores = json.loads(out.stdout.split("SCORES ", 1)[1].splitlines()[0])
    assert scores == [0.0, -17.0]  # -|20 - 20|, -|20 - 3|
    counts = json.loads(out.stdout.split("PASS1 ", 1)[1].strip().replace("'", '"'))
    assert counts["ok"] + counts["none"] == 4 and counts["error"] == 0
    assert marker.read_text() == "imported\n"


def test_overrides_are_applied_and_recorded(tmp_path):
    from grpo_bench.config import load_suite
    from grpo_bench.execute.plan import make_plan
    from grpo_bench.registry import default_registry

    reg = default_registry()
    suite = load_suite(SUITE, reg, ["train.steps=5", "variants.grpo.eps_high=0.28", "variants.*.beta=0.01"])
    assert suite.train.steps == 5
    assert suite.variant("grpo").options["eps_high"] == 0.28 and suite.variant("grpo_no_is").options["beta"] == 0.01
    plan = make_plan(suite, reg, tmp_path)
    assert plan.record["config"]["train"]["steps"] == 5
    assert plan.record["provenance"]["overrides"] == ["train.steps=5", "variants.grpo.eps_high=0.28", "variants.*.beta=0.01"]


def _cli(tmp_path, *args, env=None):
    return subprocess.run([*CLI, "run", str(SUITE), "--results-dir", str(tmp_path / "res"), *args],
                          capture_output=True, text=True, timeout=120, env=env)


def test_bad_override_is_one_line(tmp_path):
    out = _cli(tmp_path, "--set", "train.steps=\"many\"")
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "train.steps" in out.stderr
    out = _cli(tmp_path, "--set", "variants.nope.eps_high=1")
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "'nope'" in out.stderr
    assert not (tmp_path / "res").exists()


def test_dry_run_prints_plan_and_writes_nothing(tmp_path):
    out = _cli(tmp_path, "--dry-run", "--set", "train.steps=3")
    assert out.returncode == 0, out.stderr
    runs = dict(re.findall(r"^  (\S+ seed \d+): (\w+)", out.stdout, re.M))
    assert runs["grpo seed 0"] == "pending" and set(runs.values()) == {"pending"}
    assert re.search(r"train\.steps = 3\b", out.stdout)  # the override shows among the differing settings
    # 3 trained runs x 3 steps x 2 prompts x G = 4 samples, each at most max_new_tokens = 12 tokens
    assert int(re.search(r"(\d+) training samples", out.stdout)[1]) == 3 * 3 * 2 * 4
    assert int(re.search(r"at most (\d+) generated tokens", out.stdout)[1]) == 3 * 3 * 2 * 4 * 12
    assert not (tmp_path / "res").exists()


def test_offline_hub_ids_give_one_line_quickly(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    for args, word in ((["--set", 'suite.model="nobody/no-such-model"'], "nobody/no-such-model"),
                       (["--set", 'suite.data="hub"'], "openai/gsm8k")):
        t0 = time.monotonic()
        out = _cli(tmp_path, *args, env=env)
        assert time.monotonic() - t0 < 60
        assert out.returncode == 2, out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and word in lines[0] and "HF_HUB_OFFLINE" in lines[0]
        assert "bundled" in lines[0] or "smollm2" in lines[0]
        assert not (tmp_path / "res").exists()


def test_dry_run_estimates_time_from_finished_runs(tmp_path):
    """No finished run: the dry run says how to measure; two finished trained runs (60 s and 120 s,
    median 90 s) and 1 pending: 1.5 min per run and in all, with the recorded hardware named."""
    from grpo_bench.config import load_suite
    from grpo_bench.execute.plan import describe, make_plan
    from grpo_bench.registry import default_registry

    reg = default_registry()
    plan = make_plan(load_suite(SUITE, reg), reg, tmp_path)
    assert "not estimated" in time_line(describe(plan, reg))
    hw = {"cpu": "Test CPU", "cores": 2}
    for spec, wall in zip([r for r in plan.runs if r.variant][:2], (60.0, 120.0)):
        spec.run_dir(plan.out).mkdir(parents=True)
        (spec.run_dir(plan.out) / "summary.json").write_text(
            json.dumps({"run_wall_s": wall, "provenance": {"hardware": hw}}))
    line = time_line(describe(plan, reg))
    per_run, in_all = (float(x) for x in re.findall(r"about ([\d.]+) min", line))
    assert per_run == 1.5 and in_all == 1.5  # median(60 s, 120 s) = 90 s, 1 pending run
    assert int(re.search(r"median of (\d+)", line)[1]) == 2 and "Test CPU" in line
    assert int(re.search(r"for the (\d+) pending", line)[1]) == 1


def time_line(text):
    """The dry run's line on the time the pending runs will take."""
    lines = [line for line in text.splitlines() if line.startswith("time:")]
    assert len(lines) == 1, text
    return lines[0]


@pytest.mark.parametrize("kwargs", [{"limit": -1}, {"limit": 2.5}, {"max_new_tokens": 0},
                                    {"temperature": float("nan")}, {"seed": -1}, {"dtype": "float8"},
                                    {"data": "web"}, {"device": "tpu7"}])
def test_evaluate_checks_its_settings_as_the_command_does(monkeypatch, kwargs):
    """The API and ``grpo-bench eval`` share one path: a bad setting is one UserError before any model loads
    (``limit=-1`` used to evaluate all problems but the last)."""
    import grpo_bench
    from grpo_bench import models
    from grpo_bench.errors import UserError

    def no_load(*args, **kw):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(models, "load_policy", no_load)
    with pytest.raises(UserError) as err:
        grpo_bench.evaluate("tiny-random", "arith", engine="hf", **kwargs)
    (setting, value), = kwargs.items()
    message = str(err.value)
    # one line that names the entry point and the setting (the key fields a user acts on)
    assert len(message.splitlines()) == 1 and message.startswith(f"grpo_bench.evaluate: {setting}:"), message


def test_run_suite_takes_a_plain_reward_function_and_algorithm_class(tmp_path):
    """No packaging, no decorator: the objects are added for this call by the names the suite uses,
    the run trains with them, and the process-wide registry is left as it was."""
    import grpo_bench
    from grpo_bench.registry import default_registry

    suite = tmp_path / "plain.toml"
    suite.write_text(PLAIN_SUITE)
    PlainREINFORCE = _plain_reinforce_class()
    out = grpo_bench.run_suite(suite, tmp_path / "r", rewards={"vowel_share": vowel_share},
                               algorithms={"plain_reinforce": PlainREINFORCE})
    run = out / "runs" / "plain_reinforce" / "seed0"
    row = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert "plain_reinforce_adv_abs" in row and "reward/vowel_share" in row
    assert row.get("reward_error/vowel_share", 0) == 0
    assert PlainREINFORCE.name == "plain_reinforce"
    assert "vowel_share" not in default_registry().names("rewards")
    assert "plain_reinforce" not in default_registry().names("algorithms")


def test_run_suite_refuses_a_wrong_object_or_a_taken_name(tmp_path):
    import grpo_bench
    import pytest
    from grpo_bench.errors import UserError

    suite = tmp_path / "plain.toml"
    suite.write_text(PLAIN_SUITE)
    with pytest.raises(UserError) as err:
        grpo_bench.run_suite(suite, tmp_path / "r", algorithms={"plain_reinforce": dict})
    assert "'plain_reinforce'" in str(err.value) and "Algorithm" in str(err.value)  # the name, what it must be
    with pytest.raises(UserError) as err:
        grpo_bench.run_suite(suite, tmp_path / "r", rewards={"format": len})
    assert "'format'" in str(err.value) and "registered" in str(err.value)  # the name, and that it is taken
    assert not (tmp_path / "r").exists()


def vowel_share(prompts, completions, **columns):
    """A plain reward function (TRL's contract): the share of vowels in each completion."""
    return [sum(ch in "aeiou" for ch in c) / max(1, len(c)) for c in completions]


def _plain_reinforce_class():
    from grpo_bench.algorithm import Algorithm, seq_mean

    class PlainREINFORCE(Algorithm):
        """A plain algorithm class, not decorated: -(1/N) sum_i A_i mean_t logp."""

        def loss(self, batch, stats):
            stats.mean("plain_reinforce_adv_abs", batch.advantages.abs())
            return -(seq_mean(batch.logp, batch.mask) * batch.advantages).sum() / batch.num_completions

    return PlainREINFORCE


PLAIN_SUITE = """
[suite]
model = "tiny-random"
engine = "hf"
[train]
benchmark = "arith"
steps = 1
prompts_per_step = 2
group_size = 2
max_new_tokens = 6
mu = 1
rewards = ["vowel_share"]
[eval]
benchmarks = [{ name = "arith", limit = 2 }]
max_new_tokens = 6
[[variants]]
algorithm = "plain_reinforce"
"""
