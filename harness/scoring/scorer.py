"""Scoring: every reward of a step called in isolated, time-limited workers (the contract is in
:mod:`grpo_bench.rewards`)."""

from __future__ import annotations

import logging
import math
import numbers
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


#: The largest |value| a reward may return; beyond it (or non-finite) the sample's value is an error,
#: so weighted totals, group means and standard deviations stay finite (weights are bounded at load).
MAX_ABS_REWARD = 1e12


def as_score(value: Any) -> tuple[str, float | None, str]:
    """A reward's return value for one sample -> (status, value, message).

    ``None`` -> "none" (the reward does not apply). A real number (int, float, and numpy/torch scalar
    types registered as :class:`numbers.Real`) that is finite with ``|value| <= MAX_ABS_REWARD`` -> "ok".
    Anything else is an "error": a bool (``True`` is almost always a bug such as a comparison returned
    by mistake; return 1.0/0.0), a string such as ``"1.0"``, NaN, +-inf or an out-of-range number.
    """
    if value is None:
        return "none", None, ""
    if isinstance(value, bool) or type(value).__name__ == "bool_" or not isinstance(value, numbers.Real):
        return "error", None, f"returned {type(value).__name__} {value!r:.80}, not a number (int or float)"
    value = float(value)
    if not math.isfinite(value) or abs(value) > MAX_ABS_REWARD:
        return "error", None, f"returned {value!r}, not a finite number with |value| <= {MAX_ABS_REWARD:g}"
    return "ok", value, ""


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
                if status == "ok":
                    status, value, message = as_score(value)
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
            total = sum(w * x for w, x in present) if present else self.missing_total
            if not math.isfinite(total):  # unreachable with bounded values and weights; never pass it on
                raise ValueError(f"sample {i}: weighted reward total is not finite ({total!r})")
            totals.append(total)
        return ScoreResult(totals, values, counts, problems)

    def close(self) -> None:
        self.pool.close()
