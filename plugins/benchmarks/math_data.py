"""GSM8K, MATH and MATH-500 from the copies bundled under ``harness/data`` (package data ``grpo_bench/data``) (see its README).

With ``[suite] data = "hub"`` (or ``GRPO_BENCH_HUB=1``) the same loaders read the Hugging Face hub datasets instead
(``openai/gsm8k``, ``EleutherAI/hendrycks_math``, ``HuggingFaceH4/MATH-500``) through ``datasets``.
"""

from __future__ import annotations

import os

from grpo_bench import hookimpl
from grpo_bench.benchmark import Benchmark, Problem, read_bundled

BOXED_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


def _use_hub(bench) -> bool:
    return bench.data_source == "hub" or os.environ.get("GRPO_BENCH_HUB", "") == "1"


def _hub_rows(path: str, name: str | None, split: str) -> list[dict]:
    import datasets

    return list(datasets.load_dataset(path, name, split=split))


def boxed(answer: str) -> str:
    """The ``solution`` column: the reference answer as ``\\boxed{...}``, which TRL's LaTeX-only
    ``accuracy_reward`` parses (a bare ``72`` would not parse, and it scores unparseable gold 1.0)."""
    return f"\\boxed{{{answer}}}"


def _boxed_answer(solution: str) -> str:
    from grpo_bench.plugins.rewards.math_answer import last_boxed

    return last_boxed(solution) or ""


class GSM8K(Benchmark):
    name = "gsm8k"
    splits = ("train", "test")
    description = "Grade-school math word problems (Cobbe et al. 2021); 7473 train / 1319 test."
    source = "openai/grade-school-math @ 3101c7d5, grade_school_math/data/"
    license = "MIT"
    prompt_template = "{question}\n" + BOXED_INSTRUCTION
    hub_dataset = "openai/gsm8k"

    def load_split(self, split):
        rows = _hub_rows("openai/gsm8k", "main", split) if _use_hub(self) else read_bundled(f"gsm8k/{split}.jsonl.gz")
        out = []
        for i, row in enumerate(rows):
            final = row["answer"].split("####")[-1].strip().replace(",", "")
            out.append(Problem(f"gsm8k/{split}/{i}", self.render(row["question"]),
                               final, {"solution": boxed(final), "worked_solution": row["answer"]}))
        return out


class MATH(Benchmark):
    name = "math"
    splits = ("train", "test")
    description = "Competition mathematics (Hendrycks et al. 2021); 7500 train / 5000 test, levels 1-5."
    source = "Hendrycks MATH, original per-problem layout joined in path order"
    license = "MIT"
    prompt_template = "{question}\n" + BOXED_INSTRUCTION
    hub_dataset = "EleutherAI/hendrycks_math"

    def load_split(self, split):
        rows = _hub_rows("EleutherAI/hendrycks_math", None, split) if _use_hub(self) else read_bundled(f"math/{split}.jsonl.gz")
        return [
            Problem(row.get("unique_id", f"math/{split}/{i}"), self.render(row["problem"]),
                    _boxed_answer(row["solution"]), {"solution": boxed(_boxed_answer(row["solution"])), "level": row.get("level"), "subject": row.get("type")})
            for i, row in enumerate(rows)
        ]


class MATH500(Benchmark):
    name = "math500"
    splits = ("test",)
    description = "MATH-500, the 500-problem MATH test subset used by most RL papers."
    source = "OpenAI prm800k math_splits/test.jsonl"
    license = "MIT"
    prompt_template = "{question}\n" + BOXED_INSTRUCTION
    hub_dataset = "HuggingFaceH4/MATH-500"

    def load_split(self, split):
        rows = _hub_rows("HuggingFaceH4/MATH-500", None, split) if _use_hub(self) else read_bundled("math500/test.jsonl.gz")
        return [
            Problem(row["unique_id"], self.render(row["problem"]), row["answer"],
                    {"solution": boxed(row["answer"]), "level": row.get("level"), "subject": row.get("subject")})
            for row in rows
        ]


@hookimpl
def grpo_bench_benchmarks():
    return {"gsm8k": GSM8K(), "math": MATH(), "math500": MATH500()}
