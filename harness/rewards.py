"""The reward contract and the scoring layer that never hangs and never lies.

Contract (the same as TRL's reward functions, so theirs plug in unchanged)::

    def my_reward(prompts, completions, **dataset_columns) -> list[float | None]:
        ...

``prompts`` and ``completions`` are lists of strings (or, for chat data, lists of
``{"role", "content"}`` messages); every column of the dataset row arrives as a keyword argument
holding one value per sample (e.g. ``answer=["72", "5"]``). Return one float per sample, or
``None`` where the reward does not apply. Accept ``**kwargs`` so new columns do not break you.

Worked example::

    def ends_politely(prompts, completions, **kwargs):
        return [1.0 if c.rstrip().endswith("Thanks!") else 0.0 for c in completions]

    ends_politely(["Hi"], ["Sure. Thanks!"])   # -> [1.0]

:class:`grpo_bench.scoring.RewardScorer` calls each reward once per sample in a worker process with a wall-clock
limit. A call that raises, times out, or returns something that is not a number or ``None`` is
an *error*: counted per reward, logged with its sample, and scored as ``None`` for that
function. A number is an ``int`` or ``float`` (numpy/torch-free scalars such as ``numpy.float32``
count: anything registered as :class:`numbers.Real`) that is finite with ``|value| <= 1e12``;
``bool`` (``True``/``numpy.bool_``), strings such as ``"1.0"``, NaN, +-inf and larger values are
errors (see :func:`grpo_bench.scoring.scorer.as_score`). A sample's total is the weighted sum of the values that are not ``None``; a sample
with no value at all scores 0.0 (documented option ``missing_total``).
"""

from __future__ import annotations

from typing import Any

STATUSES = ("ok", "none", "error", "timeout")


def completion_text(completion: Any) -> str:
    """A completion as plain text (chat-style completions are joined message contents)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        return "".join(str(m.get("content", "")) for m in completion if isinstance(m, dict))
    if isinstance(completion, dict):
        return str(completion.get("content", ""))
    return str(completion)
