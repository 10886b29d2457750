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


def call_batch(fn: Callable, kwargs: dict[str, Any]) -> Any:
    """Call a reward the way TRL does, keyword arguments only, on a batch (runs inside the worker)."""
    n = len(kwargs["completions"])
    out = fn(**kwargs)
    if not isinstance(out, (list, tuple)) or len(out) != n:
        raise TypeError(f"reward must return a list with one value per sample ({n}), got {out!r:.80}")
    return list(out)


def check_value(value: Any) -> tuple[str, Any, str]:
    """(status, value, message) for one value a reward returned: a number is ``ok``, None is ``none``."""
    if value is None:
        return "none", None, ""
    try:
        value = float(value)
        if math.isnan(value):
            raise ValueError("NaN")
    except (TypeError, ValueError):
        return "error", None, f"returned a non-number: {value!r:.80}"
    return "ok", value, ""


def _rows(kwargs: dict[str, Any], idx: list[int]) -> dict[str, Any]:
    """The batch's keyword arguments restricted to samples ``idx`` (``trainer_state`` is shared)."""
    return {k: (v if k == "trainer_state" else [v[i] for i in idx]) for k, v in kwargs.items()}


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
                    status, value, message = check_value(value)
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
            totals.append(sum(w * x for w, x in present) if present else self.missing_total)
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
