"""Published results stay reusable: re-planning a published suite from its file against results/ finds its
folder's configuration (no refusal) and every run finished, and its config hash is the one recomputed from
the folder's own record. The hashes are pinned as the published folders give them."""

import json
from pathlib import Path

import pytest

from grpo_bench.config import config_hash, load_suite
from grpo_bench.execute.plan import make_plan, refusal, shared_config
from grpo_bench.registry import default_registry

ROOT = Path(__file__).resolve().parents[1]

#: suite file -> the hash of its published folder's record (results/<name>/suite.json, recomputed)
PUBLISHED = {"arith-paper-variants-v2": "ede8a023c69862af", "smoke": "408c2658e89517c6"}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_suite_replans_to_its_folder(name):
    record = json.loads((ROOT / "results" / name / "suite.json").read_text())
    assert config_hash(shared_config(record["config"])) == PUBLISHED[name]
    registry = default_registry()
    plan = make_plan(load_suite(ROOT / "benchmarks" / f"{name}.toml", registry), registry, ROOT / "results")
    assert plan.record["config_hash"] == PUBLISHED[name]
    assert refusal(plan) is None
    assert plan.pending() == []


def test_the_paper_claims_run_resumes_on_todays_code():
    """results/paper-claims is a run in progress (--until-decided): today's code reuses every published run of
    it (no refusal, the folder's hash) and plans the rest of the first look."""
    record = json.loads((ROOT / "results" / "paper-claims" / "suite.json").read_text())
    assert config_hash(shared_config(record["config"])) == "a415eb6be63f1215"
    registry = default_registry()
    plan = make_plan(load_suite(ROOT / "benchmarks" / "paper-claims.toml", registry), registry, ROOT / "results")
    assert plan.record["config_hash"] == "a415eb6be63f1215" and refusal(plan) is None
    published = {(p.parent.parent.name, int(p.parent.name[4:])) for p in
                 (ROOT / "results" / "paper-claims" / "runs").glob("*/seed*/summary.json")}
    pending = {(r.variant or "base", r.seed) for r in plan.pending()}
    assert published and not published & pending and len(published | pending) == len(plan.runs)
