"""Runs a suite: plan -> execute -> finalize.

- plan (:mod:`.plan`): the grid of runs and the record written with each; no model is loaded;
- execute (:mod:`.executors`): an executor carries out the pending runs (local by default);
- finalize: the leaderboard is built from the finished runs (:mod:`grpo_bench.report`).
"""

from __future__ import annotations

from pathlib import Path

from ..config.schema import Suite
from ..registry import Registry
from ..report import write_leaderboard
from .executors import Executor, LocalExecutor
from .logs import log_to
from .plan import make_plan, stamp


def run_suite(suite: Suite, registry: Registry, results_root: Path, only: list[str] | None = None,
              executor: Executor | None = None, verbose: bool = False) -> Path:
    plan = make_plan(suite, registry, results_root, only)
    stamp(plan)
    with log_to(plan.out / "grpo-bench.log", verbose):
        (executor or LocalExecutor()).execute(plan, registry)
        write_leaderboard(plan.out)
    return plan.out
