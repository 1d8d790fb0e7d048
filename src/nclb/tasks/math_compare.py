"""Whether a MATH answer equals the gold answer. The rules are written out in docs/scoring.md.

In order: a multiple-choice answer `\\text{(C)}\\ 12` is its letter against a lettered gold, else
its value; two answers that both state a unit must state the same one (5.4 dollars is not
5.4 cents); then equal after `normalize`, or equivalent for math-verify with every decimal read
as the exact fraction it writes (0.25 = 1/4, but 3.14159265 is not pi and 0.3333333 is not 1/3).
"""

from __future__ import annotations

import re
import threading

_TEXT = re.compile(r"\\(?:text|textbf|mbox|mathrm)\{([^{}]*)\}")
_DROP = (
    "\\left",
    "\\right",
    "\\!",
    "\\,",
    "\\;",
    "\\:",
    "$",
    " ",
    "^\\circ",
    "^{\\circ}",
    "\\%",
    "%",
)
_CHOICE = re.compile(r"\s*(?:\\text(?:bf|rm)?\{\s*)?\(\s*([A-E])\s*\)\s*\}?")
_SPACING = re.compile(r"(?:\\[ ,;:!]|\\q?quad|~|\s)+")
# A unit after a number: the words of a `\text{...}` group, or words after a space; a `^2`
# after the unit (square units) is part of it.
_UNIT = re.compile(
    r"(?:\d|\})\s*(?:\\[ ,;:!]|~)*\s*"
    r"(?:\\(?:text|textrm|textnormal|mbox|mathrm)\{\s*([A-Za-z][A-Za-z .]*?)\s*\}"
    r"|\s([A-Za-z]{2,}(?:\s+[A-Za-z]+)*))"
    r"\s*(?:\^\s*\{?\s*\d\s*\}?)?\s*\.?\s*$"
)
_DOLLAR = re.compile(r"^\s*-?\s*\\\$")
# Words that say nothing about which unit: "units", "square units", "sq".
_GENERIC = {"unit", "units", "square", "sq", "cubic", "cu"}
# Spellings of one unit (after lower-casing and dropping a plural "s").
_ALIASES = {
    "$": "dollar",
    "usd": "dollar",
    "\u00a2": "cent",
    "centimeter": "cm",
    "centimetre": "cm",
    "millimeter": "mm",
    "millimetre": "mm",
    "kilometer": "km",
    "kilometre": "km",
    "meter": "m",
    "metre": "m",
    "inche": "inch",
    "in": "inch",
    "feet": "foot",
    "ft": "foot",
    "yd": "yard",
    "mi": "mile",
    "sec": "second",
    "min": "minute",
    "hr": "hour",
    "h": "hour",
    "gram": "g",
    "kilogram": "kg",
    "degree": "degree",
    "deg": "degree",
}


def normalize(answer: str) -> str:
    """A light canonical form for string comparison (spacing, \\left/\\right, \\dfrac, \\text,
    degree and percent signs)."""
    s = _TEXT.sub(r"\1", answer)
    for token in _DROP:
        s = s.replace(token, "")
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    return s.rstrip(".")


def split_choice(answer: str) -> tuple[str | None, str]:
    """(the letter of a leading multiple-choice label "(C)" / `\\text{(C)}`, the rest)."""
    m = _CHOICE.match(answer)
    if m is None:
        return None, answer
    return m[1], _SPACING.sub(" ", answer[m.end() :]).strip()


def _canonical_unit(words: str) -> str | None:
    kept = []
    for word in words.lower().replace(".", " ").split():
        if word in _GENERIC:
            continue
        if len(word) > 3 and word.endswith("s"):
            word = word[:-1]
        kept.append(_ALIASES.get(word, word))
    return " ".join(kept) or None


def unit_of(answer: str) -> str | None:
    """The unit `answer` states after its number (canonical spelling), or None."""
    if _DOLLAR.match(answer):
        return "dollar"
    s = _TEXT.sub(lambda m: m[1] if re.search(r"\d", m[1]) else m[0], answer)
    if (m := _UNIT.search(s)) is None:
        return None
    return _canonical_unit(m[1] or m[2])


def _exact_decimals(parsed: list) -> list:
    """math-verify's parse with every Float replaced by the exact fraction of its decimal."""
    from sympy import Float, Rational

    out = []
    for item in parsed:
        if not isinstance(item, str):
            try:
                item = item.replace(lambda e: isinstance(e, Float), lambda e: Rational(str(e)))
            except Exception:  # an object sympy cannot rewrite keeps its Floats
                pass
        out.append(item)
    return out


def _equivalent(prediction: str, gold: str) -> bool:
    """Equal after `normalize`, or equivalent for math-verify with decimals read exactly."""
    if normalize(prediction) == normalize(gold):
        return True
    from math_verify import parse, verify

    timeout = 5 if threading.current_thread() is threading.main_thread() else None
    try:
        gold_parsed = _exact_decimals(parse(f"\\boxed{{{gold}}}", parsing_timeout=timeout))
        pred_parsed = _exact_decimals(parse(f"\\boxed{{{prediction}}}", parsing_timeout=timeout))
        return bool(verify(gold_parsed, pred_parsed, timeout_seconds=timeout))
    except Exception:  # math-verify raises on odd LaTeX and timeouts; that counts as no match
        return False


def math_equal(prediction: str, gold: str) -> bool:
    """Whether `prediction` states the gold answer (see the module docstring)."""
    pred_letter, pred_rest = split_choice(prediction)
    gold_letter, gold_rest = split_choice(gold)
    if pred_letter and gold_letter:
        return pred_letter == gold_letter
    if pred_letter and pred_rest:
        prediction = pred_rest
    elif gold_letter and gold_rest:
        gold = gold_rest
    pred_unit, gold_unit = unit_of(prediction), unit_of(gold)
    if pred_unit and gold_unit and pred_unit != gold_unit:
        return False
    return _equivalent(prediction, gold)
