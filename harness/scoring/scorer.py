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
from .calls import call_async_batch, call_batch, is_async
from .isolation import WorkerPool

log = logging.getLogger(__name__)


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


#: Extra seconds a worker gets beyond the per-reward limit of concurrently awaited ``async def`` rewards,
#: so each overrunning coroutine is cancelled on its own (the others keep their results) before the worker
#: itself is stopped.
ASYNC_SLACK_S = 2.0

Raw = tuple[str, Any, str]  # (status, raw value, message) of one sample


class BatchLogs:
    """What the batch's successful calls logged: ``log_metric`` values per name (one per call) and
    ``log_extra`` columns laid out per sample (None where no call logged the sample)."""

    def __init__(self, n: int):
        self.n = n
        self.metrics: dict[str, list[float]] = {}
        self.extra: dict[str, list] = {}

    def add(self, idx: list[int], result: dict) -> None:
        for name, values in result.get("metrics", {}).items():
            self.metrics.setdefault(name, []).extend(values)
        for column, values in result.get("extra", {}).items():
            col = self.extra.setdefault(column, [None] * self.n)
            for i, v in zip(idx, values):
                col[i] = v


@dataclass
class ScoreResult:
    totals: list[float]
    values: dict[str, list[float | None]]
    counts: dict[str, Counter]
    problems: list[dict] = field(default_factory=list)  # one row per error/timeout, with the sample
    #: ``log_metric`` values per metric name, one per successful call (the step reports their mean)
    metrics: dict[str, list[float]] = field(default_factory=dict)
    #: ``log_extra`` columns: one value per sample (None where no call logged it)
    extra: dict[str, list] = field(default_factory=dict)

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
        completion_ids=, trainer_state=, log_metric=, log_extra=, **columns)``; the batch is split into
        one chunk per worker, each chunk limited to ``timeout_s`` per sample; a chunk that raises, hangs
        or returns a malformed list is retried one sample at a time to find which samples fail.
        ``async def`` rewards are awaited, together on each chunk when there are several; a reward with
        ``in_process = True`` (a reward model) is called here, without a time limit."""
        columns = columns or {}
        n = len(completions)
        kwargs = {"prompts": list(prompts), "completions": list(completions),
                  "completion_ids": list(completion_ids) if completion_ids is not None else [[] for _ in range(n)],
                  "trainer_state": trainer_state, **columns}
        if trainer_state is not None and type(trainer_state).__module__ != "builtins":
            self.pool.preload = (type(trainer_state).__module__,)  # imported before any timed call
        logs = BatchLogs(n)
        raw = self._run_all(kwargs, n, logs)
        values: dict[str, list[float | None]] = {}
        counts: dict[str, Counter] = {}
        problems: list[dict] = []
        for name in self.rewards:
            outcomes = raw[name]
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
        return ScoreResult(totals, values, counts, problems, logs.metrics, logs.extra)

    def _run_all(self, kwargs: dict[str, Any], n: int, logs: BatchLogs) -> dict[str, list[Raw]]:
        """Every reward's raw outcomes: ``async def`` rewards awaited together, in-process ones (reward
        models, ``in_process = True``) called here, the others in the workers one after the other."""
        if n == 0:
            return {name: [] for name in self.rewards}
        raw: dict[str, list[Raw]] = {}
        concurrent = [k for k, fn in self.rewards.items() if is_async(fn) and not getattr(fn, "in_process", False)]
        if len(concurrent) > 1:
            raw.update(self._run_async(concurrent, kwargs, n, logs))
        for name, fn in self.rewards.items():
            if name not in raw:
                raw[name] = (self._run_in_process(fn, kwargs, n, logs) if getattr(fn, "in_process", False)
                             else self._run_reward(fn, kwargs, n, logs))
        return raw

    def _chunks(self, n: int) -> list[list[int]]:
        k = min(self.pool.size, n)
        return [list(range(j * n // k, (j + 1) * n // k)) for j in range(k)]

    def _run_in_process(self, fn: Callable, kwargs: dict[str, Any], n: int, logs: BatchLogs) -> list[Raw]:
        """A reward that must run in this process (a reward model on the run's device): no time limit."""
        try:
            result = call_batch(fn, kwargs)
        except Exception as exc:
            return [("error", None, f"{type(exc).__name__}: {exc}")] * n
        logs.add(list(range(n)), result)
        return [("ok", v, "") for v in result["values"]]

    def _run_async(self, names: list[str], kwargs: dict[str, Any], n: int, logs: BatchLogs) -> dict[str, list[Raw]]:
        """Several ``async def`` rewards awaited concurrently on each chunk, each with the chunk's limit;
        a reward that fails on a chunk is retried one sample at a time like any other."""
        fns = [self.rewards[k] for k in names]
        chunks = self._chunks(n)
        limits = [self.pool.timeout_s * len(idx) for idx in chunks]
        outs = self.pool.run([(call_async_batch, (fns, _rows(kwargs, idx), lim), {}) for idx, lim in zip(chunks, limits)],
                             [lim + ASYNC_SLACK_S for lim in limits])
        per_chunk = [oc.value if oc.status == "ok" else [(oc.status, None, oc.message)] * len(fns) for oc in outs]
        return {name: self._settle(fns[j], kwargs, n, logs, [(idx, per[j]) for idx, per in zip(chunks, per_chunk)])
                for j, name in enumerate(names)}

    def _run_reward(self, fn: Callable, kwargs: dict[str, Any], n: int, logs: BatchLogs) -> list[Raw]:
        """(status, raw value, message) per sample: batched chunks first, single samples where a chunk fails."""
        chunks = self._chunks(n)
        outs = self.pool.run([(call_batch, (fn, _rows(kwargs, idx)), {}) for idx in chunks],
                             [self.pool.timeout_s * len(idx) for idx in chunks])
        return self._settle(fn, kwargs, n, logs, [(idx, (oc.status, oc.value, oc.message)) for idx, oc in zip(chunks, outs)])

    def _settle(self, fn: Callable, kwargs: dict[str, Any], n: int, logs: BatchLogs,
                chunk_outcomes: list[tuple[list[int], Raw]]) -> list[Raw]:
        """Per-sample outcomes from chunk outcomes; the samples of a failed chunk are called again one by
        one, so a failure is pinned to its sample (what a failed call logged is dropped: its retry logs)."""
        result: list[Raw | None] = [None] * n
        retry: list[int] = []
        for idx, (status, value, message) in chunk_outcomes:
            if status == "ok":
                logs.add(idx, value)
                for i, v in zip(idx, value["values"]):
                    result[i] = ("ok", v, "")
            elif len(idx) == 1:
                result[idx[0]] = (status, None, message)
            else:
                retry += idx
        if retry:
            singles = self.pool.run([(call_batch, (fn, _rows(kwargs, [i])), {}) for i in retry])
            for i, oc in zip(retry, singles):
                if oc.status == "ok":
                    logs.add([i], oc.value)
                result[i] = (oc.status, oc.value["values"][0] if oc.status == "ok" else None, oc.message)
        return result  # type: ignore[return-value]

    def close(self) -> None:
        self.pool.close()
