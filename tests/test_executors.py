"""Executors and shared results folders: the Ray executor gives the very numbers of the local one,
shards split the grid, run locks keep two processes off one run, and a suite may grow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from grpo_bench.config import load_suite
from grpo_bench.errors import UserError
from grpo_bench.execute import LocalExecutor, make_plan, run_suite
from grpo_bench.execute.locks import run_lock
from grpo_bench.execute.plan import parse_shard, stamp
from grpo_bench.registry import default_registry

SUITE_TEXT = """
[suite]
name = "grid"
model = "tiny-random"
engine = "hf"
seeds = [0, 1]
resources = { cpus = 1, gpus = 0 }

[train]
benchmark = "arith"
steps = 2
prompts_per_step = 2
group_size = 4
max_new_tokens = 8
learning_rate = 1e-3
mu = 2
checkpoint_every = 1
rewards = ["distinct_chars"]

[eval]
benchmarks = [{ name = "arith", split = "test", limit = 4 }]
max_new_tokens = 8
samples = 2

[[variants]]
algorithm = "grpo"

[[variants]]
algorithm = "tic_grpo"
"""

TIMING = ("_s", "per_s", "wall", "elapsed", "throughput", "time")


def numbers(obj, prefix=""):
    """Every numeric leaf of a JSON value by its path, timings left out."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if not any(t in str(k) for t in TIMING):
                out.update(numbers(v, f"{prefix}.{k}"))
        return out
    if isinstance(obj, list):
        out = {}
        for i, v in enumerate(obj):
            out.update(numbers(v, f"{prefix}[{i}]"))
        return out
    return {prefix: obj} if isinstance(obj, (int, float)) and not isinstance(obj, bool) else {}


def run_numbers(run_dir: Path) -> dict:
    out = {}
    metrics = run_dir / "metrics.jsonl"
    if metrics.exists():
        out.update(numbers([json.loads(line) for line in metrics.read_text().splitlines()], "metrics"))
    for f in sorted((run_dir / "eval").glob("*.json")):
        out.update(numbers(json.loads(f.read_text()), f.name))
    for f in sorted((run_dir / "eval").glob("*.records.jsonl")):
        out.update(numbers([json.loads(line) for line in f.read_text().splitlines()], f.name))
    out.update(numbers({k: v for k, v in json.loads((run_dir / "summary.json").read_text()).items()
                        if k in ("train", "eval")}, "summary"))
    return out


#: a third-party reward plugin, installed the way pip would (a dist-info with an entry point): dense
#: on the random test model (distinct characters / 12), so the runs really train and the Ray runs'
#: updates are compared, not only their sampling
DENSE_PLUGIN = """
from grpo_bench import hookimpl

def distinct_chars(prompts, completions, **kwargs):
    return [min(1.0, len(set(c)) / 12) for c in completions]

@hookimpl
def grpo_bench_rewards():
    return {"distinct_chars": distinct_chars}
"""


@pytest.fixture
def suite_file(tmp_path, monkeypatch) -> Path:
    from test_plugins import make_dist

    site = tmp_path / "site"
    make_dist(site, "dense-plug", "dense_plug", DENSE_PLUGIN)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    default_registry.cache_clear()  # the process-wide registry is built once: rebuild it with the plugin
    path = tmp_path / "grid.toml"
    path.write_text(SUITE_TEXT)
    yield path
    default_registry.cache_clear()


@pytest.mark.slow
def test_ray_executor_equals_local(suite_file, tmp_path):
    ray = pytest.importorskip("ray")
    from grpo_bench.execute.ray_executor import RayExecutor

    registry = default_registry()
    suite = load_suite(suite_file, registry)
    local = run_suite(suite, registry, tmp_path / "local", executor=LocalExecutor())
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {k: v for k, v in os.environ.items()
                                       if k.startswith(("HF_", "GRPO_BENCH_", "PYTHONPATH"))}})
    try:
        outcomes = []
        remote = run_suite(suite, registry, tmp_path / "ray", executor=RayExecutor(), outcomes=outcomes)
    finally:
        ray.shutdown()
    assert [o.status for o in outcomes] == ["ran"] * 5
    runs = sorted(p.relative_to(local) for p in (local / "runs").glob("*/seed*"))
    assert [str(r) for r in runs] == ["runs/base/seed0", "runs/grpo/seed0", "runs/grpo/seed1",
                                      "runs/tic_grpo/seed0", "runs/tic_grpo/seed1"]
    for rel in runs:
        a, b = run_numbers(local / rel), run_numbers(remote / rel)
        assert a and a.keys() == b.keys(), rel
        # float32 matrix products are not bitwise reproducible across processes (thread partition, memory
        # alignment): equal to rounding, and counts, token ids and rewards exactly
        assert a == pytest.approx(b, rel=1e-5, abs=1e-7), (rel, {k: (a[k], b[k]) for k in a if a[k] != b[k]})
        assert {k for k in a if a[k] != b[k]} <= {k for k in a if isinstance(a[k], float)}, rel
    for rel in runs:  # side by side, for the record (pytest -s)
        a, b = (json.loads((root / rel / "summary.json").read_text()) for root in (local, remote))
        print(f"{rel}: pass@1 local {a['eval']['arith-test']['pass@1']} ray {b['eval']['arith-test']['pass@1']}; "
              f"reward curve local {a['train'].get('reward_curve')} ray {b['train'].get('reward_curve')}; "
              f"{len(run_numbers(local / rel))} numbers equal")
    # the comparison is not vacuous: the runs trained (non-zero gradients and rewards that vary)
    # and differ from each other
    for rel in runs[1:]:
        rows = [json.loads(line) for line in (local / rel / "metrics.jsonl").read_text().splitlines()]
        assert all(r["grad_norm"] > 0 for r in rows), rel
        assert len({r["reward_mean"] for r in rows} | {r["reward_std"] for r in rows}) > 1, rel
    assert run_numbers(local / "runs/grpo/seed0") != run_numbers(local / "runs/grpo/seed1")


def test_ray_failed_task_is_reported_and_others_finish(suite_file, tmp_path):
    ray = pytest.importorskip("ray")
    from grpo_bench.execute.executors import RunsFailed
    from grpo_bench.execute.ray_executor import RayExecutor

    registry = default_registry()
    suite = load_suite(suite_file, registry)
    suite = replace(suite, suite=replace(suite.suite, seeds=[0]),
                    variants=[replace(suite.variants[0], options={"eps_low": -5.0})])  # fails when built
    suite.eval.benchmarks[0].limit = 2
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        with pytest.raises(RunsFailed, match=r"1 of 2 runs failed.*grpo/seed0: failed: \w+"):
            run_suite(suite, registry, tmp_path, executor=RayExecutor())
    finally:
        ray.shutdown()
    assert (tmp_path / "grid" / "runs" / "base" / "seed0" / "summary.json").exists()
    assert not (tmp_path / "grid" / "runs" / "grpo" / "seed0" / "summary.json").exists()


def test_shards_partition_the_grid(suite_file):
    registry = default_registry()
    suite = load_suite(suite_file, registry)
    full = make_plan(suite, registry, Path("/nonexistent")).runs
    shards = [make_plan(suite, registry, Path("/nonexistent"), shard=(i, 3)).runs for i in range(3)]
    assert {r for s in shards for r in s} == set(full) and sum(map(len, shards)) == len(full) == 5
    assert shards[0][0].variant is None and all(r.variant for s in shards[1:] for r in s)  # base once, in shard 0
    assert [make_plan(suite, registry, Path("/x"), shard=(1, 3)).runs for _ in range(2)] == [shards[1]] * 2
    for bad in ("3/3", "x/2", "1", "-1/2", "0/0"):
        with pytest.raises(UserError, match="--shard"):
            parse_shard(bad)


def test_plan_is_seed_major(suite_file):
    """Base first, then every variant at the first seed before any variant at the next: a run cut short leaves
    complete paired sets (the grid has 2 variants x 2 seeds)."""
    registry = default_registry()
    runs = make_plan(load_suite(suite_file, registry), registry, Path("/nonexistent")).runs
    assert [(r.variant is None, r.seed) for r in runs] == [(True, 0), (False, 0), (False, 0), (False, 1), (False, 1)]
    assert runs[1].variant != runs[2].variant and {runs[1].variant, runs[2].variant} == {runs[3].variant, runs[4].variant}


def test_run_lock_excludes_another_process(tmp_path):
    probe = ("import sys; from pathlib import Path; from grpo_bench.execute.locks import run_lock\n"
             "with run_lock(Path(sys.argv[1])) as owned: print(owned)")
    with run_lock(tmp_path) as owned:
        assert owned
        other = subprocess.run([sys.executable, "-c", probe, str(tmp_path)], capture_output=True, text=True)
        assert other.stdout.strip() == "False", other.stderr
    other = subprocess.run([sys.executable, "-c", probe, str(tmp_path)], capture_output=True, text=True)
    assert other.stdout.strip() == "True", other.stderr


@pytest.mark.slow
def test_two_processes_on_one_folder_never_train_one_run_twice(suite_file, tmp_path):
    """Two `grpo-bench run` on one results folder (no shards): every run is trained once, by one of them;
    its metrics have each step once, in order; `grpo-bench leaderboard` then finalises."""
    text = suite_file.read_text().replace("steps = 2", "steps = 3")
    suite_file.write_text(text)
    cmd = [sys.executable, "-m", "grpo_bench.cli", "run", str(suite_file), "--results-dir", str(tmp_path)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=900) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    res = tmp_path / "grid"
    trained = {}
    for run in ("grpo/seed0", "grpo/seed1", "tic_grpo/seed0", "tic_grpo/seed1"):
        rows = [json.loads(line) for line in (res / "runs" / run / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in rows] == [0, 1, 2], (run, [r["step"] for r in rows])
        trained[run] = json.loads((res / "runs" / run / "summary.json").read_text())["train"]["samples"]
    assert set(trained.values()) == {3 * 2 * 4}  # 3 steps x 2 prompts x G = 4, counted once
    skipped = "".join(o[0] for o in outs).count("(another process owns it)")
    lb = subprocess.run([sys.executable, "-m", "grpo_bench.cli", "leaderboard", str(res)], capture_output=True,
                        text=True)
    assert lb.returncode == 0 and "| tic_grpo |" in lb.stdout, lb.stderr[-2000:]
    print(f"runs skipped because the other process owned them: {skipped}")


def test_suite_grows_and_refuses_a_redefined_variant(suite_file, tmp_path):
    registry = default_registry()
    small = load_suite(suite_file, registry)
    small = replace(small, suite=replace(small.suite, seeds=[0]), variants=small.variants[:1])
    plan = make_plan(small, registry, tmp_path)
    stamp(plan)
    for spec in plan.runs:  # as if finished: the summary records the config it was run with
        spec.run_dir(plan.out).mkdir(parents=True)
        (spec.run_dir(plan.out) / "summary.json").write_text(json.dumps(plan.record))
    grown = load_suite(suite_file, registry)  # a second seed and a second variant
    big = make_plan(grown, registry, tmp_path)
    stamp(big)  # same shared hash: accepted
    assert big.record["config_hash"] == plan.record["config_hash"]
    assert [(r.name, r.seed) for r in big.pending()] == [("tic_grpo", 0), ("grpo", 1), ("tic_grpo", 1)]  # seed-major
    changed = replace(grown, variants=[replace(grown.variants[0], options={"eps_low": 0.1})] + grown.variants[1:])
    with pytest.raises(UserError, match=r"runs/grpo/seed0 was trained with variant 'grpo'") as exc:
        stamp(make_plan(changed, registry, tmp_path))
    assert "\n" not in str(exc.value)
    other = replace(grown, train=replace(grown.train, steps=3))  # a shared setting: a different suite
    with pytest.raises(UserError, match="different configuration"):
        stamp(make_plan(other, registry, tmp_path))
