"""TRL's documented example rewards, unchanged, called by the harness's scorer as TRL calls them."""

import trl_doc_rewards as trl
from grpo_bench.benchmark import reward_columns
from grpo_bench.plugins.benchmarks.arith import Arith
from grpo_bench.rewards import TrainerState
from grpo_bench.scoring import RewardScorer


class ChatArith(Arith):
    conversational = True


def _score(fn, bench, problems, texts, ids=None, state=None, workers=1):
    scorer = RewardScorer({"r": fn}, timeout_s=20, workers=workers)
    try:
        return scorer.score(bench.reward_prompts(problems), bench.reward_completions(texts),
                            reward_columns(problems), ids, state)
    finally:
        scorer.close()


def test_trl_examples_standard_format():
    bench = Arith("arith", (1, 2, 3))
    problems = bench.problems("test", 3)
    golds = [p.answer for p in problems]
    texts = ["a" * 20, "abc", "x" * 25]
    res = _score(trl.reward_len, bench, problems, texts, workers=2)
    assert res.values["r"] == [0.0, -17.0, -5.0]
    texts = [f"so \\boxed{{{golds[0]}}}", "\\boxed{-999}", "no box"]
    assert _score(trl.reward_func, bench, problems, texts).values["r"] == [1.0, 0.0, 0.0]


def test_trl_examples_conversational_format():
    bench = ChatArith("arith", (1, 2, 3))
    problems = bench.problems("test", 3)
    prompts = bench.reward_prompts(problems)
    assert prompts[0][-1] == {"role": "user", "content": problems[0].prompt}
    golds = [p.answer for p in problems]
    texts = [f"<think>easy</think><answer>{golds[0]}</answer>", "just text", "<answer>1</answer>"]
    assert _score(trl.format_reward_func, bench, problems, texts).values["r"] == [1.0, 0.0, 0.0]
    texts = [f"It is $\\boxed{{{golds[0]}}}$.", "It is $\\boxed{-999}$.", f"$\\boxed{{{golds[2]}}}$"]
    res = _score(trl.accuracy_reward, bench, problems, texts)
    assert res.values["r"] == [1.0, 0.0, 1.0]
    assert res.count_summary()["r"] == {"ok": 3, "none": 0, "error": 0, "timeout": 0}


def test_completion_ids_and_trainer_state_arrive():
    bench = Arith("arith", (1,))
    problems = bench.problems("test", 2)
    res = _score(trl.uses_state_and_ids, bench, problems, ["a", "bb"], [[1, 2, 3], [4]], TrainerState(global_step=7, max_steps=10, epoch=0.5))
    assert res.values["r"] == [7.03, 7.01]


def test_positional_only_reward_fails_visibly_on_every_sample():
    """An old-style reward taking (prompts, completions) positionally still works by keyword; one
    taking a missing column fails on every sample: counted as errors, never a silent 0."""
    bench = Arith("arith", (1,))
    problems = bench.problems("test", 4)
    res = _score(trl.accuracy_reward, bench, problems, ["\\boxed{1}"] * 4)  # standard format: c[0]["content"] fails
    assert res.count_summary()["r"]["error"] == 4
    assert len(res.problems) == 4 and all("TypeError" in p["message"] or "string indices" in p["message"]
                                          for p in res.problems)
