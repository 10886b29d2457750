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


def call_batch(fn: Callable, kwargs: dict[str, Any]) -> Any:
    """Call a reward the way TRL does, keyword arguments only, on a batch (runs inside the worker)."""
    n = len(kwargs["completions"])
    out = fn(**kwargs)
    if not isinstance(out, (list, tuple)) or len(out) != n:
        raise TypeError(f"reward must return a list with one value per sample ({n}), got {out!r:.80}")
    return list(out)


def _rows(kwargs: dict[str, Any], idx: list[int]) -> dict[str, Any]:
    """The batch's keyword arguments restricted to samples ``idx`` (``trainer_state`` is shared)."""
    return {k: (v if k == "trainer_state" else [v[i] for i in idx]) for k, v in kwargs.items()}


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

    def score(self, prompts: list, completions: list, columns: dict[str, list] | None = None,
              completion_ids: list[list[int]] | None = None, trainer_state: Any = None) -> ScoreResult:
        """Score a batch. Each reward is called as TRL calls it: ``fn(prompts=, completions=,
        completion_ids=, trainer_state=, **columns)``; the batch is split into one chunk per worker,
        each chunk limited to ``timeout_s`` per sample; a chunk that raises, hangs or returns a
        malformed list is retried one sample at a time to find which samples fail."""
        columns = columns or {}
        n = len(completions)
        kwargs = {"prompts": list(prompts), "completions": list(completions),
                  "completion_ids": list(completion_ids) if completion_ids is not None else [[] for _ in range(n)],
                  "trainer_state": trainer_state, **columns}
        values: dict[str, list[float | None]] = {}
        counts: dict[str, Counter] = {}
        problems: list[dict] = []
        for name, fn in self.rewards.items():
            outcomes = self._run_reward(fn, kwargs, n)
            vals: list[float | None] = []
            counter: Counter = Counter()
            for i, (status, value, message) in enumerate(outcomes):
                if status == "ok":
                    status, value, message = as_score(value)
                counter[status] += 1
                if status in ("error", "timeout"):
                    problems.append({"reward": name, "index": i, "status": status, "message": message,
                                     "completion": completion_text(completions[i])[:2000]})
                vals.append(value if status == "ok" else None)
            failed = counter["error"] + counter["timeout"]
            if failed:
                first = next(p["message"] for p in problems if p["reward"] == name)
                log.warning("reward %s failed on %d of %d samples (first: %s)", name, failed, n, first)
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

    def _run_reward(self, fn: Callable, kwargs: dict[str, Any], n: int) -> list[tuple[str, Any, str]]:
        """(status, raw value, message) per sample: batched chunks first, single samples where a chunk fails."""
        if n == 0:
            return []
        k = min(self.pool.size, n)
        chunks = [list(range(j * n // k, (j + 1) * n // k)) for j in range(k)]
        outs = self.pool.run([(call_batch, (fn, _rows(kwargs, idx)), {}) for idx in chunks],
                             [self.pool.timeout_s * len(idx) for idx in chunks])
        result: list[tuple[str, Any, str] | None] = [None] * n
        retry: list[int] = []
        for idx, oc in zip(chunks, outs):
            if oc.status == "ok":
                for i, v in zip(idx, oc.value):
                    result[i] = ("ok", v, "")
            elif len(idx) == 1:
                result[idx[0]] = (oc.status, None, oc.message)
            else:
                retry += idx
        if retry:
            singles = self.pool.run([(call_batch, (fn, _rows(kwargs, [i])), {}) for i in retry])
            for i, oc in zip(retry, singles):
                result[i] = (oc.status, oc.value[0] if oc.status == "ok" else None, oc.message)
        return result  # type: ignore[return-value]

    def close(self) -> None:
        self.pool.close()
