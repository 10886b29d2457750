"""Planning: a suite becomes a list of runs (the base model's evaluation once, then every variant x
seed), each with its own folder under the suite's results folder. Planning loads no model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..config.schema import Suite
from ..config.suite import config_hash
from ..errors import UserError
from ..provenance import provenance
from ..registry import Registry

BASE = "base"


@dataclass(frozen=True)
class RunSpec:
    """One unit of work: ``variant`` None is the base model's evaluation (no training)."""

    variant: str | None
    seed: int

    @property
    def name(self) -> str:
        return self.variant or BASE

    def run_dir(self, out: Path) -> Path:
        return Path(out) / "runs" / self.name / f"seed{self.seed}"

    def finished(self, out: Path) -> bool:
        return (self.run_dir(out) / "summary.json").exists()


@dataclass
class Plan:
    suite: Suite
    out: Path  # the suite's results folder
    runs: list[RunSpec]
    record: dict = field(default_factory=dict)  # written into every run's config.json

    def pending(self) -> list[RunSpec]:
        return [r for r in self.runs if not r.finished(self.out)]


def make_plan(suite: Suite, registry: Registry, results_root: Path, only: list[str] | None = None) -> Plan:
    """The grid, in a fixed order: base (first seed), then each variant in suite order x each seed."""
    names = [v.name for v in suite.variants]
    if only:
        unknown = [n for n in only if n not in names]
        if unknown:
            raise UserError(f"--variant {unknown[0]!r}: not in suite (variants: {', '.join(names)})")
    runs = [RunSpec(None, suite.suite.seeds[0])]
    runs += [RunSpec(v.name, seed) for v in suite.variants if not only or v.name in only for seed in suite.suite.seeds]
    out = Path(results_root) / suite.suite.name
    resolved = suite.resolved()
    record = {"suite": suite.suite.name, "config": resolved, "config_hash": config_hash(resolved),
              "provenance": provenance(),
              "benchmarks": {t.name: registry.get("benchmarks", t.name).describe() for t in suite.eval.benchmarks}}
    return Plan(suite, out, runs, record)


def stamp(plan: Plan) -> None:
    """Check that the results folder holds this configuration (or nothing), then write suite.json."""
    from ..io import atomic_write_json

    path = plan.out / "suite.json"
    digest = plan.record["config_hash"]
    if path.exists():
        old = json.loads(path.read_text())
        if old.get("config_hash") != digest:
            raise UserError(
                f"{plan.out} holds results of a different configuration of suite {plan.suite.suite.name!r} "
                f"(hash {old.get('config_hash')} != {digest}); move it away or pass --results-dir"
            )
    atomic_write_json(path, {"config": plan.record["config"], "config_hash": digest,
                             "suite_file": str(plan.suite.path), "provenance": plan.record["provenance"]})
