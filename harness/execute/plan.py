"""Planning: a suite becomes a list of runs (the base model's evaluation once, then every variant x
seed), each with its own folder under the suite's results folder. Planning loads no model.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..benchmark import benchmark_at
from ..config.schema import Suite
from ..config.suite import config_hash, without_legacy_targets, without_legacy_values
from ..errors import UserError
from ..provenance import provenance
from ..registry import Registry, did_you_mean

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

    def summary(self, out: Path) -> dict:
        """The finished run's summary.json."""
        return json.loads((self.run_dir(out) / "summary.json").read_text())


@dataclass
class Plan:
    suite: Suite
    out: Path  # the suite's results folder
    runs: list[RunSpec]
    record: dict = field(default_factory=dict)  # written into every run's config.json

    def pending(self) -> list[RunSpec]:
        return [r for r in self.runs if not r.finished(self.out)]


def shared_config(resolved: dict) -> dict:
    """What every run of a suite shares, hence what the suite's config hash covers: the resolved config
    less the variants, the seeds, the resources and the plugin modules (so a suite may grow new variants and seeds and
    reuse its finished runs; a run's own variant is checked per run by :func:`check_finished`)."""
    shared = copy.deepcopy(resolved)
    shared.pop("variants", None)
    shared.pop("claims", None)  # analysis only: claims never change a run
    for key in ("seeds", "resources", "plugins"):
        shared.get("suite", {}).pop(key, None)
    if "train" in shared:  # keys at the value that reproduces folders written before they existed
        shared["train"] = without_legacy_values(shared["train"])
    if "eval" in shared:
        shared["eval"] = without_legacy_targets(shared["eval"])
    return shared


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with 0 <= i < n."""
    i, sep, n = text.partition("/")
    try:
        i, n = int(i), int(n)
    except ValueError:
        i, n = -1, 0
    if not sep or n < 1 or not 0 <= i < n:
        raise UserError(f"--shard {text!r}: expected i/n with 0 <= i < n (e.g. 0/4)")
    return i, n


def make_plan(suite: Suite, registry: Registry, results_root: Path, only: list[str] | None = None,
              shard: tuple[int, int] | None = None) -> Plan:
    """The grid, in a fixed order: base (first seed), then seed by seed, each variant in suite order.

    Seed-major, so that a run cut short (a session's end, a budget) leaves complete paired sets: every variant
    at seed 0, then every variant at seed 1, ... (paired differences need both sides at the same seed).

    ``shard = (i, n)`` keeps the runs at positions i, i + n, i + 2n, ... of that order (shard 0 owns the
    base evaluation): a deterministic slice for job arrays; ``grpo-bench leaderboard DIR`` finalises."""
    names = [v.name for v in suite.variants]
    if only:
        unknown = [n for n in only if n not in names]
        if unknown:
            raise UserError(f"--variant {unknown[0]!r}: not in suite{did_you_mean(unknown[0], names)} "
                            f"(variants: {', '.join(names)})")
    resolve_inputs(suite, registry)
    runs = [RunSpec(None, suite.suite.seeds[0])]
    runs += [RunSpec(v.name, seed) for seed in suite.suite.seeds for v in suite.variants if not only or v.name in only]
    if shard is not None:
        runs = runs[shard[0]::shard[1]]
    out = Path(results_root) / suite.suite.name
    resolved = suite.resolved()
    record = {"suite": suite.suite.name, "config": resolved, "config_hash": config_hash(shared_config(resolved)),
              "provenance": provenance() | {"overrides": list(suite.overrides)},
              "benchmarks": {t.name: benchmark_at(registry, t.name, t.version).describe() for t in suite.eval.benchmarks}}
    return Plan(suite, out, runs, record)


def check_finished(plan: Plan) -> None:
    """A finished run of a variant must have been trained with the suite's definition of that variant
    (algorithm and options): growing a suite reuses runs, redefining a variant does not."""
    for spec in plan.runs:
        if spec.variant is None or not spec.finished(plan.out):
            continue
        recorded = spec.summary(plan.out).get("config", {})
        old = next((v for v in recorded.get("variants", []) if v.get("name") == spec.variant), None)
        new = asdict(plan.suite.variant(spec.variant))
        if old is not None and json.loads(json.dumps(old, default=str)) != json.loads(json.dumps(new, default=str)):
            raise UserError(f"{spec.run_dir(plan.out)} was trained with variant {spec.variant!r} = {old}, the suite now "
                            f"defines {new}; rename the variant or move that run away")
def resolve_inputs(suite: Suite, registry: Registry) -> None:
    """The model and every benchmark's data source, checked before anything is written: a hub id
    that cannot be reached is a one-line UserError here, not a traceback after the first file."""
    import os

    from ..hub import check_dataset, check_model

    check_model(suite.suite.model)
    from ..scoring.reward_model import check_reward_model, is_model_name

    for name in suite.train.rewards:
        if name not in registry.names("rewards") and is_model_name(name):
            check_reward_model(name)
    uses = [(suite.train.benchmark, suite.train.benchmark_version), *((t.name, t.version) for t in suite.eval.benchmarks)]
    for name, version in uses:
        bench = benchmark_at(registry, name, version)
        bench.use_data(suite.suite.data)
        if bench.hub_dataset and (bench.data_source == "hub" or os.environ.get("GRPO_BENCH_HUB") == "1"):
            check_dataset(name, bench.hub_dataset)


def _diff(value, default, prefix: str, out: list[str]) -> None:
    if isinstance(value, dict) and isinstance(default, dict):
        for k in value:
            _diff(value[k], default.get(k), f"{prefix}.{k}" if prefix else k, out)
    elif value != default:
        out.append(f"  {prefix} = {json.dumps(value, default=str)}  (default {json.dumps(default, default=str)})")


def describe(plan: Plan, registry: Registry, refused: str | None = None) -> str:
    """The plan as text for ``--dry-run``: runs, what differs from the defaults, and the cost bound;
    ``refused`` (from :func:`refusal`): why the real run would stop before any run, said first and last."""
    import dataclasses

    from ..config.schema import EvalSection, SuiteMeta, TrainSection

    suite = plan.suite
    lines = [f"suite {suite.suite.name}: {len(plan.runs)} runs -> {plan.out}"]
    if refused:
        lines.append(f"REFUSED: grpo-bench run would stop before any run: {refused}")
    pending = plan.pending()
    done = "finished (the folder is refused)" if refused else "finished (skipped)"
    for r in plan.runs:
        lines.append(f"  {r.name} seed {r.seed}: {'pending' if r in pending else done}")
    if suite.overrides:
        lines.append("overrides: " + " ".join(suite.overrides))
    lines.append("settings that differ from the defaults:")
    diffs: list[str] = []
    resolved = plan.record["config"]
    for key, cls in (("suite", SuiteMeta), ("train", TrainSection), ("eval", EvalSection)):
        _diff(resolved[key], dataclasses.asdict(cls()), key, diffs)
    for v in suite.variants:
        defaults = registry.get("algorithms", v.algorithm)().config()["options"]
        _diff(dict(v.options), defaults, f"variants.{v.name}", diffs)
        _diff(dict(v.train or {}), {k: resolved["train"].get(k) for k in (v.train or {})}, f"variants.{v.name}.train", diffs)
    lines += diffs or ["  (none)"]
    tr, ev = suite.train, suite.eval
    train_samples = train_tokens = 0
    for r in pending:
        if r.variant is not None:  # a variant's own train settings replace the suite's
            t = dataclasses.replace(tr, **dict(suite.variant(r.variant).train or {}))
            n = t.steps * t.prompts_per_step * t.group_size
            train_samples, train_tokens = train_samples + n, train_tokens + n * t.max_new_tokens
    eval_problems = 0
    for t in ev.benchmarks:
        n = len(benchmark_at(registry, t.name, t.version).problems(t.split))
        eval_problems += min(n, t.limit) if t.limit else n
    eval_samples = len(pending) * eval_problems * (1 + ev.samples)
    lines.append(f"cost of the pending runs: {train_samples} training samples, first draws (at most "
                 f"{train_tokens} generated tokens), "
                 f"{eval_samples} evaluation samples (at most {eval_samples * ev.max_new_tokens} generated tokens)")
    lines.append(_time_estimate(plan, pending))
    if refused:
        lines.append(f"REFUSED: {refused}")
    return "\n".join(lines)


def _time_estimate(plan: Plan, pending: list[RunSpec]) -> str:
    """Wall time of the pending trained runs from this folder's finished trained runs (median
    ``run_wall_s``), naming the hardware they ran on; none finished: say how to measure it."""
    import statistics

    walls, hardware = [], set()
    for path in sorted(plan.out.glob("runs/*/seed*/summary.json")):  # every shard's finished runs, not only this one's
        if path.parent.parent.name == BASE:
            continue
        try:
            summary = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(summary.get("run_wall_s"), (int, float)):
            walls.append(summary["run_wall_s"])
            hw = summary.get("provenance", {}).get("hardware", {})
            hardware.add(f"{hw.get('cpu', 'unknown CPU')} x{hw.get('cores', '?')}" + (f" + {hw['gpu']}" if hw.get("gpu") else ""))
    trained = sum(1 for r in pending if r.variant is not None)
    if not walls:
        return ("time: not estimated (no finished run here yet); measure one step on this machine with "
                "--set train.steps=1")
    per_run = statistics.median(walls)
    total = trained * per_run
    total_text = f"{total / 3600:.1f} h" if total >= 3600 else f"{total / 60:.1f} min"
    return (f"time: about {per_run / 60:.1f} min per trained run (median of {len(walls)} finished here, on "
            f"{', '.join(sorted(hardware))}), so about {total_text} for the {trained} pending "
            f"trained runs on one such machine; variants with other train settings may differ")


def check_writable(folder: Path) -> None:
    """The results folder can be created and written to (a probe file, removed again), before any run
    starts: a read-only or unwritable folder is one line, not a traceback after the first run."""
    import os
    import tempfile

    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-probe.")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UserError(f"cannot write results to {folder}: {exc.strerror or exc}; "
                        "make it writable or pass --results-dir") from None


def check_folder(plan: Plan) -> None:
    """What the real run refuses: a results folder holding another configuration of the suite, or a
    finished run of a variant the suite now defines differently (:func:`check_finished`)."""
    path = plan.out / "suite.json"
    if path.exists():
        old = json.loads(path.read_text())
        old_digest = config_hash(shared_config(old["config"])) if "config" in old else old.get("config_hash")
        digest = plan.record["config_hash"]
        if old_digest != digest:  # recomputed: folders written before the hash left out variants and seeds
            raise UserError(
                f"{plan.out} holds results of a different configuration of suite {plan.suite.suite.name!r} "
                f"(hash {old_digest} != {digest}); move it away or pass --results-dir"
            )
    check_finished(plan)


def refusal(plan: Plan) -> str | None:
    """Why ``grpo-bench run`` would refuse this plan (for ``--dry-run``, which writes nothing), or None."""
    import os

    try:
        check_folder(plan)
    except UserError as exc:
        return str(exc)
    existing = next(p for p in (plan.out, *plan.out.parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        return f"cannot write results to {plan.out}: {existing} is not writable"
    return None


def stamp(plan: Plan) -> None:
    """Check that the results folder can be written and holds this configuration (or nothing), then write suite.json."""
    from ..io import atomic_write_json

    check_writable(plan.out)
    check_folder(plan)
    atomic_write_json(plan.out / "suite.json", {"config": plan.record["config"], "config_hash": plan.record["config_hash"],
                                                "suite_file": str(plan.suite.path), "provenance": plan.record["provenance"]})
