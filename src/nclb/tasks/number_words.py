"""English cardinal number words as digits: "twenty-five" -> "25", "one hundred and five" -> "105".

Only whole cardinals are read (zero to the billions); "one two" is two numbers, "five and six"
too ("and" joins only after "hundred", "thousand", ...). Ordinals, fractions and "a dozen" are
left as words.
"""

from __future__ import annotations

import re

_UNITS = {
    word: value
    for value, word in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
        "fifteen sixteen seventeen eighteen nineteen".split()
    )
}
_TENS = {
    word: 10 * (i + 2)
    for i, word in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split())
}
_SCALES = {"thousand": 10**3, "million": 10**6, "billion": 10**9}
_WORD = "|".join([*_UNITS, *_TENS, "hundred", *_SCALES])
_RUN = re.compile(rf"\b(?:{_WORD})(?:(?:[\s-]+|\s+and\s+)(?:{_WORD}))*\b", re.IGNORECASE)
_TOKEN = re.compile(r"[a-z]+")


class _Cardinal:
    """One cardinal being read word by word; `take` says whether a word continues it."""

    def __init__(self) -> None:
        self.total, self.current, self.scale, self.last = 0, 0, 0, ""

    def value(self) -> int:
        """The number read so far."""
        return self.total + self.current

    def take(self, word: str, after_and: bool) -> bool:
        """Add `word` if it continues this number (False, unchanged, if it starts another)."""
        if self.last == "zero" or (after_and and self.last not in ("hundred", "scale")):
            return False
        if word in _UNITS:
            unit = _UNITS[word]
            if self.last == "unit" or (self.last == "tens" and unit == 0):
                return False
            if self.last == "tens" and unit >= 10:
                return False
            if unit == 0 and self.last:
                return False
            self.current += unit
            self.last = "zero" if unit == 0 else "unit"
        elif word in _TENS:
            if self.last in ("unit", "tens"):
                return False
            self.current += _TENS[word]
            self.last = "tens"
        elif word == "hundred":
            if self.last not in ("unit", "tens") or self.current >= 100:
                return False
            self.current *= 100
            self.last = "hundred"
        else:
            scale = _SCALES[word]
            if self.last in ("", "scale") or (self.scale and scale >= self.scale):
                return False
            self.total, self.current, self.scale = self.total + self.current * scale, 0, scale
            self.last = "scale"
        return True


def _read_run(run: str) -> str:
    """The digits of one run of number words: "twenty one" -> "21", "five and six" -> "5 and 6"."""
    out, cardinal, after_and = "", _Cardinal(), False
    for word in _TOKEN.findall(run.lower()):
        if word == "and":
            after_and = True
            continue
        if not cardinal.take(word, after_and):
            if cardinal.last:
                out += f"{cardinal.value()}{' and ' if after_and else ' '}"
            cardinal = _Cardinal()
            if not cardinal.take(word, False):  # "hundred" or a scale cannot start a number
                out += f"{word} "
        after_and = False
    if cardinal.last:
        out += str(cardinal.value())
    return out.strip()


def words_to_digits(text: str) -> str:
    """`text` with every run of English cardinal number words replaced by its digits."""
    return _RUN.sub(lambda m: _read_run(m.group()), text)
