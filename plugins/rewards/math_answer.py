"""Math answer rewards: ``math_verify`` (answer correctness) and ``format`` (a boxed answer is present).

``math_verify``: the gold answer (dataset column ``answer``) is parsed first; the prediction is
the last ``\\boxed{...}`` of the completion or, for GSM8K-style text, the number after ``####``
(thousands commas allowed); then ``math_verify.verify(gold, pred)``. 1.0 when equal, 0.0 when not,
``None`` when the gold answer itself cannot be parsed (the reward does not apply).

Cost bounded by the input's shape, before any parsing: a boxed answer longer than
:data:`MAX_ANSWER_CHARS` or with braces/brackets nested deeper than :data:`MAX_NESTING` scores 0.0
unparsed (depth 30 in 210 characters kept the parser busy for over 90 s); the ``####`` number is at
most :data:`MAX_HASH_CHARS` characters with commas only in groups of three (``1,00,0`` is not a number).
Ambiguous answers score 0.0 instead of whatever the parser picks first: two numbers joined by text
(``5 \text{dollars and } 3 \text{ cents}``) and a line break ``\\`` outside a matrix (``3 \\ 4``).

Time limits: math-verify's own timeouts use SIGALRM, which works on the main thread only, so they
are switched off here; the harness's worker pool (:class:`grpo_bench.scoring.RewardScorer`) bounds
each call from any thread by killing the worker, and such a call counts as a ``timeout``.
Called directly, outside the scorer, a pathological answer (``10^{10^{10}}``) can take unbounded time.
"""

from __future__ import annotations

import logging
import re

from grpo_bench import register_reward
from grpo_bench.rewards import completion_text

# we pass timeouts of None on purpose (the harness bounds each call); silence the reminder
logging.getLogger("math_verify").setLevel(logging.ERROR)

_HASH_ANSWER = re.compile(r"####\s*\$?\s*([-+]?[\d,]*\.?\d+)")
_GROUPED = re.compile(r"[-+]?(?:\d+|\d{1,3}(?:,\d{3})+)(?:\.\d+)?|[-+]?\.\d+")
_TEXT = re.compile(r"\\(?:text|mbox|textbf|textit|mathrm)\s*\{[^{}]*\}")
_NUMBER_TEXT_NUMBER = re.compile(r"\d\s*\x00[\s\x00]*[-+]?\s*\.?\d")
_ENVIRONMENT = re.compile(r"\\begin\{(\w+\*?)\}.*?\\end\{\1\}", re.S)
_OPEN, _CLOSE = "{([", "})]"
#: deepest nesting of {}, () and [] in a predicted answer that is parsed at all
MAX_NESTING = 10
#: longest number after "####" that is parsed (GSM8K answers have at most a few digits)
MAX_HASH_CHARS = 40
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BRACE = re.compile(r"[{}]")
#: a predicted answer longer than this scores 0.0 unparsed (real answers are short; sympy on 100 kB is not)
MAX_ANSWER_CHARS = 1000


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) with balanced braces, else None.

    One pass over the braces (a stack), so a long completion full of unclosed ``\\boxed{`` stays linear.
    """
    starts = [m.end() for m in _BOXED.finditer(text)]
    if not starts:
        return None
    match: dict[int, int] = {}  # index of "{" -> index of its "}"
    stack: list[int] = []
    for m in _BRACE.finditer(text, starts[0] - 1):
        if m.group() == "{":
            stack.append(m.start())
        elif stack:
            match[stack.pop()] = m.start()
    for start in reversed(starts):
        if start - 1 in match:
            return text[start:match[start - 1]]
    return None


def gsm8k_hash_answer(text: str) -> str | None:
    """The number after the last ``####`` with commas removed (GSM8K's answer format).

    None when there is none, when it is longer than :data:`MAX_HASH_CHARS`, or when its commas are
    not thousands separators (``1,00,0``).
    """
    found = _HASH_ANSWER.findall(text)
    if not found or len(found[-1]) > MAX_HASH_CHARS or not _GROUPED.fullmatch(found[-1]):
        return None
    return found[-1].replace(",", "")


def nesting_depth(text: str) -> int:
    """Deepest nesting of ``{}``, ``()`` and ``[]`` (unbalanced closers ignored), in one pass."""
    depth = deepest = 0
    for ch in text:
        if ch in _OPEN:
            depth += 1
            deepest = max(deepest, depth)
        elif ch in _CLOSE and depth:
            depth -= 1
    return deepest


def ambiguous(boxed: str) -> str | None:
    """Why a boxed answer holds more than one answer (None when it does not)."""
    if _NUMBER_TEXT_NUMBER.search(_TEXT.sub("\x00", boxed)):
        return "two numbers joined by text"
    if "\\\\" in _ENVIRONMENT.sub("", boxed):
        return "a line break outside a matrix"
    return None


def _parse(text: str):
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    return parse(text, extraction_config=[LatexExtractionConfig(), ExprExtractionConfig()], parsing_timeout=None)


def check_answer(gold: str, completion: str) -> float | None:
    """1.0 / 0.0 for one gold answer and completion; None when the gold cannot be parsed."""
    from math_verify import verify

    gold = str(gold).strip()
    gold_text = gold if "\\boxed" in gold or gold.startswith("$") else f"${gold}$"
    gold_parsed = _parse(gold_text)
    if not gold_parsed:
        return None
    boxed = last_boxed(completion)
    if boxed is not None and (len(boxed) > MAX_ANSWER_CHARS or nesting_depth(boxed) > MAX_NESTING
                              or ambiguous(boxed)):
        return 0.0
    if boxed is not None:
        pred_text = f"$\\boxed{{{boxed}}}$"
    else:
        number = gsm8k_hash_answer(completion)
        if number is None:
            return 0.0
        pred_text = f"${number}$"
    pred = _parse(pred_text)
    if not pred:
        return 0.0
    return 1.0 if verify(gold_parsed, pred, timeout_seconds=None) else 0.0


@register_reward("math_verify")
def math_verify(prompts, completions, answer, **kwargs) -> list[float | None]:
    """Answer correctness against the ``answer`` column, via the math-verify package."""
    return [check_answer(gold, completion_text(c)) for gold, c in zip(answer, completions)]


@register_reward("format")
def boxed_format(prompts, completions, **kwargs) -> list[float]:
    """1.0 when the completion contains a complete ``\\boxed{...}`` answer, else 0.0."""
    return [1.0 if last_boxed(completion_text(c)) is not None else 0.0 for c in completions]
