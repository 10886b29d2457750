"""docs/trl.md stays true: every suite key its GRPOConfig table names exists in the schema, and every
registered algorithm appears in it."""

import dataclasses
import re

from conftest import ROOT
from grpo_bench.config.schema import EvalSection, SuiteMeta, TrainSection, Variant
from grpo_bench.registry import default_registry

DOC = ROOT / "docs" / "trl.md"


def config_table() -> list[list[str]]:
    text = DOC.read_text()
    section = text.split("## GRPOConfig names and suite keys", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    assert rows[0].startswith("| TRL `GRPOConfig` | grpo-bench suite key |")
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[2:]]


def suite_keys(cell: str) -> list[str]:
    """The dotted suite keys in a cell's code spans (``suite.engine = "vllm"`` -> ``suite.engine``)."""
    spans = re.findall(r"`([^`]+)`", cell)
    return [s.split("=")[0].strip() for s in spans if re.match(r"(train|suite|eval|variants)\.", s)]


def algorithm_options() -> set[str]:
    registry = default_registry()
    return {f.name for name in registry.names("algorithms")
            for f in dataclasses.fields(registry.get("algorithms", name)().options)}


def key_exists(key: str, options: set[str]) -> bool:
    section, _, rest = key.partition(".")
    if section == "variants":
        name, _, field = rest.partition(".")
        return name == "<name>" and (field in {f.name for f in dataclasses.fields(Variant)} or field in options)
    cls = {"train": TrainSection, "suite": SuiteMeta, "eval": EvalSection}[section]
    return rest in {f.name for f in dataclasses.fields(cls)}


def test_every_suite_key_in_the_grpoconfig_table_exists():
    rows = config_table()
    assert len(rows) >= 25
    options = algorithm_options()
    keys = [k for row in rows for k in suite_keys(row[1])]
    assert len(keys) >= 30
    missing = [k for k in keys if not key_exists(k, options)]
    assert not missing, missing
    assert {"suite.report_to", "eval.every", "train.samples_max_steps"} <= set(keys)
    assert "not here yet" not in DOC.read_text()


def test_every_registered_algorithm_is_in_the_table():
    loss_row = next(r for r in config_table() if r[0] == "`loss_type`")
    named = set(re.findall(r"`([a-z_]+)`", loss_row[2]))
    registered = set(default_registry().names("algorithms"))
    assert len(registered) == 8
    assert registered <= named, registered - named


def test_the_checker_rejects_keys_that_do_not_exist():
    options = algorithm_options()
    assert not key_exists("train.stepz", options) and not key_exists("suite.report", options)
    assert not key_exists("variants.<name>.epsilon", options)
    assert key_exists("variants.<name>.eps_high", options) and key_exists("eval.every_limit", options)
