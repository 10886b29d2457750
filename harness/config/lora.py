"""``[train] lora``: the LoRA options, their defaults and their check (used by the suite loader and by
:mod:`grpo_bench.training.lora`, which builds the adapter; kept apart from the loader so that training
imports nothing of it)."""

from __future__ import annotations

import dataclasses
import types
import typing

from ..errors import UserError
from .options import check_fields
from .schema import LoraOptions

#: LoRA options and their defaults (``[train] lora``; :class:`LoraOptions`, :mod:`grpo_bench.training.lora`).
LORA_DEFAULTS = {f.name: f.default_factory() if f.default is dataclasses.MISSING else f.default
                 for f in dataclasses.fields(LoraOptions)}


def check_lora(options: dict) -> dict:
    """The resolved LoRA options (defaults filled in, values as given), or a one-line error; {} means off."""
    if not options:
        return {}
    unknown = set(options) - set(LORA_DEFAULTS)
    if unknown:
        raise UserError(f"train.lora.{sorted(unknown)[0]}: unknown key (known: {', '.join(LORA_DEFAULTS)})")
    out = {**LORA_DEFAULTS, **options}
    for key, tp in typing.get_type_hints(LoraOptions).items():
        want = {int: (int,), float: (int, float)}.get(tp)
        if want and (isinstance(out[key], bool) or not isinstance(out[key], want)):
            raise UserError(f"train.lora.{key}: expected {'an integer' if tp is int else 'a number'}, got {out[key]!r}")
    check_fields(types.SimpleNamespace(**out), lambda key, msg: UserError(f"{key}: {msg}"), "train.lora",
                 schema=LoraOptions)
    mods = out["target_modules"]
    if not isinstance(mods, list) or not mods or not all(isinstance(m, str) and m for m in mods):
        raise UserError(f"train.lora.target_modules: expected a non-empty array of module names, got {mods!r}")
    return out
