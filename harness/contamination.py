"""``grpo-bench benchmarks check``: duplicates within each split of a benchmark and exact overlap of its test
split with its other splits, after normalising whitespace and the formatting of numbers.

Two problems are "the same" when their user messages (the benchmark's prompt with the question filled in)
are equal after :func:`normalise`. Counted per split: items, distinct items, duplicates (items - distinct);
for every other split: how many test items (with repeats) also occur there. A benchmark that claims a
held-out test split (``Benchmark.held_out``) must show 0 duplicates in test and 0 test items elsewhere.
"""

from __future__ import annotations

import re
from collections import Counter
from decimal import Decimal, InvalidOperation

from .benchmark import Benchmark

_NUMBER = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?(?!\d)|\d+(?:\.\d+)?")


def _number(match: re.Match) -> str:
    text = match.group(0).replace(",", "")
    try:
        return format(Decimal(text).normalize(), "f")
    except InvalidOperation:
        return text


def normalise(text: str) -> str:
    """Whitespace runs -> one space, ends stripped; numbers written canonically (``1,000`` -> ``1000``,
    ``2.50`` -> ``2.5``, ``007`` -> ``7``, ``3.0`` -> ``3``)."""
    return _NUMBER.sub(_number, " ".join(text.split()))


def check_benchmark(bench: Benchmark) -> list[dict]:
    """One row per split: items, distinct, duplicates, and test items found in that split (non-test splits)."""
    texts = {split: [normalise(p.prompt) for p in bench.problems(split)] for split in bench.splits}
    test = texts.get("test", [])
    rows = []
    for split, items in texts.items():
        counts = Counter(items)
        in_split = None if split == "test" or not test else sum(1 for t in test if t in counts)
        rows.append({"benchmark": bench.name, "version": bench.version, "held_out": bench.held_out, "split": split,
                     "items": len(items), "distinct": len(counts), "duplicates": len(items) - len(counts),
                     "test_items_here": in_split})
    return rows


def check_all(registry, names: list[str] | None = None) -> list[dict]:
    """Rows of every version of each named (default: every registered) benchmark."""
    rows = []
    for name in names or registry.names("benchmarks"):
        bench = registry.get("benchmarks", name)
        for version in bench.versions:
            rows += check_benchmark(bench.at_version(version))
    return rows


def cross_overlap(registry, names: list[str] | None = None) -> list[dict]:
    """Test items of each named benchmark version found in the train split of another registered benchmark
    or version (what a suite that trains on one and evaluates on the other would see); nonzero pairs only."""
    def versions(name):
        bench = registry.get("benchmarks", name)
        return [bench.at_version(v) for v in bench.versions]

    trains = {(b.name, b.version): {normalise(p.prompt) for p in b.problems("train")}
              for name in registry.names("benchmarks") for b in versions(name) if "train" in b.splits}
    out = []
    for name in names or registry.names("benchmarks"):
        for bench in versions(name):
            if "test" not in bench.splits:
                continue
            test = [normalise(p.prompt) for p in bench.problems("test")]
            for (other, version), train in trains.items():
                found = sum(1 for t in test if t in train)
                if found and (other, version) != (bench.name, bench.version):
                    out.append({"test": f"{bench.name} v{bench.version}", "train": f"{other} v{version}",
                                "test_items": len(test), "found_in_train": found})
    return out


def to_table(rows: list[dict], cross: list[dict] | None = None) -> str:
    header = ["benchmark", "version", "held-out claimed", "split", "items", "distinct", "duplicates",
              "test items also in this split"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        here = "-" if r["test_items_here"] is None else str(r["test_items_here"])
        lines.append(f"| {r['benchmark']} | {r['version']} | {'yes' if r['held_out'] else 'no'} | {r['split']} | "
                     f"{r['items']} | {r['distinct']} | {r['duplicates']} | {here} |")
    if cross is not None:
        lines += ["", "Test items found in the train split of another benchmark or version:", ""]
        lines += ["| test split | train split | test items | found in that train split |", "|---|---|---|---|"]
        lines += [f"| {c['test']} | {c['train']} | {c['test_items']} | {c['found_in_train']} |" for c in cross]
        lines += [] if cross else ["| (none) | | | |"]
    return "\n".join(lines)
