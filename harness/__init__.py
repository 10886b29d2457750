"""grpo-bench: a reward-pluggable benchmark harness for critic-free RL fine-tuning of LLMs.

Data flows one way: suite file -> runner -> trainer (rollout engine, rewards, algorithm)
-> evaluator -> results -> leaderboard.  Plugins add rewards, algorithms, benchmarks and
rollout engines through the pluggy hooks in :mod:`grpo_bench.hookspecs`.
"""

import pluggy

__version__ = "0.1.0"
PROJECT = "grpo_bench"

#: Decorate a plugin's hook functions with this (``@hookimpl``).
hookimpl = pluggy.HookimplMarker(PROJECT)
