"""``integer_answer``: exact match of an integer answer, for synthetic tasks such as ``arith``.

The prediction is the content of the last ``\\boxed{...}`` when there is one, else the last
integer in the completion (thousands commas allowed, a leading minus kept). 1.0 when it equals the
gold ``answer`` as an integer, 0.0 otherwise, ``None`` when the gold is not an integer.
Unlike ``math_verify`` (boxed or ``####`` only), a bare final number counts: small models answer
"The answer is 10." long before they learn the boxed format, and arith is there to be learnable.
"""

from __future__ import annotations

import re

from grpo_bench import register_reward
from grpo_bench.rewards import completion_text

_INT = re.compile(r"-?\d{1,3}(?:,\d{3})+(?!\d)|-?\d+")


def _to_int(text: str) -> int | None:
    found = _INT.findall(text)
    return int(found[-1].replace(",", "")) if found else None


@register_reward("integer_answer")
def integer_answer(prompts, completions, answer, **kwargs) -> list[float | None]:
    from grpo_bench.plugins.rewards.math_answer import last_boxed

    out: list[float | None] = []
    for gold, completion in zip(answer, completions):
        try:
            gold_int = int(str(gold).strip().replace(",", ""))
        except ValueError:
            out.append(None)
            continue
        text = completion_text(completion)
        boxed = last_boxed(text)
        pred = _to_int(boxed if boxed is not None else text)
        out.append(1.0 if pred == gold_int else 0.0)
    return out
