"""One self-describing config: every schema field has its help and limits in its metadata, the loader's
checks read them, and docs/config.md is that metadata as printed by ``grpo-bench config keys --markdown``."""

import dataclasses
import inspect
import tomllib
from pathlib import Path

import pytest

from grpo_bench.config import reference, schema
from grpo_bench.config.options import check_fields, option, value_problem

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "config.md"


def schema_dataclasses() -> list[type]:
    return [cls for _, cls in inspect.getmembers(schema, inspect.isclass)
            if dataclasses.is_dataclass(cls) and cls.__module__ == schema.__name__]


def test_every_schema_field_has_one_line_help():
    classes = schema_dataclasses()
    assert {"TrainConfig", "SuiteMeta", "EvalTarget", "Claim", "LoraOptions"} <= {c.__name__ for c in classes}
    for cls in classes:
        for f in dataclasses.fields(cls):
            help_text = f.metadata.get("help", "")
            assert help_text.strip(), f"{cls.__name__}.{f.name} has no help: declare it with option(..., help=...)"
            assert "\n" not in help_text, f"{cls.__name__}.{f.name}: help is one line"


def test_docs_config_md_is_generated_from_the_schema():
    assert DOC.read_text() == reference.markdown(), (
        "docs/config.md is stale: regenerate it with `grpo-bench config keys --markdown > docs/config.md`")


def test_the_reference_states_limits_written_by_hand():
    rows = {r["key"]: r for r in reference.keys()}
    assert rows["train.adam_beta1"] == {"section": "train", "key": "train.adam_beta1", "type": "float",
                                            "default": "0.9", "allowed": "in [0, 1) (an exponential moving-average factor)",
                                            "help": "AdamW beta1"}
    assert rows["train.bf16_autocast"]["type"] == "bool or string"
    assert rows["train.bf16_autocast"]["allowed"] == 'one of true, false, "auto"'
    assert rows["eval.max_new_tokens"]["allowed"] == ">= 1 (a count); <= 1048576 (longer than any model's context)"
    assert rows["suite.seeds"]["type"] == "array of int" and rows["suite.seeds"]["default"] == "[0]"
    assert rows["claims[].alpha"]["allowed"] == "in (0, 0.5)"
    assert rows["train.lora.dropout"]["allowed"] == "in [0, 1)"
    assert rows["eval.benchmarks"]["type"] == "array of tables"


def test_every_key_the_shipped_suites_use_is_in_the_reference():
    known = {r["key"] for r in reference.keys()}
    for path in sorted((ROOT / "benchmarks").glob("*.toml")):
        data = tomllib.loads(path.read_text())
        for section in ("suite", "train", "eval"):
            for key in data.get(section, {}):
                assert f"{section}.{key}" in known, f"{path.name}: {section}.{key}"
        for v in data.get("variants", []):
            assert all(f"variants[].{k}" in known for k in v), path.name


@dataclasses.dataclass
class _Example:
    count: int = option(3, help="a count", min=1, why="a count")
    share: float = option(0.5, help="a share", min=0, max=1, max_open=True)
    length: int = option(8, help="a length", min=1, max=100, max_why="too long")
    rate: float = option(1.0, help="a rate", min=0, min_open=True, finite=True)
    mode: str = option("a", help="a mode", choices=("a", "b"))
    seeds: list[int] = option(help="seeds", factory=lambda: [0], min=0, max=9)


@pytest.mark.parametrize("changes, message", [
    ({"count": 0}, "x.count: must be >= 1 (a count), got 0"),
    ({"share": 1.0}, "x.share: must be in [0, 1), got 1.0"),
    ({"share": -0.25}, "x.share: must be in [0, 1), got -0.25"),
    ({"share": float("nan")}, "x.share: must be a finite number in [0, 1), got nan"),
    ({"length": 0}, "x.length: must be >= 1, got 0"),
    ({"length": 101}, "x.length: must be <= 100 (too long), got 101"),
    ({"rate": 0.0}, "x.rate: must be a finite number > 0, got 0.0"),
    ({"mode": "c"}, "x.mode: expected one of a, b, got 'c'"),
    ({"seeds": [0, 10]}, "x.seeds[1]: must be in [0, 9], got 10"),
])
def test_check_fields_messages(changes, message):
    def err(key, msg):
        return ValueError(f"{key}: {msg}")

    check_fields(_Example(), err, "x")  # the defaults pass
    with pytest.raises(ValueError) as exc:
        check_fields(dataclasses.replace(_Example(), **changes), err, "x")
    assert str(exc.value) == message


def test_choices_tell_true_from_one():
    meta = dataclasses.fields(schema.TrainConfig)[[f.name for f in dataclasses.fields(schema.TrainConfig)]
                                                   .index("bf16_autocast")].metadata
    assert value_problem(meta, True) is None and value_problem(meta, "auto") is None
    assert value_problem(meta, 1) == "expected one of True, False, auto, got 1"


def test_config_keys_command(capsys):
    from grpo_bench.cli import main

    assert main(["config", "keys"]) == 0
    out = capsys.readouterr().out
    assert "[train]" in out and "  train.group_size (int, default 4; >= 2 (advantages are normalised within a group))" in out
    assert main(["config", "keys", "--markdown"]) == 0
    assert capsys.readouterr().out == DOC.read_text()
