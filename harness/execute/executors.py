"""Executors: how a plan's runs are carried out. The contract is small on purpose:

    @register_executor("name")            # grpo-bench run SUITE --executor name
    class MyExecutor(Executor):
        cli_options = ("address",)        # the run command's executor flags it takes (keyword arguments)
        def execute(self, plan: Plan, registry: Registry) -> list[Outcome]

``execute`` runs every pending run of ``plan`` (``plan.pending()``) and returns when all have
finished, one :class:`Outcome` per planned run. A run is finished when its ``summary.json`` exists
(written last, atomically), so any executor may be interrupted and rerun, and resumes where it
stopped. Runs are independent: each needs only the plan, the registry and its own run folder, and a
process works on a run only while it holds the run's lock (:mod:`.locks`), so executors in several
processes (shards, Ray tasks) may share one results folder.

- :class:`LocalExecutor`: one process, one model load, the runs in plan order (the default);
  ``--shard i/n`` is the local executor on a slice of the plan (:func:`.plan.make_plan`);
- :class:`grpo_bench.execute.ray_executor.RayExecutor`: one Ray task per run (``--executor ray``).

Executors are a registry like the other plugin kinds (``grpo-bench plugins`` lists them): a plugin adds
one with ``@register_executor`` or the ``grpo_bench_executors`` hook. ``--executor NAME`` builds
``cls(**flags)`` with the flags given among :data:`CLI_OPTIONS` (each must be in ``cls.cli_options``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..declare import register_executor
from ..errors import UserError
from ..registry import Registry
from .plan import Plan, RunSpec
from .session import FINISHED, Session, console, run_one

log = logging.getLogger(__name__)

FAILED = "failed"


@dataclass
class Outcome:
    """What became of one planned run: ``ran``, ``finished`` (before), ``locked`` (another process owns it)
    or ``failed`` (with the error as one line)."""

    spec: RunSpec
    status: str
    error: str = ""

    def line(self) -> str:
        return f"{self.spec.name}/seed{self.spec.seed}: {self.status}" + (f": {self.error}" if self.error else "")


def announce_finished(specs) -> None:
    """One console line per run found finished before (every executor says it in these words)."""
    for spec in specs:
        console(f"skip {spec.name} seed {spec.seed}: finished")


class RunsFailed(Exception):
    """Some runs failed (the others finished); the message names each with its error."""


#: the run command's executor flags -> the keyword argument each becomes
CLI_OPTIONS = {"--address": "address", "--cpus-per-run": "cpus", "--gpus-per-run": "gpus"}


class Executor:
    """Base class of executors (see the module docstring for the contract)."""

    name = "executor"
    #: keyword arguments of the constructor that ``grpo-bench run`` may pass (values of :data:`CLI_OPTIONS`)
    cli_options: tuple[str, ...] = ()

    def execute(self, plan: Plan, registry: Registry) -> list[Outcome]:
        raise NotImplementedError


def make_executor(registry: Registry, name: str, flags: dict) -> Executor:
    """The executor registered as ``name``, built with the CLI flags given (``{"--address": "auto"}``;
    flags left at None are not given); a flag the executor does not take is a :class:`UserError`."""
    cls = registry.get("executors", name)
    given = {flag: value for flag, value in flags.items() if value is not None}
    takes = [f for f, key in CLI_OPTIONS.items() if key in cls.cli_options]
    for flag in given:
        if CLI_OPTIONS[flag] not in cls.cli_options:
            others = [n for n in registry.names("executors")
                      if CLI_OPTIONS[flag] in registry.get("executors", n).cli_options]
            raise UserError(f"{flag} is not an option of --executor {name} (it takes: {', '.join(takes) or 'none'}); "
                            f"executors that take it: {', '.join(others) or 'none'}")
    return cls(**{CLI_OPTIONS[flag]: value for flag, value in given.items()})


@register_executor("local")
class LocalExecutor(Executor):
    """Every pending run in this process, in plan order, sharing one model, engine and scorers.

    An exception in a run stops the executor (the traceback is the report); a rerun resumes."""

    def execute(self, plan: Plan, registry: Registry) -> list[Outcome]:
        pending = plan.pending()
        outcomes = {spec: Outcome(spec, FINISHED) for spec in plan.runs if spec not in pending}
        announce_finished(outcomes)
        if pending:  # else no model is loaded
            session = Session(plan.suite, registry)
            try:
                for spec in pending:
                    outcomes[spec] = Outcome(spec, run_one(session, plan.out, spec.variant, spec.seed, plan.record))
            finally:
                session.close()
        return [outcomes[spec] for spec in plan.runs]
