"""MBPP from the copy bundled under ``harness/data`` (package data ``grpo_bench/data``) (see its README),
checked against its ``SHA256SUMS``. HumanEval is a declaration (``datasets/humaneval.toml``); MBPP stays code
because its splits are task-id ranges, its question joins a list of asserts, and its entry point is found by
parsing the reference solution (:func:`mbpp_entry_point`).

Graded by the ``code_tests`` reward; every problem carries the reward columns
``tests`` (assert code), ``entry_point`` (the function the tests call, see :func:`mbpp_entry_point`),
``setup_code`` (MBPP's ``test_setup_code``, run after the program) and ``program_prefix`` ("").
The ``answer`` column is the reference solution (not used for grading).

MBPP splits are the authors' task-id ranges: prompt 1-10 (few-shot), test 11-510,
validation 511-600, train 601-974. Documented choice: the prompt is zero-shot (the usual MBPP
spec, the task text followed by its test asserts, after Austin et al. 2021) plus the request for
a ```python block; the few-shot tasks stay available as the ``prompt`` split. Short generations on
small models make the usual 3-shot prompt (about 600 tokens) a poor trade.
"""

from __future__ import annotations

import ast
import warnings

from grpo_bench import hookimpl
from grpo_bench.benchmark import Benchmark, Problem, code_sandbox, read_bundled


CODE_BLOCK = "Write the complete solution in a single ```python code block."


class MBPP(Benchmark):
    name = "mbpp"
    splits = ("train", "validation", "test", "prompt")
    description = "MBPP (Austin et al. 2021): 974 entry-level Python tasks, three asserts each."
    source = "google-research mbpp/mbpp.jsonl (public mirror patdfb/TPC-EES @ 7036e20c)"
    license = "CC BY 4.0"
    eval_reward = "code_tests"
    prompt_template = "You are an expert Python programmer, and here is your task: {question}\n" + CODE_BLOCK
    #: task-id ranges, inclusive, as defined by the dataset's authors
    ranges = {"prompt": (1, 10), "test": (11, 510), "validation": (511, 600), "train": (601, 974)}

    def load_split(self, split):
        lo, hi = self.ranges[split]
        rows = [r for r in read_bundled("mbpp/mbpp.jsonl.gz") if lo <= r["task_id"] <= hi]
        out = []
        for row in sorted(rows, key=lambda r: r["task_id"]):
            tests = "\n".join(row["test_list"])
            question = f"{row['text']} Your code should pass these tests:\n\n{tests}\n"
            out.append(Problem(f"mbpp/{row['task_id']}", self.render(question), row["code"],
                               {"tests": tests, "entry_point": mbpp_entry_point(row["code"], tests),
                                "setup_code": row["test_setup_code"],
                                "program_prefix": ""}))
        return out

    def describe(self):
        return super().describe() | {"code_sandbox": code_sandbox()}


def mbpp_entry_point(reference: str, tests: str) -> str:
    """The first function the tests call that the reference solution defines ("" if none).

    The judge treats the entry point as the program's even when it shadows a built-in (MBPP 126
    asks for a function named ``sum``); every other built-in name in the tests stays the real one.
    """
    with warnings.catch_warnings():  # some references have invalid escapes ('\w' in plain strings)
        warnings.simplefilter("ignore")
        defined = {n.name for n in ast.parse(reference).body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        tree = ast.parse(tests)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in defined:
            return node.func.id
    return ""


@hookimpl
def grpo_bench_benchmarks():
    return {"mbpp": MBPP()}
