"""Answer extraction from decoded text (math tasks). The rules are written out in docs/scoring.md.

Where the answer is read from, in order (the first that yields an answer wins; `rule` says which):
- answer_block: the infilling answer block, which continues the delimiter `... \\boxed{`, read up
  to its first unmatched `}`;
- boxed: the last `\\boxed{...}` / `\\fbox{...}` in the text (nested braces allowed), or a brace-less
  `\\boxed 5`;
- answer_is: what follows the last "The answer is" (lm-eval's gsm8k-cot strict rule);
- hash: what follows the last "####" (lm-eval's gsm8k strict rule);
- last_number: the last number in the text (lm-eval's flexible-extract rule).

Two verdicts are kept for every output. The strict one reads only the answer block (when the
template has one) or else only the last `\\boxed`, with no fall-back: an empty or unreadable answer
there is wrong. The lenient one tries every rule above in order.

How a number is read from the chosen text (`parse_number`): LaTeX and unicode thousands separators
between digit groups are dropped (`1{,}000`, `1\\,000`, `1,000`, `1 000` with a thin space), spaces
are never deleted (so "18. 5 of them" reads 18, not 18.5); of an equation (`2 \\times 9 = 18`) the
part after the last `=` is read; `$`, `\\$`, `%`, `\\%` and `\\text{...}` units are ignored; a mixed
number "2 1/2" reads 5/2; `\\frac{a}{b}`, `a/b` and decimals are read exactly.
"""

from __future__ import annotations

import re
from fractions import Fraction

_BOX = re.compile(r"\\(?:boxed|fbox)(?:\s*\{|\s+(?=[^\s{]))")
_BARE_BOX_ARG = re.compile(r"[^\s$]+")
_ANSWER_IS = re.compile(r"the (?:final )?answer is\s*:?\s*(.*)", re.IGNORECASE)
_HASH = re.compile(r"####\s*(.*)")
_FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")  # lm-eval gsm8k flexible-extract
# A thousands separator: between a digit and a group of exactly three digits.
_THOUSANDS = re.compile(r"(?<=\d)(?:\{,\}|\\,|\\ |\\thinspace |,|\u2009|\u202f|')(?=\d{3}(?!\d))")
_TEXT_WRAP = re.compile(r"\\(?:text|textbf|mbox|mathrm)\{([^{}]*)\}")
_NOISE = ("\\$", "$", "\\%", "%", "\\!", "\\left", "\\right")
_MIXED = re.compile(r"(-?)(\d+)\s+(\d+)\s*/\s*(\d+)(?!\d|\.\d)")
_MIXED_FRAC = re.compile(r"(-?)(\d+)\s*\\[dt]?frac\{(\d+)\}\{(\d+)\}")
_FRAC = re.compile(r"(-?)\s*\\[dt]?frac\{\s*(-?[\d.]+)\s*\}\{\s*(-?[\d.]+)\s*\}")
_SLASH = re.compile(r"(-?[\d.]+)\s*/\s*(-?[\d.]+)")
_SENTENCE_END = re.compile(r"\.\s")
_NUMBER = re.compile(r"-?(?:\d+(?:\.\d+)?|\.\d+)")


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
    """Contents of every complete `\\boxed{...}` / `\\fbox{...}` (and brace-less `\\boxed 5`)."""
    out = []
    for m in _BOX.finditer(text):
        rest = text[m.end() :]
        if m.group().endswith("{"):
            inner, closed = read_braced(rest)
            if closed:
                out.append(inner)
        elif arg := _BARE_BOX_ARG.match(rest):
            out.append(arg.group().rstrip(".,"))
    return out


def last_boxed(text: str) -> str | None:
    """Contents of the last complete `\\boxed{...}` in `text`, or None."""
    found = boxed_contents(text)
    return found[-1] if found else None


def after_last(pattern: re.Pattern[str], text: str) -> str | None:
    """The rest of the line after the last match of `pattern` (its group 1), or None."""
    found = pattern.findall(text)
    return found[-1].strip() if found else None


def first_sentence(text: str | None) -> str | None:
    """`text` up to its first full stop that ends a sentence (a `.` followed by a space)."""
    return None if text is None else _SENTENCE_END.split(text, maxsplit=1)[0]


def clean_number_text(text: str) -> str:
    """`text` with thousands separators, currency, percent signs and `\\text{}` wrappers removed.

    Spaces are kept, so separate numbers never run together."""
    s = text.replace("\u2212", "-").replace("\u2013", "-")
    s = _TEXT_WRAP.sub(r" \1 ", s)
    s = _THOUSANDS.sub("", s)
    for noise in _NOISE:
        s = s.replace(noise, " " if noise.startswith("\\") else "")
    return s


def _fraction(num: str, den: str, negative: bool) -> Fraction | None:
    try:
        value = Fraction(num) / Fraction(den)
    except (ValueError, ZeroDivisionError):
        return None
    return -value if negative else value


def _first_value(s: str) -> Fraction | None:
    """The first number of `s` (already cleaned): mixed number, fraction, a/b or decimal."""
    candidates = []
    if m := _MIXED.search(s):
        if (frac := _fraction(m[3], m[4], False)) is not None:
            candidates.append((m.start(), (-1 if m[1] else 1) * (int(m[2]) + frac)))
    if m := _MIXED_FRAC.search(s):
        if (frac := _fraction(m[3], m[4], False)) is not None:
            candidates.append((m.start(), (-1 if m[1] else 1) * (int(m[2]) + frac)))
    if m := _FRAC.search(s):
        if (value := _fraction(m[2], m[3], bool(m[1]))) is not None:
            candidates.append((m.start(), value))
    if m := _SLASH.search(s):
        if (value := _fraction(m[1], m[2], False)) is not None:
            candidates.append((m.start(), value))
    if m := _NUMBER.search(s):
        candidates.append((m.start(), Fraction(m.group())))
    if not candidates:
        return None
    # The earliest match wins; at the same start the longest form (listed first) is kept.
    first = min(start for start, _ in candidates)
    return next(value for start, value in candidates if start == first)


def parse_number(text: str | None) -> Fraction | None:
    """The number `text` states, as an exact Fraction (None when there is none).

    An inner `\\boxed{}` is read first; of an equation the part after the last `=` that holds a
    number is read; then the first number (see the module docstring for the forms).
    """
    if text is None:
        return None
    if (boxed := last_boxed(text)) is not None:
        text = boxed
    s = clean_number_text(text)
    if "=" in s:
        for part in reversed(s.split("=")[1:]):
            if (value := _first_value(part)) is not None:
                return value
    return _first_value(s)


def last_number(text: str) -> Fraction | None:
    """The last number in `text` under lm-eval's flexible-extract regex (unparsable hits skipped)."""
    cleaned = _THOUSANDS.sub("", text.replace("\u2212", "-"))
    for groups in reversed(_FLEXIBLE.findall(cleaned)):
        value = parse_number(groups[0] or groups[1])
        if value is not None:
            return value
    return None


def truncate_at_stop(text: str, stop: tuple[str, ...] | list[str]) -> str:
    """`text` cut at the first occurrence of any stop sequence (all of it when none occurs)."""
    cut = min((i for s in stop if s and (i := text.find(s)) >= 0), default=len(text))
    return text[:cut]


def math_answer_text(
    region_text: str, answer_text: str | None, strict: bool = False
) -> tuple[str | None, str | None]:
    """(answer string, rule) for symbolic answers: answer block, last boxed, "The answer is".

    strict: the answer block alone when there is one, else the last `\\boxed` alone."""
    if answer_text is not None:
        block = until_closing_brace(answer_text)
        if block or strict:
            return (block, "answer_block") if block else (None, None)
    if (boxed := last_boxed(region_text)) is not None:
        if boxed or strict:
            return (boxed, "boxed") if boxed else (None, None)
    if strict:
        return None, None
    if (said := after_last(_ANSWER_IS, region_text)) is not None:
        said = said.strip().rstrip(".").strip().strip("$").strip()
        return (said, "answer_is") if said else (None, None)
    return None, None


def numeric_answer(
    region_text: str, answer_text: str | None, strict: bool = False
) -> tuple[Fraction | None, str | None]:
    """(number, rule) for GSM8k-style answers, trying the rules in the module docstring in order.

    strict: the answer block alone when there is one, else the last `\\boxed` alone."""
    if strict:
        if answer_text is not None:
            text, rule = until_closing_brace(answer_text), "answer_block"
        else:
            text, rule = last_boxed(region_text), "boxed"
        value = parse_number(text)
        return (value, rule) if value is not None else (None, None)
    candidates = []
    if answer_text is not None:
        candidates.append(("answer_block", until_closing_brace(answer_text)))
    candidates += [
        ("boxed", last_boxed(region_text)),
        ("answer_is", first_sentence(after_last(_ANSWER_IS, region_text))),
        ("hash", after_last(_HASH, region_text)),
    ]
    for rule, text in candidates:
        value = parse_number(text)
        if value is not None:
            return value, rule
    value = last_number(region_text)
    return (value, "last_number") if value is not None else (None, None)
