"""Benchmarks declared in TOML: a data file (or a hub dataset) per split, a prompt template, the fields
that make the question, the gold answer and the reward columns, the reward that grades, licence and
checksums. No Python per dataset; docs/plugins.md ("Adding a dataset") is the reference and a worked example.

Contract of a declaration (one ``.toml`` file; every key is checked, an unknown one is an error):

- ``name`` (str, required), ``version`` (int >= 1, default 1), ``description``, ``source``, ``license`` (str),
  ``prompt_template`` (str with ``{question}``, default ``"{question}"``), ``system_prompt`` (str, optional),
  ``eval_reward`` (a registered reward name, default ``"math_verify"``), ``conversational``, ``held_out`` and
  ``record_sandbox`` (bool; the last records the code sandbox with results, for benchmarks graded by running code).
- ``bundled`` (bool, default false): split files are read under the project's data folder (``DATA_DIR``) and
  checked against its ``SHA256SUMS``; otherwise paths are relative to the declaration's folder.
- ``[splits]``: ``split = "file"`` or ``split = { file = "...", sha256 = "..." }``, in the order the splits are
  listed. Formats by suffix: ``.jsonl``/``.json`` (JSON lines), ``.csv``, ``.parquet``; ``.gz`` on top of the
  first two. ``sha256`` is the hex digest of the file as it is on disk (``sha256sum FILE``); a file that does not
  match is one clear error when the split is loaded.
- ``[hub]`` (optional): ``id`` (hub dataset id), ``config`` (its configuration name), ``splits`` (``{ours =
  "theirs"}``, default the same names). Read instead of the files with ``[suite] data = "hub"``; a declaration
  with no ``[splits]`` reads the hub always, its splits those of ``[hub] splits``.
- ``[fields]``: ``question`` (template, required), ``answer`` (template, required), ``answer_extract`` (one of
  :data:`EXTRACTORS`, default ``"none"``), ``id`` (template or list of templates, default
  ``"{_name}/{_split}/{_index}"``).
- ``[columns]``: extra reward columns, ``name = template``.

Templates: ``{field}`` is the row's field; ``{_answer}`` the extracted answer, ``{_split}``, ``{_index}`` (0-based
row number) and ``{_name}``; no other braces are special. A template that is one placeholder and nothing else
keeps the field's value as it is (an int stays an int). A row without a field the template names is an error,
except in a list of templates, where the first one whose fields the row has is used.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .benchmark import Benchmark, Problem, code_sandbox
from .errors import UserError

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def after_hashes(text: str) -> str:
    """GSM8K's answer format: the text after the last ``####``, stripped, thousands commas removed."""
    return text.split("####")[-1].strip().replace(",", "")


def last_boxed(text: str) -> str:
    """The content of the last ``\\boxed{...}`` with balanced braces ("" when there is none)."""
    for start in reversed([m.end() for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text)]):
        depth = 1
        for pos in range(start, len(text)):
            depth += {"{": 1, "}": -1}.get(text[pos], 0)
            if depth == 0:
                return text[start:pos]
    return ""


#: ``[fields] answer_extract``: how the gold answer is cut out of the ``answer`` template's text.
EXTRACTORS: dict[str, Callable[[str], str]] = {
    "none": lambda text: text,
    "after_####": after_hashes,
    "last_boxed": last_boxed,
}


# --- reading and checking data files -------------------------------------------------------------

def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_file(path: Path, expected: str, unpack_gz: bool = False) -> None:
    """``path`` (or, with ``unpack_gz``, its decompressed bytes) must hash to ``expected``."""
    if unpack_gz:
        with gzip.open(path, "rb") as fh:
            actual = hashlib.sha256(fh.read()).hexdigest()
    else:
        actual = sha256_of(path)
    if actual != expected.lower():
        raise UserError(f"data file {path} does not match its checksum (sha256 {actual[:12]}..., expected "
                        f"{expected[:12]}...): it changed since it was declared; restore it or declare the new checksum")


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSON-lines, CSV or Parquet file (``.gz`` allowed on the first two)."""
    if not path.exists():
        raise UserError(f"data file missing: {path}")
    suffixes = [s for s in path.suffixes if s != ".gz"]
    kind = suffixes[-1] if suffixes else ""
    if kind == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="") as fh:
        if kind == ".csv":
            return list(csv.DictReader(fh))
        if kind in (".jsonl", ".json"):
            return [_json_line(line, path, n) for n, line in enumerate(fh, 1) if line.strip()]
    raise UserError(f"data file {path}: unknown format {kind or '(no suffix)'!r} (use .jsonl, .json, .csv or .parquet)")


def _json_line(line: str, path: Path, number: int) -> dict:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise UserError(f"data file {path}, line {number}: not JSON ({exc.msg})") from None
    if not isinstance(row, dict):
        raise UserError(f"data file {path}, line {number}: expected a JSON object, got {type(row).__name__}")
    return row


def bundled_checksum(data_dir: Path, rel: str) -> tuple[str, bool]:
    """``(sha256, of_decompressed)`` from ``data_dir/SHA256SUMS``: the entry for ``rel`` itself, or for
    ``rel`` without ``.gz`` (the sum of the decompressed original)."""
    sums = {}
    for line in (data_dir / "SHA256SUMS").read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            sums[name.lstrip("*")] = digest
    if rel in sums:
        return sums[rel], False
    if rel.endswith(".gz") and rel[:-3] in sums:
        return sums[rel[:-3]], True
    raise UserError(f"bundled data file {rel} has no entry in {data_dir / 'SHA256SUMS'}")


def read_bundled_checked(data_dir: Path, rel: str) -> list[dict]:
    """Rows of a bundled data file, after checking it against ``SHA256SUMS``."""
    path = data_dir / rel
    if not path.exists():
        raise UserError(f"bundled data file missing: {path}")
    digest, unpack = bundled_checksum(data_dir, rel)
    verify_file(path, digest, unpack)
    return read_rows(path)


# --- templates -------------------------------------------------------------------------------

def fill(template: str | list[str], values: dict[str, Any], where: str) -> Any:
    """``template`` with ``{name}`` replaced from ``values`` (see the module docstring for the rules)."""
    options = template if isinstance(template, list) else [template]
    for option in options:
        names = _PLACEHOLDER.findall(option)
        if all(n in values for n in names):
            whole = _PLACEHOLDER.fullmatch(option)
            if whole:
                return values[whole.group(1)]
            return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), option)
    missing = next(n for n in _PLACEHOLDER.findall(options[-1]) if n not in values)
    raise UserError(f"{where}: the row has no field {missing!r} (fields: {', '.join(sorted(values))})")


# --- the declaration ---------------------------------------------------------------------------

TOP_KEYS = {"name": str, "version": int, "description": str, "source": str, "license": str, "prompt_template": str,
            "system_prompt": str, "eval_reward": str, "conversational": bool, "held_out": bool,
            "record_sandbox": bool, "bundled": bool, "splits": dict, "hub": dict, "fields": dict, "columns": dict}
FIELD_KEYS = {"question": (str,), "answer": (str,), "answer_extract": (str,), "id": (str, list)}
HUB_KEYS = {"id": str, "config": str, "splits": dict}


@dataclass
class SplitFile:
    path: Path
    sha256: str | None  # None: a bundled file, checked against SHA256SUMS
    rel: str = ""


@dataclass
class Declaration:
    origin: str  # the file it was read from, for messages
    spec: dict[str, Any]
    files: dict[str, SplitFile] = field(default_factory=dict)

    def err(self, msg: str) -> UserError:
        return UserError(f"dataset declaration {self.origin}: {msg}")


def _check_keys(decl: Declaration, table: dict, allowed: dict, where: str) -> None:
    for key, value in table.items():
        if key not in allowed:
            raise decl.err(f"unknown key {where}{key!r} (known: {', '.join(allowed)})")
        types = allowed[key] if isinstance(allowed[key], tuple) else (allowed[key],)
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise decl.err(f"{where}{key} must be {' or '.join(t.__name__ for t in types)}, got {value!r}")


def parse_declaration(path: Path, data_dir: Path) -> Declaration:
    """Read and check one declaration file (every error is one line naming the file and the key)."""
    try:
        spec = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"dataset declaration {path}: {exc}") from None
    decl = Declaration(str(path), spec)
    _check_keys(decl, spec, TOP_KEYS, "")
    _check_keys(decl, spec.get("fields", {}), FIELD_KEYS, "fields.")
    _check_keys(decl, spec.get("hub", {}), HUB_KEYS, "hub.")
    for key in ("name", "fields"):
        if not spec.get(key):
            raise decl.err(f"{key!r} is required")
    if not re.fullmatch(r"[A-Za-z0-9][\w.-]*", spec["name"]):
        raise decl.err(f"name must be letters, digits, '_', '.' or '-', got {spec['name']!r}")
    templates = {f"columns.{k}": v for k, v in spec.get("columns", {}).items()} | {"fields.id": spec["fields"].get("id", "")}
    for key, value in templates.items():
        if not (isinstance(value, str) or (isinstance(value, list) and value and all(isinstance(v, str) for v in value))):
            raise decl.err(f"{key} must be a template (a string) or a list of templates, got {value!r}")
    if not spec.get("splits") and not spec.get("hub", {}).get("splits"):
        raise decl.err("[splits] (a file per split) or [hub] splits (a hub dataset's splits) is required")
    for key in ("question", "answer"):
        if key not in spec["fields"]:
            raise decl.err(f"fields.{key} is required (a template such as \"{{{key}}}\")")
    extract = spec["fields"].get("answer_extract", "none")
    if extract not in EXTRACTORS:
        raise decl.err(f"fields.answer_extract {extract!r} is not one of {', '.join(EXTRACTORS)}")
    if spec.get("version", 1) < 1:
        raise decl.err(f"version must be >= 1, got {spec['version']}")
    if "{question}" not in spec.get("prompt_template", "{question}"):
        raise decl.err("prompt_template must contain {question}")
    if "hub" in spec and "id" not in spec["hub"]:
        raise decl.err("hub.id is required in [hub] (a hub dataset id such as \"openai/gsm8k\")")
    for name, entry in spec.get("splits", {}).items():
        decl.files[name] = _split_file(decl, name, entry, data_dir if spec.get("bundled") else path.parent)
    return decl


def _split_file(decl: Declaration, split: str, entry: Any, root: Path) -> SplitFile:
    if isinstance(entry, str):
        entry = {"file": entry}
    if not isinstance(entry, dict) or not isinstance(entry.get("file"), str) or set(entry) - {"file", "sha256"}:
        raise decl.err(f"splits.{split} must be \"file\" or {{ file = \"...\", sha256 = \"...\" }}, got {entry!r}")
    digest = entry.get("sha256")
    if digest is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", str(digest)):
        raise decl.err(f"splits.{split}.sha256 must be 64 hex digits (sha256sum FILE), got {digest!r}")
    if digest is None and not decl.spec.get("bundled"):
        raise decl.err(f"splits.{split} needs sha256 = \"...\" (run: sha256sum {entry['file']})")
    return SplitFile(root / entry["file"], digest, entry["file"])


class DeclaredBenchmark(Benchmark):
    """A benchmark read from a :class:`Declaration` (the ``Benchmark`` class attributes become its fields)."""

    def __init__(self, decl: Declaration, data_dir: Path):
        super().__init__()
        spec = decl.spec
        self.decl, self.data_dir = decl, data_dir
        self.name = spec["name"]
        self.version = spec.get("version", 1)
        self.versions = (self.version,)
        self.splits = tuple(spec.get("splits") or spec["hub"]["splits"])
        for key in ("description", "source", "license", "prompt_template", "system_prompt", "eval_reward",
                    "conversational", "held_out"):
            if key in spec:
                setattr(self, key, spec[key])
        hub = spec.get("hub", {})
        self.hub_dataset = hub.get("id")

    def load_split(self, split: str) -> list[Problem]:
        use_hub = self.data_source == "hub" or os.environ.get("GRPO_BENCH_HUB", "") == "1"
        from_hub = split not in self.decl.files or (use_hub and self.hub_dataset)
        rows = self._hub_rows(split) if from_hub else self._file_rows(split)
        return [self._problem(row, split, index) for index, row in enumerate(rows)]

    def _file_rows(self, split: str) -> list[dict]:
        entry = self.decl.files[split]
        if entry.sha256 is None:
            return read_bundled_checked(self.data_dir, entry.rel)
        if not entry.path.exists():
            raise UserError(f"benchmark {self.name!r}: data file missing: {entry.path}")
        verify_file(entry.path, entry.sha256)
        return read_rows(entry.path)

    def _hub_rows(self, split: str) -> list[dict]:
        """The split from the hub through ``datasets`` (offline and not cached: one clear line)."""
        from .hub import check_dataset

        hub = self.decl.spec["hub"]
        check_dataset(self.name, self.hub_dataset)
        theirs = hub.get("splits", {}).get(split, split)
        try:
            import datasets

            return list(datasets.load_dataset(self.hub_dataset, hub.get("config"), split=theirs))
        except Exception as exc:  # a hub, network or cache failure of a library we do not control
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise UserError(f"benchmark {self.name!r}: could not read {self.hub_dataset} split {theirs!r} from the "
                            f"hub ({type(exc).__name__}: {first}); use the files (data = \"bundled\")") from None

    def _problem(self, row: dict, split: str, index: int) -> Problem:
        fields, where = self.decl.spec["fields"], f"benchmark {self.name!r}, {split} row {index}"
        values = {**row, "_split": split, "_index": index, "_name": self.name}
        raw_answer = fill(fields["answer"], values, where)
        values["_answer"] = EXTRACTORS[fields.get("answer_extract", "none")](str(raw_answer))
        question = fill(fields["question"], values, where)
        problem_id = fill(fields.get("id", "{_name}/{_split}/{_index}"), values, where)
        columns = {name: fill(t, values, f"{where}, column {name!r}")
                   for name, t in self.decl.spec.get("columns", {}).items()}
        return Problem(str(problem_id), self.render(str(question)), values["_answer"], columns)

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        return out | {"code_sandbox": code_sandbox()} if self.decl.spec.get("record_sandbox") else out


def load_declarations(paths: list[Path], data_dir: Path) -> dict[str, DeclaredBenchmark]:
    """``{name: benchmark}`` for every ``.toml`` in ``paths`` (files, or folders read in name order)."""
    files: list[Path] = []
    for path in paths:
        files += sorted(path.glob("*.toml")) if path.is_dir() else [path]
    out: dict[str, DeclaredBenchmark] = {}
    for file in files:
        bench = DeclaredBenchmark(parse_declaration(file, data_dir), data_dir)
        if bench.name in out:
            raise UserError(f"dataset declaration {file}: name {bench.name!r} is also declared in {out[bench.name].decl.origin}")
        out[bench.name] = bench
    return out


def user_declaration_paths() -> list[Path]:
    """``GRPO_BENCH_DATASETS``: declaration files or folders, separated by ``os.pathsep``."""
    raw = os.environ.get("GRPO_BENCH_DATASETS", "")
    paths = [Path(p).expanduser() for p in raw.split(os.pathsep) if p.strip()]
    for path in paths:
        if not path.exists():
            raise UserError(f"GRPO_BENCH_DATASETS names {path}, which does not exist")
    return paths

