"""The reward contract and the scoring layer that never hangs and never lies.

Contract (the same as TRL's reward functions, so theirs plug in unchanged)::

    def my_reward(prompts, completions, **dataset_columns) -> list[float | None]:
        ...

``prompts`` and ``completions`` are lists of strings (or, for chat data, lists of
``{"role", "content"}`` messages); every column of the dataset row arrives as a keyword argument
holding one value per sample (e.g. ``answer=["72", "5"]``). Return one float per sample, or
``None`` where the reward does not apply. Accept ``**kwargs`` so new columns do not break you.

Worked example::

    def ends_politely(prompts, completions, **kwargs):
        return [1.0 if c.rstrip().endswith("Thanks!") else 0.0 for c in completions]

    ends_politely(["Hi"], ["Sure. Thanks!"])   # -> [1.0]

:class:`RewardScorer` calls each reward once per sample in a worker process with a wall-clock
limit. A call that raises, times out, or returns something that is not a number or ``None`` is
an *error*: counted per reward, logged with its sample, and scored as ``None`` for that
function. A sample's total is the weighted sum of the values that are not ``None``; a sample
with no value at all scores 0.0 (documented option ``missing_total``).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

from .isolation import WorkerPool

log = logging.getLogger(__name__)

STATUSES = ("ok", "none", "error", "timeout")


def completion_text(completion: Any) -> str:
    """A completion as plain text (chat-style completions are joined message contents)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        return "".join(str(m.get("content", "")) for m in completion if isinstance(m, dict))
    if isinstance(completion, dict):
        return str(completion.get("content", ""))
    return str(completion)


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
