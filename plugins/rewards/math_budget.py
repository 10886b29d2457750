"""The cost budget of ``math_verify`` (issue 25): a size limit checked before sympy evaluates, and a time limit.

Size. An answer with a construct that can build a large number (:func:`may_be_large`) is first
parsed *unevaluated* (latex2sympy under ``sympy.evaluate(False)``, within the time budget below)
and its tree is measured bottom-up, without computing anything: every exact
number it would compute must stay below ``10**MAX_DIGITS`` (``10^{10^{10}}``, ``(10^7)!``,
``\\binom{10^8}{5 \\cdot 10^7}``, ``2^{2^{30}} \\bmod 7`` do not), and a ``\\sum``/``\\prod`` must have
at most :data:`MAX_TERMS` terms. Such big-integer arithmetic runs in C and no signal interrupts it,
so it must be refused before it starts. An answer over the limit is not evaluated: it matches only a
gold answer written the same way (the same unevaluated tree), else it scores 0.0.

Time. Everything else (simplifying a large rational function, expanding ``(x+y+z+1)^{40}``) is
pure Python and is stopped by timers (``setitimer``): at most :data:`MAX_CPU_SECONDS` of CPU time
for reading the gold answer and as much again for reading and comparing the prediction
(``ITIMER_PROF``), and :data:`MAX_WALL_SECONDS` of wall time for the whole check (``ITIMER_REAL``).
CPU time decides, so that a verdict does not depend on how loaded the machine is; the wall limit
only caps the latency on a loaded machine. Signals reach the main thread only, so the timers run
only there; the harness's reward workers call rewards on their main thread. Called from another
thread, only the size limit applies, and the harness's per-sample limit (``reward_timeout_s``,
which kills the worker) is the bound.
"""

from __future__ import annotations

import math
import re
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

#: largest exact number an answer may compute, in decimal digits (Python's own int-to-str limit)
MAX_DIGITS = getattr(sys.int_info, "default_max_str_digits", 4300) or 4300
#: most terms of a sum or product with numeric bounds
MAX_TERMS = 10_000
#: CPU seconds for reading the gold answer, and again for reading and comparing a prediction
MAX_CPU_SECONDS = 1.0
#: wall seconds for one whole check (gold and prediction), whatever the machine's load
MAX_WALL_SECONDS = 3.0

_LOG10_2 = math.log10(2)
_MAY_BE_LARGE = re.compile(r"[\^!]|\*\*|\\(?:[dt]?binom|choose|Gamma|exp|sum|prod|operatorname)")


class OverBudget(BaseException):
    """Raised by the timer; a BaseException so that math-verify's and sympy's ``except Exception`` let it through."""


_TIMERS = ((signal.ITIMER_PROF, signal.SIGPROF, time.process_time), (signal.ITIMER_REAL, signal.SIGALRM, time.monotonic))


def within_budget(cpu_seconds: float, deadline: float, fn: Callable[..., Any], *args: Any) -> tuple[bool, Any]:
    """``(True, fn(*args))``, or ``(False, None)`` once ``fn`` used ``cpu_seconds`` of CPU time or
    ``time.monotonic()`` passed ``deadline`` (main thread only; elsewhere ``fn`` runs unbounded).

    Interval timers that were already running are re-armed afterwards with what was left of them.
    """
    if threading.current_thread() is not threading.main_thread():
        return True, fn(*args)
    done = False

    def on_timer(signum, frame):
        nonlocal done
        if not done:  # one exception per call, and none once fn has returned
            done = True
            raise OverBudget

    limits = (cpu_seconds, max(deadline - time.monotonic(), 1e-3))
    outer = [(signal.getitimer(timer)[0], clock()) for timer, _, clock in _TIMERS]
    handlers = []
    try:
        for _, signum, _ in _TIMERS:
            handlers.append(signal.signal(signum, on_timer))
        for (timer, _, _), limit in zip(_TIMERS, limits):
            signal.setitimer(timer, limit)
        result = fn(*args)
        done = True
        return True, result
    except OverBudget:
        return False, None
    finally:
        done = True
        for (timer, _, clock), (left, started) in zip(_TIMERS, outer):
            signal.setitimer(timer, max(left - (clock() - started), 1e-3) if left else 0)
        for (_, signum, _), handler in zip(_TIMERS, handlers):
            signal.signal(signum, handler)


def may_be_large(latex: str) -> bool:
    """Whether ``latex`` has a construct that can build a large number (a power, factorial, binomial,
    gamma, exp, sum, product or named operator). Without one, an answer of at most 1000 characters
    holds numbers of at most 1000 digits, and the unevaluated parse (as slow as the real one) is skipped.
    """
    return _MAY_BE_LARGE.search(latex) is not None


def unevaluated(latex: str):
    """The sympy tree of ``latex`` as written (nothing computed), or None when it cannot be parsed."""
    import sympy
    from latex2sympy2_extended.latex2sympy2 import latex2sympy
    from math_verify import LatexExtractionConfig

    try:
        with sympy.evaluate(False):
            return latex2sympy(latex, normalization_config=LatexExtractionConfig().normalization_config)
    except Exception:
        return None


def _value_bound(digits: float) -> float:
    """An upper bound of ``|x|`` from an upper bound of ``log10 |x|``."""
    return math.inf if digits > 300 else 10.0 ** digits


def _combinatorial_digits(node, argument_digits: float) -> float:
    """log10 bound of factorial-like functions of an argument below ``10**argument_digits``."""
    from sympy import binomial

    n = _value_bound(argument_digits)
    if isinstance(node, binomial):
        return n * _LOG10_2  # binomial(n, k) <= 2**n
    return n * math.log10(n + 1)  # n! <= (n + 1)**n; gamma, subfactorial, fibonacci, ... are smaller


def _node_digits(node, children: list[float]) -> float:
    """Upper bound of log10 |value| of one node, from those of its arguments (symbols count as 1)."""
    import sympy
    from sympy.concrete.expr_with_limits import ExprWithLimits
    from sympy.functions.combinatorial.factorials import CombinatorialFunction
    from sympy.functions.combinatorial.numbers import fibonacci, lucas
    from sympy.functions.special.gamma_functions import gamma

    if isinstance(node, sympy.Rational):
        return math.log10(max(abs(node.p), abs(node.q), 1))  # math.log10 takes ints of any size
    if isinstance(node, sympy.Float):
        _, mantissa, exponent, bits = node._mpf_  # |value| < 2**(exponent + bits)
        return max(exponent + bits, 0) * _LOG10_2 if mantissa else 0.0
    if isinstance(node, sympy.Pow):
        return children[0] * _value_bound(children[1]) if children[0] else 0.0
    if isinstance(node, sympy.exp):
        return _value_bound(children[0]) / math.log(10)
    if isinstance(node, (CombinatorialFunction, gamma, fibonacci, lucas)):
        return _combinatorial_digits(node, max(children, default=0.0))
    if isinstance(node, ExprWithLimits):
        return _limits_digits(node, children)
    if isinstance(node, sympy.Mul):
        return sum(children)
    return max(children, default=0.0) + math.log10(max(len(children), 1))


def _limits_digits(node, children: list[float]) -> float:
    """Sums and products: inf past MAX_TERMS terms, else the terms' bound times (product) or plus (sum) the count."""
    import sympy

    terms = 1.0
    for limit in node.limits:
        if len(limit) == 3 and not (limit[1].free_symbols or limit[2].free_symbols):
            terms *= 1 + _value_bound(_tree_digits(limit[1])) + _value_bound(_tree_digits(limit[2]))
    if terms > MAX_TERMS:
        return math.inf
    if isinstance(node, sympy.Product):
        return terms * max(children, default=0.0)
    return math.log10(terms) + max(children, default=0.0)


def _tree_digits(tree) -> float:
    """The largest log10 bound over all nodes of ``tree`` (iterative: deep trees do not recurse)."""
    import sympy

    digits: dict[int, float] = {}
    largest = 0.0
    for node in sympy.postorder_traversal(tree):
        args = getattr(node, "args", ())
        children = [digits.get(id(arg), 0.0) for arg in args if isinstance(arg, sympy.Basic)]
        value = _node_digits(node, children)
        digits[id(node)] = value
        largest = max(largest, value)
    return largest


def too_large(tree) -> bool:
    """Whether evaluating ``tree`` would build a number over MAX_DIGITS digits or a sum over MAX_TERMS terms."""
    if tree is None:
        return False
    try:
        return not _tree_digits(tree) <= MAX_DIGITS  # inf and nan are too large
    except (ValueError, TypeError, OverflowError, AttributeError):
        return False
