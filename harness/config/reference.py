"""The reference of every suite key, read from the schema's field metadata (:func:`grpo_bench.config.options.option`):
``grpo-bench config keys`` prints :func:`text`, ``--markdown`` prints :func:`markdown` (docs/config.md)."""

from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any

from .options import bounds_text
from .schema import Claim, EvalSection, EvalTarget, LoraOptions, SuiteMeta, TrainSection, Variant

#: (section as a suite file writes it, its dataclass, one line about it), in the order of a suite file
SECTIONS = (
    ("suite", SuiteMeta, "the model, engine, seeds, trackers and leaderboard settings"),
    ("train", TrainSection, "the training settings every variant shares (a variant may change some: variants[].train)"),
    ("train.lora", LoraOptions, "LoRA through peft, an inline table; {} (the default) is full fine-tuning"),
    ("eval", EvalSection, "evaluation: generation settings and targets (each run's seed is its own)"),
    ("eval.benchmarks[]", EvalTarget, "one eval target, an inline table in eval.benchmarks"),
    ("variants[]", Variant, "one [[variants]] entry: an algorithm and its options"),
    ("claims[]", Claim, "one [[claims]] entry: a pre-registered claim (analysis only, never in the config hash)"),
)

_TYPE_NAMES = {int: "int", float: "float", str: "string", bool: "bool", dict: "table"}


def type_name(tp: Any) -> str:
    """A field's type as a suite file's reader says it: ``int``, ``bool or string``, ``array of int``."""
    origin = typing.get_origin(tp) or tp
    if origin is list:
        (inner,) = typing.get_args(tp)
        return "array of tables" if dataclasses.is_dataclass(inner) else f"array of {type_name(inner)}"
    args = typing.get_args(tp)
    if args and origin is not dict:
        return " or ".join(type_name(a) for a in args)
    return _TYPE_NAMES.get(origin, getattr(origin, "__name__", str(origin)))


def default_value(f: dataclasses.Field) -> Any:
    """A field's default, as plain data."""
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def allowed_text(meta: dict) -> str:
    """The values a setting allows: ``one of a, b``, ``>= 1 (a count); <= N (...)``, or ''."""
    if meta.get("choices") is not None:
        return "one of " + ", ".join(json.dumps(c) for c in meta["choices"])
    text = bounds_text(meta, upper=not meta.get("max_why"))
    if text and meta.get("why"):
        text += f" ({meta['why']})"
    if meta.get("max_why"):
        text += f"; {bounds_text({**meta, 'min': None})} ({meta['max_why']})"
    return text


def keys() -> list[dict[str, str]]:
    """One row per key: section, key, type, default (JSON, as TOML would write it), allowed values, help."""
    rows = []
    for section, cls, _ in SECTIONS:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            rows.append({"section": section, "key": f"{section}.{f.name}", "type": type_name(hints[f.name]),
                         "default": json.dumps(default_value(f)), "allowed": allowed_text(f.metadata),
                         "help": f.metadata.get("help", "")})
    return rows


def text() -> str:
    """The reference for a terminal: each section, then its keys with type, default, limits and help."""
    lines = []
    for section, _, about in SECTIONS:
        lines.append(f"[{section}]  {about}")
        for row in (r for r in keys() if r["section"] == section):
            allowed = f"; {row['allowed']}" if row["allowed"] else ""
            lines.append(f"  {row['key']} ({row['type']}, default {row['default']}{allowed})")
            lines.append(f"      {row['help']}")
        lines.append("")
    return "\n".join(lines)


def _cell(value: str) -> str:
    return value.replace("|", "\\|")


def markdown() -> str:
    """docs/config.md: the same reference as tables, one per section."""
    out = ["# Suite configuration keys", "",
           "Every key a suite file (TOML) may hold, with its type, default, allowed values and meaning. Generated from",
           "the schema's field metadata (`harness/config/schema.py`), which the suite loader checks against; do not",
           "edit by hand: regenerate with `grpo-bench config keys --markdown > docs/config.md`.", ""]
    for section, _, about in SECTIONS:
        out += [f"## `{section}`", "", about[0].upper() + about[1:] + ".", "",
                "| key | type | default | allowed | meaning |", "|---|---|---|---|---|"]
        for row in (r for r in keys() if r["section"] == section):
            out.append(f"| `{row['key']}` | {row['type']} | `{_cell(row['default'])}` | {_cell(row['allowed'])} "
                       f"| {_cell(row['help'])} |")
        out.append("")
    return "\n".join(out)
