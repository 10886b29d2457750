"""Register where you define: one decorator per plugin kind names the thing once, at its definition.

::

    from grpo_bench import register_algorithm, register_reward

    @register_reward("ends_politely")
    def ends_politely(prompts, completions, **columns): ...

    @register_algorithm("plain_pg")          # sets PlainPG.name = "plain_pg"
    class PlainPG(Algorithm): ...

A decorator records the object under its module; when that module is loaded as a plugin (an entry
point, a module named by a suite's ``[suite] plugins``, or the core modules of the built-in
executors and advantage estimators) the registry (:mod:`grpo_bench.registry`) adds what the module
declared to the same tables its hooks fill, with the same checks (base class, one owner per name).
A module may use decorators, hooks returning ``{name: object}`` (:mod:`grpo_bench.hookspecs`), or both.

What each kind takes (checked when the registry loads it):

- ``register_reward(name)``: a function ``fn(prompts, completions, **columns) -> list[float | None]``
  (:mod:`grpo_bench.rewards`);
- ``register_algorithm(name)``: a subclass of :class:`grpo_bench.algorithm.Algorithm`;
- ``register_benchmark(name)``: a subclass of :class:`grpo_bench.benchmark.Benchmark` whose
  constructor takes no arguments (the registry makes one instance), or an instance;
- ``register_engine(name)``: a subclass of :class:`grpo_bench.engine.RolloutEngine`;
- ``register_advantage(name)``: ``fn(rewards [P, G], lengths [P, G], *, delta, std) -> [P, G]``
  (:func:`grpo_bench.algorithm.compute_advantages`);
- ``register_executor(name)``: a subclass of :class:`grpo_bench.execute.executors.Executor`.

Classes (and benchmark instances) get ``name`` set to the registered name; a class that already
says another ``name`` is refused at definition (a ``TypeError``: the name is written once).
"""

from __future__ import annotations

import sys
from typing import Any, Callable, TypeVar

T = TypeVar("T")

#: what the decorators declared: module name -> kind -> {registered name: object}, in definition order
DECLARED: dict[str, dict[str, dict[str, Any]]] = {}

#: module name -> the module object whose declarations DECLARED holds (a re-import starts afresh)
_OWNERS: dict[str, Any] = {}

#: the kinds whose objects carry their registered name as ``name``
NAMED_KINDS = ("algorithms", "benchmarks", "engines", "executors")


def declare(kind: str, name: str, obj: T, module: str | None = None) -> T:
    """Record ``obj`` as the ``kind`` (plural: "rewards", ...) named ``name`` of ``module`` (default:
    the module that defines ``obj``)."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"register_{kind[:-1]}: the name must be a non-empty string, got {name!r}")
    if kind in NAMED_KINDS:
        own = (vars(obj) if isinstance(obj, type) else getattr(obj, "__dict__", {})).get("name")
        if own is not None and own != name:
            raise TypeError(f"register_{kind[:-1]}({name!r}): {obj!r} already says name = {own!r}; "
                            "write the name once, in the decorator")
        obj.name = name
    module = module or getattr(obj, "__module__", None) or type(obj).__module__
    loaded = sys.modules.get(module)
    if loaded is not None and _OWNERS.get(module) is not loaded:  # a fresh import: forget the old module's
        DECLARED.pop(module, None)
        _OWNERS[module] = loaded
    table = DECLARED.setdefault(module, {}).setdefault(kind, {})
    old = table.get(name)
    if old is not None and old is not obj and _qualname(old) != _qualname(obj):
        raise TypeError(f"register_{kind[:-1]}({name!r}): {module} declares {name!r} twice")
    table[name] = obj  # the same definition run again (a reload) replaces the old one
    return obj


def _qualname(obj: Any) -> str:
    return getattr(obj, "__qualname__", None) or type(obj).__qualname__


def _decorator(kind: str) -> Callable[[str], Callable[[T], T]]:
    def register(name: str) -> Callable[[T], T]:
        def decorate(obj: T) -> T:
            return declare(kind, name, obj)

        return decorate

    register.__name__ = f"register_{kind[:-1]}"
    register.__doc__ = (f"``@register_{kind[:-1]}(name)``: declare a {kind[:-1]} under ``name`` "
                        "(see :mod:`grpo_bench.declare`).")
    return register


register_reward = _decorator("rewards")
register_algorithm = _decorator("algorithms")
register_benchmark = _decorator("benchmarks")
register_engine = _decorator("engines")
register_advantage = _decorator("advantages")
register_executor = _decorator("executors")


def declared_by(module_name: str) -> dict[str, dict[str, Any]]:
    """What the decorators in ``module_name`` declared, by kind."""
    return DECLARED.get(module_name, {})
