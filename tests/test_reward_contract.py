"""TRL's reward contract beyond plain functions: async rewards, log_metric/log_extra, trainer_state."""

import time

import reward_fixtures as rf
from grpo_bench.scoring import RewardScorer


def _scorer(rewards, **kw):
    return RewardScorer(rewards, **({"timeout_s": 10.0} | kw))


def test_async_and_sync_rewards_mix_in_one_suite():
    scorer = _scorer({"digits": rf.digit_share, "length": rf.async_length}, weights={"length": 0.5})
    try:
        res = scorer.score(["p"] * 3, ["a1", "1234", "xyz"], {})
    finally:
        scorer.close()
    assert res.values["digits"] == [0.5, 1.0, 0.0]
    assert res.values["length"] == [2.0, 4.0, 3.0]
    assert res.totals == [0.5 + 1.0, 1.0 + 2.0, 0.0 + 1.5]
    assert res.count_summary()["length"] == {"ok": 3, "none": 0, "error": 0, "timeout": 0}


def test_async_rewards_of_a_batch_are_awaited_concurrently():
    """Two async rewards sleeping 1.5 s each take about 1.5 s together, not 3 s (one worker)."""
    scorer = _scorer({"a": rf.async_sleep_a, "b": rf.async_sleep_b}, workers=1)
    try:
        scorer.score(["p"], ["warm"], {})  # starts the worker
        t0 = time.monotonic()
        res = scorer.score(["p"] * 2, ["u", "v"], {})
        elapsed = time.monotonic() - t0
    finally:
        scorer.close()
    assert res.values == {"a": [1.0, 1.0], "b": [2.0, 2.0]}
    assert 1.5 <= elapsed < 2.9, elapsed


def test_async_rewards_get_the_same_timeout_and_error_handling():
    """A hanging async reward times out on its sample only, a raising one errors on its sample only, and
    the reward awaited beside them keeps every value."""
    scorer = _scorer({"hangs": rf.async_hangs_on_slow, "raises": rf.async_raises_on_x, "ok": rf.async_length},
                     timeout_s=1.0)
    try:
        t0 = time.monotonic()
        res = scorer.score(["p"] * 3, ["fine", "x", "slow"], {})
        elapsed = time.monotonic() - t0
    finally:
        scorer.close()
    assert elapsed < 20
    assert res.values["hangs"] == [0.25, 0.25, None]
    assert res.values["raises"] == [1.0, None, 1.0]
    assert res.values["ok"] == [4.0, 1.0, 4.0]
    kinds = sorted((p["reward"], p["index"], p["status"]) for p in res.problems)
    assert kinds == [("hangs", 2, "timeout"), ("raises", 1, "error")]
    assert any("async boom on x" in p["message"] for p in res.problems)


def test_async_reward_that_blocks_its_event_loop_is_stopped_by_the_worker_limit():
    scorer = _scorer({"blocks": rf.async_blocks_on_slow, "ok": rf.async_length}, timeout_s=1.0)
    try:
        res = scorer.score(["p"] * 2, ["fine", "slow"], {})
    finally:
        scorer.close()
    assert res.values["blocks"] == [0.5, None]
    assert res.counts["blocks"]["timeout"] == 1
    assert res.values["ok"] == [4.0, 4.0]  # retried one sample at a time after the whole call was stopped


def test_a_single_async_reward_and_an_inline_async_lambda_are_awaited():
    import asyncio

    async def local(prompts, completions, **kw):  # by value (cloudpickle)
        await asyncio.sleep(0)
        return [float(c == "yes") for c in completions]

    scorer = _scorer({"local": local})
    try:
        assert scorer.score(["p"] * 2, ["yes", "no"], {}).values["local"] == [1.0, 0.0]
    finally:
        scorer.close()


# ---- log_metric / log_extra in the scorer ----
def test_log_metric_and_log_extra_reach_the_score_result():
    scorer = _scorer({"kw": rf.logs_through_kwargs}, workers=2)
    try:
        res = scorer.score(["p"] * 3, ["a", "b", "c"], {})
    finally:
        scorer.close()
    assert res.metrics == {"from_kwargs": [2.0, 2.0]}  # one value per call: two chunks (two workers)
    assert res.extra == {"kw_column": ["k", "k", "k"]}
    scorer = _scorer({"bad": rf.log_extra_wrong_length}, workers=1)
    try:
        res = scorer.score(["p"] * 3, ["a", "b", "c"], {})
    finally:
        scorer.close()
    assert res.extra == {}
    assert res.counts["bad"]["error"] == 3  # a column of the wrong length is an error, never a shifted column
    assert "2 values for a call on 1 samples" in res.problems[0]["message"]


# ---- trainer: trainer_state, log_metric in the metrics row, samples.jsonl ----
def _train(tmp_path, rewards, steps=2, **cfg):
    from grpo_bench.config import TrainConfig
    from grpo_bench.io import read_jsonl
    from grpo_bench.models import eos_ids, load_policy
    from grpo_bench.plugins.algorithms.grpo import GRPO
    from grpo_bench.plugins.benchmarks.arith import Arith
    from grpo_bench.plugins.engines.hf import HFEngine
    from grpo_bench.training import Trainer

    model, tok = load_policy("tiny-random")
    bench = Arith("arith", (1,))
    scorer = RewardScorer(rewards, timeout_s=30)
    config = TrainConfig(**({"steps": steps, "prompts_per_step": 2, "group_size": 4, "max_new_tokens": 8,
                             "learning_rate": 1e-3, "mu": 1, "checkpoint_every": 1, "bf16_autocast": False,
                             "bf16_weights": False} | cfg))
    seen = []
    trainer = Trainer(model, tok, HFEngine(model, tok, eos_ids(model, tok)), GRPO(), scorer, bench,
                      bench.problems("train", 50), config, seed=0, run_dir=tmp_path, on_step=seen.append)
    try:
        rows = trainer.train()
    finally:
        scorer.close()
    return rows, seen, read_jsonl(tmp_path / "samples.jsonl")


def test_trainer_passes_state_logs_metrics_and_records_every_sample(tmp_path):
    import statistics

    from grpo_bench.execute.trackers import numeric

    rows, seen, samples = _train(tmp_path, {"digits": rf.logs_and_state, "kw": rf.logs_through_kwargs})
    assert [r["step"] for r in samples] == [0] * 8 + [1] * 8
    for row in rows:
        step_samples = [r for r in samples if r["step"] == row["step"]]
        # log_metric: the step's value is the mean the reward computed over the batch it was called on
        assert row["completion_chars_mean"] == sum(len(r["completion"]) for r in step_samples) / 8
        assert row["from_kwargs"] == 2.0
        assert row["log_metric/loss"] == 5.0 and row["loss"] != 5.0  # a built-in column is never replaced
        assert numeric(row)["completion_chars_mean"] == row["completion_chars_mean"]  # what every tracker logs
        assert [r["prompt_id"] for r in step_samples] == [pid for pid in row["problem_ids"] for _ in range(4)]
        for r in step_samples:
            text = r["completion"]
            assert r["rewards"]["digits"] == sum(ch.isdigit() for ch in text) / max(1, len(text))
            assert r["rewards"]["kw"] == 0.0 and r["total"] == r["rewards"]["digits"]
            assert r["extra"]["first_char"] == text[:1] and r["extra"]["kw_column"] == "k"
            # TrainerState: global_step, max_steps, epoch (2 prompts of 50 a step), samples a step,
            # epochs the run covers, save_steps (checkpoint_every), logging_steps
            assert r["extra"]["state"] == [row["step"], 2, row["step"] * 2 / 50, 8, 1, 1, 1]
        for g in range(2):  # GRPO's advantage (r - mean) / (sample std + 1e-4), worked independently
            group = step_samples[4 * g:4 * g + 4]
            totals = [r["total"] for r in group]
            mean, sd = statistics.mean(totals), statistics.stdev(totals)
            for r in group:
                assert abs(r["advantage"] - (r["total"] - mean) / (sd + 1e-4)) < 1e-4
    assert seen == rows
    assert any(r["advantage"] != 0 for r in samples)


def test_samples_file_cap_and_resume(tmp_path):
    from grpo_bench.io import read_jsonl, write_jsonl
    from grpo_bench.training.records import SampleLog

    log = SampleLog(tmp_path, steps=10, max_steps=3)  # every ceil(10/3) = 4th step
    assert [s for s in range(10) if log.due(s)] == [0, 4, 8]
    assert not any(SampleLog(tmp_path, 10, 0).due(s) for s in range(10))
    write_jsonl(log.path, [{"step": s} for s in (0, 4, 8)])
    log.start(5)  # resumed from the checkpoint after 5 steps: the rows of steps >= 5 will be written again
    assert read_jsonl(log.path) == [{"step": 0}, {"step": 4}]
    log.start(0)
    assert not log.path.exists()
    _, _, samples = _train(tmp_path / "run", {"digits": rf.digit_share}, steps=3, samples_max_steps=2)
    assert sorted({r["step"] for r in samples}) == [0, 2] and "extra" not in samples[0]


def test_html_report_links_the_samples_and_names_the_log_extra_columns(tmp_path):
    from grpo_bench.io import write_jsonl
    from grpo_bench.report.html import run_files

    run = tmp_path / "runs" / "grpo" / "seed0"
    write_jsonl(run / "samples.jsonl", [{"step": 0, "extra": {"judge": "ok", "first_char": "a"}}])
    (run / "metrics.jsonl").write_text("")
    assert run_files("runs/grpo/seed0", tmp_path, []) == [
        ("metrics", "runs/grpo/seed0/metrics.jsonl"),
        ("training samples (log_extra: first_char, judge)", "runs/grpo/seed0/samples.jsonl")]
    write_jsonl(run / "samples.jsonl", [{"step": 0}])
    assert ("training samples", "runs/grpo/seed0/samples.jsonl") in run_files("runs/grpo/seed0", tmp_path, [])


def test_samples_under_dynamic_sampling_are_the_trained_groups_of_every_draw(tmp_path):
    """With refill, a step's samples are the kept groups (from draws 0..k), each with its own draw's reward."""
    rows, _, samples = _train(tmp_path, {"odd": rf.odd_prompts_only}, steps=2, dynamic_sampling="refill",
                              max_draws=4)
    from grpo_bench.plugins.benchmarks.arith import Arith

    prompts = {p.id: p.prompt for p in Arith("arith", (1,)).problems("train", 50)}
    assert any(r["ds_draws"] > 1 for r in rows)
    for row in rows:
        step_samples = [r for r in samples if r["step"] == row["step"]]
        assert [r["prompt_id"] for r in step_samples] == [i for i in row["trained_problem_ids"] for _ in range(4)]
        for r in step_samples:  # the fixture's formula, recomputed from the recorded prompt and completion
            want = float(len(r["completion"]) % 2) if len(prompts[r["prompt_id"]]) % 2 else 0.0
            assert r["rewards"]["odd"] == want == r["total"]
