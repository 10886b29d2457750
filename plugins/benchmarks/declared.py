"""The bundled benchmarks declared in TOML: ``datasets/*.toml`` next to this file (GSM8K, MATH, MATH-500,
HumanEval), read from the copies under ``harness/data`` (package data ``grpo_bench/data``) and checked
against its ``SHA256SUMS``. The declaration format: :mod:`grpo_bench.declared`, docs/plugins.md.

With ``[suite] data = "hub"`` (or ``GRPO_BENCH_HUB=1``) a declaration with a ``[hub]`` table reads the
Hugging Face hub dataset instead, through ``datasets``.
"""

from __future__ import annotations

from pathlib import Path

from grpo_bench import benchmark, hookimpl
from grpo_bench.declared import load_declarations

#: where the bundled declarations live
BUNDLED = Path(__file__).resolve().parent / "datasets"


@hookimpl
def grpo_bench_benchmarks():
    return load_declarations([BUNDLED], benchmark.DATA_DIR)
