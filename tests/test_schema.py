"""Config values are checked from one schema: fields carry their bounds (nclb.schema rules), and
the wording of every bound's message is written in nclb/schema.py alone."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from nclb.errors import UserError
from nclb.registry import entries
from nclb.schema import (
    PROBABILITY,
    Device,
    Flag,
    Integer,
    Number,
    OneOf,
    check_fields,
    from_mapping,
    from_words,
    setting,
)

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "nclb"
# How a bound's message says what a value must be; only nclb/schema.py may write these.
BOUND_PHRASES = re.compile(
    r"must be (true or false|auto, true or false|an integer|a finite number|a number|"
    r"a probability|in [\[(]|[<>]=?|one of|a token id|'[a-z])"
)


def test_bound_messages_are_written_in_one_module():
    writers = sorted(
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.name != "schema.py" and BOUND_PHRASES.search(path.read_text())
    )
    assert writers == []


@pytest.mark.parametrize(
    ("rule", "value", "message"),
    [
        (Flag(), 1, "x=1 must be true or false"),
        (Flag(), "yes", "x='yes' must be true or false"),
        (Flag(words=("auto",)), "maybe", "x='maybe' must be auto, true or false"),
        (Integer(min=1), True, "x=True must be an integer >= 1"),
        (Integer(min=1), 0, "x=0 must be an integer >= 1"),
        (Integer(min=0), 2.0, "x=2.0 must be an integer >= 0"),
        (Integer(min=1, nullable=True), -1, "x=-1 must be an integer >= 1 or null"),
        (Integer(min=1, words=("auto",)), "many", "x='many' must be an integer >= 1 or auto"),
        (Number(), float("inf"), "x=inf must be a finite number >= 0"),
        (Number(), False, "x=False must be a finite number >= 0"),
        (Number(meaning="nats"), -0.5, "x=-0.5 must be a finite number >= 0 (nats)"),
        (Number(open_min=True), 0, "x=0 must be a finite number > 0"),
        (Number(max=1, open_min=True), 0.0, "x=0.0 must be a number in (0, 1]"),
        (Number(max=1, open_min=True, open_max=True), 1, "x=1 must be a number in (0, 1)"),
        (PROBABILITY, 1.5, "x=1.5 must be a probability in [0, 1]"),
        (OneOf(options=("a", "b")), "c", "x='c' must be one of ['a', 'b']"),
        (OneOf(options=(1, 2)), True, "x=True must be one of [1, 2]"),
        (Device(), "gpu", "x='gpu' must be one of auto, cpu, cuda, cuda:N"),
        (Device(), "cuda:x", "x='cuda:x' must be one of auto, cpu, cuda, cuda:N"),
    ],
)
def test_each_rule_says_what_the_value_must_be(rule, value, message):
    with pytest.raises(UserError) as err:
        rule.check("x", value)
    assert str(err.value) == message


@pytest.mark.parametrize(
    ("rule", "value"),
    [
        (Flag(), False),
        (Flag(words=("auto",)), "auto"),
        (Integer(min=0), 0),
        (Integer(min=1, nullable=True), None),
        (Integer(min=1, words=("auto",)), "auto"),
        (Number(), 0),
        (Number(max=1, open_min=True), 1.0),
        (PROBABILITY, 0),
        (OneOf(options=("a", "b")), "b"),
        (Device(), "cuda:1"),
    ],
)
def test_a_value_within_the_bound_passes_unchanged(rule, value):
    assert rule.check("x", value) is value


@dataclasses.dataclass
class Options:
    """A section with bounded fields, as the configs' dataclasses declare them."""

    run: bool = setting(True, Flag())
    threads: int | str = setting(1, Integer(min=1, words=("auto",)))
    lam: float = setting(0.2, Number(), key="lam")
    name: str = "x"


def test_fields_are_named_by_prefix_or_their_own_key():
    with pytest.raises(UserError, match=r"^section\.run='no' must be true or false$"):
        check_fields(Options(run="no"), "section.")
    with pytest.raises(UserError, match=r"^lam=-1 must be a finite number >= 0$"):
        check_fields(Options(lam=-1), "section.")
    check_fields(Options(), "section.")


def test_a_section_with_an_unknown_key_lists_the_known_ones():
    with pytest.raises(UserError) as err:
        from_mapping(Options, {"runn": True}, "metrics.")
    assert str(err.value) == (
        "metrics.runn is not a metrics key; known: ['lam', 'name', 'run', 'threads']"
    )
    assert from_mapping(Options, {"threads": "auto"}, "metrics.").threads == "auto"


def test_command_line_words_are_read_by_their_rule():
    opts = from_words(Options, {"run": "FALSE", "threads": "3", "name": "007"}, "nclb x")
    assert (opts.run, opts.threads, opts.name) == (False, 3, "007")
    with pytest.raises(UserError, match=r"^run='maybe' must be true or false$"):
        from_words(Options, {"run": "maybe"}, "nclb x")
    with pytest.raises(UserError, match=r"^threads=0 must be an integer >= 1 or auto$"):
        from_words(Options, {"threads": "0"}, "nclb x")
    with pytest.raises(UserError, match="colour= is not an option of nclb x"):
        from_words(Options, {"colour": "never"}, "nclb x")


@pytest.mark.parametrize("name", sorted(entries("decoder")))
def test_every_shipped_decoder_bounds_each_parameter(name):
    """Each constructor parameter of a shipped decoder (its YAML keys) carries a rule, so a
    wrong type or range is caught by the schema; `name` is the decoder's label."""
    decoder = entries("decoder")[name]
    unbounded = [
        f.name
        for f in dataclasses.fields(decoder)
        if f.init and f.name != "name" and f.metadata.get("rule") is None
    ]
    assert unbounded == []


def test_the_schema_sits_at_the_bottom_of_the_layers():
    """nclb.schema imports no nclb module but nclb.errors, so models and the sampler can use it."""
    import ast

    tree = ast.parse((PACKAGE / "schema.py").read_text())
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert {name for name in imported if name and name.startswith("nclb")} == {"nclb.errors"}
