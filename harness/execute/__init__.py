"""Execution: plan a suite's runs, carry them out with an executor, finalize the leaderboard."""

from .executors import Executor, LocalExecutor
from .plan import Plan, RunSpec, make_plan
from .runner import run_suite

__all__ = ["Executor", "LocalExecutor", "Plan", "RunSpec", "make_plan", "run_suite"]
