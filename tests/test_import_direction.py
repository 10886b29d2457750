"""The trainer takes nothing from the suite loader (data flows suite -> plan -> executor -> trainer)."""

import ast
from pathlib import Path

from grpo_bench.config import suite
from grpo_bench.training import numerics

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


def test_trainer_does_not_import_the_suite_loader():
    modules = imported_modules(ROOT / "harness" / "training" / "trainer.py")
    assert not any(m.endswith("config.suite") for m in modules), modules
    assert ".numerics" in modules


def test_suite_loader_and_trainer_resolve_auto_alike():
    """While config.suite still holds its own copy of these settings, they must say the same."""
    assert suite.AUTO_SWITCHES == numerics.AUTO_SWITCHES
    assert suite.RATIO_NUMERICS == numerics.RATIO_NUMERICS
    assert suite.ATTENTION_CHOICES == numerics.ATTENTION_CHOICES
    for key in numerics.AUTO_SWITCHES:
        for ratios in (False, True):
            assert (suite.resolve_auto(key, "auto", "cpu", ValueError, ratios)
                    == numerics.resolve_auto(key, "auto", "cpu", ValueError, ratios)), key
