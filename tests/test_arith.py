"""The arithmetic task: answers, traces, difficulty options, fixed test set, layout, scorer."""

import re

import pytest
import torch

from nclb.models.hf import HFCodec
from nclb.tasks.arith import ArithTask
from nclb.tiny.tokenizer import build_tokenizer


class CharLM:
    """Just enough of a MaskedLM for layouts: the tiny tokenizer."""

    def __init__(self) -> None:
        tok = build_tokenizer()
        self.codec = HFCodec(tok)
        self.mask_id, self.pad_id, self.eos_ids = tok.mask_token_id, tok.pad_token_id, (2,)
        self.device, self.vocab_size = torch.device("cpu"), len(tok)

    def prompt_ids(self, text: str) -> list[int]:
        return self.codec.encode(text)


def evaluate_prompt(prompt: str) -> int:
    value = int(re.match(r"\d+", prompt)[0])
    for op, b in re.findall(r"([+-])(\d+)", prompt):
        value = value + int(b) if op == "+" else value - int(b)
    return value


def test_answers_are_recomputed_and_values_in_range():
    task = ArithTask(n_test=200)
    for ex in task.examples():
        assert ex.gold == evaluate_prompt(ex.prompt)
        assert task.check_trace(ex.meta["trace"], ex.prompt)
        numbers = [int(n) for n in re.findall(r"\d+", ex.prompt)] + [ex.gold]
        assert all(10 <= n <= 99 for n in numbers)
        assert 2 <= len(ex.meta["steps"]) <= 3


def test_check_trace_catches_a_corrupted_step():
    task = ArithTask()
    ex = task.examples(1)[0]
    trace = ex.meta["trace"]
    first = trace.index("=") + 1
    digit = str((int(trace[first]) + 1) % 10)
    bad = trace[:first] + digit + trace[first + 1 :]
    assert task.check_trace(trace) and not task.check_trace(bad)
    assert not task.check_trace(trace[:-1])  # unterminated step
    other = task.examples(2)[1]
    assert not task.check_trace(trace, other.prompt)  # right arithmetic, wrong problem


def test_difficulty_options_change_the_distribution():
    easy = ArithTask(n_test=300)
    hard = ArithTask(n_test=300, value_max=999, operand_max=500, min_steps=4, max_steps=5)
    assert max(ex.gold for ex in hard.examples()) >= 100
    assert {len(ex.meta["steps"]) for ex in hard.examples()} == {4, 5}
    assert max(ex.gold for ex in easy.examples()) <= 99
    plain = ArithTask(reverse_digits=False).examples(1)[0]
    assert plain.meta["trace"].startswith(plain.prompt.split("+")[0].split("-")[0])
    with pytest.raises(ValueError):
        ArithTask(value_min=5)


def test_fixed_test_set_is_deterministic_and_excluded_from_training():
    a, b = ArithTask(), ArithTask.from_config({"name": "arith", "n_test": 500})
    assert [e.prompt for e in a.examples()] == [e.prompt for e in b.examples()]
    assert len({e.prompt for e in a.examples()}) == 500
    test = {e.prompt for e in a.examples()}
    stream = a.train_stream(seed=0)
    assert not any(next(stream).prompt in test for _ in range(3000))
    with pytest.raises(ValueError):
        a.train_stream(seed=a.seed).__next__()
    with pytest.raises(ValueError):
        ArithTask.from_config({"name": "arith", "bogus": 1})


def test_train_exclude_steps_keeps_other_chain_lengths_test_sets_out_of_training():
    small = dict(n_test=20, ops="+", operand_min=10, operand_max=11, min_steps=1, max_steps=2)
    two_step = {e.prompt for e in ArithTask(**{**small, "min_steps": 2}).examples()}

    def seen(task: ArithTask) -> int:
        stream = task.train_stream(seed=0)
        return sum(next(stream).prompt in two_step for _ in range(2000))

    assert seen(ArithTask(**small)) > 0  # a small problem space: the stream meets them
    assert seen(ArithTask(**small, train_exclude_steps=[2])) == 0
    for bad in ([0], [True], ["2"]):
        with pytest.raises(ValueError, match="train_exclude_steps"):
            ArithTask(train_exclude_steps=bad)


def test_gold_region_fits_the_canvas_and_scores_correct():
    task, lm = ArithTask(), CharLM()
    for ex in task.examples(20):
        canvas = task.canvas(ex, lm, task.gen_length)
        gold = task.gold_region(ex, lm, task.gen_length)
        assert len(gold) == len(canvas.region) == task.gen_length
        assert all(c == g for c, g in zip(canvas.region, gold) if c != lm.mask_id)
        a, b = canvas.answer
        text, answer = lm.codec.decode(gold), lm.codec.decode(gold[a:b])
        assert task.score(ex, text, answer).correct
        empty = task.score(ex, text, "")  # strict: no answer; lenient: the region's result
        assert not empty.correct and empty.detail["lenient_correct"]
        assert not task.score(ex, text, str(ex.gold + 1)).correct
        assert task.score(ex, text, answer).detail["trace_ok"]
