"""Executors: how a plan's runs are carried out. The contract is small on purpose:

    class Executor:
        def execute(self, plan: Plan, registry: Registry) -> None

``execute`` runs every pending run of ``plan`` (``plan.pending()``) and returns when all have
finished; a run is finished when its ``summary.json`` exists (written last, atomically), so any
executor may be interrupted and rerun, and resumes where it stopped. Runs are independent: each
needs only the plan, the registry and its own run folder.

- :class:`LocalExecutor`: one process, one model load, the runs in plan order (the default).
"""

from __future__ import annotations

import logging

from ..registry import Registry
from .plan import Plan
from .session import Session, console, run_one

log = logging.getLogger(__name__)


class Executor:
    """Base class of executors (see the module docstring for the contract)."""

    name = "executor"

    def execute(self, plan: Plan, registry: Registry) -> None:
        raise NotImplementedError


class LocalExecutor(Executor):
    """Every pending run in this process, in plan order, sharing one model, engine and scorers."""

    name = "local"

    def execute(self, plan: Plan, registry: Registry) -> None:
        pending = plan.pending()
        for spec in plan.runs:
            if spec not in pending:
                console(f"skip {spec.name} seed {spec.seed}: finished")
        if not pending:
            return  # nothing to do: no model is loaded
        session = Session(plan.suite, registry)
        try:
            for spec in pending:
                run_one(session, plan.out, spec.variant, spec.seed, plan.record)
        finally:
            session.close()
