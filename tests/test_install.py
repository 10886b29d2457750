"""The package installs like any other: a wheel built from this checkout, installed into a temporary
target, evaluates `arith` and a bundled benchmark from another directory (plugins found through the
installed wheel's entry points, bundled data through its package data)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    wheels = tmp_path_factory.mktemp("wheels")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels),
                    str(ROOT)], check=True, capture_output=True, text=True, cwd=tmp_path_factory.getbasetemp())
    (wheel,) = wheels.glob("grpo_bench-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "grpo_bench/data/gsm8k/test.jsonl.gz" in names and "grpo_bench/data/README.md" in names
    assert "grpo_bench/plugins/benchmarks/datasets/gsm8k.toml" in names  # the bundled declarations
    target = tmp_path_factory.mktemp("target")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, text=True)
    return target


def _run(target: Path, cwd: Path, *code_or_args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "GRPO_BENCH_DATA_DIR"}
    env.update(PYTHONPATH=str(target), HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, *code_or_args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_wheel_evaluates_from_another_directory(installed, tmp_path):
    where = _run(installed, tmp_path, "-c",
                 "import json, grpo_bench, grpo_bench.benchmark as b; from grpo_bench.registry import default_registry;"
                 "r = default_registry(); print(json.dumps({'pkg': grpo_bench.__file__, 'data': str(b.DATA_DIR),"
                 " 'src': r.tables['benchmarks']['gsm8k'].source, 'errors': [str(e) for e in r.errors]}))")
    assert where.returncode == 0, where.stderr
    info = json.loads(where.stdout.strip().splitlines()[-1])
    assert info["pkg"].startswith(str(installed)) and info["data"].startswith(str(installed)), info
    assert not info["errors"], info
    for bench in ("arith", "gsm8k"):
        out = tmp_path / f"{bench}.json"
        proc = _run(installed, tmp_path, "-m", "grpo_bench.cli", "eval", "--model", "tiny-random", "--benchmark", bench,
                    "--limit", "2", "--max-new-tokens", "4", "--engine", "hf", "--out", str(out))
        assert proc.returncode == 0, proc.stderr[-2000:]
        summary = json.loads(out.read_text())
        assert summary["n"] == 2 and 0.0 <= summary["pass@1"] <= 1.0
        records = [json.loads(line) for line in out.with_suffix(".records.jsonl").read_text().splitlines()]
        assert len(records) == 2 and len({r["id"] for r in records}) == 2, records[0].keys()
