"""The ``[train]`` settings whose ``"auto"`` depends on the device and the algorithm (the numerics, the
attention kernel, the allocator), resolved by one function for the suite loader and the trainer alike.

A config module apart from the suite loader: the trainer imports it (and the schema) but nothing of
``config.suite`` (data flows suite -> plan -> executor -> trainer); ``config.suite`` re-exports its names.
"""

from __future__ import annotations

from .options import field_metadata
from .schema import TrainConfig


#: [train] settings whose "auto" is resolved per device at load (and recorded resolved)
AUTO_SWITCHES = ("bf16_autocast", "adamw_fused", "bf16_weights", "attention", "keep_freed_memory")
#: the attention kernels ``[train] attention`` takes besides "auto"
ATTENTION_CHOICES = tuple(c for c in field_metadata(TrainConfig, "attention")["choices"] if c != "auto")


#: the numerics "auto" gives a run whose importance ratios compare inner passes (``ratio_numerics``):
#: the cheapest one whose inner step at lr 1e-6 moved at least 10x its noise floor, measured side by side
#: by benchmarks/perf/ratio_noise.py on the default model (docs/algorithms.md, "Numerics")
RATIO_NUMERICS = {"bf16_autocast": False, "bf16_weights": False}


def algorithm_compares_ratios(algorithm_cls, mu: int) -> bool:
    """True when a variant's loss takes importance ratios between inner passes: a ratio-based algorithm
    with mu > 1 (with mu = 1 every ratio is 1 at the only pass)."""
    return bool(getattr(algorithm_cls, "ratio_based", False)) and mu > 1


def resolve_auto(key: str, value: bool | str, device: str, err, ratio_numerics: bool = False) -> bool | str:
    """A ``[train]`` setting whose ``"auto"`` depends on the run's device: ``bf16_autocast`` and
    ``bf16_weights`` (fast bf16 there, :func:`grpo_bench.provenance.bf16_support`; when
    ``ratio_numerics``, the run compares importance ratios and gets :data:`RATIO_NUMERICS` instead,
    whatever the device: under bf16 a real inner step hides in rounding noise), ``adamw_fused`` (torch
    has the fused AdamW kernel for it, :func:`grpo_bench.provenance.fused_adamw_support`), ``attention``
    ("eager" on CPU, else "sdpa"), ``keep_freed_memory`` (the C library is glibc, whatever the device)."""
    if key == "attention":
        if value in ATTENTION_CHOICES:
            return value
        if value != "auto":
            raise err(f"train.{key}", f"expected one of {', '.join(ATTENTION_CHOICES)} or \"auto\", got {value!r}")
    elif isinstance(value, bool):
        return value
    elif value != "auto":
        raise err(f"train.{key}", f"expected true, false or \"auto\", got {value!r}")
    from ..models import pick_device
    from ..provenance import bf16_support, fused_adamw_support, glibc

    device = pick_device(device)
    if key == "attention":
        return "eager" if device == "cpu" else "sdpa"
    if key == "keep_freed_memory":
        return glibc()
    if key in ("bf16_autocast", "bf16_weights"):
        if ratio_numerics:
            return RATIO_NUMERICS[key]
        return bf16_support(device) is not None
    return fused_adamw_support(device)
