"""One description per setting: :func:`option` puts a field's help, bounds and choices into its
``dataclasses.field(metadata=...)``, and :func:`check_fields` checks any dataclass instance against them.

The suite loader, ``grpo-bench eval`` and the key reference (``grpo-bench config keys``, docs/config.md)
all read the same metadata, so a bound is written once. Nothing here imports the pipeline stages.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

_MISSING = dataclasses.MISSING


def option(default: Any = _MISSING, *, help: str, factory: Callable[[], Any] | None = None,
           min: float | None = None, max: float | None = None, min_open: bool = False, max_open: bool = False,
           why: str = "", max_why: str = "", choices: tuple | None = None, finite: bool = False) -> Any:
    """A dataclass field with its one-line ``help`` and its limits in the metadata.

    ``min``/``max`` bound a number (each element of a list); ``min_open``/``max_open`` make a bound
    exclusive. ``why`` is the reason a message gives for the range, ``max_why`` a separate reason for the
    upper bound (then the two are reported apart: ``must be >= 1 (a count)``, ``must be <= N (...)``).
    ``choices``: the values allowed (each element of a list). ``finite``: messages say "a finite number"
    even for a finite value out of range (settings also taken from the command line)."""
    metadata = {"help": help, "min": min, "max": max, "min_open": min_open, "max_open": max_open,
                "why": why, "max_why": max_why, "choices": tuple(choices) if choices is not None else None,
                "finite": finite}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _number(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def bounds_text(meta: dict, upper: bool = True) -> str:
    """The range of a setting as a message says it: ``>= 1``, ``> 0``, ``in [0, 1)``, ``<= 8`` ('' if none);
    ``upper=False`` leaves the upper bound out."""
    lo, hi = meta.get("min"), meta.get("max") if upper else None
    if lo is not None and hi is not None:
        return (f"in {'(' if meta['min_open'] else '['}{_number(lo)}, {_number(hi)}"
                f"{')' if meta['max_open'] else ']'}")
    if lo is not None:
        return f"{'>' if meta['min_open'] else '>='} {_number(lo)}"
    if hi is not None:
        return f"{'<' if meta['max_open'] else '<='} {_number(hi)}"
    return ""


def value_problem(meta: dict, value: Any) -> str | None:
    """What is wrong with one value under a field's metadata (a message after ``KEY: ``), or None."""
    choices = meta.get("choices")
    if choices is not None:
        if value in choices and type(value) in {type(c) for c in choices}:
            return None
        return f"expected one of {', '.join(map(str, choices))}, got {value!r}"
    lo, hi = meta.get("min"), meta.get("max")
    if (lo is None and hi is None) or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    finite = math.isfinite(value)
    low_ok = lo is None or (value > lo if meta["min_open"] else value >= lo)
    high_ok = hi is None or (value < hi if meta["max_open"] else value <= hi)
    if finite and low_ok and high_ok:
        return None
    if meta.get("max_why") and finite and not high_ok:
        return f"must be {bounds_text({**meta, 'min': None})} ({meta['max_why']}), got {value!r}"
    text = bounds_text(meta, upper=not meta.get("max_why"))
    number = "a finite number " if meta.get("finite") or not finite else ""
    why = f" ({meta['why']})" if meta.get("why") else ""
    return f"must be {number}{text}{why}, got {value!r}"


def check_fields(obj: Any, err: Callable[[str, str], Exception], where: str, schema: type | None = None,
                 keys: tuple[str, ...] | None = None) -> None:
    """Raise ``err(f"{where}.{key}", message)`` for the first field of ``obj`` outside its metadata's limits.

    ``schema``: the dataclass whose fields' metadata applies (default: ``obj``'s own class; another one
    checks an object holding the same settings, e.g. ``grpo-bench eval``'s request); ``keys``: only these."""
    for f in dataclasses.fields(schema or type(obj)):
        if keys is not None and f.name not in keys:
            continue
        value = getattr(obj, f.name)
        items = list(enumerate(value)) if isinstance(value, list) else [(None, value)]
        for i, item in items:
            problem = value_problem(f.metadata, item)
            if problem:
                key = f"{where}.{f.name}" if where else f.name
                raise err(key if i is None else f"{key}[{i}]", problem)


def field_metadata(cls: type, name: str) -> dict:
    """The metadata of field ``name`` of dataclass ``cls`` (what :func:`option` put there)."""
    return next(f.metadata for f in dataclasses.fields(cls) if f.name == name)


def field_help(cls: type, name: str) -> str:
    """The one-line help of field ``name`` of dataclass ``cls``."""
    return field_metadata(cls, name).get("help", "")
