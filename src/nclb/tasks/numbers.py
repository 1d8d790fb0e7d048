"""Reading the number an answer states, as an exact fraction (GSM8k). The rules are written out
in docs/scoring.md ("How a number is read").

An answer that names two different values ("18 or 20", `18 \\text{ or } 20`, "18, 20", "3 4")
states no single number: `read_value` reports it as stated but without a value, and the scorer
counts it wrong rather than reading on.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

from nclb.tasks.number_words import words_to_digits

# A thousands separator: between a digit and a group of exactly three digits.
_THOUSANDS = re.compile(r"(?<=\d)(?:\{,\}|\\,|\\ |\\thinspace |,|\u2009|\u202f|')(?=\d{3}(?!\d))")
# Plain-space thousands ("1 000 000"): a lead group of 1-3 digits, then groups of exactly three.
_SPACE_GROUPS = re.compile(r"(?<![\d.,])\d{1,3}(?: \d{3})+(?!\d|\s*/)")
_TEXT_WRAP = re.compile(r"\\(?:text|textbf|mbox|mathrm)\{([^{}]*)\}")
_NOISE = ("\\$", "$", "\\%", "%", "\\!", "\\left", "\\right")
_DIGIT = re.compile(r"\d")
_MAX_EXPONENT = 100
# What may stand between two numbers that are offered as alternatives or a list: only spaces,
# or up to three words (a unit) and then "or", "and", "to", a comma, ...
_LIST_GAP = re.compile(
    r"\s+|\s*(?:[A-Za-z]+\s+){0,3}\(?\s*(?:,|;|&|\bor\b|\band\b|\bto\b|\\pm|±)\s*"
    r"(?:either\s+)?\(?\s*"
)


@dataclass(frozen=True)
class Reading:
    """What a piece of answer text states: `value` (None unless it is exactly one number) and
    `stated` (whether it holds a number at all; True with no value when it names two)."""

    value: Fraction | None
    stated: bool


def drop_thousands(text: str) -> str:
    """`text` with thousands separators between digit groups removed (`1{,}000`, `1 000`)."""
    text = _THOUSANDS.sub("", text)
    return _SPACE_GROUPS.sub(lambda m: m.group().replace(" ", ""), text)


def clean_number_text(text: str) -> str:
    """`text` with thousands separators, currency, percent signs and `\\text{}` wrappers removed.

    Spaces are kept (except inside plain-space thousands), so separate numbers never run
    together."""
    s = text.replace("\u2212", "-").replace("\u2013", "-")
    s = _TEXT_WRAP.sub(r" \1 ", s)
    s = drop_thousands(s)
    for noise in _NOISE:
        s = s.replace(noise, " " if noise.startswith("\\") else "")
    return s


def _ratio(num: str, den: str, negative: bool = False) -> Fraction | None:
    try:
        value = Fraction(num) / Fraction(den)
    except (ValueError, ZeroDivisionError):
        return None
    return -value if negative else value


def _scaled(sign: str, mantissa: str | None, exponent: str) -> Fraction | None:
    if abs(int(exponent)) > _MAX_EXPONENT:
        return None
    value = Fraction(mantissa or 1) * Fraction(10) ** int(exponent)
    return -value if sign else value


def _mixed(m: re.Match[str]) -> Fraction | None:
    frac = _ratio(m[3], m[4])
    return None if frac is None else (-1 if m[1] else 1) * (int(m[2]) + frac)


_DECIMAL = r"(?:\d+(?:\.\d+)?|\.\d+)"
# Each form of a number, longest first: at the same start the first listed is read.
_FORMS: list[tuple[re.Pattern[str], Callable[[re.Match[str]], Fraction | None]]] = [
    (
        re.compile(
            rf"(-?)(?:({_DECIMAL})\s*(?:\\times|\\cdot|×|·|\*|x)\s*)?10\s*\^\s*"
            r"(?:\{\s*([+-]?\d+)\s*\}|([+-]?\d+))"
        ),
        lambda m: _scaled(m[1], m[2], m[3] or m[4]),
    ),
    (
        re.compile(rf"(-?)({_DECIMAL})[eE]([+-]?\d+)(?![A-Za-z\d])"),
        lambda m: _scaled(m[1], m[2], m[3]),
    ),
    (re.compile(r"(-?)(\d+)\s+(\d+)\s*/\s*(\d+)(?!\d|\.\d)"), _mixed),
    (re.compile(r"(-?)(\d+)\s*\\[dt]?frac\{(\d+)\}\{(\d+)\}"), _mixed),
    (
        re.compile(r"(-?)\s*\\[dt]?frac\{\s*(-?[\d.]+)\s*\}\{\s*(-?[\d.]+)\s*\}"),
        lambda m: _ratio(m[2], m[3], bool(m[1])),
    ),
    (re.compile(r"(-?[\d.]+)\s*/\s*(-?[\d.]+)"), lambda m: _ratio(m[1], m[2])),
    (re.compile(rf"-?{_DECIMAL}"), lambda m: Fraction(m.group())),
]


def _next_value(s: str, pos: int) -> tuple[int, int, Fraction] | None:
    """(start, end, value) of the first number of `s` at or after `pos`."""
    best: tuple[int, int, Fraction] | None = None
    for pattern, convert in _FORMS:
        for m in pattern.finditer(s, pos):
            if best is not None and m.start() >= best[0]:
                break
            if (value := convert(m)) is not None:
                best = (m.start(), m.end(), value)
                break
    return best


def _read_part(s: str) -> Reading:
    """The reading of `s` (cleaned): its first number, unless a second one follows it as an
    alternative or in a list."""
    first = _next_value(s, 0)
    if first is None:
        return Reading(None, False)
    second = _next_value(s, first[1])
    if second is not None and second[2] != first[2]:
        if _LIST_GAP.fullmatch(s[first[1] : second[0]]):
            return Reading(None, True)
    return Reading(first[2], True)


def read_value(text: str) -> Reading:
    """The number `text` states (see the module docstring and docs/scoring.md for the forms).

    Of an equation the part after the last `=` that holds a number is read; words are read as
    numbers ("twenty-five") only when `text` has no digits.
    """
    s = clean_number_text(text)
    if not _DIGIT.search(s):
        s = words_to_digits(s)
    if "=" in s:
        for part in reversed(s.split("=")[1:]):
            if (reading := _read_part(part)).stated:
                return reading
    return _read_part(s)
