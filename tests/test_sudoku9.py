"""9x9 Sudoku: unique puzzles, blanks in range, layout, scorer."""

import torch

from nclb.models.hf import HFCodec
from nclb.tasks.sudoku9 import Sudoku9Task, count_solutions, is_valid_solution
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


def test_puzzles_are_unique_with_blanks_in_range():
    task = Sudoku9Task(n_test=40)
    for ex in task.examples():
        puzzle = ex.meta["puzzle"]
        assert 30 <= puzzle.count("0") <= 55
        assert count_solutions(puzzle) == [ex.gold]
        assert is_valid_solution(ex.gold, puzzle)


def test_counting_solver_sees_two_solutions():
    solution = Sudoku9Task(n_test=1).examples()[0].gold
    assert len(count_solutions("0" * 81)) == 2
    assert count_solutions(solution) == [solution]
    assert count_solutions("11" + "0" * 79) == []


def test_fixed_test_set_is_deterministic_and_excluded_from_training():
    a, b = Sudoku9Task(n_test=30), Sudoku9Task.from_config({"name": "sudoku9", "n_test": 30})
    assert [e.meta["puzzle"] for e in a.examples()] == [e.meta["puzzle"] for e in b.examples()]
    assert a.examples(5) == a.examples()[:5]
    test = {e.gold for e in a.examples()}
    stream = a.train_stream(seed=0)
    grids = [next(stream).gold for _ in range(50)]
    assert all(is_valid_solution(g, "0" * 81) and g not in test for g in grids)


def test_scorer_accepts_valid_and_rejects_invalid_or_inconsistent():
    task = Sudoku9Task(n_test=3)
    ex = task.examples(1)[0]
    puzzle, gold = ex.meta["puzzle"], ex.gold
    assert task.score(ex, gold, None).correct
    rows = "\n".join(gold[i : i + 9] for i in range(0, 81, 9))
    assert task.score(ex, rows, None).correct  # whitespace is ignored
    swapped = gold[1] + gold[0] + gold[2:]
    assert not task.score(ex, swapped, None).correct
    assert not task.score(ex, gold[:80], None).correct
    relabel = str.maketrans("123456789", "234567891")
    other = gold.translate(relabel)  # a valid grid that breaks the givens
    assert is_valid_solution(other, "0" * 81) and not task.score(ex, other, None).correct
    assert puzzle.count("0") < 81


def test_canvas_masks_exactly_the_blanks():
    task, lm = Sudoku9Task(n_test=3), CharLM()
    ex = task.examples(1)[0]
    canvas = task.canvas(ex, lm, 81)
    gold = task.gold_region(ex, lm, 81)
    blanks = [i for i, c in enumerate(ex.meta["puzzle"]) if c == "0"]
    assert [i for i, t in enumerate(canvas.region) if t == lm.mask_id] == blanks
    assert lm.codec.decode(gold) == ex.gold
    assert canvas.answer is None and lm.codec.decode(canvas.prompt) == "Sudoku:"
