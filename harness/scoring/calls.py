"""How one reward call runs inside a worker: keyword arguments only, ``async def`` rewards awaited,
``log_metric``/``log_extra`` collected (the contract is in :mod:`grpo_bench.rewards`).

Everything here runs in the worker process (or the inline thread); what a call returns travels back
to the parent as plain data: ``{"values": [...], "metrics": {name: [float, ...]}, "extra": {column: [...]}}``.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import numbers
import traceback
from typing import Any, Callable


def is_async(fn: Callable) -> bool:
    """An ``async def`` function (or a partial of one, or an object whose ``__call__`` is one)."""
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))


class RewardLog:
    """What one call logged through ``log_metric(name, value)`` and ``log_extra(column, values)``.

    ``log_metric``: ``name`` a string, ``value`` a finite real number (one value per call; the step's
    metric is the mean over the calls). ``log_extra``: ``values`` a list with one entry per sample of
    the call (JSON-able; anything else is written as its ``str``). A wrong type or length raises in the
    reward, so the call is an error (visible), never a silently shifted column.
    """

    def __init__(self, n: int):
        self.n = n
        self.metrics: dict[str, list[float]] = {}
        self.extra: dict[str, list] = {}

    def log_metric(self, name: str, value: float) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"log_metric: name must be a non-empty string, got {name!r:.80}")
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
            raise TypeError(f"log_metric({name!r}, ...): value must be a finite number, got {value!r:.80}")
        self.metrics.setdefault(name, []).append(float(value))

    def log_extra(self, column: str, values: list) -> None:
        if not isinstance(column, str) or not column:
            raise TypeError(f"log_extra: column must be a non-empty string, got {column!r:.80}")
        values = list(values)
        if len(values) != self.n:
            raise ValueError(f"log_extra({column!r}, ...): {len(values)} values for a call on {self.n} samples")
        self.extra[column] = values

    def result(self, values: list) -> dict[str, Any]:
        return {"values": values, "metrics": self.metrics, "extra": self.extra}


def _checked(out: Any, n: int) -> list:
    if not isinstance(out, (list, tuple)) or len(out) != n:
        raise TypeError(f"reward must return a list with one value per sample ({n}), got {out!r:.80}")
    return list(out)


def _with_log(kwargs: dict[str, Any], log: RewardLog) -> dict[str, Any]:
    return {**kwargs, "log_metric": log.log_metric, "log_extra": log.log_extra}


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def call_batch(fn: Callable, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Call one reward the way TRL does (keyword arguments only, on a batch); a coroutine it returns
    is run to its end on a fresh event loop."""
    n = len(kwargs["completions"])
    log = RewardLog(n)
    out = fn(**_with_log(kwargs, log))
    if inspect.isawaitable(out):
        out = asyncio.run(_awaited(out))
    return log.result(_checked(out, n))


async def _one_async(fn: Callable, kwargs: dict[str, Any], limit_s: float) -> tuple[str, Any, str]:
    n = len(kwargs["completions"])
    log = RewardLog(n)
    try:
        out = await asyncio.wait_for(fn(**_with_log(kwargs, log)), limit_s)
        return "ok", log.result(_checked(out, n)), ""
    except asyncio.TimeoutError:
        return "timeout", None, f"exceeded {limit_s:g} s"
    except Exception as exc:
        return "error", None, traceback.format_exception_only(type(exc), exc)[-1].strip()


async def _gather(fns: list[Callable], kwargs: dict[str, Any], limit_s: float) -> list[tuple[str, Any, str]]:
    return list(await asyncio.gather(*(_one_async(fn, kwargs, limit_s) for fn in fns)))


def call_async_batch(fns: list[Callable], kwargs: dict[str, Any], limit_s: float) -> list[tuple[str, Any, str]]:
    """Await several ``async def`` rewards on the same batch concurrently (``asyncio.gather``, as TRL
    does), each limited to ``limit_s`` seconds: one ``(status, result, message)`` per function, so a
    reward that raises or overruns fails alone. (A coroutine that blocks the event loop cannot be
    interrupted here: the worker's own wall-clock limit then ends the whole call.)"""
    return asyncio.run(_gather(fns, kwargs, limit_s))
