"""The Ray executor (``grpo-bench run SUITE --executor ray [--address auto|ray://host:port]``): every
pending run of the plan becomes one Ray task with declared resources, each task loads its own model,
engine and scorers (a fresh :class:`~.session.Session`), and the driver waits for all of them.

- Resources per run: ``[suite] resources = {cpus = N, gpus = M}`` (``gpus = "auto"``: one GPU per run
  when the cluster has GPUs and the suite's device is not ``cpu``, else none), overridable with
  ``--cpus-per-run`` / ``--gpus-per-run``.
- Results: every task writes into the suite's results folder; on a multi-node cluster that folder must
  be a path every node sees (a shared file system), and grpo-bench must be installed on every node.
- Failures: a failed task is reported with its run and its error; the other tasks finish; a rerun
  resumes exactly as the local executor does (finished runs are skipped, an interrupted run resumes
  from its checkpoint, each run is owned through its lock file).
- Numbers: a task seeds torch with the run's seed and starts from the freshly loaded weights, exactly
  as :func:`~.session.run_one` does in the local executor, so both give the same numbers.

Ray is an optional dependency (``pip install 'grpo-bench[ray]'``); it is imported only here.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..config.schema import Suite
from ..declare import register_executor
from ..errors import UserError
from ..registry import Registry
from .executors import FAILED, Executor, Outcome, announce_finished
from .plan import Plan, RunSpec
from .session import FINISHED, RAN, console, finished_line_of

log = logging.getLogger(__name__)

#: Environment variables handed to every task (offline mode, data and cache locations).
ENV_PREFIXES = ("GRPO_BENCH_", "HF_", "TRANSFORMERS_", "VLLM_")


def _task(suite: Suite, out: str, spec: RunSpec, record: dict) -> str:
    """One run in a Ray worker: its own registry, model, engine and scorers."""
    from ..registry import default_registry, load_modules
    from .session import Session, run_one

    registry = default_registry()
    load_modules(registry, suite.suite.plugins, "suite.plugins", folder=Path(suite.path).resolve().parent)
    session = Session(suite, registry)
    try:
        return run_one(session, Path(out), spec.variant, spec.seed, record)
    finally:
        session.close()


def _one_line(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None) or exc  # RayTaskError wraps the task's own exception
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[-1] if text else ''}"


@register_executor("ray")
class RayExecutor(Executor):
    """One Ray task per pending run. ``address`` None starts a local cluster in this process (with
    ``num_cpus`` CPUs, default: all) unless Ray is already initialised; "auto" or "ray://host:port"
    connects to a running one."""

    cli_options = ("address", "cpus", "gpus")

    def __init__(self, address: str | None = None, cpus: float | None = None, gpus: float | None = None,
                 num_cpus: int | None = None):
        self.address, self.cpus, self.gpus, self.num_cpus = address, cpus, gpus, num_cpus

    def resources(self, suite: Suite, cluster: dict) -> tuple[float, float]:
        want = suite.suite.resources
        cpus = self.cpus if self.cpus is not None else want.get("cpus", 1)
        gpus = self.gpus if self.gpus is not None else want.get("gpus", "auto")
        if gpus == "auto":
            gpus = 1 if cluster.get("GPU", 0) > 0 and suite.suite.device != "cpu" else 0
        for what, need in (("CPU", cpus), ("GPU", gpus)):
            if need > cluster.get(what, 0):
                raise UserError(f"one run needs {need} {what}(s) but the Ray cluster has {cluster.get(what, 0)}; "
                                f"lower [suite] resources or --{what.lower()}s-per-run")
        return cpus, gpus

    def execute(self, plan: Plan, registry: Registry) -> list[Outcome]:
        try:
            import ray
        except ImportError:
            raise UserError("--executor ray needs Ray: pip install 'grpo-bench[ray]'") from None
        pending = plan.pending()
        outcomes = {spec: Outcome(spec, FINISHED) for spec in plan.runs if spec not in pending}
        announce_finished(outcomes)
        if not pending:
            return [outcomes[spec] for spec in plan.runs]
        started = False
        if not ray.is_initialized():
            env = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIXES)}
            kwargs = dict(include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env})
            if self.address is None:
                kwargs["num_cpus"] = self.num_cpus
            ray.init(address=self.address, **kwargs)
            started = True
        try:
            cpus, gpus = self.resources(plan.suite, ray.cluster_resources())
            log.info("ray: %d runs, %s CPU and %s GPU each", len(pending), cpus, gpus)
            remote = ray.remote(_task).options(num_cpus=cpus, num_gpus=gpus, max_retries=0)
            refs = {remote.remote(plan.suite, str(plan.out), spec, plan.record): spec for spec in pending}
            waiting = list(refs)
            while waiting:
                ready, waiting = ray.wait(waiting, num_returns=1)
                spec = refs[ready[0]]
                try:
                    outcomes[spec] = Outcome(spec, ray.get(ready[0]))
                except Exception as exc:  # noqa: BLE001 - reported with its run; the other tasks go on
                    outcomes[spec] = Outcome(spec, FAILED, _one_line(exc))
                log.info("ray: %s", outcomes[spec].line())
                self._report(plan, outcomes[spec])
        finally:
            if started:
                ray.shutdown()
        return [outcomes[spec] for spec in plan.runs]

    @staticmethod
    def _report(plan: Plan, outcome: Outcome) -> None:
        """The run's console line as the local executor prints it (the task's own console is the worker's)."""
        spec = outcome.spec
        if outcome.status == RAN:
            console(finished_line_of(spec.run_dir(plan.out)))
        elif outcome.status == FAILED:
            console(f"failed {spec.name} seed {spec.seed}: {outcome.error}")
