"""Answer extraction: number normalisation, nested \\boxed{}, rule order, fall-backs."""

from fractions import Fraction

import pytest

from nclb.tasks.extract import (
    boxed_contents,
    last_boxed,
    math_answer_text,
    numeric_answer,
    parse_number,
    until_closing_brace,
)
from nclb.tasks.gsm8k import GSM8kTask, split_solution
from nclb.tasks.mathtask import math_equal
from nclb.tasks.number_words import words_to_digits
from nclb.tasks.numbers import Reading, read_value
from nclb.types import Example


@pytest.mark.parametrize(
    "text,value",
    [
        ("1,234", 1234),
        ("$1,450,000", 1450000),
        ("\\$18.", 18),
        ("-3", -3),
        ("\u22123", -3),
        ("-0.5", Fraction(-1, 2)),
        ("2.50", Fraction(5, 2)),
        (".75", Fraction(3, 4)),
        ("18 dollars", 18),
        ("\\frac{3}{4}", Fraction(3, 4)),
        ("-\\dfrac{1}{2}", Fraction(-1, 2)),
        ("7/2", Fraction(7, 2)),
        ("50%", 50),
        ("no number", None),
        (None, None),
        ("1 000", 1000),
        ("$1 000 000.50", Fraction(2000001, 2)),
        ("1e3", 1000),
        ("2.5e-1", Fraction(1, 4)),
        ("3 \\times 10^{2}", 300),
        ("10^3", 1000),
        ("twenty-one", 21),
        ("one hundred and five", 105),
        ("18 or 20", None),
        ("18, 20", None),
        ("x = 18 or 20", None),
        ("18 cm^2", 18),
    ],
)
def test_parse_number(text, value):
    assert parse_number(text) == value


@pytest.mark.parametrize(
    "text,digits",
    [
        ("twenty", "20"),
        ("twenty-five dollars", "25 dollars"),
        ("three thousand two hundred and one", "3201"),
        ("two million five hundred thousand", "2500000"),
        ("five and six", "5 and 6"),
        ("one two", "1 2"),
        ("sixty zero", "60 0"),
        ("none of them, often alone", "none of them, often alone"),
        ("a thousand", "a thousand"),
    ],
)
def test_number_words(text, digits):
    assert words_to_digits(text) == digits


def test_two_values_are_stated_but_have_no_value():
    assert read_value("18 or 20") == Reading(None, True)
    assert read_value("18 or 18.0") == Reading(Fraction(18), True)
    assert read_value("no number") == Reading(None, False)


def test_nested_boxed():
    text = "so \\boxed{\\frac{1}{2}} then \\boxed{a{b{c}}d} and an open \\boxed{7"
    assert boxed_contents(text) == ["\\frac{1}{2}", "a{b{c}}d"]
    assert last_boxed(text) == "a{b{c}}d"
    assert last_boxed("nothing here") is None
    assert until_closing_brace("\\frac{1}{2}} rest") == "\\frac{1}{2}"
    assert until_closing_brace(" 42 ") == "42"


@pytest.mark.parametrize(
    "region,answer,value,rule",
    [
        ("The answer is 5.", "1,000}.", 1000, "answer_block"),
        ("The answer is 5. x \\boxed{12} y", None, 12, "boxed"),
        ("x \\boxed{12} y The answer is 5", None, 5, "answer_is"),  # the last stated wins
        ("x \\boxed{12} y The answer is below.", None, 12, "boxed"),
        ("We get 3 then 4. The answer is $1,234.50.", None, Fraction(2469, 2), "answer_is"),
        ("The final answer is: -7", None, -7, "answer_is"),
        ("steps\n#### 72", None, 72, "hash"),
        ("10 - 2 = 8 apples.", None, 8, "last_number"),
        ("costs $3,000 in total.", None, 3000, "last_number"),
        ("no digits", None, None, None),
        ("reasoning 9", "}", None, None),  # an empty answer block is no answer
        ("reasoning 9", "x}", 9, "last_number"),  # a block with no number: fall back
    ],
)
def test_numeric_answer_rules(region, answer, value, rule):
    assert numeric_answer(region, answer) == (value, rule)


def test_math_answer_text():
    assert math_answer_text("r", "\\frac{\\pi}{2}}.") == ("\\frac{\\pi}{2}", "answer_block")
    assert math_answer_text("so \\boxed{(3, \\pi)} ok", None) == ("(3, \\pi)", "boxed")
    assert math_answer_text("The answer is $x^2$.", None) == ("x^2", "answer_is")
    assert math_answer_text("nothing", None) == (None, None)


@pytest.mark.parametrize(
    "pred,gold,same",
    [
        ("0.5", "\\frac{1}{2}", True),
        ("\\dfrac{\\sqrt{3}}{2}", "\\frac{\\sqrt3}{2}", True),
        ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})", True),
        ("1+x^2", "x^2+1", True),
        ("\\text{Evelyn}", "\\text{Evelyn}", True),
        ("3", "4", False),
    ],
)
def test_math_equal(pred, gold, same):
    assert math_equal(pred, gold) is same


def test_gsm8k_scoring_strict_and_flexible():
    ex = Example("t", "q", "1,000")
    flexible, strict = GSM8kTask(extract="flexible"), GSM8kTask(extract="strict")
    assert flexible.score(ex, "so we get 1000 apples", None).correct
    assert not strict.score(ex, "so we get 1000 apples", None).correct
    assert strict.score(ex, "blah", "1000}").correct
    assert not flexible.score(ex, "blah", "999}").correct
    assert split_solution("a <<2*3=6>>6 b\n#### 6") == ("a 6 b", "6")
