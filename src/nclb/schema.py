"""Config values checked from one schema: a dataclass field carries its bound (a Rule) as
metadata, and every rule writes its own one-line message here, `KEY=VALUE must be ...`.

    lam: float = setting(0.2, Number(meaning="an entropy in nats"), key="lam")

`check_fields(obj, prefix)` checks every such field of a dataclass instance, `from_mapping`
builds one from a config section (an unknown key is an error), and `from_words` from
command-line words (`run=false`), so hand-written argument parsers share the same messages.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from nclb.errors import UserError

T = TypeVar("T")
_INTEGER = re.compile(r"^[+-]?\d+$")


@dataclass(frozen=True)
class Rule:
    """What a value must be. `nullable`: None (YAML null) passes too; `meaning`: said after the
    bound, in brackets (e.g. "an entropy in nats")."""

    nullable: bool = False
    meaning: str = ""

    def accepts(self, value: Any) -> bool:
        """Whether `value` (not None) is within the bound."""
        raise NotImplementedError

    def wording(self) -> str:
        """What the value must be, as the message says it ("an integer >= 1")."""
        raise NotImplementedError

    def parse(self, text: str) -> Any:
        """A command-line word as the value this rule checks (unchanged when it reads as none)."""
        return text

    def message(self, key: str, value: Any) -> str:
        """The one-line message for `key=value` out of bounds."""
        null = " or null" if self.nullable else ""
        meaning = f" ({self.meaning})" if self.meaning else ""
        return f"{key}={value!r} must be {self.wording()}{null}{meaning}"

    def check(self, key: str, value: Any) -> Any:
        """`value` unchanged when it is within the bound, else a UserError naming `key`."""
        if value is None and self.nullable:
            return None
        if value is None or not self.accepts(value):
            raise UserError(self.message(key, value))
        return value


@dataclass(frozen=True)
class Flag(Rule):
    """true or false only (YAML's own words, not 1, 0 or "yes"); `words`: other values allowed
    besides (e.g. "auto")."""

    words: tuple[str, ...] = ()

    def accepts(self, value: Any) -> bool:
        return isinstance(value, bool) or (isinstance(value, str) and value in self.words)

    def wording(self) -> str:
        return ", ".join([*self.words, "true"]) + " or false"

    def parse(self, text: str) -> Any:
        return {"true": True, "false": False}.get(text.lower(), text)


@dataclass(frozen=True)
class Integer(Rule):
    """An int (not a bool) >= `min`; `words`: other values allowed besides (e.g. "auto")."""

    min: int = 1
    words: tuple[str, ...] = ()

    def accepts(self, value: Any) -> bool:
        if isinstance(value, str):
            return value in self.words
        return isinstance(value, int) and not isinstance(value, bool) and value >= self.min

    def wording(self) -> str:
        return " or ".join([f"an integer >= {self.min}", *self.words])

    def parse(self, text: str) -> Any:
        return int(text) if _INTEGER.match(text) else text


@dataclass(frozen=True)
class Number(Rule):
    """A finite int or float (not a bool) within [min, max] (`open_min`/`open_max`: the bound
    itself is out); without `max`, >= min (> min when open). `noun`: what it is called in a
    bounded range ("a probability")."""

    min: float = 0
    max: float | None = None
    open_min: bool = False
    open_max: bool = False
    noun: str = "a number"

    def accepts(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if not math.isfinite(value) or value < self.min or (self.open_min and value == self.min):
            return False
        return self.max is None or value < self.max or (value == self.max and not self.open_max)

    def wording(self) -> str:
        if self.max is None:
            return f"a finite number {'>' if self.open_min else '>='} {self.min:g}"
        left, right = "(" if self.open_min else "[", ")" if self.open_max else "]"
        return f"{self.noun} in {left}{self.min:g}, {self.max:g}{right}"

    def parse(self, text: str) -> Any:
        try:
            return int(text) if _INTEGER.match(text) else float(text)
        except ValueError:
            return text


@dataclass(frozen=True)
class OneOf(Rule):
    """One of a fixed list of values."""

    options: tuple[Any, ...] = ()

    def accepts(self, value: Any) -> bool:
        return any(value == option and type(value) is type(option) for option in self.options)

    def wording(self) -> str:
        return f"one of {list(self.options)}"


@dataclass(frozen=True)
class Device(Rule):
    """A torch device as the configs name it: auto, cpu, cuda or cuda:N."""

    def accepts(self, value: Any) -> bool:
        return isinstance(value, str) and re.fullmatch(r"auto|cpu|cuda(:\d+)?", value) is not None

    def wording(self) -> str:
        return "one of auto, cpu, cuda, cuda:N"


PROBABILITY = Number(max=1, noun="a probability")


def setting(default: Any = dataclasses.MISSING, rule: Rule | None = None, key: str = "") -> Any:
    """A dataclass field whose value `rule` bounds; `key` names it in messages when it is not
    the prefixed field name (a top-level shorthand such as `lam`)."""
    return dataclasses.field(default=default, metadata={"rule": rule, "key": key})


def field_rule(cls: Any, name: str) -> Rule | None:
    """The Rule a dataclass field carries (None when it has none)."""
    found = {f.name: f for f in dataclasses.fields(cls)}
    return found[name].metadata.get("rule") if name in found else None


def check_fields(obj: Any, prefix: str = "") -> None:
    """A UserError for the first field of dataclass instance `obj` outside its rule; keys are
    named `prefix + field name` unless the field names its own key."""
    for f in dataclasses.fields(obj):
        rule = f.metadata.get("rule")
        if rule is not None:
            rule.check(f.metadata.get("key") or f"{prefix}{f.name}", getattr(obj, f.name))


def from_mapping(
    cls: type[T], values: Mapping[str, Any] | None, prefix: str, ignore: tuple[str, ...] = ()
) -> T:
    """An instance of dataclass `cls` from a config section (keys `prefix + name`), its fields
    checked; a key that is no field (nor in `ignore`) is a UserError listing the known ones."""
    values = dict(values or {})
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - known - set(ignore))
    if unknown:
        section = prefix.rstrip(".")
        article = "an" if section[:1] in tuple("aeiou") else "a"
        raise UserError(
            f"{prefix}{unknown[0]} is not {article} {section} key; known: {sorted(known)}"
        )
    obj = cls(**{key: value for key, value in values.items() if key in known})
    check_fields(obj, prefix)
    return obj


def from_fields(cls: type[T], values: Mapping[str, Any], prefix: str = "") -> T:
    """An instance of dataclass `cls` from those keys of `values` that are its fields (the rest
    are other sections' business), its fields checked."""
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    obj = cls(**{key: value for key, value in values.items() if key in known})
    check_fields(obj, prefix)
    return obj


def from_words(cls: type[T], words: Mapping[str, str], command: str) -> T:
    """An instance of dataclass `cls` from `key=value` command-line words, each value read by
    its field's rule (run=false is False) and checked; an unknown key is a UserError."""
    known = [f.name for f in dataclasses.fields(cls) if f.init]
    values = {}
    for key, text in words.items():
        if key not in known:
            raise UserError(f"{key}= is not an option of {command}; use one of {known}")
        rule = field_rule(cls, key)
        values[key] = rule.parse(text) if rule is not None else text
    obj = cls(**values)
    check_fields(obj)
    return obj
