"""Adversarial model outputs with the verdict a person gives them (GSM8k, MATH, arith).

Each case is (output, gold, person's verdict). GSM8k outputs are scored with the plain template
(the whole output is the text; stop sequences apply) under the lenient verdict, which is what a
reader of the full output judges; the strict verdict is tested separately below.
"""

from __future__ import annotations

import pytest

from nclb.tasks.arith import ArithTask
from nclb.tasks.gsm8k import GSM8kTask
from nclb.tasks.mathtask import MathTask
from nclb.tasks.sudoku4 import SudokuTask
from nclb.types import Example

GSM8K_CASES = [
    # LaTeX and unicode thousands separators (131 of 1319 golds are >= 1000)
    ("The total is \\boxed{\\$1{,}000}.", "1000", True),
    ("The total is \\boxed{1\\,000}.", "1000", True),
    ("So she pays \\boxed{\\$12{,}500}.", "12500", True),
    ("The answer is 1,000.", "1000", True),
    ("The answer is $1,450,000.", "1450000", True),
    ("The answer is 1\u2009000.", "1000", True),
    ("The answer is 1{,}000 dollars.", "1000", True),
    ("\\boxed{1{,}000}", "100", False),
    # spaces never glue separate numbers
    ("The answer is 18. 5 of them are red.", "18", True),
    ("The answer is 18. 5 of them are red.", "18.5", False),
    ("He walks 2 1/2 miles. The answer is 2 1/2.", "2.5", True),
    ("He walks 2 1/2 miles. The answer is 2 1/2.", "21", False),
    ("The answer is 3 4", "34", False),
    # equations: the result, not the first operand
    ("So \\boxed{2 \\times 9 = 18}", "18", True),
    ("So \\boxed{2 \\times 9 = 18}", "2", False),
    ("Left: \\boxed{20 - 4 = 16}", "16", True),
    ("Left: \\boxed{20 - 4 = 16}", "20", False),
    ("The answer is 12 + 6 = 18", "18", True),
    ("The answer is 12 + 6 = 18", "12", False),
    ("#### 3 * 4 = 12", "12", True),
    # forms nclb already read right (kept as regressions)
    ("The answer is 18.00", "18", True),
    ("The answer is \u221218.", "-18", True),
    ("The answer is 36/2.", "18", True),
    ("The answer is $18.", "18", True),
    ("The answer is \\$18.", "18", True),
    ("The final answer is: 42", "42", True),
    ("The answer is 50%.", "50", True),
    ("The answer is 0.5", "0.5", True),
    ("The answer is .5", "0.5", True),
    ("The answer is \\frac{1}{2}", "0.5", True),
    ("The answer is 18 apples.", "18", True),
    ("\\boxed{\\text{18 apples}}", "18", True),
    ("She has 5 apples and eats 2. 5 - 2 = 3", "3", True),
    ("She has 5 apples and eats 2. 5 - 2 = 3", "5", False),
    ("no number at all", "0", False),
    ("The answer is 17.", "18", False),
    ("\\boxed{-7}", "-7", True),
    ("\\boxed 5 is what we get", "5", True),
    # the last \boxed counts, nested braces allowed
    ("First \\boxed{10}, on reflection \\boxed{12}.", "12", True),
    ("First \\boxed{10}, on reflection \\boxed{12}.", "10", False),
    ("\\boxed{\\dfrac{36}{2}}", "18", True),
    # the plain template stops at an invented next question (lm-eval's `until`)
    (
        "6 + 12 = 18. The answer is 18.\n\nQuestion: Tom has 4 cats.\nAnswer: The answer is 4.",
        "18",
        True,
    ),
    (
        "6 + 12 = 18. The answer is 18.\n\nQuestion: Tom has 4 cats.\nAnswer: The answer is 4.",
        "4",
        False,
    ),
    ("She needs 3 more.\nQuestion: How many? The answer is 7.", "7", False),
    # an answer that names two values is wrong, whichever of them is the gold
    ("\\boxed{18 \\text{ or } 20}", "18", False),
    ("\\boxed{18 \\text{ or } 20}", "20", False),
    ("The answer is 18 or 20", "18", False),
    ("The answer is 18 or 20.", "20", False),
    ("The answer is either 18 or 20.", "18", False),
    ("The answer is 18 (or 20).", "18", False),
    ("The answer is 18 apples or 20 apples.", "18", False),
    ("The answer is 18, 20.", "18", False),
    ("\\boxed{18 \\text{ and } 20}", "18", False),
    ("The answer is 3 4", "3", False),
    # ... but a second number that explains the first is no second answer
    ("The answer is 18, which is 6 more than 12.", "18", True),
    ("The answer is 18 (6 + 12).", "18", True),
    ("The answer is 18 or 18.0.", "18", True),
    # plain-space thousands
    ("The answer is 1 000.", "1000", True),
    ("The answer is 1 000.", "1", False),
    ("\\boxed{\\$2 500 000}", "2500000", True),
    # scientific notation
    ("The answer is 1e3.", "1000", True),
    ("The answer is 1e3.", "1", False),
    ("The answer is 2.5E+2 dollars.", "250", True),
    ("\\boxed{1.5 \\times 10^{3}}", "1500", True),
    # number words
    ("The answer is twenty.", "20", True),
    ("The answer is twenty.", "2", False),
    ("The answer is twenty-five dollars.", "25", True),
    ("\\boxed{\\text{one hundred and five}}", "105", True),
    ("The answer is twenty or thirty.", "20", False),
    # the last stated answer wins over an earlier box
    ("So \\boxed{18}. Checking again: 6 + 14 = 20. The answer is 20.", "20", True),
    ("So \\boxed{18}. Checking again: 6 + 14 = 20. The answer is 20.", "18", False),
    ("The answer is 20. On reflection, \\boxed{18}.", "18", True),
    ("So \\boxed{18}. I hope the answer is right.", "18", True),
]

MATH_CASES = [
    ("10\\%", "10", True),
    ("10", "10\\%", True),
    ("25\\%", "10", False),
    ("\\frac{1}{2}", "0.5", True),
    ("\\dfrac{\\sqrt{3}}{2}", "\\frac{\\sqrt3}{2}", True),
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})", True),
    ("1+x^2", "x^2+1", True),
    ("\\text{Evelyn}", "\\text{Evelyn}", True),
    ("3", "4", False),
    ("90^\\circ", "90", True),
    ("2\\sqrt{2}", "\\sqrt{8}", True),
    ("x=5", "5", True),
    ("\\$32", "32", True),
    ("0.25", "\\frac14", True),
    ("-\\frac{1}{3}", "\\frac{-1}{3}", True),
    ("\\frac{1}{3}", "-\\frac{1}{3}", False),
    ("[1,4)", "[1,4)", True),
    ("[1,4]", "[1,4)", False),
    ("\\{1, 2\\}", "\\{2,1\\}", True),
    ("6", "6.0", True),
    ("\\pi", "\\pi", True),
    ("2\\pi", "\\pi", False),
    ("x^2+2x+1", "(x+1)^2", True),
    ("\\infty", "\\infty", True),
    ("1,000", "1000", True),
    ("5", "5\\text{ cm}", True),
    ("\\text{(C)}", "\\text{(C)}", True),
    ("\\text{(B)}", "\\text{(C)}", False),
    ("\\sqrt{2}/2", "\\frac{\\sqrt{2}}{2}", True),
    ("12", "012", True),
    # units are not equal across dollars and cents; the same unit in other words is
    ("5.4 \\text{ dollars}", "5.4 \\text{ cents}", False),
    ("\\$5.40", "5.4 \\text{ cents}", False),
    ("5.4 \\text{ cents}", "5.4 \\text{ cents}", True),
    ("5.4", "5.4 \\text{ cents}", True),
    ("864 \\text{ square inches}", "864 \\mbox{ inches}^2", True),
    ("864 \\text{ feet}^2", "864 \\mbox{ inches}^2", False),
    # a decimal approximation is not the exact value; an exact decimal is
    ("3.14159265", "\\pi", False),
    ("0.3333333", "\\frac{1}{3}", False),
    ("1.4142136", "\\sqrt{2}", False),
    ("0.125", "\\frac18", True),
    ("1.5\\sqrt{2}", "\\frac{3\\sqrt{2}}{2}", True),
    # a multiple-choice answer given with its value
    ("\\text{(C)}\\ 12", "\\text{(C)}", True),
    ("\\text{(B)}\\ 12", "\\text{(C)}", False),
    ("(C) 12", "12", True),
    ("(C) 13", "12", False),
]

MATH_OUTPUTS = [
    # (region text, answer block or None, gold, verdict); the lenient verdict of the whole output
    ("so the answer is \\boxed 5.", None, "5", True),
    ("so the answer is \\boxed 5.", None, "6", False),
    ("we get \\boxed{10\\%}", None, "10", True),
    ("r \\boxed{\\frac{\\pi}{2}}", None, "\\frac{\\pi}{2}", True),
    ("r", "\\frac{\\pi}{2}}.", "\\frac{\\pi}{2}", True),
]


def gsm8k(text: str, gold: str, template: str = "plain") -> tuple[bool, bool]:
    """(correct, strict_correct) of `text` scored by GSM8k with the plain template, lenient."""
    task = GSM8kTask(template=template, extract="lenient")
    score = task.score(Example("t", "q", gold), text, None)
    return score.correct, score.detail["strict_correct"]


@pytest.mark.parametrize("text,gold,verdict", GSM8K_CASES)
def test_gsm8k_person_verdicts(text, gold, verdict):
    assert gsm8k(text, gold)[0] is verdict


def test_gsm8k_cases_are_many():
    assert len(GSM8K_CASES) >= 40 and len(MATH_CASES) + len(MATH_OUTPUTS) >= 30


@pytest.mark.parametrize("pred,gold,verdict", MATH_CASES)
def test_math_person_verdicts(pred, gold, verdict):
    task = MathTask(extract="lenient")
    assert task.score(Example("m", "q", gold), "r", f"{pred}}}.").correct is verdict


@pytest.mark.parametrize("region,answer,gold,verdict", MATH_OUTPUTS)
def test_math_output_verdicts(region, answer, gold, verdict):
    task = MathTask(extract="lenient")
    assert task.score(Example("m", "q", gold), region, answer).correct is verdict


def test_strict_reads_only_the_answer_block_or_last_boxed():
    ex = Example("t", "q", "18")
    infilling = GSM8kTask()  # extract=auto: strict for the infilling template
    # empty answer block: no answer under both verdicts, whatever the reasoning's last number
    score = infilling.score(ex, "6 + 12 = 18. The answer is \\boxed{}.", "}.")
    assert not score.correct and not score.detail["lenient_correct"]
    assert score.detail["verdict"] == "strict" and score.prediction == ""
    score = infilling.score(ex, "6 + 12 = 18. ", "18}.")
    assert score.correct and score.detail["lenient_correct"]
    # a wrong answer block is wrong, whatever the reasoning says
    assert not infilling.score(ex, "The answer is 18.", "17}.").correct
    plain = GSM8kTask(template="plain")  # extract=auto: lenient for plain, strict kept beside
    score = plain.score(ex, "12 + 6 = 18. \\boxed{}", None)
    assert score.correct and not score.detail["strict_correct"]
    assert plain.score(ex, "x \\boxed{18} y", None).detail["strict_correct"]
    assert gsm8k("The answer is 18.", "18") == (True, False)


@pytest.mark.parametrize("extract", ["auto", "strict", "lenient", "flexible"])
def test_gsm8k_empty_answer_block_is_wrong_under_every_verdict(extract):
    task = GSM8kTask(extract=extract)  # the infilling template
    score = task.score(Example("t", "q", "18"), "6 + 12 = 18. \\boxed{18} The answer is 18.", "}.")
    assert (score.correct, score.detail["strict_correct"], score.detail["lenient_correct"]) == (
        False,
        False,
        False,
    )


@pytest.mark.parametrize("extract", ["auto", "strict", "lenient"])
def test_math_empty_answer_block_is_wrong_under_every_verdict(extract):
    task = MathTask(extract=extract)
    score = task.score(Example("m", "q", "5"), "so \\boxed{5}. The answer is 5.", "}")
    assert not (score.correct or score.detail["strict_correct"] or score.detail["lenient_correct"])


@pytest.mark.parametrize(
    "template,region,block",
    [
        ("infilling", "r", "18 \\text{ or } 20}."),
        ("plain", "So \\boxed{18 \\text{ or } 20}.", None),
    ],
)
def test_gsm8k_two_values_are_wrong_under_both_verdicts(template, region, block):
    task = GSM8kTask(template=template, extract="strict")
    score = task.score(Example("t", "q", "18"), region, block)
    assert not (score.correct or score.detail["strict_correct"] or score.detail["lenient_correct"])
    assert score.prediction == ""


def test_math_strict_and_lenient():
    ex = Example("m", "q", "5")
    task = MathTask()
    score = task.score(ex, "The answer is 5.", "}")  # an empty answer block is no answer
    assert not score.correct and not score.detail["lenient_correct"]
    assert MathTask(template="plain").score(ex, "The answer is 5.", None).correct
    assert not MathTask(template="plain", extract="strict").score(ex, "answer is 5", None).correct


def test_stop_sequences_are_read_from_the_config():
    task = GSM8kTask.from_config({"template": "plain", "stop": ["Q:"]})
    ex = Example("t", "q", "4")
    assert task.score(ex, "The answer is 4.\nQ: next", None).correct
    assert not task.score(ex, "The answer is 3.\nQ: The answer is 4.", None).correct
    never = GSM8kTask.from_config({"template": "plain", "stop": []})
    assert never.score(ex, "The answer is 3.\nQuestion: The answer is 4.", None).correct


@pytest.mark.parametrize(
    "answer,strict,lenient",
    [
        ("98", True, True),
        ("98.9", False, False),
        ("98 1", False, False),
        ("", False, True),
        (" 98 ", True, True),
        ("97", False, False),
    ],
)
def test_arith_answer_block(answer, strict, lenient):
    task = ArithTask()
    ex = task.make_example(50, [("+", 48)], "a")  # 50+48 = 98
    region = f"{task.trace(50, [('+', 48)])}{task.delimiter}{answer}"
    score = task.score(ex, region, answer)
    assert (score.correct, score.detail["strict_correct"], score.detail["lenient_correct"]) == (
        strict,
        strict,
        lenient,
    )


SOLVED = "1234341221434321"  # rows 1234 / 3412 / 2143 / 4321
PUZZLE = "1030040020000301"
SUDOKU_CASES = [
    # (source, template, region text, answer block or None, person's verdict)
    ("d1", "infilling", "r", f"{SOLVED}\n</answer>", True),
    ("d1", "infilling", "r", f"{SOLVED}1\n</answer>", False),  # 17 digits: not the grid
    ("d1", "infilling", "r", f"{SOLVED[:15]}\n</answer>", False),
    ("d1", "infilling", "r", f"{SOLVED}\n</answer>\nStep 2 of 3", True),  # after the answer
    ("d1", "plain", f"r\n</reasoning>\n<answer>\n{SOLVED}\n</answer>", None, True),
    ("d1", "plain", f"r\n</reasoning>\n<answer>\n{SOLVED}4\n</answer>", None, False),
    ("dream", "plain", "1234\n3412\n2143\n4321\n\nInput:\n1000", None, True),
    ("dream", "plain", "1234\n3412\n2143\n43214", None, False),
]


@pytest.mark.parametrize("source,template,region,answer,verdict", SUDOKU_CASES)
def test_sudoku_answers_have_exactly_the_grids_digits(source, template, region, answer, verdict):
    task = SudokuTask(source=source, template=template)
    ex = Example("s", "q", {"puzzle": PUZZLE, "solution": SOLVED})
    assert task.score(ex, region, answer).correct is verdict
