"""Runs a suite: plan -> execute -> finalize.

- plan (:mod:`.plan`): the grid of runs (or one shard of it) and the record written with each; no model is loaded;
- execute (:mod:`.executors`): an executor carries out the pending runs (local by default, or Ray);
- finalize: the leaderboard is built from the finished runs (:mod:`grpo_bench.report`), unless this
  process ran one shard or another process still holds some runs (then ``grpo-bench leaderboard DIR``).
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..config.schema import Suite
from ..registry import Registry
from ..report import write_leaderboard
from .executors import FAILED, Executor, LocalExecutor, Outcome, RunsFailed
from .logs import log_to
from .plan import make_plan, stamp
from .session import LOCKED

log = logging.getLogger(__name__)


def run_suite(suite: Suite, registry: Registry, results_root: Path, only: list[str] | None = None,
              executor: Executor | None = None, shard: tuple[int, int] | None = None,
              outcomes: list[Outcome] | None = None, verbose: bool = False) -> Path | None:
    """Returns the suite's results folder when the leaderboard was written, None when it was left to
    ``grpo-bench leaderboard`` (a shard, or runs held by another process). ``outcomes``, when given,
    receives one :class:`Outcome` per planned run. Raises :class:`RunsFailed` naming each failed run."""
    plan = make_plan(suite, registry, results_root, only, shard)
    stamp(plan)
    with log_to(plan.out / "grpo-bench.log", verbose):
        done = (executor or LocalExecutor()).execute(plan, registry)
    if outcomes is not None:
        outcomes.extend(done)
    failed = [o for o in done if o.status == FAILED]
    if failed:
        raise RunsFailed(f"{len(failed)} of {len(done)} runs failed (the others are kept; a rerun resumes): "
                         + "; ".join(o.line() for o in failed))
    locked = [o for o in done if o.status == LOCKED]
    for o in locked:
        log.warning("%s (another process owns it)", o.line())
    if shard is not None or locked:
        return None
    with log_to(plan.out / "grpo-bench.log", verbose):
        write_leaderboard(plan.out)
    return plan.out
