"""Finished runs read back from a results folder, and the check that they may share one table.

Runs whose configs differ in anything but the variant and the seed are refused (:func:`check_comparable`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean

from ..config.suite import without_legacy_targets, without_legacy_values
from ..errors import UserError
from ..io import read_jsonl

DEFAULT_MARGIN = 0.03  # equivalence margin (3 points) unless the suite sets [suite] equivalence_margin
DEFAULT_TARGET = 0.5  # train accuracy for "steps to target"
WINDOW = 3  # trailing moving average of train accuracy, in steps
IGNORED_KEYS = ("variants", "suite.seeds", "suite.resources", "claims")  # what may differ between runs of one leaderboard


@dataclass
class Run:
    """One finished run folder: its summary.json, metrics.jsonl and eval records."""

    path: Path
    summary: dict
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def variant(self) -> str:
        return self.summary["variant"]

    @property
    def seed(self) -> int:
        return self.summary["seed"]

    @property
    def label(self) -> str:
        return f"{self.variant}/seed{self.seed}"

    def _read(self, rel: str) -> list[dict]:
        if rel not in self._cache:
            self._cache[rel] = read_jsonl(self.path / rel)
        return self._cache[rel]

    def metrics(self) -> list[dict]:
        """Training rows (empty for the base model)."""
        return self._read("metrics.jsonl")

    def eval_curve(self) -> list[dict]:
        """Evaluations during training (``[eval] every``): rows of step, key, pass@1, n; empty without."""
        return self._read("eval_curve.jsonl")

    def records(self, key: str) -> list[dict]:
        """Per-problem eval records of ``key`` (``arith-test``); empty when the file is missing."""
        return self._read(f"eval/{key}.records.jsonl")

    def scores(self, key: str, metric: str) -> dict[str, float] | None:
        """Per-problem score for an eval metric: ``correct`` for pass@1, the sample mean for mean@k."""
        out = {}
        for r in self.records(key):
            if metric == "pass@1":
                out[r["id"]] = float(r["correct"])
            elif r.get("sample_correct"):
                out[r["id"]] = fmean(float(c) for c in r["sample_correct"])
        return out or None


def load_runs(path: Path) -> list[Run]:
    """Finished runs of a suite folder (``runs/*/seed*/``), or the single run folder ``path`` itself."""
    path = Path(path)
    files = [path / "summary.json"]
    if not files[0].exists():
        files = sorted(path.glob("runs/*/seed*/summary.json"))
    return [Run(f.parent, json.loads(f.read_text())) for f in files]


def flatten(obj, prefix: str = "") -> dict:
    """Nested dicts and lists as dotted keys: ``{"eval.benchmarks[0].limit": 6, ...}``."""
    if isinstance(obj, dict):
        items = [(f"{prefix}.{k}" if prefix else str(k), v) for k, v in obj.items()]
    elif isinstance(obj, list) and obj and all(isinstance(v, (dict, list)) for v in obj):
        items = [(f"{prefix}[{i}]", v) for i, v in enumerate(obj)]
    else:
        return {prefix: obj}
    out = {}
    for key, value in items:
        out.update(flatten(value, key))
    return out


def comparable(config: dict) -> dict:
    """The config as dotted keys, without the keys that may differ (variants, seeds)."""
    flat = flatten({**config, "train": without_legacy_values(config.get("train", {})),
                    **({"eval": without_legacy_targets(config["eval"])} if "eval" in config else {})})
    return {k: v for k, v in flat.items() if not any(k == i or k.startswith(i + ".") or k.startswith(i + "[")
                                                    for i in IGNORED_KEYS)}


def benchmark_versions(summary: dict) -> dict[str, int]:
    """Benchmark name -> the version a run trained or evaluated on (recorded before versions existed: 1)."""
    config = summary.get("config", {})
    train = config.get("train", {})
    out = {train["benchmark"]: train.get("benchmark_version", 1)} if train.get("benchmark") else {}
    for target in config.get("eval", {}).get("benchmarks", []):
        out[target["name"]] = target.get("version", 1)
    for name, spec in (summary.get("benchmarks") or {}).items():
        out[name] = (spec or {}).get("version", out.get(name, 1))
    return out


def check_versions(runs: list[Run], where: Path) -> None:
    """One line when runs used different versions of a benchmark (their numbers are not comparable)."""
    seen: dict[str, dict[int, list[str]]] = {}
    for r in runs:
        for name, version in benchmark_versions(r.summary).items():
            seen.setdefault(name, {}).setdefault(version, []).append(r.label)
    for name, versions in sorted(seen.items()):
        if len(versions) > 1:
            parts = [f"version {v} ({', '.join(labels[:3])}{', ...' if len(labels) > 3 else ''})"
                     for v, labels in sorted(versions.items())]
            raise UserError(f"{where}: refusing to compare runs evaluated on different versions of benchmark "
                            f"{name!r}: {' vs '.join(parts)}")


def check_comparable(runs: list[Run], where: Path) -> None:
    """Refuse runs whose configs differ in anything but variant and seed.

    Compared: the benchmark versions first (:func:`check_versions`), then the resolved config (less variants
    and seeds), the prompt templates (``benchmarks``, ``chat_template``) and, between runs of one variant,
    the algorithm and its options.
    """
    check_versions(runs, where)
    flats = []
    for r in runs:
        s = r.summary
        algo = {f"algorithm({r.variant}).{k}": v for k, v in flatten(s.get("algorithm") or {}).items()}
        specs = {name: {"version": 1, **(spec or {})} for name, spec in (s.get("benchmarks") or {}).items()}
        prompts = flatten({"benchmarks": specs or s.get("benchmarks"), "chat_template": s.get("chat_template")})
        flats.append((r, {**comparable(s.get("config", {})), **prompts, **algo}))
    keys = sorted(set().union(*(f for _, f in flats)))
    problems = []
    for key in keys:
        values = {}
        for r, f in flats:
            if key.startswith("algorithm(") and not key.startswith(f"algorithm({r.variant})"):
                continue
            values.setdefault(json.dumps(f.get(key, "<missing>"), sort_keys=True, default=str), r.label)
        if len(values) > 1:
            problems.append(f"{key} (" + ", ".join(f"{lbl}: {v}" for v, lbl in list(values.items())[:3]) + ")")
    if problems:
        raise UserError(f"{where}: refusing to mix runs whose configs differ in more than variant and seed; "
                        f"differing keys: {'; '.join(problems)}")



def group_runs(runs: list[Run]) -> dict[str, list[Run]]:
    """Runs by variant: base first, then the suite's variant order, then any others by name."""
    groups: dict[str, list[Run]] = {}
    for r in sorted(runs, key=lambda r: r.seed):
        groups.setdefault(r.variant, []).append(r)
    order = [v.get("name") for v in runs[0].summary.get("config", {}).get("variants", [])]
    rank = {name: i for i, name in enumerate(["base", *order])}
    return dict(sorted(groups.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0])))


def eval_metrics(runs: list[Run]) -> dict[str, list[str]]:
    """Eval keys (``arith-test``) with their metrics: pass@1, then mean@k when sampled."""
    out: dict[str, list[str]] = {}
    for r in runs:
        for key, ev in r.summary.get("eval", {}).items():
            names = out.setdefault(key, ["pass@1"])
            names += [m for m in ev if m.startswith("mean@") and m not in names]
    return out
