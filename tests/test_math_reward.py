"""math_verify robustness: a table of verdicts, pathological inputs, and time limits off the main thread.

The verdicts below were produced by running math-verify 0.9 through ``check_answer``; where its
verdict is debatable the row says so in a comment instead of asserting what we would prefer.
"""

import threading
import time

import pytest
from grpo_bench.plugins.rewards.math_answer import (
    check_answer,
    last_boxed,
    math_verify,
    nesting_depth,
)
from grpo_bench.scoring import RewardScorer


def B(s):
    return f"The answer is \\boxed{{{s}}}."


TABLE = [
    # GSM8K numbers: "#### N" with thousands commas, or a boxed number
    ("1234", "#### 1,234", 1.0),
    ("1234", "#### 1234", 1.0),
    ("1234", "#### $1,234", 1.0),
    ("1234", B("1,234"), 1.0),
    ("1000000", B("1,000,000"), 1.0),
    ("1000000", "#### 1,000,000", 1.0),
    ("1234", "#### 1,234.00", 1.0),
    ("-5", "#### -5", 1.0),
    ("5", "#### -5", 0.0),
    ("72", "so #### 72 and #### 73", 0.0),  # the last "####" counts
    ("18", "#### 18\nThe answer is 18.", 1.0),
    ("1234", B("1234.0"), 1.0),
    ("3", "The answer is 3.", 0.0),  # no boxed answer and no "####": nothing to grade
    ("12000", B("12{,}000"), 1.0),
    ("12000", B("12\\,000"), 0.0),  # debatable: a thin-space thousands separator is not understood
    # fractions vs decimals
    ("0.5", B("\\frac{1}{2}"), 1.0),
    ("\\frac{1}{2}", B("0.5"), 1.0),
    ("\\frac{3}{4}", B("0.75"), 1.0),
    ("\\frac{3}{4}", B("3/4"), 1.0),
    ("\\dfrac{3}{4}", B("\\tfrac34"), 1.0),
    ("\\frac{1}{3}", B("0.333"), 0.0),  # rounded too early
    ("\\frac{1}{3}", B("0.3333333"), 1.0),  # within math-verify's numeric tolerance
    ("\\frac{1}{3}", B("\\frac{2}{6}"), 1.0),
    ("\\frac{2}{3}", B("\\frac{3}{2}"), 0.0),
    ("1.25", B("\\frac{5}{4}"), 1.0),
    ("1.25", B("1\\frac{1}{4}"), 1.0),  # a mixed number
    ("0.1", B("1/10"), 1.0),
    ("\\frac{-1}{2}", B("-\\frac{1}{2}"), 1.0),
    ("2", B("\\frac{4}{2}"), 1.0),
    # LaTeX forms
    ("\\sqrt{2}", B("2^{1/2}"), 1.0),
    ("\\sqrt{2}", B("\\sqrt2"), 1.0),
    ("2\\sqrt{3}", B("\\sqrt{12}"), 1.0),
    ("\\pi", B("3.14159"), 0.0),
    ("2\\pi", B("2 \\pi"), 1.0),
    ("\\frac{\\pi}{2}", B("\\pi/2"), 1.0),
    ("x^2+2x+1", B("(x+1)^2"), 1.0),
    ("5", B("x = 5"), 1.0),
    ("5", B("\\left( 5 \\right)"), 1.0),
    ("1000", B("10^3"), 1.0),
    ("\\infty", B("\\infty"), 1.0),
    ("\\text{(A)}", B("A"), 1.0),
    ("\\frac{\\sqrt{3}}{2}", B("\\frac{1}{2}\\sqrt{3}"), 1.0),
    ("3", B("\\!3"), 1.0),
    ("e", B("\\exp(1)"), 1.0),
    ("\\sqrt{2}", B("1.41421356"), 1.0),
    ("2", B("\\sqrt{4}"), 1.0),
    ("-1", B("i^2"), 0.0),  # debatable: i is read as a plain symbol, not the imaginary unit
    ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", B("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}"), 1.0),
    # units
    ("5", B("5 \\text{ cm}"), 1.0),
    ("5", B("5\\text{ dollars}"), 1.0),
    ("5", B("\\$5"), 1.0),
    ("5", B("5\\%"), 1.0),  # debatable: the percent sign is dropped ...
    ("0.05", B("5\\%"), 1.0),  # ... and also read as 5/100: both golds accept "5\%"
    ("90", B("90^\\circ"), 1.0),
    ("90^\\circ", B("90"), 1.0),
    ("12", B("12 \\mbox{ inches}"), 1.0),
    ("5", B("5 \\text{ meters}^2"), 1.0),
    ("10", B("10\\text{ apples}"), 1.0),
    # intervals and sets
    ("(1, 2)", B("(1,2)"), 1.0),
    ("[1,2)", B("[1,2]"), 0.0),
    ("[-2,5]", B("[-2,5)"), 0.0),
    ("\\{1,2,3\\}", B("\\{3,2,1\\}"), 1.0),
    ("(-\\infty, 3]", B("(-\\infty,3]"), 1.0),
    ("(0,\\infty)", B("(0, \\infty)"), 1.0),
    ("1,2", B("2,1"), 1.0),  # a bare list of answers is compared as a set
    ("(1,2)", B("(2,1)"), 0.0),  # a tuple/interval is ordered
    ("[0,1]", B("x \\in [0,1]"), 1.0),
    ("(-1,1)\\cup(2,3)", B("(-1,1)\\cup(2,3)"), 1.0),
    ("(-1,1)\\cup(2,3)", B("(2,3)\\cup(-1,1)"), 1.0),
    ("\\{2\\}", B("2"), 1.0),  # debatable: a one-element set equals its element
    ("\\emptyset", B("\\emptyset"), 1.0),
    # ambiguous or malformed: 0.0, not whatever the parser reads first (issue 8)
    ("5", B("5 \\text{dollars and } 3 \\text{ cents}"), 0.0),  # two numbers joined by text; was graded 5
    ("3", B("3 \\text{ apples and } 4 \\text{ pears}"), 0.0),  # two answers in one box; was graded 3
    ("4", B("3 \\text{ apples and } 4 \\text{ pears}"), 0.0),  # ... whichever one the gold is
    ("1000", "#### 1,00,0", 0.0),  # commas not in groups of three: not a number; was read as 1000
    ("100", "#### 1,00", 0.0),
    ("4", B("3 \\\\ 4"), 0.0),  # a line break: two answers; was graded 4
    ("3", B("3 \\\\ 4"), 0.0),
    ("1", "#### " + "1" * 41, 0.0),  # longer than MAX_HASH_CHARS: not parsed
    ("2", B("\\left(" * 11 + "2" + "\\right)" * 11), 0.0),  # nested deeper than MAX_NESTING: not parsed
    # no answer, wrong answer, unclosed box
    ("3", "no answer here", 0.0),
    ("3", B("4"), 0.0),
    ("3", "\\boxed{3", 0.0),
]


def test_table_is_large_enough():
    assert len(TABLE) >= 60


@pytest.mark.parametrize("gold,completion,expected", TABLE, ids=[f"{g}|{c[-30:]}" for g, c, _ in TABLE])
def test_verdict_table(gold, completion, expected):
    assert check_answer(gold, completion) == expected


def sleeps_forever(prompts, completions, **kwargs):
    """A reward that never returns (module level, so worker processes can import it)."""
    while True:
        time.sleep(3600)


def tower(n):
    return "\\boxed{" + "\\frac{1}{1+" * n + "1" + "}" * n + "}"


PATHOLOGICAL = {
    "power tower": ("5", "\\boxed{9^9^9^9}"),
    "power tower, gold": ("9^{9^{9^9}}", "\\boxed{9^{9^{9^9}}}"),
    "huge power": ("1", "\\boxed{10^{10^{10}}}"),  # sympy would compute 10**(10**10): a timeout
    "100 kB completion": ("72", "blah " * 20000 + "\\boxed{72}"),
    "unbalanced braces": ("72", "\\boxed{" * 14000),
    "unclosed inner brace": ("72", "\\boxed{72" + "{" * 50000),
    "nested fractions": ("2", "\\boxed{" + "\\frac{1}{" * 50 + "2" + "}" * 50 + "}"),  # deeper than MAX_NESTING
    "continued fraction": ("1", tower(30)),  # sympy simplification exploded (a timeout); now refused unparsed
    "too long to parse": ("1", tower(200)),  # over MAX_ANSWER_CHARS: 0.0 at once
    "many hashes": ("72", "#### ," * 20000),
}


def test_nesting_is_refused_before_parsing():
    # issue 8: depth 30 in 210 characters kept the parser busy for over 90 s; now refused unparsed
    deep = "{" * 30 + "1" + "}" * 30
    assert len("\\boxed{" + deep + "}") < 210 and nesting_depth(deep) == 30
    t0 = time.monotonic()
    assert check_answer("1", B(deep)) == 0.0
    assert check_answer("1", B("\\frac{1}{" * 30 + "1" + "}" * 30)) == 0.0
    assert time.monotonic() - t0 < 1.0
    assert nesting_depth("\\frac{\\sqrt{3}}{2}") == 2 and nesting_depth("}}{(") == 2


def test_last_boxed_is_linear():
    t0 = time.monotonic()
    assert last_boxed("\\boxed{" * 50000) is None
    assert last_boxed("\\boxed{1} " + "{" * 100000) == "1"
    assert time.monotonic() - t0 < 2


def test_pathological_inputs_finish_within_the_limit():
    names = list(PATHOLOGICAL)
    golds = [PATHOLOGICAL[n][0] for n in names]
    completions = [PATHOLOGICAL[n][1] for n in names]
    scorer = RewardScorer({"math_verify": math_verify}, timeout_s=4.0, workers=2)
    try:
        t0 = time.monotonic()
        res = scorer.score([""] * len(names), completions, {"answer": golds})
        elapsed = time.monotonic() - t0
    finally:
        scorer.close()
    # 10 samples on 2 workers, each call ≤ 4 s (+ worker restarts): bounded, never a hang
    assert elapsed < 45
    counts = res.count_summary()["math_verify"]
    assert counts["error"] == 0 and counts["none"] == 0
    statuses = dict(zip(names, res.values["math_verify"]))
    assert statuses["100 kB completion"] == 1.0
    assert statuses["power tower, gold"] == 1.0
    for name in ("power tower", "unbalanced braces", "unclosed inner brace", "too long to parse", "many hashes",
                 "nested fractions", "continued fraction"):
        assert statuses[name] == 0.0, name
    timed_out = {p["index"] for p in res.problems if p["status"] == "timeout"}
    assert {names[i] for i in timed_out} <= {"huge power"}


def _in_thread(fn):
    box = {}
    thread = threading.Thread(target=lambda: box.update(value=fn()))
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "scoring hung in a non-main thread"
    return box["value"]


def test_time_limit_is_enforced_from_a_non_main_thread():
    scorer = RewardScorer({"math_verify": math_verify, "forever": sleeps_forever}, timeout_s=2.0, workers=2)
    try:
        t0 = time.monotonic()
        res = _in_thread(lambda: scorer.score(["", ""], [B("10^{10^{10}}"), B("72")], {"answer": ["1", "72"]}))
        elapsed = time.monotonic() - t0
    finally:
        scorer.close()
    assert elapsed < 20
    counts = res.count_summary()
    assert counts["forever"]["timeout"] == 2
    assert counts["math_verify"]["timeout"] == 1 and res.values["math_verify"][1] == 1.0


def test_direct_call_works_off_the_main_thread():
    # math-verify's SIGALRM timeouts would raise off the main thread; ours are switched off
    assert _in_thread(lambda: math_verify([""], [B("\\frac{1}{2}")], answer=["0.5"])) == [1.0]
