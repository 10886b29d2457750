"""The smoke suite (`make smoke`, the README's main command) is the one whose result is published in
results/smoke/, and that result shows what the README says: GRPO above the base model on held-out arith."""

import json
from pathlib import Path

from grpo_bench.config import load_suite
from grpo_bench.config.suite import AUTO_SWITCHES, config_hash
from grpo_bench.execute.plan import shared_config
from grpo_bench.registry import default_registry

ROOT = Path(__file__).resolve().parent.parent
PUBLISHED = ROOT / "results" / "smoke"


def test_smoke_suite_settings_are_the_measured_ones():
    """Every setting equal to the published run's, up to the device-dependent "auto" switches (a machine
    without fast bf16 resolves those differently: the hash is compared with the published values put in)."""
    published = json.loads((PUBLISHED / "suite.json").read_text())
    resolved = load_suite(ROOT / "benchmarks" / "smoke.toml", default_registry()).resolved()
    for key in AUTO_SWITCHES:
        resolved["train"][key] = published["config"]["train"][key]
    assert config_hash(shared_config(resolved)) == published["config_hash"]


def test_published_smoke_run_beats_the_base_model_with_an_interval_excluding_zero():
    board = json.loads((PUBLISHED / "leaderboard.json").read_text())
    rows = {r["variant"]: r for r in board["rows"]}
    grpo = rows["grpo"]["eval"]["arith-test"]["pass@1"]
    base = rows["base"]["eval"]["arith-test"]["pass@1"]
    assert grpo["mean"]["value"] > base["mean"]["value"]
    # the base row's difference to the reference (grpo): its whole 95% interval below 0
    assert board["reference"] == "grpo" and base["delta"]["hi"] < 0
