"""Evaluation: greedy pass@1 and sampled mean@k on a benchmark split, with per-problem records."""

from __future__ import annotations

import time

from ..benchmark import Benchmark, prompt_token_ids, reward_columns
from ..config.schema import EvalConfig
from ..engine import RolloutEngine, SamplingConfig
from ..rewards import TrainerState
from ..scoring import RewardScorer
from .estimators import pass_at_k


def _correct(scorer: RewardScorer, reward: str, benchmark: Benchmark, prompts, outputs, columns,
             state: TrainerState | None) -> tuple[list[bool], dict]:
    result = scorer.score(prompts, benchmark.reward_completions([c.text for c in outputs]), columns,
                          [list(c.token_ids) for c in outputs], state)
    return [v == 1.0 for v in result.values[reward]], result.count_summary()[reward]


def evaluate(engine: RolloutEngine, tokenizer, benchmark: Benchmark, split: str, limit: int | None,
             scorer: RewardScorer, cfg: EvalConfig, trainer_state: TrainerState | None = None) -> tuple[dict, list[dict]]:
    """Returns (summary, per-problem records). Correct means the eval reward returned 1.0.
    ``trainer_state`` is passed to the reward (default: a state at step 0)."""
    state = trainer_state or TrainerState()
    t0 = time.perf_counter()
    problems = benchmark.problems(split, limit)
    reward = benchmark.eval_reward
    ids = [prompt_token_ids(tokenizer, benchmark, p) for p in problems]
    columns = reward_columns(problems)
    prompts = benchmark.reward_prompts(problems)
    greedy = engine.generate(ids, SamplingConfig(cfg.max_new_tokens, 0.0, 1, cfg.seed, cfg.batch_size),
                             progress=f"eval {benchmark.name} greedy")
    texts = [g[0].text for g in greedy]
    correct, counts = _correct(scorer, reward, benchmark, prompts, [g[0] for g in greedy], columns, state)
    records = [
        {"id": p.id, "prompt": p.prompt, "answer": p.answer, "completion": t, "correct": c, "tokens": len(g[0].token_ids),
         "finished": g[0].finished}
        for p, t, c, g in zip(problems, texts, correct, greedy)
    ]
    gen_tokens = sum(len(g[0].token_ids) for g in greedy)
    summary = {
        "benchmark": benchmark.name, "split": split, "n": len(problems),
        "pass@1": sum(correct) / len(problems),
        "response_length_mean": gen_tokens / len(problems),
        "truncated_frac": sum(not g[0].finished for g in greedy) / len(problems),
        "reward_counts": counts,
    }
    if cfg.samples > 0:
        sampled = engine.generate(ids, SamplingConfig(cfg.max_new_tokens, cfg.temperature, cfg.samples, cfg.seed,
                                                      cfg.batch_size), progress=f"eval {benchmark.name} sampled")
        flat_outputs = [c for group in sampled for c in group]
        flat_cols = {k: [v for v in vals for _ in range(cfg.samples)] for k, vals in columns.items()}
        flat_prompts = [p for p in prompts for _ in range(cfg.samples)]
        ok, _ = _correct(scorer, reward, benchmark, flat_prompts, flat_outputs, flat_cols, state)
        for i, rec in enumerate(records):
            rec["sample_correct"] = ok[i * cfg.samples:(i + 1) * cfg.samples]
        summary[f"mean@{cfg.samples}"] = sum(ok) / len(ok)
        for k in sorted({1, cfg.samples}):  # unbiased pass@k from the k samples (Chen et al. 2021)
            summary[f"pass@{k} (sampled)"] = sum(
                pass_at_k(cfg.samples, sum(r["sample_correct"]), k) for r in records) / len(records)
        gen_tokens += sum(len(c.token_ids) for group in sampled for c in group)
    summary["generated_tokens"] = gen_tokens
    summary["wall_s"] = time.perf_counter() - t0
    summary["benchmark_spec"] = benchmark.describe()
    return summary, records
