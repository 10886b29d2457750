"""Plugin discovery: entry points of group ``grpo_bench`` -> pluggy -> name tables.

Every plugin is loaded on its own; one that fails to import or whose hook raises is recorded
in ``Registry.errors`` (shown by ``grpo-bench plugins`` and in unknown-name errors) and the
others still load.
"""

from __future__ import annotations

import functools
import importlib.metadata as md
from dataclasses import dataclass, field
from typing import Any

import pluggy

from . import PROJECT, hookspecs
from .errors import UserError

KINDS = ("rewards", "algorithms", "benchmarks", "engines")


@dataclass
class Entry:
    name: str
    kind: str
    obj: Any
    source: str  # "entry point <ep> (<dist> <version>)" or "module <name>"


@dataclass
class Registry:
    tables: dict[str, dict[str, Entry]] = field(default_factory=lambda: {k: {} for k in KINDS})
    errors: list[str] = field(default_factory=list)
    pm: pluggy.PluginManager = field(default_factory=lambda: _new_pm())

    def add_plugin(self, plugin: Any, source: str | None = None) -> None:
        """Register a plugin module/object and collect what its hooks return."""
        name = getattr(plugin, "__name__", None) or repr(plugin)
        if self.pm.is_registered(plugin):
            return
        self.pm.register(plugin, name=name)
        source = source or f"module {name}"
        for kind in KINDS:
            hook = getattr(self.pm.hook, f"grpo_bench_{kind}")
            for impl in hook.get_hookimpls():
                if impl.plugin is not plugin:
                    continue
                try:
                    provided = impl.function() or {}
                    if not isinstance(provided, dict):
                        raise TypeError(f"grpo_bench_{kind} must return a dict, got {type(provided).__name__}")
                except Exception as exc:  # a plugin that raises must not take the others down
                    self.errors.append(f"{source}: grpo_bench_{kind} raised {type(exc).__name__}: {exc}")
                    continue
                for key, obj in provided.items():
                    table = self.tables[kind]
                    declared = getattr(obj, "name", key) if kind != "rewards" else key
                    if declared != key:
                        self.errors.append(f"{source}: {kind[:-1]} registered as {key!r} but its name is "
                                           f"{declared!r}; ignored (the key must equal the class's name)")
                        continue
                    if key in table:
                        self.errors.append(
                            f"{source}: {kind[:-1]} {key!r} already registered by {table[key].source}; ignored"
                        )
                        continue
                    table[key] = Entry(key, kind, obj, source)

    def get(self, kind: str, name: str) -> Any:
        table = self.tables[kind]
        if name not in table:
            known = ", ".join(sorted(table)) or "none"
            hint = f"; plugin load errors: {'; '.join(self.errors)}" if self.errors else ""
            raise UserError(f"unknown {kind[:-1]} {name!r} (known: {known}){hint}")
        return table[name].obj

    def names(self, kind: str) -> list[str]:
        return sorted(self.tables[kind])


def _new_pm() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


def load_entry_points(registry: Registry, group: str = PROJECT) -> None:
    for ep in md.entry_points(group=group):
        dist = getattr(ep, "dist", None)
        where = f"{dist.metadata['Name']} {dist.version}" if dist is not None else "unknown distribution"
        source = f"entry point {ep.name} = {ep.value} ({where})"
        try:
            module = ep.load()
        except Exception as exc:
            registry.errors.append(f"{source}: failed to load: {type(exc).__name__}: {exc}")
            continue
        registry.add_plugin(module, source=source)


@functools.lru_cache(maxsize=1)
def default_registry() -> Registry:
    """The process-wide registry: every installed ``grpo_bench`` entry point."""
    registry = Registry()
    load_entry_points(registry)
    return registry
