"""Suite files (TOML): what to train, how, with which variants and seeds, and what to evaluate.

Every key is checked before anything runs: an unknown key, a wrong type, an unknown plugin or a
missing file is a :class:`SuiteError` naming the file and the key (``suite.toml: train.steps:
expected int, got str``). See ``benchmarks/smoke.toml`` for a commented example.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
import re
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..registry import Registry
from .schema import TRACKERS, EvalSection, Suite, SuiteMeta, TrainConfig, TrainSection, Variant


class SuiteError(UserError):
    pass


def config_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


_TYPE_NAMES = {int: "int", float: "float", str: "string", bool: "bool", list: "array", dict: "table"}


def _check_type(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp) or tp
    if origin in (types.UnionType, typing.Union):
        for arm in typing.get_args(tp):
            try:
                return _check_type(value, arm, where)
            except SuiteError:
                continue
        names = " or ".join(_TYPE_NAMES.get(a, str(a)) for a in typing.get_args(tp))
        raise SuiteError(f"{where}: expected {names}, got {type(value).__name__} {value!r}")
    if origin is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if origin is list:
        if not isinstance(value, list):
            raise SuiteError(f"{where}: expected array, got {type(value).__name__} {value!r}")
        (inner,) = typing.get_args(tp) or (Any,)
        if dataclasses.is_dataclass(inner):
            return [_build(inner, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return [_check_type(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is Any:
        return value
    ok = isinstance(value, origin) and not (isinstance(value, bool) and origin is not bool)
    if not ok:
        raise SuiteError(f"{where}: expected {_TYPE_NAMES.get(origin, origin)}, got {type(value).__name__} {value!r}")
    return value


def _build(cls: type, table: Any, where: str) -> Any:
    if not isinstance(table, dict):
        raise SuiteError(f"{where}: expected a table, got {type(table).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in table.items():
        if key not in hints:
            raise SuiteError(f"{where}.{key}: unknown key (known: {', '.join(names)})")
        kwargs[key] = _check_type(value, hints[key], f"{where}.{key}")
    return cls(**kwargs)


def load_suite(path: str | Path, registry: Registry) -> Suite:
    path = Path(path)
    if not path.is_file():
        raise SuiteError(f"{path}: file not found")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SuiteError(f"{path}: not valid TOML: {exc}") from exc

    def err(key: str, msg: str) -> SuiteError:
        return SuiteError(f"{path}: {key}: {msg}")

    known = {"suite", "train", "eval", "variants"}
    for key in data:
        if key not in known:
            raise err(key, f"unknown key (known: {', '.join(sorted(known))})")
    try:
        meta = _build(SuiteMeta, data.get("suite", {}), "suite")
        train = _build(TrainSection, data.get("train", {}), "train")
        ev = _build(EvalSection, data.get("eval", {}), "eval")
        variants = _check_type(data.get("variants", []), list[Variant], "variants")
    except SuiteError as exc:
        raise SuiteError(f"{path}: {exc}") from None

    meta.name = meta.name or path.stem
    if not re.fullmatch(r"[A-Za-z0-9._-]+", meta.name):
        raise err("suite.name", f"use letters, digits, '.', '_' or '-' only, got {meta.name!r}")
    if not meta.seeds:
        raise err("suite.seeds", "at least one seed is needed")
    if meta.dtype not in ("float32", "bfloat16", "float16"):
        raise err("suite.dtype", f"expected float32, bfloat16 or float16, got {meta.dtype!r}")
    if meta.engine == "auto":
        meta.engine = default_engine()
    engine_cls = _check_plugin(registry, "engines", meta.engine, err, "suite.engine")
    try:
        engine_cls.check_options(dict(meta.engine_options))
    except UserError as exc:
        raise err("suite.engine_options", str(exc)) from None
    if not variants:
        raise err("variants", "at least one [[variants]] entry is needed")
    train.bf16_autocast = resolve_bf16(train.bf16_autocast, meta.device, err)
    check_train(train, err, "train")
    bench = _check_plugin(registry, "benchmarks", train.benchmark, err, "train.benchmark")
    if train.split not in bench.splits:
        raise err("train.split", f"benchmark {train.benchmark!r} has no split {train.split!r}")
    if not train.rewards:
        raise err("train.rewards", "at least one reward is needed")
    for i, name in enumerate(train.rewards):
        _check_plugin(registry, "rewards", name, err, f"train.rewards[{i}]")
    for name, weight in train.reward_weights.items():
        if name not in train.rewards:
            raise err(f"train.reward_weights.{name}", "not one of train.rewards")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise err(f"train.reward_weights.{name}", f"expected float, got {type(weight).__name__}")
    for i, target in enumerate(ev.benchmarks):
        b = _check_plugin(registry, "benchmarks", target.name, err, f"eval.benchmarks[{i}].name")
        if target.split not in b.splits:
            raise err(f"eval.benchmarks[{i}].split", f"benchmark {target.name!r} has no split {target.split!r}")
        _check_plugin(registry, "rewards", b.eval_reward, err, f"eval.benchmarks[{i}].name")
        if target.limit < 0:
            raise err(f"eval.benchmarks[{i}].limit", "must be >= 0")
    if ev.every < 0 or ev.every_limit < 1:
        raise err("eval.every" if ev.every < 0 else "eval.every_limit",
                  "must be >= 0" if ev.every < 0 else "must be >= 1")
    if ev.every and not ev.benchmarks:
        raise err("eval.every", "needs at least one eval.benchmarks target")
    for i, name in enumerate(meta.report_to):  # the packages are checked now, not mid-run
        if name not in TRACKERS:
            raise err(f"suite.report_to[{i}]", f"unknown tracker {name!r} (known: {', '.join(TRACKERS)})")
        if importlib.util.find_spec(TRACKERS[name]) is None:
            raise err(f"suite.report_to[{i}]", f"{name!r} needs the {TRACKERS[name]} package: "
                      "pip install 'grpo-bench[trackers]'")
        if name == "mlflow" and not os.environ.get("MLFLOW_TRACKING_URI"):  # MLflow 3's default needs sqlalchemy
            raise err(f"suite.report_to[{i}]", "mlflow: set MLFLOW_TRACKING_URI (a tracking server http://..., "
                      "sqlite:///mlflow.db with the full mlflow package, or file:///path/mlruns together with "
                      "MLFLOW_ALLOW_FILE_STORE=true)")
    seen = set()
    for i, v in enumerate(variants):
        cls = _check_plugin(registry, "algorithms", v.algorithm, err, f"variants[{i}].algorithm")
        v.name = v.name or v.algorithm
        if v.name in seen or v.name == "base":
            raise err(f"variants[{i}].name", f"duplicate or reserved variant name {v.name!r}")
        seen.add(v.name)
        try:
            algo = cls(**dict(v.options))
        except UserError as exc:
            raise err(f"variants[{i}].options", str(exc)) from None
        v.options = algo.config()["options"]  # resolved: every option with its value, defaults included
        try:
            overrides = _build(TrainConfig, dict(v.train), f"variants[{i}].train")
        except SuiteError as exc:
            raise SuiteError(f"{path}: {exc}") from None
        v.train = {k: getattr(overrides, k) for k in v.train}
        if "bf16_autocast" in v.train:
            v.train["bf16_autocast"] = resolve_bf16(v.train["bf16_autocast"], meta.device, err)
        check_train(dataclasses.replace(train, **v.train), err, f"variants[{i}].train")
    if not 0 < meta.equivalence_margin < 1:
        raise err("suite.equivalence_margin", f"must be in (0, 1) (a fraction of pass@1), got {meta.equivalence_margin}")
    if meta.positive_control and meta.positive_control not in seen:
        raise err("suite.positive_control", f"{meta.positive_control!r} is not a variant name (variants: {', '.join(sorted(seen))})")
    return Suite(path, meta, train, ev, variants)


def resolve_bf16(value: bool | str, device: str, err) -> bool:
    """``"auto"`` -> whether the run's device has fast bf16 (see :func:`grpo_bench.provenance.bf16_support`)."""
    if isinstance(value, bool):
        return value
    if value != "auto":
        raise err("train.bf16_autocast", f"expected true, false or \"auto\", got {value!r}")
    import torch

    from ..provenance import bf16_support

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return bf16_support(device) is not None


def check_train(train: TrainSection, err, where: str) -> None:
    """Bounds of the ``[train]`` settings (also applied to each variant's ``train`` overrides)."""
    for key in ("steps", "prompts_per_step", "group_size", "max_new_tokens", "mu", "micro_batch_size",
                "generation_batch_size", "reward_workers"):
        if getattr(train, key) < 1:
            raise err(f"{where}.{key}", f"must be >= 1, got {getattr(train, key)}")
    if train.group_size < 2:
        raise err(f"{where}.group_size", "must be >= 2 (advantages are normalised within a group)")
    if train.temperature <= 0:
        raise err(f"{where}.temperature", "must be > 0 (training samples from the policy)")
    if train.learning_rate <= 0 or train.reward_timeout_s <= 0:
        raise err(f"{where}.learning_rate" if train.learning_rate <= 0 else f"{where}.reward_timeout_s", "must be > 0")
    check_batch_options(train, err, where)


def check_batch_options(train: TrainConfig, err, where: str) -> None:
    """Mini-batches, dynamic sampling and overlong shaping (docs/algorithms.md, "Trainer options")."""
    batch = train.prompts_per_step * train.group_size
    if not 1 <= train.mini_batches <= batch:
        raise err(f"{where}.mini_batches", f"must be between 1 and prompts_per_step * group_size = {batch}, got {train.mini_batches}")
    if train.dynamic_sampling not in ("off", "drop", "refill"):
        raise err(f"{where}.dynamic_sampling", f"expected \"off\", \"drop\" or \"refill\", got {train.dynamic_sampling!r}")
    if train.max_draws < 1:
        raise err(f"{where}.max_draws", f"must be >= 1, got {train.max_draws}")
    if not 0 <= train.overlong_buffer <= train.max_new_tokens:
        raise err(f"{where}.overlong_buffer", f"must be between 0 (off) and max_new_tokens = {train.max_new_tokens}, got {train.overlong_buffer}")
    if train.overlong_penalty < 0:
        raise err(f"{where}.overlong_penalty", f"must be >= 0, got {train.overlong_penalty}")


def default_engine() -> str:
    """vllm where it imports, else hf."""
    import importlib.util

    return "vllm" if importlib.util.find_spec("vllm") is not None else "hf"


def _check_plugin(registry: Registry, kind: str, name: str, err, key: str):
    try:
        return registry.get(kind, name)
    except UserError as exc:
        raise err(key, str(exc)) from None
