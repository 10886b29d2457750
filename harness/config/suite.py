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
import math
import os
import re
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..registry import Registry, did_you_mean, load_modules
from ..scoring.reward_model import is_model_name
from .lora import LORA_DEFAULTS, check_lora  # noqa: F401 (re-exported)
from .numerics import (AUTO_SWITCHES, ATTENTION_CHOICES, RATIO_NUMERICS,  # noqa: F401 (re-exported)
                       algorithm_compares_ratios, resolve_auto)
from .options import check_fields
from .schema import (
    CLAIM_KINDS,
    MAX_ROLLOUT_SAMPLES,
    TRACKERS,
    Claim,
    EvalGeneration,
    EvalSection,
    LoraOptions,
    Suite,
    SuiteMeta,
    TrainConfig,
    TrainSection,
    Variant,
)


class SuiteError(UserError):
    pass


#: [train] keys added after results were published, with the value that reproduces those results. A
#: key at this value is left out of the config hash and of the leaderboard's comparison, so a run recorded
#: before the key existed matches a new run of the same suite (published suites pin these values) and a
#: published folder can grow with runs of newer code; at any other value the key counts as usual.
LEGACY_TRAIN_VALUES = {"share_prompt": False, "adamw_fused": False, "micro_batch_tokens": 0,
                       "inert_row_stats": True, "lora": {}, "bf16_weights": False, "attention": "sdpa",
                       "keep_freed_memory": False, "noise_floor_every": 5, "noise_floor_eps": 1e-7,
                       "fp32_lm_head": False, "behaviour_logprobs": "trainer", "sampler_correction": "none",
                       "sampler_correction_level": "token", "sampler_correction_cap": 2.0, "benchmark_version": 1,
                       "samples_max_steps": 200}
#: the same for each ``[eval] benchmarks`` target's keys
LEGACY_TARGET_VALUES = {"version": 1}


def without_legacy_values(train: dict) -> dict:
    """``train`` less the keys at their legacy value (see :data:`LEGACY_TRAIN_VALUES`)."""
    return {k: v for k, v in train.items()
            if not (k in LEGACY_TRAIN_VALUES and v == LEGACY_TRAIN_VALUES[k] and type(v) is type(LEGACY_TRAIN_VALUES[k]))}


def without_legacy_targets(ev: dict) -> dict:
    """``[eval]`` with each target's keys at their legacy value left out (see :data:`LEGACY_TARGET_VALUES`)."""
    targets = [{k: v for k, v in t.items() if not (k in LEGACY_TARGET_VALUES and v == LEGACY_TARGET_VALUES[k])}
               if isinstance(t, dict) else t for t in ev.get("benchmarks", [])]
    return {**ev, "benchmarks": targets} if "benchmarks" in ev else ev


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
        value = float(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise SuiteError(f"{where}: must be a finite number, got {value!r}")
    if origin is list:
        if not isinstance(value, list):
            raise SuiteError(f"{where}: expected array, got {type(value).__name__} {value!r}")
        (inner,) = typing.get_args(tp) or (Any,)
        if dataclasses.is_dataclass(inner):
            return [_build(inner, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return [_check_type(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is Any:
        return value
    if origin is dict and isinstance(value, dict):  # free-form tables (options, weights): no NaN/inf inside
        for k, v in value.items():
            if isinstance(v, (float, dict)):
                _check_type(v, type(v), f"{where}.{k}")
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
            raise SuiteError(f"{where}.{key}: unknown key{did_you_mean(key, names)} (known: {', '.join(names)})")
        kwargs[key] = _check_type(value, hints[key], f"{where}.{key}")
    return cls(**kwargs)


def parse_override(item: str) -> tuple[list[str], Any]:
    """``"train.steps=50"`` -> (["train", "steps"], 50). The value is TOML (``0.28``, ``true``,
    ``"text"``, ``[1, 2]``); a value that is not TOML is taken as a bare string."""
    key, sep, value = item.partition("=")
    parts = [p.strip() for p in key.split(".")]
    if not sep or not all(parts):
        raise SuiteError(f"--set {item!r}: expected SECTION.KEY=VALUE (e.g. train.steps=50)")
    try:
        parsed = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()
    return parts, parsed


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``--set`` overrides to the raw TOML data (before any check, so they are checked alike).

    ``variants.NAME.KEY`` addresses the variant named NAME (or, unnamed, whose algorithm is NAME;
    ``*``: every variant); KEY is ``algorithm``, ``name``, ``train.X`` (the variant's own train setting) or an algorithm
    option (``options.`` may be written or left out)."""
    for item in overrides:
        parts, value = parse_override(item)
        if parts[0] == "variants":
            if len(parts) < 3:
                raise SuiteError(f"--set {item!r}: expected variants.NAME.KEY=VALUE")
            chosen = [v for v in data.get("variants", []) if isinstance(v, dict)
                      and (parts[1] == "*" or (v.get("name") or v.get("algorithm")) == parts[1])]
            if not chosen:
                names = [v.get("name") or v.get("algorithm") for v in data.get("variants", []) if isinstance(v, dict)]
                raise SuiteError(f"--set {item!r}: no variant {parts[1]!r} (variants: {', '.join(map(str, names))})")
            rest = parts[2:]
            if rest[0] not in ("algorithm", "name", "options", "train"):
                rest = ["options", *rest]
            for v in chosen:
                _set(v, rest, value, item)
        else:
            _set(data, parts, value, item)
    return data


def _set(table: dict, parts: list[str], value: Any, item: str) -> None:
    for p in parts[:-1]:
        table = table.setdefault(p, {})
        if not isinstance(table, dict):
            raise SuiteError(f"--set {item!r}: {p} is not a table")
    table[parts[-1]] = value


def load_suite(path: str | Path, registry: Registry, overrides: list[str] | None = None) -> Suite:
    """Load, override (``--set`` items, applied before validation) and check a suite file."""
    path = Path(path)
    data = read_suite_file(path, overrides)

    def err(key: str, msg: str) -> SuiteError:
        return SuiteError(f"{path}: {key}: {msg}")

    meta, train, ev, variants, claims = build_sections(data, path, err)
    check_meta(meta, ev, registry, path, err)
    if not variants:
        raise err("variants", "at least one [[variants]] entry is needed")
    check_train_section(train, meta, ev, variants, registry, path, err)
    check_eval_targets(ev, registry, err)
    seen = check_variants(variants, train, meta, registry, path, err)
    if meta.positive_control and meta.positive_control not in seen:
        raise err("suite.positive_control", f"{meta.positive_control!r} is not a variant name"
                  f"{did_you_mean(meta.positive_control, sorted(seen))} (variants: {', '.join(sorted(seen))})")
    check_model(meta.model, lambda msg: err("suite.model", msg))
    suite = Suite(path, meta, train, ev, variants)
    suite.overrides = list(overrides or [])
    suite.claims = check_claims(claims, suite, err)
    return suite


def read_suite_file(path: Path, overrides: list[str] | None) -> dict:
    """The suite file's table with the ``--set`` items applied (a missing file or bad TOML: one line)."""
    if not path.is_file():
        raise SuiteError(f"{path}: file not found")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SuiteError(f"{path}: not valid TOML: {exc}") from exc
    return apply_overrides(data, list(overrides or []))


def build_sections(data: dict, path: Path, err) -> tuple:
    """(meta, train, eval, variants, claims) built from the table, every key and type checked."""
    known = {"suite", "train", "eval", "variants", "claims"}
    for key in data:
        if key not in known:
            raise err(key, f"unknown key{did_you_mean(key, sorted(known))} (known: {', '.join(sorted(known))})")
    try:
        meta = _build(SuiteMeta, data.get("suite", {}), "suite")
        train = _build(TrainSection, data.get("train", {}), "train")
        ev = _build(EvalSection, data.get("eval", {}), "eval")
        variants = _check_type(data.get("variants", []), list[Variant], "variants")
        claims = _check_type(data.get("claims", []), list[Claim], "claims")
    except SuiteError as exc:
        raise SuiteError(f"{path}: {exc}") from None
    return meta, train, ev, variants, claims


def check_meta(meta: SuiteMeta, ev: EvalSection, registry: Registry, path: Path, err) -> None:
    """``[suite]``: name, plugins, settings, resources, data source, engine and its options."""
    meta.name = meta.name or path.stem
    load_suite_plugins(registry, meta.plugins, path, err)
    check_name(meta.name, lambda msg: err("suite.name", msg))
    check_trackers(meta.report_to, err)
    check_settings(meta, ev, err)
    unknown = set(meta.resources) - {"cpus", "gpus"}
    if unknown:
        raise err(f"suite.resources.{sorted(unknown)[0]}", "unknown key (known: cpus, gpus)")
    meta.resources = {"cpus": 1, "gpus": "auto", **meta.resources}
    for key, value in meta.resources.items():
        if not (value == "auto" and key == "gpus") and (isinstance(value, bool) or not isinstance(value, (int, float))
                                                         or value < 0 or (key == "cpus" and value == 0)):
            want = "a number > 0" if key == "cpus" else 'a number >= 0 or "auto"'
            raise err(f"suite.resources.{key}", f"expected {want}, got {value!r}")
    if meta.engine == "auto":
        meta.engine = default_engine()
    engine_cls = _check_plugin(registry, "engines", meta.engine, err, "suite.engine")
    try:
        engine_cls.check_options(dict(meta.engine_options))
    except UserError as exc:
        raise err("suite.engine_options", str(exc)) from None


def check_train_section(train: TrainSection, meta: SuiteMeta, ev: EvalSection, variants: list[Variant],
                        registry: Registry, path: Path, err) -> None:
    """``[train]``: the "auto" switches resolved (ratio numerics when a variant compares ratios), bounds,
    LoRA, the benchmark and its split and version, the rewards and their weights."""
    ratios = suite_compares_ratios(registry, variants, train.mu)
    for key in AUTO_SWITCHES:
        setattr(train, key, resolve_auto(key, getattr(train, key), meta.device, err, ratios))
    check_train(train, err, "train")
    try:
        train.lora = check_lora(train.lora)
    except UserError as exc:
        raise SuiteError(f"{path}: {exc}") from None
    bench = _check_plugin(registry, "benchmarks", train.benchmark, err, "train.benchmark")
    if train.split not in bench.splits:
        raise err("train.split", f"benchmark {train.benchmark!r} has no split {train.split!r}")
    resolve_versions(registry, train, ev, err)
    if not train.rewards:
        raise err("train.rewards", "at least one reward is needed")
    for i, name in enumerate(train.rewards):
        if name in registry.names("rewards") or not is_model_name(name):  # else a reward model (checked at planning)
            _check_plugin(registry, "rewards", name, err, f"train.rewards[{i}]")
    for name, weight in train.reward_weights.items():
        key = f"train.reward_weights.{name}"
        if name not in train.rewards:
            raise err(key, "not one of train.rewards")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise err(key, f"expected float, got {type(weight).__name__}")
        if not math.isfinite(weight) or abs(weight) > MAX_REWARD_WEIGHT:
            raise err(key, f"must be finite with |weight| <= {MAX_REWARD_WEIGHT:g} (so weighted totals of "
                           f"rewards bounded by {MAX_ABS_REWARD:g} stay finite), got {weight!r}")


def check_eval_targets(ev: EvalSection, registry: Registry, err) -> None:
    """``[eval]``: each target's benchmark, split, reward and limit; evaluation during training."""
    for i, target in enumerate(ev.benchmarks):
        b = _check_plugin(registry, "benchmarks", target.name, err, f"eval.benchmarks[{i}].name")
        if target.split not in b.splits:
            raise err(f"eval.benchmarks[{i}].split", f"benchmark {target.name!r} has no split {target.split!r}")
        _check_plugin(registry, "rewards", b.eval_reward, err, f"eval.benchmarks[{i}].name")
        check_fields(target, err, f"eval.benchmarks[{i}]")
    check_fields(ev, err, "eval", keys=("every", "every_limit"))
    if ev.every and not ev.benchmarks:
        raise err("eval.every", "needs at least one eval.benchmarks target")


def check_trackers(report_to: list[str], err) -> None:
    """``[suite] report_to``: known trackers whose packages import (checked now, not mid-run)."""
    for i, name in enumerate(report_to):
        if name not in TRACKERS:
            raise err(f"suite.report_to[{i}]", f"unknown tracker {name!r}{did_you_mean(name, list(TRACKERS))} "
                                              f"(known: {', '.join(TRACKERS)})")
        if importlib.util.find_spec(TRACKERS[name]) is None:
            raise err(f"suite.report_to[{i}]", f"{name!r} needs the {TRACKERS[name]} package: "
                      "pip install 'grpo-bench[trackers]'")
        if name == "mlflow" and not os.environ.get("MLFLOW_TRACKING_URI"):  # MLflow 3's default needs sqlalchemy
            raise err(f"suite.report_to[{i}]", "mlflow: set MLFLOW_TRACKING_URI (a tracking server http://..., "
                      "sqlite:///mlflow.db with the full mlflow package, or file:///path/mlruns together with "
                      "MLFLOW_ALLOW_FILE_STORE=true)")


def check_variants(variants: list[Variant], train: TrainSection, meta: SuiteMeta, registry: Registry, path: Path,
                   err) -> set[str]:
    """Each ``[[variants]]`` entry: its algorithm and options (resolved), name, and ``train`` overrides
    (their "auto" switches resolved for the variant's own algorithm). Returns the variant names."""
    seen = set()
    for i, v in enumerate(variants):
        cls = _check_plugin(registry, "algorithms", v.algorithm, err, f"variants[{i}].algorithm")
        v.name = v.name or v.algorithm
        check_name(v.name, lambda msg: err(f"variants[{i}].name", msg))
        if v.name in seen or v.name == "base":
            raise err(f"variants[{i}].name", f"duplicate or reserved variant name {v.name!r}")
        seen.add(v.name)
        try:
            algo = cls(**dict(v.options))
        except UserError as exc:
            raise err(f"variants[{i}].options", str(exc)) from None
        v.options = algo.config()["options"]  # resolved: every option with its value, defaults included
        try:
            variant_train = _build(TrainConfig, dict(v.train), f"variants[{i}].train")
        except SuiteError as exc:
            raise SuiteError(f"{path}: {exc}") from None
        v.train = {k: getattr(variant_train, k) for k in v.train}
        for key in AUTO_SWITCHES:
            if key in v.train:
                v.train[key] = resolve_auto(key, v.train[key], meta.device, err,
                                            algorithm_compares_ratios(cls, v.train.get("mu", train.mu)))
        check_train(dataclasses.replace(train, **v.train), err, f"variants[{i}].train")
    return seen


def load_suite_plugins(registry: Registry, modules: list[str], path: Path, err) -> None:
    """Import the suite's ``[suite] plugins`` modules (the suite's folder first) into ``registry``;
    a module that fails to import, misspells a hook or offers a taken name stops the load (one line)."""
    try:
        load_modules(registry, modules, "suite.plugins", folder=Path(path).resolve().parent)
    except UserError as exc:
        raise SuiteError(f"{path}: {exc}") from None


def resolve_versions(registry: Registry, train: TrainSection, ev: EvalSection, err) -> None:
    """Each benchmark version: 0 becomes the default one (an eval target of the train benchmark follows
    ``train.benchmark_version``); a version the benchmark lacks, or an eval target of the train benchmark at
    another version than train (a version's test is held out from that version's train only), is refused."""
    def check(name: str, version: int, key: str) -> int:
        name_key = "train.benchmark" if key.startswith("train.") else key.rsplit(".", 1)[0] + ".name"
        bench = _check_plugin(registry, "benchmarks", name, err, name_key)
        if version == 0:
            return bench.version
        if version not in bench.versions:
            raise err(key, f"benchmark {name!r} has no version {version} (versions: {', '.join(map(str, bench.versions))})")
        return version

    train.benchmark_version = check(train.benchmark, train.benchmark_version, "train.benchmark_version")
    for i, target in enumerate(ev.benchmarks):
        same = target.name == train.benchmark
        target.version = check(target.name, target.version or (train.benchmark_version if same else 0),
                               f"eval.benchmarks[{i}].version")
        if same and target.version != train.benchmark_version:
            raise err(f"eval.benchmarks[{i}].version", f"{target.version}, but train.benchmark_version is "
                      f"{train.benchmark_version} for the same benchmark {target.name!r} (a version's test split is "
                      "held out from that version's train split only)")


def check_claims(claims: list[Claim], suite: Suite, err) -> list[Claim]:
    """Pre-registered claims (``[[claims]]``) against the suite: known variants, a kind, a margin exactly
    when the kind uses one, a metric and eval target the suite produces, alpha in (0, 0.5)."""
    variants = [v.name for v in suite.variants]
    targets = [f"{t.name}-{t.split}" for t in suite.eval.benchmarks]
    metrics = ["pass@1"] + ([f"mean@{suite.eval.samples}"] if suite.eval.samples else [])
    names: set[str] = set()
    for i, c in enumerate(claims):
        where = f"claims[{i}]"
        for key in ("variant", "reference"):
            if getattr(c, key) not in variants:
                name = getattr(c, key)
                raise err(f"{where}.{key}", f"{name!r} is not a variant name{did_you_mean(name, variants)} "
                                           f"(variants: {', '.join(variants)})")
        if c.variant == c.reference:
            raise err(f"{where}.reference", f"the same variant as claims[{i}].variant ({c.variant!r})")
        check_fields(c, err, where)  # kind and alpha
        if CLAIM_KINDS[c.kind] and not 0 < c.margin < 100:
            raise err(f"{where}.margin", f"kind {c.kind!r} needs a margin in (0, 100) points, got {c.margin:g}")
        if not CLAIM_KINDS[c.kind] and c.margin:
            raise err(f"{where}.margin", f"kind {c.kind!r} uses no margin (equivalence and non_inferiority do), "
                                         f"got {c.margin:g}")
        if c.metric not in metrics:
            raise err(f"{where}.metric", f"expected one of {', '.join(metrics)} (mean@k needs [eval] samples = k), "
                                         f"got {c.metric!r}")
        if not targets:
            raise err(f"{where}.target", "the suite has no [eval] benchmarks target to test a claim on")
        c.target = c.target or targets[0]
        if c.target not in targets:
            raise err(f"{where}.target", f"{c.target!r} is not an eval target (targets: {', '.join(targets)})")
        c.name = c.name or f"{c.variant} {c.kind.replace('_', '-')} {c.reference}"
        if c.name in names:
            raise err(f"{where}.name", f"duplicate claim {c.name!r} (set name to tell them apart)")
        names.add(c.name)
    return claims


def suite_compares_ratios(registry: Registry, variants: list[Variant], mu: int) -> bool:
    """Any variant of the suite compares ratios (unknown algorithms are reported later, by name)."""
    table = registry.tables["algorithms"]
    def variant_mu(v: Variant) -> int:  # a malformed override is reported later, with its key
        given = v.train.get("mu") if isinstance(v.train, dict) else None
        return given if isinstance(given, int) and not isinstance(given, bool) else mu

    return any(algorithm_compares_ratios(table[v.algorithm].obj, variant_mu(v)) for v in variants if v.algorithm in table)


def check_train(train: TrainSection, err, where: str) -> None:
    """The ``[train]`` settings against their limits (each field's metadata in the schema, then the limits
    that join several settings; also applied to each variant's ``train`` overrides). Floats are already
    finite (checked while the table is read)."""
    check_fields(train, err, where)
    batch = train.prompts_per_step * train.group_size
    if batch > MAX_ROLLOUT_SAMPLES:
        key = "group_size" if train.group_size > MAX_ROLLOUT_SAMPLES else "prompts_per_step"
        raise err(f"{where}.{key}", f"prompts_per_step * group_size = {batch} samples a step; at most "
                                    f"{MAX_ROLLOUT_SAMPLES} (a step's samples are all held in memory)")
    tokens = batch * (train.max_prompt_tokens + train.max_new_tokens)
    if tokens > MAX_ROLLOUT_TOKENS:
        raise err(f"{where}.max_new_tokens", f"a step holds up to {tokens} tokens (prompts_per_step * group_size * "
                                             f"(max_prompt_tokens + max_new_tokens)); at most {MAX_ROLLOUT_TOKENS} fit in memory")
    if train.mini_batches > batch:
        raise err(f"{where}.mini_batches", f"must be between 1 and prompts_per_step * group_size = {batch}, got {train.mini_batches}")
    if train.overlong_buffer > train.max_new_tokens:
        raise err(f"{where}.overlong_buffer", f"must be between 0 (off) and max_new_tokens = {train.max_new_tokens}, got {train.overlong_buffer}")


#: Bounds on settings, each with its reason (every one is checked at load, before anything is written).
MAX_ROLLOUT_TOKENS = 2**28  # rollout samples * (max_prompt_tokens + max_new_tokens): token ids, masks and
#                             per-token log-probs of one step, about 16 bytes a token, must fit in host memory
MAX_ABS_REWARD = 1e12  # |reward value| a reward may return (larger is an error): totals and group std stay finite
MAX_REWARD_WEIGHT = 1e6  # |train.reward_weights.*|
KNOWN_DEVICES = "auto, cpu, cuda, cuda:N, mps"


def check_name(name: str, err) -> None:
    """A name that becomes a folder under the results directory: no separators, no '.' or '..'."""
    if not re.fullmatch(r"[A-Za-z0-9._-]+", name) or set(name) == {"."}:
        raise err(f"use letters, digits, '.', '_' or '-' only (it names a folder in the results), got {name!r}")


def check_settings(meta: SuiteMeta, ev: EvalSection, err) -> None:
    """``[suite]`` and ``[eval]`` settings against their limits (``[train]``: :func:`check_train`)."""
    if not meta.seeds:
        raise err("suite.seeds", "at least one seed is needed")
    check_fields(meta, err, "suite")
    if len(set(meta.seeds)) != len(meta.seeds):
        raise err("suite.seeds", f"duplicate seed in {meta.seeds} (each seed is one run folder)")
    check_device(meta.device, lambda msg: err("suite.device", msg))
    check_eval(ev, err)


def check_eval(ev, err) -> None:
    """Generation settings of an eval (the suite's ``[eval]`` or ``grpo-bench eval``'s options), against
    the limits of :class:`EvalGeneration`'s fields."""
    check_fields(ev, err, "eval", schema=EvalGeneration)


def check_device(device: str, err) -> None:
    if device in ("auto", "cpu"):
        return
    if not re.fullmatch(r"cuda(:\d+)?|mps", device):
        raise err(f"unknown device {device!r} (known: {KNOWN_DEVICES})")
    import torch

    if device.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= count:
            raise err(f"device {device!r} is not here ({count} CUDA device(s) visible)")
    elif not torch.backends.mps.is_available():
        raise err("device 'mps' is not available here")


def check_model(name: str, err) -> None:
    """The built-in names, a local model folder, or something shaped like a hub id."""
    from ..models import DEFAULT_MODEL, TINY_MODEL

    if name in (DEFAULT_MODEL, TINY_MODEL) or Path(name).expanduser().is_dir():
        return
    if re.fullmatch(r"[\w.-]+/[\w.-]+", name) and not Path(name).exists():
        return  # a hub id: reachable or cached is checked at planning (grpo_bench.hub.check_model)
    raise err(f"model {name!r}: no such folder (use {DEFAULT_MODEL!r}, {TINY_MODEL!r}, a model folder or a Hub id)")


def default_engine() -> str:
    """vllm where it imports, else hf."""
    import importlib.util

    return "vllm" if importlib.util.find_spec("vllm") is not None else "hf"


def _check_plugin(registry: Registry, kind: str, name: str, err, key: str):
    try:
        return registry.get(kind, name)
    except UserError as exc:
        raise err(key, str(exc)) from None
