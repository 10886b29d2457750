"""Plugin discovery: entry points of group ``grpo_bench`` (and modules named by a suite) -> pluggy
hooks and :mod:`grpo_bench.declare` decorators -> name tables.

Every plugin is loaded on its own; one that fails to import, whose hook raises or is misspelled
(pluggy's ``check_pending``), or that offers an object of the wrong kind is recorded in
``Registry.errors`` as one line naming the plugin (shown by ``grpo-bench plugins`` and in
unknown-name errors), and the others still load. An unknown name gets "did you mean".
"""

from __future__ import annotations

import difflib
import functools
import importlib
import importlib.metadata as md
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

from . import PROJECT, hookspecs
from .declare import NAMED_KINDS, declared_by
from .errors import UserError

KINDS = ("rewards", "algorithms", "benchmarks", "engines", "advantages", "executors")
HOOKS = tuple(f"grpo_bench_{kind}" for kind in KINDS)

#: core modules that declare built-ins of the kinds without a plugin package (``grpo-bench plugins`` lists them)
BUILTIN_MODULES = ("grpo_bench.algorithm", "grpo_bench.execute.executors", "grpo_bench.execute.ray_executor")

#: kind -> (module, class) the objects of that kind subclass; rewards and advantages are callables
BASES = {"algorithms": ("grpo_bench.algorithm", "Algorithm"), "benchmarks": ("grpo_bench.benchmark", "Benchmark"),
         "engines": ("grpo_bench.engine", "RolloutEngine"), "executors": ("grpo_bench.execute.executors", "Executor")}


@dataclass
class Entry:
    name: str
    kind: str
    obj: Any
    source: str  # "entry point <ep> (<dist> <version>)" or "module <name>"


def did_you_mean(name: str, known: list[str], n: int = 3) -> str:
    """``"; did you mean 'x'?"`` (or up to three: ``'x' or 'y'``) for the closest of ``known`` (difflib), else ``""``."""
    close = difflib.get_close_matches(str(name), known, n=n, cutoff=0.6)
    return f"; did you mean {' or '.join(map(repr, close))}?" if close else ""


def kind_error(kind: str, name: str, obj: Any) -> str | None:
    """Why ``obj`` cannot be the ``kind`` named ``name`` (wrong base class, not callable), or None."""
    what = f"{kind[:-1]} {name!r}"
    if kind in ("rewards", "advantages"):
        return None if callable(obj) and not isinstance(obj, type) else f"{what} must be a function, got {obj!r}"
    module, cls_name = BASES[kind]
    base = getattr(importlib.import_module(module), cls_name)
    if kind == "benchmarks":
        return None if isinstance(obj, base) else f"{what} must be an instance of {module}.{cls_name}, got {obj!r}"
    if isinstance(obj, type) and issubclass(obj, base):
        return None
    return f"{what} must be a subclass of {module}.{cls_name}, got {obj!r}"


@dataclass
class Registry:
    tables: dict[str, dict[str, Entry]] = field(default_factory=lambda: {k: {} for k in KINDS})
    errors: list[str] = field(default_factory=list)
    pm: pluggy.PluginManager = field(default_factory=lambda: _new_pm())
    #: the plugins added, by id (a plugin rejected by pluggy is unregistered but stays added)
    added: dict[int, Any] = field(default_factory=dict)

    def add_plugin(self, plugin: Any, source: str | None = None) -> list[str]:
        """Register a plugin module/object: collect what its hooks return and what its decorators
        declared. Returns the errors this plugin caused (also appended to ``errors``)."""
        name = getattr(plugin, "__name__", None) or repr(plugin)
        if self.added.get(id(plugin)) is plugin:
            return []
        self.added[id(plugin)] = plugin
        source = source or f"module {name}"
        before = len(self.errors)
        self.pm.register(plugin, name=f"{name}#{id(plugin)}")
        self._check_hooks(plugin, source)
        for kind in KINDS:
            for impl in getattr(self.pm.hook, f"grpo_bench_{kind}").get_hookimpls():
                if impl.plugin is plugin:
                    self._add_table(kind, self._call_hook(kind, impl, source), source)
        for kind, declared in declared_by(name).items() if isinstance(plugin, types.ModuleType) else ():
            self._add_table(kind, {k: _instance(kind, v) for k, v in declared.items()}, source)
        return self.errors[before:]

    def add(self, kind: str, table: dict[str, Any], source: str) -> list[str]:
        """Add plain objects (``{name: object}``) as if a plugin's hook had returned them; a class (or
        benchmark instance) that does not say its own ``name`` gets the key as its name."""
        before = len(self.errors)
        if kind not in self.tables:
            self.errors.append(f"{source}: unknown plugin kind {kind!r}{did_you_mean(kind, list(KINDS))}")
            return self.errors[before:]
        for key, obj in table.items():
            if kind in NAMED_KINDS and "name" not in (getattr(obj, "__dict__", None) or {}):
                try:
                    obj.name = key
                except (AttributeError, TypeError):
                    pass  # reported by the kind check
        self._add_table(kind, {k: _instance(kind, v) for k, v in table.items()}, source)
        return self.errors[before:]

    def _check_hooks(self, plugin: Any, source: str) -> None:
        """pluggy's ``check_pending``: a hook implementation without a spec (a misspelled hook) is one
        line naming the nearest hook; the plugin's hooks are then unregistered (its decorators still count).
        A function named like a hook but not marked ``@hookimpl`` is reported the same way."""
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError:
            bad = [n for n in vars(self.pm.hook) if not n.startswith("_") and not getattr(self.pm.hook, n).has_spec()
                   and any(i.plugin is plugin for i in getattr(self.pm.hook, n).get_hookimpls())]
            for hook in bad:
                self.errors.append(f"{source}: unknown hook {hook!r}{did_you_mean(hook, list(HOOKS), n=1)}")
            self.pm.unregister(plugin)
            return
        for attr, value in vars(plugin).items() if hasattr(plugin, "__dict__") else ():
            if attr.startswith("grpo_bench_") and callable(value) and self.pm.parse_hookimpl_opts(plugin, attr) is None:
                hint = did_you_mean(attr, list(HOOKS), n=1) if attr not in HOOKS else ""
                self.errors.append(f"{source}: {attr} is not marked @hookimpl (from grpo_bench import hookimpl){hint}")

    def _call_hook(self, kind: str, impl: Any, source: str) -> dict:
        try:
            provided = impl.function() or {}
            if not isinstance(provided, dict):
                raise TypeError(f"grpo_bench_{kind} must return a dict, got {type(provided).__name__}")
        except Exception as exc:  # a plugin that raises must not take the others down
            self.errors.append(f"{source}: grpo_bench_{kind} raised {type(exc).__name__}: {exc}")
            return {}
        return provided

    def _add_table(self, kind: str, provided: dict, source: str) -> None:
        table = self.tables[kind]
        for key, obj in provided.items():
            try:
                wrong = kind_error(kind, key, obj)
            except Exception as exc:  # noqa: BLE001 - a base class that cannot import is reported, not raised
                wrong = f"cannot check {kind[:-1]} {key!r}: {type(exc).__name__}: {exc}"
            if wrong:
                self.errors.append(f"{source}: {wrong}; ignored")
                continue
            declared_name = getattr(obj, "name", key) if kind not in ("rewards", "advantages") else key
            if declared_name != key:
                self.errors.append(f"{source}: {kind[:-1]} registered as {key!r} but its name is "
                                   f"{declared_name!r}; ignored (the key must equal the class's name)")
                continue
            if key in table:
                if table[key].obj is obj:
                    continue
                self.errors.append(f"{source}: {kind[:-1]} {key!r} already registered by {table[key].source}; ignored")
                continue
            table[key] = Entry(key, kind, obj, source)

    def get(self, kind: str, name: str) -> Any:
        table = self.tables[kind]
        if name not in table:
            known = ", ".join(sorted(table)) or "none"
            hint = f"; plugin load errors: {'; '.join(self.errors)}" if self.errors else ""
            raise UserError(f"unknown {kind[:-1]} {name!r}{did_you_mean(name, list(table))} (known: {known}){hint}")
        return table[name].obj

    def names(self, kind: str) -> list[str]:
        return sorted(self.tables[kind])

    def copy(self) -> "Registry":
        """A registry with the same tables and errors, which can grow without changing this one."""
        out = Registry({k: dict(v) for k, v in self.tables.items()}, list(self.errors))
        out.added = dict(self.added)
        return out


def _instance(kind: str, obj: Any) -> Any:
    """A benchmark declared as a class becomes its one instance (``cls()``); the rest as given."""
    if kind == "benchmarks" and isinstance(obj, type):
        try:
            return obj()
        except Exception as exc:  # noqa: BLE001 - reported as a wrong kind by the caller's check
            return _Unbuildable(obj, exc)
    return obj


@dataclass
class _Unbuildable:
    cls: type
    exc: Exception

    def __repr__(self) -> str:
        return f"{self.cls.__qualname__} (its constructor raised {type(self.exc).__name__}: {self.exc})"


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


def load_builtins(registry: Registry) -> None:
    """The core modules' built-ins (executors, advantage estimators): no entry point needed."""
    for name in BUILTIN_MODULES:
        registry.add_plugin(importlib.import_module(name), source=f"built-in module {name}")


def load_modules(registry: Registry, names: list[str], where: str = "plugins", folder: Path | None = None) -> None:
    """Import plain modules (no packaging; ``folder`` first, then ``sys.path``) and add each as a plugin;
    any error is a :class:`UserError` naming ``where`` and the module (a suite's plugins load completely).
    Their functions travel to the reward workers by value (cloudpickle), so the workers need not find them."""
    for i, name in enumerate(names):
        key = f"{where}[{i}]"
        try:
            module = _import_from(name, folder)
        except Exception as exc:
            raise UserError(f"{key}: cannot import {name!r}: {type(exc).__name__}: {exc}") from None
        errors = registry.copy().add_plugin(module, source=f"module {name}")  # a trial: a bad module changes nothing
        if errors:
            raise UserError(f"{key}: {errors[0].removesuffix('; ignored')}")
        registry.add_plugin(module, source=f"module {name}")
        import cloudpickle

        if not module.__name__.startswith(f"{PROJECT}."):
            cloudpickle.register_pickle_by_value(module)


def _import_from(name: str, folder: Path | None) -> types.ModuleType:
    if name in sys.modules or folder is None:
        return importlib.import_module(name)
    sys.path.insert(0, str(folder))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(folder))


def with_objects(registry: Registry, source: str, **tables: dict[str, Any] | None) -> Registry:
    """A copy of ``registry`` with plain objects added (``rewards={"name": fn}``, ``algorithms={...}``, ...,
    any kind of :data:`KINDS`); the first problem (wrong kind, taken name) is a :class:`UserError`."""
    out = registry.copy()
    for kind, table in tables.items():
        errors = out.add(kind, dict(table or {}), source)
        if errors:
            raise UserError(errors[0].removesuffix("; ignored"))
    return out


@functools.lru_cache(maxsize=1)
def default_registry() -> Registry:
    """The process-wide registry: the core built-ins and every installed ``grpo_bench`` entry point."""
    registry = Registry()
    load_builtins(registry)
    load_entry_points(registry)
    return registry
