"""Math answer rewards: ``math_verify`` (answer correctness) and ``format`` (a boxed answer is present).

``math_verify``: the gold answer (dataset column ``answer``) is parsed first; the prediction is
the last ``\\boxed{...}`` of the completion (or a number after an unbraced ``\\boxed 5``) or, for
GSM8K-style text, the number after ``####``; then ``math_verify.verify(gold, pred)``. 1.0 when
equal, 0.0 when not, ``None`` when the gold answer itself cannot be parsed within the budget
(the reward does not apply).

Readings (issue 25, :mod:`.math_readings`): U+2212 is a minus sign; thousands may be separated by
commas or single spaces, in groups of three only; E-notation (``1e6``) is a number; a number
followed by plain unit words (``5 dollars``) is the number; a number word (``\\text{three}``, up
to ninety-nine) is its digits; a one-variable inequality whose sides are the variable and
constants (``1 < x \\le 2``) equals its interval (math-verify's ``allow_set_relation_comp``, which
we allow for these only: ``x^2 < 4`` restates a question rather than answering it).

Cost bounded by the input's shape, before any parsing: a boxed answer longer than
:data:`MAX_ANSWER_CHARS` or with braces/brackets nested deeper than :data:`MAX_NESTING` scores 0.0
unparsed (depth 30 in 210 characters kept the parser busy for over 90 s); the ``####`` number is at
most :data:`MAX_HASH_CHARS` characters with separators only in groups of three (``1,00,0`` is not a
number). Ambiguous answers score 0.0 instead of whatever the parser picks first: two numbers joined
by text (``5 \\text{dollars and } 3 \\text{ cents}``), a line break ``\\\\`` outside a matrix
(``3 \\\\ 4``), numbers separated by spaces (``5 6``), and a digit after the ``####`` number on its
line (``#### 5 or 6``).

Budget (:mod:`.math_budget`): an answer that would compute a number over ``10**4300`` or a sum of
over 10 000 terms is not evaluated (it matches only a gold written the same way); everything else
gets 1 CPU second for the gold and 1 for the prediction, and 3 wall seconds for both, on the main
thread (the harness's reward workers); past it the prediction scores 0.0 (the gold: ``None``). math-verify's own SIGALRM
timeouts are switched off (wall time in whole seconds, per comparison, and their TimeoutException
is caught inside math-verify, so the next comparison runs unbounded);
the harness's worker pool (:class:`grpo_bench.scoring.RewardScorer`) still bounds each call from
any thread by killing the worker, and such a call counts as a ``timeout``.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

from grpo_bench import register_reward
from grpo_bench.plugins.rewards import math_budget
from grpo_bench.plugins.rewards.math_readings import NUMBER_RUN, plain_number, read_boxed, spaced_numbers
from grpo_bench.rewards import completion_text

# we pass math-verify timeouts of None on purpose (math_budget bounds each call); silence the reminder
logging.getLogger("math_verify").setLevel(logging.ERROR)
log = logging.getLogger(__name__)

_HASH_ANSWER = re.compile(r"####\s*\$?\s*(" + NUMBER_RUN.pattern + ")")
_TEXT = re.compile(r"\\(?:text|mbox|textbf|textit|mathrm)\s*\{[^{}]*\}")
_NUMBER_TEXT_NUMBER = re.compile(r"\d\s*\x00[\s\x00]*[-+]?\s*\.?\d")
_ENVIRONMENT = re.compile(r"\\begin\{(\w+\*?)\}.*?\\end\{\1\}", re.S)
_OPEN, _CLOSE = "{([", "})]"
#: deepest nesting of {}, () and [] in a predicted answer that is parsed at all
MAX_NESTING = 10
#: longest number after "####" that is parsed (GSM8K answers have at most a few digits)
MAX_HASH_CHARS = 40
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BARE_BOXED = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])\s*(" + NUMBER_RUN.pattern + ")")
_BRACE = re.compile(r"[{}]")
# latex2sympy builds these while parsing, before any check: \operatorname{ones}(30000, 30000) is 7 GB
_MATRIX_BUILDER = re.compile(r"\\operatorname\s*\{\s*(?:eye|zeros|ones|diag)\s*\}")
#: a predicted answer longer than this scores 0.0 unparsed (real answers are short; sympy on 100 kB is not)
MAX_ANSWER_CHARS = 1000


def _last_braced_box(text: str) -> tuple[int, str] | None:
    """(start, content) of the last ``\\boxed{...}`` with balanced braces, else None.

    One pass over the braces (a stack), so a long completion full of unclosed ``\\boxed{`` stays linear.
    """
    boxes = [(m.start(), m.end()) for m in _BOXED.finditer(text)]
    if not boxes:
        return None
    match: dict[int, int] = {}  # index of "{" -> index of its "}"
    stack: list[int] = []
    for m in _BRACE.finditer(text, boxes[0][1] - 1):
        if m.group() == "{":
            stack.append(m.start())
        elif stack:
            match[stack.pop()] = m.start()
    for start, content in reversed(boxes):
        if content - 1 in match:
            return start, text[content:match[content - 1]]
    return None


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) with balanced braces, else None.

    An unbraced ``\\boxed 5`` (TeX boxes the next token; models that write ``\\boxed 42`` mean 42)
    counts too, with the number that follows as its content; whichever box comes last wins.
    """
    braced = _last_braced_box(text)
    bare = None
    for bare in _BARE_BOXED.finditer(text):
        pass
    if bare is not None and (braced is None or bare.start() > braced[0]):
        return bare.group(1)
    return None if braced is None else braced[1]


def gsm8k_hash_answer(text: str) -> str | None:
    """The number after the last ``####`` as LaTeX, separators removed (GSM8K's answer format).

    None when there is none, when it is longer than :data:`MAX_HASH_CHARS`, when its separators
    are not thousands groups (``1,00,0``, ``1 0001``), or when another digit follows on its line
    (``#### 5 or 6``: a hedge).
    """
    found = None
    for found in _HASH_ANSWER.finditer(text):
        pass
    if found is None or len(found.group(1)) > MAX_HASH_CHARS:
        return None
    rest_of_line = text[found.end():].split("\n", 1)[0]
    if any(ch.isdigit() for ch in rest_of_line):
        return None
    return plain_number(found.group(1))


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
    if spaced_numbers(boxed):
        return "numbers separated by spaces"
    return None


def predicted_answer(completion: str) -> str | None:
    """The prediction as text for math-verify (``$\\boxed{...}$`` or ``$N$``), or None: nothing to grade."""
    boxed = last_boxed(completion)
    if boxed is None:
        number = gsm8k_hash_answer(completion)
        return None if number is None else f"${number}$"
    if (len(boxed) > MAX_ANSWER_CHARS or nesting_depth(boxed) > MAX_NESTING or ambiguous(boxed)
            or _MATRIX_BUILDER.search(boxed)):
        return None
    return f"$\\boxed{{{read_boxed(boxed)}}}$"


def _parse(text: str):
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    return parse(text, extraction_config=[LatexExtractionConfig(), ExprExtractionConfig()], parsing_timeout=None)


def simple_inequality(expr) -> bool:
    """Whether ``expr`` is one or two inequalities between one variable and constants (``1 < x \\le 2``)."""
    from sympy import And, GreaterThan, LessThan, StrictGreaterThan, StrictLessThan

    parts = expr.args if isinstance(expr, And) else (expr,)
    if not 1 <= len(parts) <= 2 or len(getattr(expr, "free_symbols", ())) != 1:
        return False
    (variable,) = expr.free_symbols
    return all(isinstance(p, (StrictLessThan, LessThan, StrictGreaterThan, GreaterThan))
               and variable in (p.lhs, p.rhs) and not (p.lhs.free_symbols and p.rhs.free_symbols)
               for p in parts)


@dataclass(frozen=True)
class _Gold:
    form: Any  # the unevaluated tree (math_budget.unevaluated) when it was needed, else None
    parsed: tuple | None  # math-verify's reading; None when the gold is too large to evaluate


@functools.lru_cache(maxsize=256)  # a gold answer is graded once per completion of its prompt
def _read_gold(gold_text: str) -> _Gold | None:
    if math_budget.may_be_large(gold_text):
        form = math_budget.unevaluated(gold_text)
        if math_budget.too_large(form):
            return _Gold(form, None)
    parsed = _parse(gold_text)
    return _Gold(None, tuple(parsed)) if parsed else None


def _grade(gold: _Gold, pred_text: str) -> float:
    from math_verify import verify

    if gold.parsed is None:  # too large to evaluate: equal only when written the same way
        form = math_budget.unevaluated(pred_text)
        return 1.0 if form is not None and form == gold.form else 0.0
    if math_budget.may_be_large(pred_text) and math_budget.too_large(math_budget.unevaluated(pred_text)):
        return 0.0
    pred = _parse(pred_text)
    if not pred:
        return 0.0
    inequality = any(simple_inequality(p) for p in pred if not isinstance(p, str))
    return 1.0 if verify(list(gold.parsed), pred, allow_set_relation_comp=inequality, timeout_seconds=None) else 0.0


@functools.cache
def _warm_up() -> None:
    """Import and initialise the parsers once, outside the time budget (a cold start takes about 1 s)."""
    _parse("$1$")
    math_budget.unevaluated("$1$")


def check_answer(gold: str, completion: str) -> float | None:
    """1.0 / 0.0 for one gold answer and completion; None when the gold cannot be parsed (within the budget)."""
    gold = str(gold).strip()
    gold_text = gold if "\\boxed" in gold or gold.startswith("$") else f"${gold}$"
    _warm_up()
    deadline = time.monotonic() + math_budget.MAX_WALL_SECONDS
    gold_in_time, gold_read = math_budget.within_budget(math_budget.MAX_CPU_SECONDS, deadline, _read_gold, gold_text)
    if not gold_in_time:
        log.debug("math_verify: reading the gold %.80r went over the budget", gold)
    if gold_read is None:
        return None
    pred_text = predicted_answer(completion)
    if pred_text is None:
        return 0.0
    in_time, verdict = math_budget.within_budget(math_budget.MAX_CPU_SECONDS, deadline, _grade, gold_read, pred_text)
    if not in_time:
        log.debug("math_verify: grading %.80r went over the budget", pred_text)
    return verdict if in_time else 0.0


@register_reward("math_verify")
def math_verify(prompts, completions, answer, **kwargs) -> list[float | None]:
    """Answer correctness against the ``answer`` column, via the math-verify package."""
    return [check_answer(gold, completion_text(c)) for gold, c in zip(answer, completions)]


@register_reward("format")
def boxed_format(prompts, completions, **kwargs) -> list[float]:
    """1.0 when the completion contains a complete ``\\boxed{...}`` answer (or ``\\boxed 5``), else 0.0."""
    return [1.0 if last_boxed(completion_text(c)) is not None else 0.0 for c in completions]
