"""Training takes nothing from the suite loader (data flows suite -> plan -> executor -> trainer): the
settings both need live in config modules of their own (config.numerics, config.lora), written once."""

import ast
from pathlib import Path

from grpo_bench.config import lora, numerics, suite

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, relative ones written with their dots (``..config.suite``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_training_does_not_import_the_suite_loader():
    for path in sorted((ROOT / "harness" / "training").glob("*.py")):
        modules = imported_modules(path)
        assert not any(m.endswith("config.suite") for m in modules), (path.name, modules)
    assert "..config.numerics" in imported_modules(ROOT / "harness" / "training" / "trainer.py")


def test_the_auto_settings_and_lora_check_are_written_once():
    """config.suite re-exports them: the same objects, not copies that could drift."""
    for name in ("AUTO_SWITCHES", "ATTENTION_CHOICES", "RATIO_NUMERICS", "resolve_auto", "algorithm_compares_ratios"):
        assert getattr(suite, name) is getattr(numerics, name), name
    assert suite.check_lora is lora.check_lora and suite.LORA_DEFAULTS is lora.LORA_DEFAULTS
    assert set(numerics.ATTENTION_CHOICES) == {"sdpa", "eager"}  # the schema's choices less "auto"
