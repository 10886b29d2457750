"""Benchmarks a user declares in TOML, with no Python: the files and folders named by ``GRPO_BENCH_DATASETS``
(separated by ``os.pathsep``; a folder contributes its ``*.toml`` in name order). Its own plugin, so that a
broken declaration is one line in ``grpo-bench plugins`` and in unknown-name errors while the bundled
benchmarks still load. Format and a worked example: docs/plugins.md, "Adding a dataset".
"""

from __future__ import annotations

from grpo_bench import benchmark, hookimpl
from grpo_bench.declared import load_declarations, user_declaration_paths


@hookimpl
def grpo_bench_benchmarks():
    return load_declarations(user_declaration_paths(), benchmark.DATA_DIR)
