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
