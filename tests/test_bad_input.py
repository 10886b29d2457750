"""Bad input at run time: rewards returning non-numbers or non-finite values, dead reward workers,
non-finite JSON, a full disk, too many reward failures in a step, a non-finite loss. Each gives one
clear line (a UserError) or an "error" sample, and nothing non-finite reaches the optimiser."""

import errno
import json
import math

import numpy as np
import pytest
import reward_fixtures
import torch
from grpo_bench import io
from grpo_bench.config import TrainConfig
from grpo_bench.errors import UserError
from grpo_bench.models import eos_ids, load_policy
from grpo_bench.plugins.algorithms.grpo import GRPO
from grpo_bench.plugins.benchmarks.arith import Arith
from grpo_bench.plugins.engines.hf import HFEngine
from grpo_bench.scoring import RewardScorer
from grpo_bench.scoring.isolation import WorkerPool
from grpo_bench.scoring.scorer import MAX_ABS_REWARD, as_score
from grpo_bench.training import Trainer
from grpo_bench.training.trainer import TrainingStopped


# ---- reward values ----------------------------------------------------------------------------------
@pytest.mark.parametrize("value,status,expected", [
    (1, "ok", 1.0), (0.25, "ok", 0.25), (-3, "ok", -3.0), (np.float32(0.5), "ok", 0.5), (np.float64(2.0), "ok", 2.0),
    (np.int64(3), "ok", 3.0), (MAX_ABS_REWARD, "ok", MAX_ABS_REWARD), (None, "none", None),
    ("1.0", "error", None), (b"1", "error", None), (True, "error", None), (np.bool_(False), "error", None),
    (float("nan"), "error", None), (float("inf"), "error", None), (float("-inf"), "error", None),
    (1e308, "error", None), (-2 * MAX_ABS_REWARD, "error", None), ([1.0], "error", None),
    (torch.tensor(0.5), "error", None), (1 + 0j, "error", None),
])
def test_as_score(value, status, expected):
    got_status, got_value, message = as_score(value)
    assert (got_status, got_value) == (status, expected)
    assert bool(message) == (status == "error")


@pytest.mark.parametrize("fn,needle", [
    (reward_fixtures.returns_nan, "returned nan"), (reward_fixtures.returns_inf, "returned -inf"),
    (reward_fixtures.returns_huge, "returned 1e+308"), (reward_fixtures.returns_str_number, "returned str '1.0'"),
    (reward_fixtures.returns_bool, "returned bool True"),
])
def test_non_numbers_and_non_finite_rewards_are_errors_not_scores(fn, needle):
    scorer = RewardScorer({"bad": fn, "good": reward_fixtures.digit_share}, weights={"bad": 1e6}, timeout_s=20)
    try:
        res = scorer.score(["p", "p"], ["12", "ab"])
    finally:
        scorer.close()
    assert res.values["bad"] == [None, None]
    assert res.counts["bad"]["error"] == 2
    assert all(needle in p["message"] for p in res.problems)
    assert res.totals == [1.0, 0.0]  # only the good reward's values: finite
    assert all(math.isfinite(t) for t in res.totals)


def test_numpy_float_is_a_score():
    scorer = RewardScorer({"np": reward_fixtures.returns_numpy}, timeout_s=20)
    try:
        res = scorer.score(["p"], ["x"])
    finally:
        scorer.close()
    assert res.values["np"] == [0.5] and res.counts["np"]["ok"] == 1


# ---- dead workers -----------------------------------------------------------------------------------
def test_worker_killed_between_calls_is_replaced():
    with WorkerPool(workers=2, timeout_s=20) as pool:
        first = pool.run([(reward_fixtures.digit_share, (["p"], ["1a"]), {}) for _ in range(2)])
        assert [o.status for o in first] == ["ok", "ok"]
        for w in pool._workers:  # killed from outside while idle
            w.proc.kill()
            w.proc.wait(5)
        again = pool.run([(reward_fixtures.digit_share, (["p"], ["1a"]), {}) for _ in range(3)])
        assert [o.status for o in again] == ["ok"] * 3 and again[0].value == [0.5]
        assert all(w.proc.poll() is None for w in pool._workers) and len(pool._workers) == 2


def test_worker_that_exits_in_a_call_does_not_break_the_next_score():
    scorer = RewardScorer({"exit": reward_fixtures.exits_on_x}, timeout_s=20)
    try:
        res = scorer.score(["p"], ["x"])
        assert res.counts["exit"]["error"] == 1 and "worker process died" in res.problems[0]["message"]
        assert scorer.score(["p", "p"], ["1", "2"]).values["exit"] == [1.0, 1.0]  # the same pool, next call
    finally:
        scorer.close()


# ---- files ------------------------------------------------------------------------------------------
def test_json_is_strict_and_non_finite_becomes_null(tmp_path):
    row = {"a": float("nan"), "b": [float("inf"), 1.5], "c": {"d": float("-inf")}, "e": 2}
    io.atomic_write_json(tmp_path / "x.json", row)
    io.append_jsonl(tmp_path / "m.jsonl", row)
    io.write_jsonl(tmp_path / "w.jsonl", [row])
    expected = {"a": None, "b": [None, 1.5], "c": {"d": None}, "e": 2}

    def strict(text):
        return json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))

    assert strict((tmp_path / "x.json").read_text()) == expected
    assert strict((tmp_path / "m.jsonl").read_text()) == expected
    assert strict((tmp_path / "w.jsonl").read_text()) == expected


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_disk_full_atomic_write_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "summary.json"
    io.atomic_write_json(path, {"old": 1})
    monkeypatch.setattr(io.os, "fsync", _enospc)
    with pytest.raises(UserError, match=f"^disk full: {path}$"):
        io.atomic_write_json(path, {"new": 2})
    assert json.loads(path.read_text()) == {"old": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]  # no temporary file left


def test_disk_full_append_keeps_whole_rows(tmp_path, monkeypatch):
    path = tmp_path / "metrics.jsonl"
    io.append_jsonl(path, {"step": 0})
    monkeypatch.setattr(io.os, "fsync", _enospc)
    with pytest.raises(UserError, match=f"^disk full: {path}$"):
        io.append_jsonl(path, {"step": 1})
    assert io.read_jsonl(path) == [{"step": 0}] and path.read_text() == '{"step": 0}\n'


def test_other_os_errors_are_not_called_disk_full(tmp_path, monkeypatch):
    def eio(*a):
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(io.os, "fsync", eio)
    with pytest.raises(OSError) as info:
        io.atomic_write_text(tmp_path / "x", "y")
    assert not isinstance(info.value, UserError)


# ---- the trainer stops ------------------------------------------------------------------------------
def make_trainer(tmp_path, rewards, algo=None, **cfg):
    model, tok = load_policy("tiny-random")
    bench = Arith("arith", (1,))
    scorer = RewardScorer(rewards, timeout_s=20)
    cfg = TrainConfig(**{"steps": 2, "prompts_per_step": 2, "group_size": 4, "max_new_tokens": 6,
                         "learning_rate": 1e-2, "micro_batch_size": 4, "checkpoint_every": 1} | cfg)
    trainer = Trainer(model, tok, HFEngine(model, tok, eos_ids(model, tok)), algo or GRPO(), scorer, bench,
                      bench.problems("train", 20), cfg, seed=0, run_dir=tmp_path)
    return trainer, scorer, model


def test_reward_failing_on_most_samples_stops_the_run(tmp_path):
    trainer, scorer, model = make_trainer(tmp_path, {"digits": reward_fixtures.digit_share,
                                                     "broken": reward_fixtures.always_raises})
    before = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        with pytest.raises(TrainingStopped) as info:
            trainer.train()
    finally:
        scorer.close()
    msg = str(info.value)
    assert "\n" not in msg and isinstance(info.value, UserError)
    assert msg.startswith("step 0: reward 'broken' failed on 8/8 samples")
    assert "max_reward_error_frac = 0.5" in msg and "always broken" in msg
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # nothing applied
    assert not (tmp_path / "metrics.jsonl").exists() and not (tmp_path / "checkpoint").exists()
    assert io.read_jsonl(tmp_path / "reward_errors.jsonl")[0]["step"] == 0
    # resuming (the reward fixed) starts again at step 0 and keeps no rows of the step that will run again
    trainer2, scorer2, _ = make_trainer(tmp_path, {"digits": reward_fixtures.digit_share}, steps=1)
    try:
        rows = trainer2.train()
    finally:
        scorer2.close()
    assert [r["step"] for r in rows] == [0] and not (tmp_path / "reward_errors.jsonl").exists()


def test_failure_share_at_the_limit_does_not_stop(tmp_path):
    # max_reward_error_frac = 1.0: a reward that always fails is tolerated (its samples are left out of the total)
    trainer, scorer, _ = make_trainer(tmp_path, {"digits": reward_fixtures.digit_share,
                                                 "broken": reward_fixtures.always_raises},
                                      steps=1, max_reward_error_frac=1.0)
    try:
        rows = trainer.train()
    finally:
        scorer.close()
    assert len(rows) == 1 and rows[0]["reward_error/broken"] == 8


class NaNLossGRPO(GRPO):
    """GRPO whose loss turns NaN at the second step (a stand-in for a numerically broken algorithm)."""

    def loss(self, batch, stats):
        loss = super().loss(batch, stats)
        return loss * float("nan") if self.calls_done else loss

    calls_done = 0


def test_non_finite_loss_stops_before_the_optimiser(tmp_path):
    algo = NaNLossGRPO()
    trainer, scorer, model = make_trainer(tmp_path, {"digits": reward_fixtures.digit_share}, algo=algo)
    trainer.step(0)  # a normal step, then the loss turns NaN
    trainer.save_checkpoint(1, 0.0)
    algo.calls_done = 1
    before = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        with pytest.raises(TrainingStopped, match=r"^step 1: loss is not finite \(nan\)"):
            trainer.step(1)
    finally:
        scorer.close()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(torch.isfinite(v).all() for v in model.state_dict().values())


STOPPING_SUITE = '''
[suite]
model = "tiny-random"
engine = "hf"
[train]
benchmark = "arith"
steps = 2
prompts_per_step = 2
group_size = 2
max_new_tokens = 4
reward_timeout_s = 0.001
checkpoint_every = 1
[eval]
benchmarks = [{ name = "arith", limit = 2 }]
[[variants]]
algorithm = "grpo"
'''


def test_cli_run_stops_on_reward_timeouts_with_one_line_and_is_not_finished(tmp_path, capsys):
    from grpo_bench.cli import main

    path = tmp_path / "stop.toml"
    path.write_text(STOPPING_SUITE)
    results = tmp_path / "results"
    assert main(["run", str(path), "--results-dir", str(results), "--variant", "grpo"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("grpo-bench: error")]
    assert err == ["grpo-bench: error: step 0: reward 'math_verify' failed on 4/4 samples (0 errors, 4 timeouts; "
                   "more than train.max_reward_error_frac = 0.5); first timeout: exceeded 0.001 s; run stopped, "
                   "resumable"]
    run = results / "stop" / "runs" / "grpo" / "seed0"
    assert not (run / "summary.json").exists() and not (run / "metrics.jsonl").exists()
    assert io.read_jsonl(run / "reward_errors.jsonl")[0]["problems"][0]["status"] == "timeout"


@pytest.mark.parametrize("args,needle", [
    (["--max-new-tokens", "-1"], "--max-new-tokens: must be >= 1"),
    (["--batch-size", "0"], "--batch-size: must be >= 1"),
    (["--samples", "-2"], "--samples: must be in [0, 1024]"),
    (["--temperature", "nan"], "--temperature: must be a finite number > 0"),
    (["--temperature", "inf"], "--temperature: must be a finite number > 0"),
    (["--seed", "-1"], "--seed: must be in [0,"),
    (["--limit", "-3"], "--limit: must be >= 0"),
    (["--device", "tpu7"], "--device: unknown device 'tpu7'"),
    (["--model", "/nonexistent/model"], "model '/nonexistent/model': not a local folder"),
])
def test_cli_eval_refuses_bad_settings(tmp_path, capsys, args, needle):
    from grpo_bench.cli import main

    argv = ["eval", "--model", "tiny-random", "--benchmark", "arith", "--engine", "hf",
            "--out", str(tmp_path / "out" / "s.json"), *args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("options,needle", [
    ({"eps_low": float("nan")}, "option 'eps_low' must be a finite number"),
    ({"beta": float("inf")}, "option 'beta' must be a finite number"),
    ({"delta": 0.0}, "option 'delta' must be > 0"),
    ({"delta": -1e-4}, "option 'delta' must be > 0"),
])
def test_algorithm_options_are_finite_when_built_in_code(options, needle):
    with pytest.raises(UserError, match=needle):
        GRPO(**options)
