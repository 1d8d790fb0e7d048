"""Answer extraction from decoded text (math tasks). The rules are written out in docs/scoring.md.

Where the answer is read from (`rule` says which):
- answer_block: the infilling answer block, which continues the delimiter `... \\boxed{`, read up
  to its first unmatched `}`; when the template has one it is the answer, and an empty block is
  no answer under both verdicts;
- boxed: the last `\\boxed{...}` / `\\fbox{...}` in the text (nested braces allowed), or a brace-less
  `\\boxed 5`;
- answer_is: what follows the last "The answer is" (lm-eval's gsm8k-cot strict rule);
- hash: what follows the last "####" (lm-eval's gsm8k strict rule);
- last_number: the last number in the text (lm-eval's flexible-extract rule).

Two verdicts are kept for every output. The strict one reads only the answer block (when the
template has one) or else only the last `\\boxed`, with no fall-back: an empty or unreadable answer
there is wrong. The lenient one reads the answer block, else whichever of boxed / answer_is / hash
comes last in the text (the last stated answer wins), trying the earlier ones when it holds no
number, and finally last_number; an answer that names two values ends the search: it is wrong.
MATH (`math_answer_text`) reads the answer block, else the last box, else "The answer is".

How a number is read from the chosen text is nclb.tasks.numbers' job.
"""

from __future__ import annotations

import re
from fractions import Fraction

from nclb.tasks.numbers import Reading, drop_thousands, read_value

_BOX = re.compile(r"\\(?:boxed|fbox)(?:\s*\{|\s+(?=[^\s{]))")
_BARE_BOX_ARG = re.compile(r"[^\s$]+")
_ANSWER_IS = re.compile(r"the (?:final )?answer is\s*:?\s*(.*)", re.IGNORECASE)
_HASH = re.compile(r"####\s*(.*)")
_FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")  # lm-eval gsm8k flexible-extract
_SENTENCE_END = re.compile(r"\.\s")


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


def _boxes(text: str) -> list[tuple[int, str]]:
    """(start, contents) of every complete `\\boxed{...}` / `\\fbox{...}` / bare `\\boxed 5`."""
    out = []
    for m in _BOX.finditer(text):
        rest = text[m.end() :]
        if m.group().endswith("{"):
            inner, closed = read_braced(rest)
            if closed:
                out.append((m.start(), inner))
        elif arg := _BARE_BOX_ARG.match(rest):
            out.append((m.start(), arg.group().rstrip(".,")))
    return out


def boxed_contents(text: str) -> list[str]:
    """Contents of every complete `\\boxed{...}` / `\\fbox{...}` (and brace-less `\\boxed 5`)."""
    return [inner for _, inner in _boxes(text)]


def last_boxed(text: str) -> str | None:
    """Contents of the last complete `\\boxed{...}` in `text`, or None."""
    found = _boxes(text)
    return found[-1][1] if found else None


def _last_match(pattern: re.Pattern[str], text: str) -> tuple[int, str] | None:
    """(start, the rest of the line after it) of the last match of `pattern`, or None."""
    found = list(pattern.finditer(text))
    return (found[-1].start(), found[-1][1].strip()) if found else None


def after_last(pattern: re.Pattern[str], text: str) -> str | None:
    """The rest of the line after the last match of `pattern` (its group 1), or None."""
    found = _last_match(pattern, text)
    return None if found is None else found[1]


def first_sentence(text: str | None) -> str | None:
    """`text` up to its first full stop that ends a sentence (a `.` followed by a space)."""
    return None if text is None else _SENTENCE_END.split(text, maxsplit=1)[0]


def read_answer(text: str | None) -> Reading:
    """What answer text states as a number: an inner `\\boxed{}` is read first, then
    nclb.tasks.numbers.read_value (two values named: stated, but no value)."""
    if text is None:
        return Reading(None, False)
    if (boxed := last_boxed(text)) is not None:
        text = boxed
    return read_value(text)


def parse_number(text: str | None) -> Fraction | None:
    """The one number `text` states, as an exact Fraction (None when there is none, or two)."""
    return read_answer(text).value


def last_number(text: str) -> Fraction | None:
    """The last number in `text` under lm-eval's flexible-extract regex (unparsable hits skipped)."""
    cleaned = drop_thousands(text.replace("\u2212", "-"))
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

    A box wins over a later "The answer is": a MATH answer may be words, so "the answer is
    right" after a box could not be told from an answer. strict: the answer block alone when
    there is one, else the last `\\boxed` alone. The template's answer block is the answer:
    empty, it is no answer under both verdicts."""
    if answer_text is not None:
        block = until_closing_brace(answer_text)
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


def stated_answers(region_text: str) -> list[tuple[str, str]]:
    """(rule, text) of the last box, the last "The answer is" sentence and the last "####" line
    of `region_text`, the one stated last first."""
    found = []
    if boxes := _boxes(region_text):
        found.append((boxes[-1][0], "boxed", boxes[-1][1]))
    if said := _last_match(_ANSWER_IS, region_text):
        found.append((said[0], "answer_is", first_sentence(said[1]) or ""))
    if hashed := _last_match(_HASH, region_text):
        found.append((hashed[0], "hash", hashed[1]))
    return [(rule, text) for _, rule, text in sorted(found, reverse=True)]


def numeric_answer(
    region_text: str, answer_text: str | None, strict: bool = False
) -> tuple[Fraction | None, str | None]:
    """(number, rule) for GSM8k-style answers under the rules in the module docstring.

    strict: the answer block alone when there is one, else the last `\\boxed` alone. The rule
    is kept with a None number when the answer there names two values."""
    if answer_text is not None:
        block = until_closing_brace(answer_text)
        if not block:
            return None, None
        reading = read_answer(block)
        if reading.stated or strict:
            return reading.value, "answer_block" if reading.stated else None
    if strict:
        reading = read_answer(last_boxed(region_text))
        return reading.value, "boxed" if reading.stated else None
    for rule, text in stated_answers(region_text):
        if (reading := read_answer(text)).stated:
            return reading.value, rule
    value = last_number(region_text)
    return (value, "last_number") if value is not None else (None, None)
