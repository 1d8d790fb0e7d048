"""Answer extraction from decoded text (math tasks).

Rules, tried in order (the first that yields an answer wins; `rule` says which):
- answer_block: the infilling answer block, which continues the delimiter `... \\boxed{`, read up
  to its first unmatched `}`;
- boxed: the last `\\boxed{...}` (or `\\fbox{...}`) in the text, nested braces allowed;
- answer_is: what follows the last "The answer is" (lm-eval's gsm8k-cot strict rule);
- hash: what follows the last "####" (lm-eval's gsm8k strict rule);
- last_number: the last number in the text (lm-eval's flexible-extract rule).
The first four are "strict"; last_number is the "flexible" fall-back.
"""

from __future__ import annotations

import re
from fractions import Fraction

STRICT_RULES = ("answer_block", "boxed", "answer_is", "hash")

_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{")
_ANSWER_IS = re.compile(r"the (?:final )?answer is\s*:?\s*(.*)", re.IGNORECASE)
_HASH = re.compile(r"####\s*(.*)")
_FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")  # lm-eval gsm8k flexible-extract
_NUMBER = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)")
_FRAC = re.compile(r"^(-?)\\[dt]?frac\{(-?[\d.]+)\}\{(-?[\d.]+)\}$")
_SLASH = re.compile(r"^(-?[\d.]+)/(-?[\d.]+)$")
_NOISE = ("\\$", "$", ",", "\\!", "\\%", "%", "\\,", "{,}", " ")


def read_braced(text: str) -> tuple[str, bool]:
    """(`text` up to its first unmatched `}`, stripped; whether that `}` was found)."""
    depth = 0
    for i, ch in enumerate(text):
        if ch == "{":
            depth += 1
        elif ch == "}":
            if depth == 0:
                return text[:i].strip(), True
            depth -= 1
    return text.strip(), False


def until_closing_brace(text: str) -> str:
    """`text` up to the `}` that closes the `\\boxed{` it continues (all of it if none)."""
    return read_braced(text)[0]


def boxed_contents(text: str) -> list[str]:
    """Contents of every complete `\\boxed{...}` / `\\fbox{...}` in `text`, in order."""
    out = []
    for m in _BOX.finditer(text):
        inner, closed = read_braced(text[m.end() :])
        if closed:
            out.append(inner)
    return out


def last_boxed(text: str) -> str | None:
    """Contents of the last complete `\\boxed{...}` in `text`, or None."""
    found = boxed_contents(text)
    return found[-1] if found else None


def after_last(pattern: re.Pattern[str], text: str) -> str | None:
    """The rest of the line after the last match of `pattern` (its group 1), or None."""
    found = pattern.findall(text)
    return found[-1].strip() if found else None


def parse_number(text: str | None) -> Fraction | None:
    """The first number in `text` as an exact Fraction.

    Drops `$`, `\\$`, `%`, commas and spaces, maps the unicode minus to `-`, reads `\\frac{a}{b}` and
    `a/b`, and ignores a trailing full stop ("18." -> 18). None when there is no number.
    """
    if text is None:
        return None
    s = text.replace("\u2212", "-")
    for noise in _NOISE:
        s = s.replace(noise, "")
    s = s.strip().rstrip(".")
    if boxed := last_boxed(s):
        s = boxed
    for pattern in (_FRAC, _SLASH):
        if m := pattern.match(s):
            sign, num, den = (
                (m.group(1), m.group(2), m.group(3)) if m.re is _FRAC else ("", *m.groups())
            )
            try:
                value = Fraction(num) / Fraction(den)
            except (ValueError, ZeroDivisionError):
                return None
            return -value if sign else value
    m = _NUMBER.search(s)
    if m is None:
        return None
    return Fraction(m.group().rstrip(".") or "0")


def last_number(text: str) -> Fraction | None:
    """The last number in `text` under lm-eval's flexible-extract regex (unparsable hits skipped)."""
    for groups in reversed(_FLEXIBLE.findall(text)):
        value = parse_number(groups[0] or groups[1])
        if value is not None:
            return value
    return None


def math_answer_text(region_text: str, answer_text: str | None) -> tuple[str | None, str | None]:
    """(answer string, rule) for symbolic answers: answer block, last boxed, "The answer is"."""
    if answer_text is not None and (block := until_closing_brace(answer_text)):
        return block, "answer_block"
    if (boxed := last_boxed(region_text)) is not None:
        return boxed, "boxed"
    if (said := after_last(_ANSWER_IS, region_text)) is not None:
        said = said.strip().rstrip(".").strip().strip("$").strip()
        return (said, "answer_is") if said else (None, None)
    return None, None


def numeric_answer(region_text: str, answer_text: str | None) -> tuple[Fraction | None, str | None]:
    """(number, rule) for GSM8k-style answers, trying the rules in the module docstring in order."""
    candidates = []
    if answer_text is not None:
        candidates.append(("answer_block", until_closing_brace(answer_text)))
    candidates += [
        ("boxed", last_boxed(region_text)),
        ("answer_is", after_last(_ANSWER_IS, region_text)),
        ("hash", after_last(_HASH, region_text)),
    ]
    for rule, text in candidates:
        value = parse_number(text)
        if value is not None:
            return value, rule
    value = last_number(region_text)
    return (value, "last_number") if value is not None else (None, None)
