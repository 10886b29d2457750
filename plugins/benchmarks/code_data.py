"""HumanEval and MBPP benchmarks: placeholder registration, implemented with the sandbox (issue 4)."""

from grpo_bench import hookimpl


@hookimpl
def grpo_bench_benchmarks():
    return {}
