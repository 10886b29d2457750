"""Scoring: every reward of a step called in isolated, time-limited workers (the contract is in
:mod:`grpo_bench.rewards`)."""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

from ..rewards import STATUSES, completion_text
from .isolation import WorkerPool

log = logging.getLogger(__name__)


def call_one(fn: Callable, prompt: Any, completion: Any, columns: dict[str, Any]) -> Any:
    """Call a batch-contract reward on a single sample (runs inside the worker)."""
    out = fn([prompt], [completion], **{k: [v] for k, v in columns.items()})
    if not isinstance(out, (list, tuple)) or len(out) != 1:
        raise TypeError(f"reward must return a list with one value per sample, got {out!r:.80}")
    return out[0]


@dataclass
class ScoreResult:
    totals: list[float]
    values: dict[str, list[float | None]]
    counts: dict[str, Counter]
    problems: list[dict] = field(default_factory=list)  # one row per error/timeout, with the sample

    def count_summary(self) -> dict[str, dict[str, int]]:
        return {name: {s: c.get(s, 0) for s in STATUSES} for name, c in self.counts.items()}


class RewardScorer:
    """Scores batches with named reward functions, isolated and time-limited per sample."""

    def __init__(
        self,
        rewards: dict[str, Callable],
        weights: dict[str, float] | None = None,
        timeout_s: float = 10.0,
        workers: int = 1,
        missing_total: float = 0.0,
    ):
        self.rewards = dict(rewards)
        self.weights = {name: 1.0 for name in rewards} | (weights or {})
        self.missing_total = missing_total
        self.pool = WorkerPool(workers=workers, timeout_s=timeout_s)

    def score(self, prompts: list, completions: list, columns: dict[str, list] | None = None) -> ScoreResult:
        columns = columns or {}
        n = len(completions)
        values: dict[str, list[float | None]] = {}
        counts: dict[str, Counter] = {}
        problems: list[dict] = []
        for name, fn in self.rewards.items():
            calls = [
                (call_one, (fn, prompts[i], completions[i], {k: v[i] for k, v in columns.items()}), {})
                for i in range(n)
            ]
            outcomes = self.pool.run(calls)
            vals: list[float | None] = []
            counter: Counter = Counter()
            for i, oc in enumerate(outcomes):
                status, value, message = oc.status, oc.value, oc.message
                if status == "ok" and value is not None:
                    try:
                        value = float(value)
                        if math.isnan(value):
                            raise ValueError("NaN")
                    except (TypeError, ValueError):
                        status, message = "error", f"returned a non-number: {value!r:.80}"
                if status == "ok" and value is None:
                    status = "none"
                counter[status] += 1
                if status in ("error", "timeout"):
                    row = {"reward": name, "index": i, "status": status, "message": message,
                           "completion": completion_text(completions[i])[:2000]}
                    problems.append(row)
                    log.warning("reward %s %s on sample %d: %s", name, status, i, message)
                    value = None
                vals.append(value if status == "ok" else None)
            values[name] = vals
            counts[name] = counter
        totals = []
        for i in range(n):
            present = [(self.weights[k], v[i]) for k, v in values.items() if v[i] is not None]
            totals.append(sum(w * x for w, x in present) if present else self.missing_total)
        return ScoreResult(totals, values, counts, problems)

    def close(self) -> None:
        self.pool.close()
