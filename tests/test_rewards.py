"""The reward layer: math_verify/format basics, and a scorer that survives raising, hanging and dying rewards."""

import threading
import time

import reward_fixtures
from grpo_bench.plugins.rewards.math_answer import (
    boxed_format,
    gsm8k_hash_answer,
    last_boxed,
    math_verify,
)
from grpo_bench.scoring import RewardScorer


def test_math_verify_basics():
    completions = ["so \\boxed{72}", "#### 1,234", "\\boxed{\\frac{1}{2}}", "\\boxed{71}", "no answer", "\\boxed{0.5}"]
    answers = ["72", "1234", "0.5", "72", "3", "\\frac12"]
    assert math_verify([""] * 6, completions, answer=answers) == [1.0, 1.0, 1.0, 0.0, 0.0, 1.0]


def test_math_verify_chat_completions_and_unparseable_gold():
    chat = [[{"role": "assistant", "content": "\\boxed{5}"}]]
    assert math_verify([""], chat, answer=["5"]) == [1.0]
    assert math_verify([""], ["\\boxed{5}"], answer=[""]) == [None]  # gold cannot be parsed: does not apply


def test_boxed_helpers():
    assert last_boxed("a \\boxed{1} b \\boxed{\\frac{2}{3}}") == "\\frac{2}{3}"
    assert last_boxed("\\boxed{unbalanced") is None
    assert gsm8k_hash_answer("blah #### 12,000") == "12000"
    assert boxed_format([""] * 2, ["\\boxed{3}", "3"]) == [1.0, 0.0]


def test_scorer_counts_errors_timeouts_nones_and_goes_on():
    scorer = RewardScorer(
        {"ok": reward_fixtures.none_on_skip, "raises": reward_fixtures.raises_on_x,
         "hangs": reward_fixtures.sleeps_on_slow, "text": reward_fixtures.returns_text},
        weights={"ok": 1.0, "raises": 2.0, "hangs": 4.0, "text": 8.0}, timeout_s=1.5, workers=2)
    try:
        t0 = time.monotonic()
        res = scorer.score(["p"] * 3, ["fine", "x skip", "slow"], {})
        elapsed = time.monotonic() - t0
    finally:
        scorer.close()
    assert elapsed < 10
    counts = res.count_summary()
    assert counts["ok"] == {"ok": 2, "none": 1, "error": 0, "timeout": 0}
    assert counts["raises"]["error"] == 1 and counts["hangs"]["timeout"] == 1 and counts["text"]["error"] == 3
    # totals: weighted sum of the values that are present
    assert res.totals == [1.0 + 2.0 + 4 * 0.5, 4 * 0.5, 1.0 + 2.0]
    kinds = {(p["reward"], p["index"], p["status"]) for p in res.problems}
    assert ("raises", 1, "error") in kinds and ("hangs", 2, "timeout") in kinds
    assert any("boom on x" in p["message"] for p in res.problems)


def test_worker_death_is_an_error_and_the_pool_recovers():
    scorer = RewardScorer({"dies": reward_fixtures.exits_process, "col": reward_fixtures.echo_answer_column},
                          timeout_s=5)
    try:
        res = scorer.score(["p", "q"], ["a", "b"], {"answer": ["3", "4"]})
        assert res.count_summary()["dies"]["error"] == 2
        assert res.values["col"] == [3.0, 4.0]
    finally:
        scorer.close()


def test_timeout_works_off_the_main_thread():
    out = {}

    def run():
        scorer = RewardScorer({"hangs": reward_fixtures.sleeps_on_slow}, timeout_s=1.0)
        try:
            out["res"] = scorer.score(["p"], ["slow"], {})
        finally:
            scorer.close()

    t = threading.Thread(target=run)
    t.start()
    t.join(30)
    assert not t.is_alive()
    assert out["res"].count_summary()["hangs"]["timeout"] == 1


def test_unpicklable_reward_runs_inline():
    scorer = RewardScorer({"lam": lambda prompts, completions, **kw: [len(c) for c in completions]})
    try:
        assert scorer.score(["p"], ["abc"], {}).totals == [3.0]
    finally:
        scorer.close()


def test_integer_answer():
    from grpo_bench.plugins.rewards.integer_answer import integer_answer

    completions = ["The answer is 10.", "8 + 2 = 11", "\\boxed{-36} but 5", "so 1,234 it is", "no number", "12"]
    answers = ["10", "10", "-36", "1234", "3", "x"]
    assert integer_answer([""] * 6, completions, answer=answers) == [1.0, 0.0, 1.0, 1.0, 0.0, None]
