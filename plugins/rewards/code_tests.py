"""``code_tests`` reward: run the completion's program against the task's tests in the sandbox.

The program is the last fenced ```python block of the completion, else the last fenced block of
any language, else the raw text (an unclosed fence at the end, a truncated generation, counts as a
block). It runs in :mod:`grpo_bench.sandbox` (``docs/sandbox.md``): inside bubblewrap, the sandbox runs::

    program_prefix      # optional: e.g. HumanEval's prompt, so its imports and helpers exist
    <program>
    setup_code          # optional: MBPP's test_setup_code (it builds inputs from the program's classes)

and a trusted judge process outside runs ``program_prefix`` (benchmark code: helpers some tests
call) and then ``tests``, calling the program's functions through proxies that only pass plain
data; with ``entry_point`` set and a ``def check(`` in the tests (HumanEval), it calls
``check(<entry_point>)``.

1.0 when the tests finished without an exception, 0.0 when a test failed, the program crashed,
returned something that is not plain data, or overran its time limit; ``None`` with a logged reason
when the sample has no tests (the reward does not apply) or the judge itself failed. Where
bubblewrap cannot run the reward raises :class:`grpo_bench.sandbox.SandboxUnavailable` for every
sample (an error in the scorer's counts) unless ``GRPO_BENCH_SANDBOX=weak`` is set.
Optional per-sample column ``time_limit_s`` (default :data:`WALL_S`); keep it below the scorer's
reward timeout so that a slow program is a 0.0 rather than a timeout of the whole call.
"""

from __future__ import annotations

import logging
import re

from grpo_bench import register_reward
from grpo_bench.rewards import completion_text
from grpo_bench.sandbox import Limits, Sample, run_batch

log = logging.getLogger(__name__)

WALL_S = 5.0  # per sample; the harness's default reward timeout is 10 s
_FENCE = re.compile(r"```[ \t]*([^\n`]*)\n(.*?)(?:```|\Z)", re.S)
_PYTHON = {"python", "py", "python3"}


def extract_program(text: str) -> str:
    """The last ```python block, else the last fenced block, else the whole text."""
    blocks = [(lang.strip().lower(), body) for lang, body in _FENCE.findall(text)]
    python = [body for lang, body in blocks if lang in _PYTHON]
    if python:
        return python[-1]
    return blocks[-1][1] if blocks else text


def _sample(completion, tests, entry_point=None, setup_code=None, program_prefix=None, time_limit_s=None) -> Sample:
    program = extract_program(completion_text(completion))
    if program_prefix:
        program = f"{program_prefix}\n\n{program}"
    return Sample(program, tests, entry_point=entry_point or None, setup_code=setup_code or "",
                  trusted_prefix=program_prefix or "", limits=Limits(wall_s=float(time_limit_s or WALL_S)))


def _score(result) -> float | None:
    if result.status == "error":
        log.warning("code_tests: judge failed, scoring None: %s", result.reason)
        return None
    return 1.0 if result.passed else 0.0


def score_one(completion, tests, entry_point=None, setup_code=None, program_prefix=None,
              time_limit_s=None) -> float | None:
    """The reward for one completion (see the module docstring)."""
    if not tests:
        return None
    return _score(run_batch([_sample(completion, tests, entry_point, setup_code, program_prefix, time_limit_s)])[0])


@register_reward("code_tests")
def code_tests(prompts, completions, tests=None, entry_point=None, setup_code=None, program_prefix=None,
               time_limit_s=None, **kwargs) -> list[float | None]:
    """1.0 when the completion's program passes the ``tests`` column, 0.0 when not, None: n/a.

    The batch runs one sample at a time through :func:`grpo_bench.sandbox.run_batch`, which starts the
    next samples' sandboxes while one runs (each sample still gets a fresh sandbox of its own)."""

    def col(values, i):
        return values[i] if values is not None else None

    rows = [i for i in range(len(completions)) if col(tests, i)]
    samples = [_sample(completions[i], col(tests, i), col(entry_point, i), col(setup_code, i), col(program_prefix, i),
                       col(time_limit_s, i)) for i in rows]
    scores: list[float | None] = [None] * len(completions)
    for i, result in zip(rows, run_batch(samples) if samples else []):
        scores[i] = _score(result)
    return scores

