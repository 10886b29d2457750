"""Declarative benchmarks: problems, a fixed prompt, and the reward that grades them.

A benchmark's prompt template and system prompt are fixed per benchmark and recorded with
every result (see :meth:`Benchmark.describe`), so two numbers are only compared when they
were produced by the same prompt.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .errors import UserError

#: Where bundled benchmark data lives: ``harness/data`` in the source tree, ``grpo_bench/data`` in an
#: installed wheel (shipped as package data); ``GRPO_BENCH_DATA_DIR`` overrides it.
DATA_DIR = Path(os.environ.get("GRPO_BENCH_DATA_DIR") or Path(__file__).resolve().parent / "data")


@dataclass
class Problem:
    id: str
    prompt: str  # the user message, already formatted with the benchmark's template
    answer: str  # gold answer passed to rewards as the ``answer`` column
    columns: dict[str, Any] = field(default_factory=dict)  # extra dataset columns for rewards

    def reward_columns(self) -> dict[str, Any]:
        """Every column a reward receives: the reference answer under the three names TRL and verl
        recipes use (``answer``, ``solution``, ``ground_truth``), then the benchmark's own columns."""
        return {"answer": self.answer, "solution": self.answer, "ground_truth": self.answer, **self.columns}


class Benchmark:
    """Subclass and set the class attributes; implement :meth:`load_split`."""

    name: ClassVar[str]
    splits: ClassVar[tuple[str, ...]] = ("test",)
    description: ClassVar[str] = ""
    source: ClassVar[str] = ""
    license: ClassVar[str] = ""
    system_prompt: ClassVar[str | None] = None
    prompt_template: ClassVar[str] = "{question}"
    #: The reward function (by registered name) that decides correctness in evaluation.
    eval_reward: ClassVar[str] = "math_verify"
    #: How rewards see prompts and completions (TRL's two formats). True: the prompt is the chat
    #: (``[{"role": ..., "content": ...}]``, system message included) and each completion is
    #: ``[{"role": "assistant", "content": text}]``; False: the user message and the completion as
    #: strings. The model always sees the chat template applied; this only decides the reward's view.
    conversational: ClassVar[bool] = False
    #: The hub dataset the same problems can be read from (``[suite] data = "hub"``), if any.
    hub_dataset: ClassVar[str | None] = None

    #: "bundled" or "hub": where :meth:`load_split` reads (set from the suite before loading).
    data_source: str = "bundled"
    #: The version of the problems this object serves (recorded with every result; the leaderboard never
    #: compares runs evaluated on different versions). A change of problems, split or prompt is a new version.
    version: int = 1
    #: Every version :meth:`at_version` serves; the registered object is the default one.
    versions: ClassVar[tuple[int, ...]] = (1,)
    #: True when the test split is claimed held out: no duplicates within it and none of its problems in
    #: another split (``grpo-bench benchmarks check`` measures it; tests pin 0 for these).
    held_out: bool = False

    def __init__(self) -> None:
        self._cache: dict[str, list[Problem]] = {}

    def load_split(self, split: str) -> list[Problem]:
        raise NotImplementedError

    def check_version(self, version: int) -> None:
        if version not in self.versions:
            raise UserError(f"benchmark {self.name!r} has no version {version} (versions: "
                            f"{', '.join(map(str, self.versions))})")

    def at_version(self, version: int) -> "Benchmark":
        """This benchmark's problems as of ``version`` (0: the default version, this object). A benchmark
        with several versions overrides this and returns one cached object per version."""
        if version not in (0, self.version):
            self.check_version(version)
        return self

    def use_data(self, source: str) -> None:
        """Read from ``source`` ("bundled" or "hub"); a benchmark without a hub dataset stays as it is."""
        if source != self.data_source and self.hub_dataset:
            self.data_source = source
            self._cache.clear()

    def problems(self, split: str, limit: int | None = None) -> list[Problem]:
        if split not in self.splits:
            raise UserError(f"benchmark {self.name!r} has no split {split!r} (splits: {', '.join(self.splits)})")
        if split not in self._cache:
            self._cache[split] = self.load_split(split)
        rows = self._cache[split]
        return rows[:limit] if limit else rows

    def render(self, question: str) -> str:
        """The user message: ``prompt_template`` with ``{question}`` replaced (no other braces are special)."""
        return self.prompt_template.replace("{question}", question)

    def messages(self, problem: Problem) -> list[dict[str, str]]:
        msgs = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return msgs + [{"role": "user", "content": problem.prompt}]

    def reward_prompts(self, problems: list[Problem]) -> list[Any]:
        """``prompts=`` for the rewards, in this benchmark's format (see :attr:`conversational`)."""
        return [self.messages(p) if self.conversational else p.prompt for p in problems]

    def reward_completions(self, texts: list[str]) -> list[Any]:
        """``completions=`` for the rewards, in this benchmark's format (see :attr:`conversational`)."""
        return [[{"role": "assistant", "content": t}] for t in texts] if self.conversational else list(texts)

    def describe(self) -> dict[str, Any]:
        return {
            "conversational": self.conversational,
            "name": self.name,
            "version": self.version,
            "prompt_template": self.prompt_template,
            "system_prompt": self.system_prompt,
            "eval_reward": self.eval_reward,
            "source": self.source,
            "license": self.license,
        }


def benchmark_at(registry, name: str, version: int = 0) -> Benchmark:
    """The registered benchmark ``name`` at ``version`` (0: its default version)."""
    return registry.get("benchmarks", name).at_version(version)


def reward_columns(problems: list[Problem]) -> dict[str, list[Any]]:
    """The problems' reward columns as ``{column: [one value per problem]}`` (the reward contract's kwargs)."""
    rows = [p.reward_columns() for p in problems]
    return {k: [r[k] for r in rows] for k in rows[0]} if rows else {}


def prompt_token_ids(tokenizer, benchmark: Benchmark, problem: Problem) -> list[int]:
    """The prompt as the model sees it: the chat template applied to :meth:`Benchmark.messages`."""
    text = tokenizer.apply_chat_template(benchmark.messages(problem), add_generation_prompt=True, tokenize=False)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def read_bundled(rel: str) -> list[dict]:
    """Rows of a data file bundled under :data:`DATA_DIR`, checked against its ``SHA256SUMS`` (a clear error
    when it is missing or changed)."""
    from .declared import read_bundled_checked

    return read_bundled_checked(DATA_DIR, rel)


def code_sandbox() -> dict:
    """The code sandbox in force, recorded in every result of a benchmark graded by running code (docs/sandbox.md)."""
    from . import sandbox

    try:
        return sandbox.describe()
    except sandbox.SandboxUnavailable as exc:
        return {"mode": "unavailable", "reason": str(exc)}
