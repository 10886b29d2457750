"""How ``math_verify`` reads a predicted answer before math-verify parses it (issue 25).

Each reading is narrow on purpose: it applies only when the *whole* answer has the shape below,
so a hedge (two answers) or a near miss never turns into a match.

- Signs: U+2212 MINUS SIGN counts as ``-``.
- Plain numbers: thousands separated by commas *or* single spaces, in groups of three only
  (``1 000`` and ``1,000`` are 1000; ``1 0001``, ``10 00`` and ``1 000,000`` are not numbers);
  E-notation ``1e6`` / ``2.5E-2`` is ``1\\times 10^{6}`` (not ``1 * e * 6``).
- Numbers separated by spaces that are not such groups (``5 6``, ``1 0001``) are two answers.
- A number followed by one to three plain words is the number (``5 dollars``), as math-verify
  already reads ``5\\text{ dollars}``; not when a word changes the value: number words
  (``5 thousand``), fractions (``5 halves``), operators (``5 squared``), ``pi``, ``and``/``or``.
- A number word, bare or in ``\\text{}`` (``\\text{three}``, ``twenty-one``): zero to ninety-nine.
"""

from __future__ import annotations

import re

MINUS_SIGNS = "\u2212"
#: a run of digits with separators between digits and an optional exponent (checked by plain_number)
NUMBER_RUN = re.compile(r"[-+\u2212]?(?:\d|\.\d)(?:\d|[.,](?=\d)| (?=\d))*(?:[eE][-+\u2212]?\d+)?")
_PLAIN_NUMBER = re.compile(
    r"(?P<sign>[-+]?)(?P<mantissa>(?:\d{1,3}(?:,\d{3})+|\d{1,3}(?: \d{3})+|\d+)(?:\.\d+)?|\.\d+)"
    r"(?:[eE](?P<exponent>[-+]?\d+))?")
_SPACED_NUMBERS = re.compile(r"[-+]?[\d.]+(?: +[\d.]+)+")
_UNIT_TAIL = re.compile(r"(?:\\\$\s*)?(?P<number>[-+]?[\d.][\d., ]*)\s+"
                        r"(?P<words>[A-Za-z]{2,}(?: [A-Za-z]{2,}){0,2})\.?")
_WORD = r"[A-Za-z]+(?:-[A-Za-z]+)?"
_NUMBER_WORD = re.compile(rf"\\(?:text|textbf|textit|textrm|textnormal|mathrm|mbox)\s*\{{\s*({_WORD})\s*\}}|({_WORD})")

ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
        "sixteen seventeen eighteen nineteen").split()
TENS = {word: 10 * (i + 2) for i, word in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split())}
#: words after a number that change its value, so they are not read as a unit
NOT_UNITS = frozenset(ONES) | frozenset(TENS) | frozenset((
    "hundred hundreds thousand thousands million millions billion billions trillion trillions dozen dozens "
    "half halves third thirds quarter quarters fourth fourths fifth fifths sixth sixths seventh sevenths "
    "eighth eighths ninth ninths tenth tenths hundredth hundredths thousandth thousandths "
    "times plus minus over divided squared cubed power powers root roots factorial percent percentage pct "
    "pi inf infinity mod modulo and or to sqrt sin cos tan log ln exp").split())


def unicode_minus(text: str) -> str:
    """``text`` with every U+2212 MINUS SIGN written as ``-``."""
    for sign in MINUS_SIGNS:
        text = text.replace(sign, "-")
    return text


def plain_number(text: str) -> str | None:
    """The LaTeX of ``text`` when all of it is one plain number (see the module doc), else None.

    Separators are dropped (``1 000`` -> ``1000``); an exponent becomes ``\\times 10^{e}``.
    """
    match = _PLAIN_NUMBER.fullmatch(unicode_minus(text.strip()))
    if match is None:
        return None
    number = match["sign"] + re.sub("[, ]", "", match["mantissa"])
    if match["exponent"] is None:
        return number
    return f"{number}\\times 10^{{{int(match['exponent'])}}}"


def number_word(text: str) -> str | None:
    """The digits of a number word from zero to ninety-nine (all of ``text``), else None."""
    match = _NUMBER_WORD.fullmatch(text.strip())
    if match is None:
        return None
    word = (match[1] or match[2]).lower()
    if word in ONES:
        return str(ONES.index(word))
    tens, hyphen, ones = word.partition("-")
    if tens in TENS and (not hyphen or ones in ONES[1:10]):
        return str(TENS[tens] + (ONES.index(ones) if hyphen else 0))
    return None


def number_with_unit(text: str) -> str | None:
    """The number of ``5 dollars`` (a plain number, then one to three words that are not in NOT_UNITS)."""
    match = _UNIT_TAIL.fullmatch(unicode_minus(text.strip()))
    if match is None or any(word.lower() in NOT_UNITS for word in match["words"].split()):
        return None
    return plain_number(match["number"])


def read_boxed(boxed: str) -> str:
    """The boxed answer as math-verify should see it: one of the readings above, else ``boxed`` itself."""
    for reading in (plain_number, number_word, number_with_unit):
        found = reading(boxed)
        if found is not None:
            return found
    return unicode_minus(boxed)


def spaced_numbers(text: str) -> bool:
    """Whether ``text`` is numbers separated by spaces that are not thousands groups (``5 6``)."""
    return _SPACED_NUMBERS.fullmatch(text.strip()) is not None and plain_number(text) is None
