"""``code_tests`` reward: placeholder registration, implemented in the sandbox work (issue 4)."""

from grpo_bench import hookimpl


@hookimpl
def grpo_bench_rewards():
    return {}
