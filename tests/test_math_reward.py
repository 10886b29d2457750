"""math_verify robustness: a table of verdicts, pathological inputs, and time limits off the main thread.

The verdicts below were produced by running math-verify 0.9 through ``check_answer``; where its
verdict is debatable the row says so in a comment instead of asserting what we would prefer.
"""

import signal
import threading
import time

import pytest
from grpo_bench.plugins.rewards.math_answer import (
    boxed_format,
    check_answer,
    gsm8k_hash_answer,
    last_boxed,
    math_verify,
    nesting_depth,
)
from grpo_bench.plugins.rewards.math_budget import MAX_WALL_SECONDS, too_large, unevaluated, within_budget
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


# issue 25: human-graded false negatives, now read as the gold (each row was 0.0 before)
FALSE_NEGATIVES = [
    ("-3", "so #### \u22123", 1.0),  # U+2212 MINUS SIGN
    ("1000", "#### 1 000", 1.0),  # a space as the thousands separator
    ("5", "The answer is \\boxed 5", 1.0),  # \boxed without braces
    ("1000000", B("1e6"), 1.0),  # E-notation
    ("5", B("5 dollars"), 1.0),  # a unit in plain words
    ("3", B("\\text{three}"), 1.0),  # a number word
    ("(1,2]", B("1 < x \\le 2"), 1.0),  # an inequality for an interval
]

# the same readings, elsewhere or in other spellings
READINGS = [
    ("-3", B("\u22123"), 1.0),
    ("1000", B("1 000"), 1.0),  # was parsed as 0 (1 * 000)
    ("1000000", "#### 1 000 000", 1.0),
    ("-1000", "#### \u22121 000", 1.0),
    ("-5", "\\boxed -5", 1.0),
    ("1234", "\\boxed 1,234.", 1.0),
    ("1000000", "#### 1e6", 1.0),
    ("0.025", B("2.5E-2"), 1.0),
    ("5", B("5 square meters"), 1.0),
    ("12", B("\\$12 dollars"), 1.0),
    ("3", B("three"), 1.0),
    ("3", B("\\textbf{Three}"), 1.0),
    ("21", B("\\text{twenty-one}"), 1.0),
    ("(1,2]", B("2 \\ge x > 1"), 1.0),
    ("(1,2]", B("1 < y \\leq 2"), 1.0),
    ("(1,\\infty)", B("x > 1"), 1.0),
]

# near misses of each new reading, and hedges: all must stay 0.0
NEAR_MISSES = [
    ("3", "#### \u22123", 0.0),
    ("-3", "#### \u2212 3", 0.0),  # a detached sign is not read
    ("1000", "#### 1 0001", 0.0),  # not groups of three: two numbers
    ("10001", "#### 1 0001", 0.0),
    ("1", "#### 1 0001", 0.0),  # was read as 1
    ("1000", "#### 10 00", 0.0),
    ("1000", "#### 1 000,000", 0.0),  # mixed separators
    ("1000", "#### 1 000 or 2 000", 0.0),  # a hedge on the #### line
    ("5", "#### 5 or 6", 0.0),  # was read as 5
    ("1000", B("1 0001"), 0.0),
    ("2", B("1 0001"), 0.0),  # was parsed as 2
    ("0", B("1 000"), 0.0),  # was parsed as 0
    ("5", B("5 6"), 0.0),
    ("5", "\\boxed 55", 0.0),
    ("6", "\\boxed 5", 0.0),
    ("5", "\\boxed 5, no: \\boxed{6}", 0.0),  # the last box counts, braced or not
    ("6", "\\boxed{6}, no: \\boxed 5", 0.0),
    ("5", "\\boxed x", 0.0),
    ("1000000", B("5e6"), 0.0),
    ("1000000", B("1e5"), 0.0),
    ("1", "#### 1e6", 0.0),  # was read as 1
    ("6e", B("1e6"), 0.0),  # E-notation, not 1 * e * 6
    ("6", B("1e6"), 0.0),
    ("5", B("50 dollars"), 0.0),
    ("5", B("5 thousand"), 0.0),  # a number word is not a unit
    ("5", B("5 squared"), 0.0),  # nor an operator
    ("5", B("5 pi"), 0.0),
    ("5", B("5 halves"), 0.0),
    ("5", B("5 dollars and 3 cents"), 0.0),
    ("5", B("5 dollars or 6 dollars"), 0.0),
    ("3", B("\\text{four}"), 0.0),
    ("4", B("\\text{three}"), 0.0),
    ("3", B("\\text{thirty}"), 0.0),
    ("3", B("\\text{three hundred}"), 0.0),
    ("3", B("\\text{three or four}"), 0.0),
    ("3", B("\\text{threefold}"), 0.0),
    ("1", B("\\text{one-third}"), 0.0),
    ("(1,2]", B("1 \\le x < 2"), 0.0),
    ("(1,2]", B("1 < x < 2"), 0.0),
    ("(1,2)", B("1 < x \\le 2"), 0.0),
    ("[1,2]", B("1 < x \\le 2"), 0.0),
    ("(-2,2)", B("x^2 < 4"), 0.0),  # restating an inequality is not solving it
    ("(1,2]", B("1 < x \\le 2 < y"), 0.0),
    ("(1,2]", B("1 < x + y \\le 2"), 0.0),
]


@pytest.mark.parametrize("gold,completion,expected", FALSE_NEGATIVES + READINGS + NEAR_MISSES,
                         ids=[f"{g}|{c[-30:]}" for g, c, _ in FALSE_NEGATIVES + READINGS + NEAR_MISSES])
def test_issue_25_readings(gold, completion, expected):
    assert check_answer(gold, completion) == expected


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
    "huge power": ("1", "\\boxed{10^{10^{10}}}"),  # sympy would compute 10**(10**10): refused by size
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
                 "nested fractions", "continued fraction", "huge power"):
        assert statuses[name] == 0.0, name
    assert counts["timeout"] == 0  # issue 25: "huge power" ran to the limit before the size budget


def _in_thread(fn):
    box = {}
    thread = threading.Thread(target=lambda: box.update(value=fn()))
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "scoring hung in a non-main thread"
    return box["value"]


def test_time_limit_is_enforced_from_a_non_main_thread():
    scorer = RewardScorer({"math_verify": math_verify, "forever": sleeps_forever}, timeout_s=4.0, workers=2)
    try:
        t0 = time.monotonic()
        res = _in_thread(lambda: scorer.score(["", ""], [B("10^{10^{10}}"), B("72")], {"answer": ["1", "72"]}))
        elapsed = time.monotonic() - t0
    finally:
        scorer.close()
    assert elapsed < 30
    counts = res.count_summary()
    assert counts["forever"]["timeout"] == 2
    # the workers call math_verify on their main thread, where its own budget applies (issue 25)
    assert counts["math_verify"]["timeout"] == 0 and res.values["math_verify"] == [0.0, 1.0]


def test_direct_call_works_off_the_main_thread():
    # math-verify's SIGALRM timeouts would raise off the main thread; ours are switched off
    assert _in_thread(lambda: math_verify([""], [B("\\frac{1}{2}")], answer=["0.5"])) == [1.0]


# issue 25: each of these ran past the harness's 5 s limit before (killed at 10 s when measured alone)
ADVERSARIAL = {
    "huge power": ("1", B("10^{10^{10}}")),  # C-level big-integer power: no signal interrupts it
    "integer power": ("1", B("12345678901234567890^{123456789}")),
    "factorial": ("1", B("(10^{7})!")),
    "binomial": ("1", B("\\binom{10^{8}}{5 \\cdot 10^{7}}")),
    "gamma": ("1", B("\\Gamma(10^{8})")),
    "modular power": ("1", B("2^{2^{30}} \\mod 7")),
    "long sum": ("1", B("\\sum_{k=1}^{10^{7}} \\frac{1}{k}")),  # ten million terms
    "long product": ("1", B("\\prod_{k=1}^{10^{6}} k")),
    "rational function": ("1", B("".join("\\frac{x^{%d}+1}{x^{%d}-1}" % (i, i + 1) for i in range(1, 30)))),
    "multinomial": ("(x+1)^{40}", B("(x+y+z+1)^{40}")),  # pure Python: stopped by the timer
    "E-notation": ("1", "#### 1e99999999"),  # was read as 1 (and scored 1.0)
}


def test_adversarial_answers_return_within_the_budget():
    scorer = RewardScorer({"math_verify": math_verify}, timeout_s=5.0, workers=1)  # the limit they ran past
    try:
        assert scorer.score([""], [B("1")], {"answer": ["1"]}).values["math_verify"] == [1.0]  # warm worker
        for name, (gold, completion) in ADVERSARIAL.items():
            t0 = time.monotonic()
            res = scorer.score([""], [completion], {"answer": [gold]})
            elapsed = time.monotonic() - t0
            assert res.values["math_verify"] == [0.0], name  # a timeout would be None
            assert elapsed < MAX_WALL_SECONDS + 1.5, (name, elapsed)  # + the round trip to the worker
    finally:
        scorer.close()


# large but legitimate answers are still graded, also against a gold too large to evaluate
LARGE_BUT_FINE = [
    ("2^{2023}", B("2^{2023}"), 1.0),
    ("1024", B("2^{10}"), 1.0),
    ("100891344545564193334812497256", B("\\binom{100}{50}"), 1.0),
    ("3628800", B("10!"), 1.0),
    ("5050", B("\\sum_{k=1}^{100} k"), 1.0),
    ("2^{10000}", B("2^{10000}"), 1.0),
    ("10^{10^{10}}", B("10^{10^{10}}"), 1.0),  # too large: equal as written
    ("10^{10^{10}}", B("10^{10^{10}} + 1"), 0.0),
    ("10^{10^{10}}", B("100^{5 \\cdot 10^{9}}"), 0.0),  # equal in value, but not written the same way
    ("5", B("\\operatorname{ones}(30000, 30000)"), 0.0),  # a 7 GB matrix, refused before parsing
]


@pytest.mark.parametrize("gold,completion,expected", LARGE_BUT_FINE, ids=[c[-30:] for _, c, _ in LARGE_BUT_FINE])
def test_large_answers(gold, completion, expected):
    assert check_answer(gold, completion) == expected


@pytest.mark.parametrize("latex,expected", [
    ("2^{14000}", False),  # 14000 log10(2) = 4214.4 digits
    ("2^{15000}", True),  # 4515.5 digits > 4300
    ("(2^{7500})^{2}", True),  # 2^{15000} again, computed in two steps
    ("x^{10^{9}}", False),  # symbolic: nothing is computed
    ("1^{10^{10}}", False),
    ("1000!", False),  # bound 1000 log10(1001) = 3000.4 digits
    ("2000!", True),  # bound 6602.4 digits
    ("\\binom{10000}{5000}", False),  # bound 10000 log10(2) = 3010.3 digits
    ("\\binom{20000}{10000}", True),  # bound 6020.6
    ("\\sum_{k=1}^{9000} k", False),  # 9002 terms at most
    ("\\sum_{k=1}^{10^{5}} k", True),  # over MAX_TERMS
    ("e^{9000}", False),  # 9000 / ln 10 = 3908.7 digits
    ("e^{10^{4}}", True),  # 4342.9 digits
    ("\\frac{1}{2^{20000}}", True),
])
def test_size_bound(latex, expected):
    assert too_large(unevaluated(f"${latex}$")) is expected


def _spin(seconds=5.0):
    """Python work for ``seconds`` (so a broken timer fails the test instead of hanging it)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            sum(range(100))
        except Exception:  # like math-verify and sympy: must not swallow the timer
            pass
    return "finished"


def test_time_budget_stops_python_work_and_restores_the_signal_state():
    handlers = signal.getsignal(signal.SIGPROF), signal.getsignal(signal.SIGALRM)
    far = time.monotonic() + 60
    t0 = time.process_time()
    assert within_budget(0.2, far, _spin) == (False, None)  # CPU limit
    assert 0.15 < time.process_time() - t0 < 1.0
    t0 = time.monotonic()
    assert within_budget(60, t0 + 0.3, time.sleep, 3) == (False, None)  # wall limit (sleeping uses no CPU)
    assert 0.25 < time.monotonic() - t0 < 2.0
    assert (signal.getsignal(signal.SIGPROF), signal.getsignal(signal.SIGALRM)) == handlers
    assert signal.getitimer(signal.ITIMER_PROF) == signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert within_budget(1.0, far, lambda x: x + 1, 6) == (True, 7)
    signal.signal(signal.SIGALRM, lambda *a: None)
    try:  # a timer that was running goes on with what was left of it
        signal.setitimer(signal.ITIMER_REAL, 30)
        assert within_budget(1.0, far, lambda: 1) == (True, 1)
        assert 25 < signal.getitimer(signal.ITIMER_REAL)[0] <= 30
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, handlers[1])
    assert _in_thread(lambda: within_budget(0.01, 0, lambda: time.sleep(0.05) or 3)) == (True, 3)  # no timer there


def test_bare_box_and_hash_readings():
    assert last_boxed("so \\boxed 42.") == "42" and last_boxed("\\boxed{1} then \\boxed -3") == "-3"
    assert last_boxed("\\boxed 1 then \\boxed{x}") == "x" and last_boxed("\\boxedx 5") is None
    assert boxed_format([""], ["\\boxed 5"]) == [1.0]
    assert gsm8k_hash_answer("#### 1 000 000") == "1000000" and gsm8k_hash_answer("#### 2.5e-3") == "2.5\\times 10^{-3}"
    assert gsm8k_hash_answer("#### 5 or 6") is None and gsm8k_hash_answer("#### 5\n6") == "5"
